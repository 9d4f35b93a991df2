"""Headers the project's own clients send so their requests stay out of production's monitoring.

The API honours `X-MLOps-Traffic-Class` only with the deployment's traffic token (model_api/monitoring.py);
the token comes from the environment (MLOPS_TRAFFIC_TOKEN), never from a file.
"""

from __future__ import annotations

import os

TRAFFIC_HEADER = "X-MLOps-Traffic-Class"


def traffic_headers(traffic_class: str) -> dict[str, str]:
    """The headers marking a request as TRAFFIC_CLASS ({} without a token: the API would refuse them)."""
    token = os.environ.get("MLOPS_TRAFFIC_TOKEN", "")
    if not token:
        return {}
    return {TRAFFIC_HEADER: traffic_class, "Authorization": f"Bearer {token}"}
