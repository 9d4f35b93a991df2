"""Kubernetes canary: Deployment xray-api-canary beside production, behind the same Service.

The overlay is rendered with the canary component (k8s/components/canary) on top, production still
pinned to the model it serves now, so only the canary Deployment (and the unchanged ConfigMap) is
applied; its replicas give it about PERCENT of the pods the Service balances over. The analysis
(deploy/canary_analysis.py) reads one pod of each side through `kubectl port-forward`: real users'
traffic is the load. Pass: the candidate is promoted (registry policy) and production rolled out
to it by deploy_k8s, then the canary is deleted. Fail: the canary is deleted, production untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.actor import default_actor
from core.errors import MlopsError, UsageError
from core.settings import Settings
from deploy import k8s
from deploy.canary import check_percent, plan_split
from deploy.canary_analysis import PASS, Verdict, analyse, scrape
from deploy.model import Model

COMPONENT = "components/canary"
TRACK = "track"  # pod label: stable (production) or canary; the Service selects both by app


@dataclass
class K8sCanaryOutcome:
    """What a Kubernetes canary did: the verdict, the split, and the full rollout when it passed."""

    promoted: bool
    verdict: Verdict
    detail: str
    namespace: str
    split: dict[str, Any]
    commands: list[list[str]] = field(default_factory=list)
    manifests: str = ""
    rollout: k8s.K8sOutcome | None = None

    @property
    def pulled(self) -> bool:
        return self.verdict.status != PASS


def canary_name(settings: Settings) -> str:
    return f"{settings.deploy.deployment}-canary"


def _say(message: str) -> None:
    k8s._say(f"canary: {message}")


def canary_kustomization(
    overlay: Path,
    where: Path,
    settings: Settings,
    image_tag: str,
    live: Model,
    candidate: Model,
    replicas: int,
) -> dict:
    """The overlay with production pinned to LIVE, plus the canary component serving CANDIDATE."""
    data = k8s.kustomization(overlay, where, settings, image_tag, live)
    own = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    # The component comes in above the overlay, so the overlay's namespace and labels are set again.
    for key in ("namespace", "labels"):
        if key in own:
            data[key] = own[key]
    component = Path(settings.deploy.k8s_dir) / COMPONENT
    data["components"] = [os.path.relpath(component.resolve(), where.resolve())]
    cause = f"mlops deploy --canary: model {candidate.ref} (v{candidate.version}), image tag {image_tag}"
    env = [("MLOPS_MODEL_REF", candidate.ref), ("MLOPS_MODEL_VERSION", str(candidate.version))]
    ops = [
        {"op": "replace", "path": "/spec/replicas", "value": replicas},
        {"op": "add", "path": "/metadata/annotations", "value": {"kubernetes.io/change-cause": cause}},
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": {
                "mlops/model-ref": candidate.ref,
                "mlops/model-version": str(candidate.version),
                "mlops/image-tag": image_tag,
            },
        },
        # env wins over the ConfigMap's envFrom: the candidate on the canary only.
        *[
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": k, "value": v}}
            for k, v in env
        ],
    ]
    target = {"kind": "Deployment", "name": canary_name(settings)}
    # Production's annotation patch goes: production is not applied, and by name it would match both.
    data["patches"] = [{"target": target, "patch": yaml.safe_dump(ops)}]
    return data


def render_canary(
    settings: Settings, overlay: str, image_tag: str, live: Model, candidate: Model, replicas: int
) -> str:
    """Every manifest of the overlay plus the canary, rendered by the real `kubectl kustomize`."""
    source = k8s.overlay_dir(settings, overlay)
    with tempfile.TemporaryDirectory(prefix="mlops-kustomize-") as tmp:
        where = Path(tmp)
        data = canary_kustomization(source, where, settings, image_tag, live, candidate, replicas)
        (where / "kustomization.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        done = k8s._run([k8s.kubectl_path(settings), "kustomize", str(where)], timeout_s=120)
    if done.returncode != 0:
        raise MlopsError(f"kubectl kustomize failed for overlay {overlay} + canary: {done.stderr.strip()}")
    return done.stdout


def canary_documents(manifests: str, settings: Settings) -> str:
    """Only what the canary needs applied: its Deployment and the ConfigMap its pods read."""
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    canary = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == canary_name(settings)
    )
    config = canary["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
    keep = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == config] + [canary]
    return yaml.safe_dump_all(keep, sort_keys=False)


def _live(
    settings: Settings, namespace: str, overlay: str, cmd: list[str]
) -> tuple[Model, int, dict[str, str]]:
    """The production Deployment now (CMD, the plan's `kubectl get`): its model, replicas and selector;
    a usage error when absent."""
    name = settings.deploy.deployment
    k8s._say("$ " + shlex.join(cmd))
    done = k8s._run(cmd, 60)
    if done.returncode != 0:
        raise UsageError(
            f"no Deployment {name} in namespace {namespace} to compare a canary with "
            f"({done.stderr.strip()}); deploy normally first (mlops deploy --target k8s --overlay {overlay})"
        )
    deployment = json.loads(done.stdout)
    notes = deployment["spec"]["template"]["metadata"].get("annotations") or {}
    if "mlops/model-ref" not in notes:
        raise UsageError(f"deployment/{name} in {namespace} was not rolled out by mlops (no mlops/model-ref)")
    version = int(notes["mlops/model-version"])
    replicas = (deployment.get("status") or {}).get("replicas") or deployment["spec"].get("replicas") or 1
    live = Model(notes["mlops/model-ref"], "", version)
    return live, int(replicas), deployment["spec"]["selector"]["matchLabels"]


def _baseline_pod(settings: Settings, namespace: str, selector: dict[str, str]) -> str:
    """One production pod: the production selector matches canary pods too, so they are excluded."""
    labels = ",".join([*(f"{k}={v}" for k, v in sorted(selector.items())), f"{TRACK}!=canary"])
    cmd = [k8s.kubectl_path(settings), "get", "pods", "-n", namespace, "-l", labels, "-o", "name"]
    k8s._say("$ " + shlex.join(cmd))
    done = k8s._run(cmd, 60)
    pods = done.stdout.split()
    if done.returncode != 0 or not pods:
        raise MlopsError(f"no production pod ({labels}) in {namespace}: {done.stderr.strip()}")
    return pods[0]


def plan(settings: Settings, namespace: str) -> list[list[str]]:
    """The kubectl commands a canary runs, in order (the full rollout is deploy_k8s's own plan)."""
    kubectl, name = k8s.kubectl_path(settings), canary_name(settings)
    timeout = f"--timeout={settings.deploy.rollout_timeout_s}s"
    return [
        [kubectl, "get", "deployment", settings.deploy.deployment, "-n", namespace, "-o", "json"],
        [kubectl, "apply", "-f", "-"],
        [kubectl, "rollout", "status", f"deployment/{name}", "-n", namespace, timeout],
        [kubectl, "get", "pods", "-n", namespace, "-l", f"app=...,{TRACK}!=canary", "-o", "name"],
        [kubectl, "port-forward", "-n", namespace, f"deployment/{name}", "PORT:8080"],
        [kubectl, "port-forward", "-n", namespace, "pod/PRODUCTION-POD", "PORT:8080"],
        [kubectl, "delete", "deployment", name, "-n", namespace],
    ]


def canary_k8s(
    settings: Settings,
    candidate: Model,
    overlay: str,
    image_tag: str,
    percent: float,
    promote_as: dict[str, Any],
    smoke_url: str | None = None,
    dry_run: bool = False,
) -> K8sCanaryOutcome:
    """Serve CANDIDATE to about PERCENT of the overlay's pods, analyse, then promote and roll out, or pull."""
    check_percent(percent)
    namespace = k8s.namespace_of(
        k8s.render(settings, overlay, image_tag, candidate), settings.deploy.deployment
    )
    steps = plan(settings, namespace)
    live, base_pods, selector = _live(settings, namespace, overlay, steps[0])
    if live.version == candidate.version:
        raise UsageError(
            f"v{candidate.version} already serves all of {namespace}; a canary needs another version"
        )
    split = plan_split(base_pods, percent, "pods")
    pods = split["canary"]
    manifests = canary_documents(render_canary(settings, overlay, image_tag, live, candidate, pods), settings)
    if dry_run:
        verdict = Verdict("pending", [], {})
        return K8sCanaryOutcome(False, verdict, "dry run", namespace, split, steps, manifests)
    _say(
        f"v{candidate.version} gets {pods} pod(s) beside v{live.version}'s {base_pods}: about "
        f"{split['expected_share']:.0%} of the Service's traffic (asked for {percent:g}%)"
    )
    ran: list[list[str]] = [steps[0]]

    def run(cmd: list[str], timeout_s: float, stdin: str | None = None) -> Any:
        k8s._say("$ " + shlex.join(cmd))
        ran.append(cmd)
        return k8s._run(cmd, timeout_s, stdin)

    def outcome(promoted: bool, verdict: Verdict, detail: str, rollout: Any = None) -> K8sCanaryOutcome:
        return K8sCanaryOutcome(promoted, verdict, detail, namespace, split, ran, manifests, rollout)

    applied = run(steps[1], 120, manifests)
    try:
        if applied.returncode != 0:
            verdict = Verdict("fail", [f"kubectl apply failed: {applied.stderr.strip()}"], {})
        elif (status := run(steps[2], settings.deploy.rollout_timeout_s + 30)).returncode != 0:
            verdict = Verdict(
                "fail", [f"the canary did not roll out: {(status.stderr or status.stdout).strip()}"], {}
            )
        else:
            verdict = _analyse(settings, namespace, selector, live, candidate)
    except BaseException:
        run(steps[-1], 120)  # interrupted: production keeps all traffic
        raise
    split["measured_share"] = verdict.figures.get("canary_share")
    if verdict.status != PASS:
        _say(f"{verdict.status.upper()}: " + "; ".join(verdict.reasons))
        deleted = run(steps[-1], 120)
        gone = (
            "canary deleted" if deleted.returncode == 0 else f"canary NOT deleted: {deleted.stderr.strip()}"
        )
        why = "; ".join(verdict.reasons)
        detail = f"canary v{candidate.version} pulled: {why}; {gone}; still serving v{live.version}"
        return outcome(False, verdict, detail)
    _say(
        f"PASS after {int(verdict.figures['canary']['requests'])} canary predictions; "
        "promoting and rolling out fully"
    )
    return _promote_and_roll_out(
        settings, candidate, overlay, image_tag, promote_as, smoke_url, verdict, outcome, run, steps[-1]
    )


def _analyse(
    settings: Settings, namespace: str, selector: dict[str, str], live: Model, candidate: Model
) -> Verdict:
    """Both sides' /metrics through port-forwards, compared until a verdict."""
    limits = settings.canary
    try:
        pod = _baseline_pod(settings, namespace, selector)
        with contextlib.ExitStack() as stack:
            canary_url = stack.enter_context(
                k8s.port_forward(settings, namespace, f"deployment/{canary_name(settings)}", 8080)
            )
            base_url = stack.enter_context(k8s.port_forward(settings, namespace, pod, 8080))
            _say(
                f"analysing until the canary has served {limits.requests} predictions "
                f"(at most {limits.duration_s:g} s; no verdict before {limits.min_requests} per side)"
            )
            return analyse(
                lambda: scrape(base_url, str(live.version)),
                lambda: scrape(canary_url, str(candidate.version)),
                limits,
                _say,
            )
    except MlopsError as exc:
        return Verdict("fail", [str(exc)], {})


def _promote_and_roll_out(
    settings: Settings,
    candidate: Model,
    overlay: str,
    image_tag: str,
    promote_as: dict[str, Any],
    smoke_url: str | None,
    verdict: Verdict,
    outcome: Any,
    run: Any,
    delete: list[str],
) -> K8sCanaryOutcome:
    """Promote under the registry's policy, roll production out to it, then delete the canary."""
    from deploy.promotion import promote_passed_canary, rollback

    try:
        target = promote_passed_canary(settings, candidate, verdict.figures["canary"], promote_as)
    except MlopsError as exc:
        run(delete, 120)
        return outcome(False, verdict, f"the canary passed but promotion was refused: {exc}; canary deleted")
    rollout = k8s.deploy_k8s(settings, target, overlay, image_tag, smoke_url=smoke_url)
    deleted = run(delete, 120)
    gone = "canary deleted" if deleted.returncode == 0 else f"canary NOT deleted: {deleted.stderr.strip()}"
    if not rollout.ok:
        if target is not candidate:
            rollback(settings, default_actor(), f"automatic: the full rollout of {target.ref} failed")
        detail = f"the canary passed but the full rollout failed: {rollout.detail}; {gone}"
        return outcome(False, verdict, detail, rollout)
    return outcome(True, verdict, f"canary passed; {rollout.detail}; {gone}", rollout)
