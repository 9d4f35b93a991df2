"""One demo model trained and served per end-to-end monitoring module (a module may register versions
of its own, e.g. an unsigned stand-in, that another module's pipeline run must not meet)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from live_server import stop_server
from served_testlib import Deployment, deploy_demo


@pytest.fixture(scope="module")
def served_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """testing:1 trained on the demo data and served under gunicorn (feedback and traffic tokens set)."""
    deployment = deploy_demo(tmp_path_factory.mktemp("monitoring-e2e"))
    try:
        yield deployment
    finally:
        stop_server(deployment.server)
