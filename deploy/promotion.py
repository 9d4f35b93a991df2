"""Promotion policy: what must be true before a version may go to production."""

from __future__ import annotations

from typing import Any

from mlops.errors import MlopsError
from mlops.settings import Settings


def check_promotion(manifest: dict[str, Any], approved_by: str, settings: Settings) -> dict[str, Any]:
    """Refuse a promotion that breaks policy; return the evidence the approver saw."""
    if approved_by not in settings.deploy.approvers:
        raise MlopsError(
            f"{approved_by!r} is not an approver (approvers: {', '.join(settings.deploy.approvers)}); "
            "set deploy.approvers in mlops.toml or MLOPS_DEPLOY_APPROVERS"
        )
    return {"metrics": manifest.get("metrics", {}), "gate": manifest.get("gate", {})}
