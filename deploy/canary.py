"""Local canary: the candidate serves about PERCENT of requests beside production, on the same socket.

The local API's servers share one listening socket (deploy.sockets), and every gunicorn worker
accepts from that one queue. A candidate server started on it with W_c workers beside production's
W_b takes about W_c / (W_b + W_c) of new connections, so PERCENT becomes a worker count. The split
is only as fine as whole workers allow (2 production workers: 33% or 50%, nothing between), and
it is a share of connections, not of requests: a client that keeps its connection open stays on
one side. The outcome reports the share asked for, the share the workers give, and the share measured.

While the canary runs, deploy/canary_analysis.py compares both sides' /metrics (each read on its own
private port). Pass: a testing version is promoted (the registry's policy) and rolled out to all
traffic with the ordinary zero-downtime switch (deploy.local), then the canary server stops. Fail:
the canary server stops gracefully (its in-flight requests finish), and production was never
touched.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

from core.actor import default_actor
from core.errors import MlopsError, UsageError
from core.settings import Settings
from deploy import local
from deploy.canary_analysis import PASS, Verdict, analyse, scrape
from deploy.model import Model
from deploy.promotion import promote_passed_canary, rollback


def check_percent(percent: float) -> None:
    """A canary takes some of the traffic, never none or all of it."""
    if not 0 < percent < 100:
        raise UsageError(
            f"--canary {percent:g}: give the canary's share of traffic in percent, 0 < PERCENT < 100"
        )


def canary_size(baseline: int, percent: float) -> int:
    """Workers (local) or pods (k8s) that give the canary about PERCENT of the traffic beside BASELINE
    of production's, when every one takes an equal share (at least one)."""
    return max(1, round(baseline * percent / (100 - percent)))


def plan_split(baseline: int, percent: float, unit: str) -> dict[str, Any]:
    """The canary's size beside BASELINE workers or pods (UNIT), and the share whole units give."""
    canary = canary_size(baseline, percent)
    return {
        "requested_percent": percent,
        "unit": unit,
        "baseline": baseline,
        "canary": canary,
        "expected_share": round(canary / (baseline + canary), 4),
    }


@dataclass
class CanaryOutcome:
    """What a canary did: the verdict, and whether the candidate now serves all traffic."""

    promoted: bool
    verdict: Verdict
    detail: str
    url: str
    split: dict[str, Any]
    rollout: local.Outcome | None = None

    @property
    def pulled(self) -> bool:
        return self.verdict.status != PASS


def _say(message: str) -> None:
    local._say(f"canary: {message}")


def canary_local(
    settings: Settings, model: Model, percent: float, promote_as: dict[str, Any]
) -> CanaryOutcome:
    """Serve MODEL to about PERCENT of the local API's traffic, analyse, then promote or pull it.

    PROMOTE_AS: the approval a passed testing version is promoted with (deploy.promotion).
    """
    check_percent(percent)
    with local._exclusive(settings):
        return _canary_local(settings, model, percent, promote_as)


def _serving(settings: Settings) -> tuple[dict[str, Any], local.Server]:
    """The running local deployment and its production server; a usage error when there is none."""
    state = local.load_state(settings)
    holder = state.get("holder")
    if not local.running(holder) or not state.get("current"):
        raise UsageError(
            "no local API is running to compare a canary with; deploy normally first "
            "(mlops deploy --target local), then deploy the candidate with --canary"
        )
    state = local._adopt(state)
    current = local.Server(**state["current"])
    if not local.running(current):
        raise UsageError(f"the local API's server (pid {current.pid}) is not running; deploy normally first")
    return state, current


def _canary_local(
    settings: Settings, model: Model, percent: float, promote_as: dict[str, Any]
) -> CanaryOutcome:
    state, baseline = _serving(settings)
    if baseline.version == model.version and baseline.name == model.name:
        raise UsageError(f"v{model.version} already serves all traffic; a canary needs a different version")
    leftover = state.get("canary")
    if leftover and local.running(leftover):
        _say(f"a canary from an earlier run (pid {leftover['pid']}) is still up; stopping it")
        local._stop(local.Server(**leftover), settings)
    host, port, holder = state["host"], state["port"], state["holder"]
    base_workers = baseline.workers or settings.api.workers
    split = plan_split(base_workers, percent, "workers")
    workers = split["canary"]
    _say(
        f"v{model.version} gets {workers} worker(s) beside v{baseline.version}'s {base_workers}: "
        f"about {split['expected_share']:.0%} of connections (asked for {percent:g}%)"
    )
    sized = dataclasses.replace(settings, api=dataclasses.replace(settings.api, workers=workers))
    server, why, _smoke = local._bring_up(sized, model, holder, host, port)
    url = f"http://{host}:{port}"
    if server is None:
        verdict = Verdict("fail", [f"the canary did not start: {why}"], {})
        return CanaryOutcome(False, verdict, verdict.reasons[0], url, split)
    local._save_state(settings, {**state, "canary": asdict(server)})
    try:
        limits = settings.canary
        _say(
            f"analysing until the canary has served {limits.requests} predictions "
            f"(at most {limits.duration_s:g} s; no verdict before {limits.min_requests} per side)"
        )
        verdict = analyse(
            lambda: scrape(baseline.admin_url, str(baseline.version)),
            lambda: scrape(server.admin_url, str(server.version)),
            limits,
            _say,
        )
    except BaseException:
        _pull(settings, server)  # interrupted: production keeps all traffic
        raise
    split["measured_share"] = verdict.figures.get("canary_share")
    if verdict.status != PASS:
        _say(f"{verdict.status.upper()}: " + "; ".join(verdict.reasons))
        _pull(settings, server)
        detail = f"canary v{model.version} pulled: " + "; ".join(verdict.reasons)
        return CanaryOutcome(False, verdict, detail + f"; still serving v{baseline.version}", url, split)
    _say(
        f"PASS after {int(verdict.figures['canary']['requests'])} canary predictions; "
        "promoting and rolling out fully"
    )
    try:
        target = promote_passed_canary(settings, model, verdict.figures["canary"], promote_as)
    except MlopsError as exc:
        _pull(settings, server)
        detail = f"the canary passed but promotion was refused: {exc}; still serving v{baseline.version}"
        return CanaryOutcome(False, verdict, detail, url, split)
    rollout = local._deploy_local(settings, target, None, None)
    local._stop(server, settings)
    state = local.load_state(settings)
    local._save_state(settings, {**state, "canary": None})
    if not rollout.ok:
        if target is not model:
            rollback(settings, default_actor(), f"automatic: the full rollout of {target.ref} failed")
        detail = f"the canary passed but the full rollout failed: {rollout.detail}"
        return CanaryOutcome(False, verdict, detail, url, split, rollout)
    return CanaryOutcome(True, verdict, f"canary passed; {rollout.detail}", url, split, rollout)


def _pull(settings: Settings, server: local.Server) -> None:
    """Stop the canary server gracefully and forget it; production was never touched."""
    local._stop(server, settings)
    state = local.load_state(settings)
    local._save_state(settings, {**state, "canary": None})
