"""CLI verbs promote and rollback (with the promotion policy) and deploy (local or Kubernetes)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.errors import EXIT_ERROR, UsageError
from core.settings import Settings
from deploy.canary_record import finish_canary, record_deployment
from deploy.model import resolve_model

LOCAL_ONLY = ("port", "host", "stop")
K8S_ONLY = ("overlay", "image_tag", "smoke_url", "dry_run")


def _check_options(args: argparse.Namespace) -> None:
    wrong = LOCAL_ONLY if args.target == "k8s" else K8S_ONLY
    given = [name for name in wrong if getattr(args, name) not in (None, False)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags} cannot be used with --target {args.target}")
    if args.stop and args.model:
        raise UsageError("--stop takes no --model")
    if args.canary is not None:
        from deploy.canary import check_percent

        if args.stop:
            raise UsageError("--stop takes no --canary")
        check_percent(args.canary)
    elif getattr(args, "expect_production", None) is not None or getattr(args, "reason", None):
        raise UsageError(
            "--expect-production and --reason go with --canary (they describe the promotion a canary makes)"
        )


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def _report(args: argparse.Namespace, payload: dict[str, Any], ok: bool, done: str, failed: str) -> int:
    """Print a deployment's outcome (JSON or one line); its exit code."""
    _print(args, payload, done if ok else failed)
    return 0 if ok else EXIT_ERROR


def _canary_report(
    args: argparse.Namespace, model: Any, target: str, record: dict[str, Any], code: int
) -> int:
    """Print a canary's outcome (JSON, or the decision, the split and the figures); its exit code."""
    if args.json:
        print(json.dumps({"target": target, "model": asdict(model), **record}, indent=2, default=str))
        return code
    split = record["split"]
    head = f"canary of {model.name} v{model.version} on {target}: {record['decision'].upper()}"
    lines = [head + (": " + "; ".join(record["reasons"]) if record["reasons"] else "")]
    if "expected_share" in split:
        measured = split.get("measured_share")
        lines.append(
            f"  split: asked {split['requested_percent']:g}%, {split['canary']} canary vs "
            f"{split['baseline']} baseline {split['unit']} -> expected {split['expected_share']:.0%}, "
            + ("measured -" if measured is None else f"measured {measured:.0%}")
        )
    for side in ("baseline", "canary"):
        f = record["figures"].get(side)
        if f:
            p99 = "-" if f["p99_latency_s"] is None else f"{f['p99_latency_s'] * 1000:.0f} ms"
            lines.append(
                f"  {side:<8} {f['requests']:>6} requests, error rate {f['error_rate']:.1%}, p99 {p99}, "
                f"mean confidence {f['mean_confidence']}, classes {f['class_shares']}"
            )
    lines.append(f"  {record['detail']}")
    print("\n".join(lines))
    return code


def _promote_as(args: argparse.Namespace) -> dict[str, Any]:
    """The approval a passed canary promotes a testing version with (the authenticated identity)."""
    from deploy.promotion import parse_expected

    return {"approved_by": None, "expected": parse_expected(args.expect_production), "reason": args.reason}


def _canary_local(args: argparse.Namespace, settings: Settings, model: Any) -> int:
    from deploy.canary import canary_local

    outcome = canary_local(settings, model, args.canary, _promote_as(args))
    rollout = {"url": outcome.url, "detail": outcome.detail}
    record, code = finish_canary(settings, model.ref, "local", outcome, rollout)
    return _canary_report(args, model, "local", record, code)


def _canary_k8s_plan(
    args: argparse.Namespace, settings: Settings, model: Any, overlay: str, tag: str, outcome: Any
) -> int:
    """--dry-run: the canary's manifests, its split and the commands it would run."""
    commands, split = [shlex.join(c) for c in outcome.commands], outcome.split
    if args.json:
        payload = {
            "target": "k8s", "overlay": overlay, "namespace": outcome.namespace, "model": asdict(model),
            "image_tag": tag, "split": split, "manifests": outcome.manifests, "commands": commands,
        }  # fmt: skip
        print(json.dumps(payload, indent=2))
        return 0
    print(outcome.manifests, end="")
    say = lambda line: print(f"deploy: {line}", file=sys.stderr)  # noqa: E731
    say(
        f"canary: {split['canary']} canary pod(s) beside {split['baseline']} production pod(s): about "
        f"{split['expected_share']:.0%} of the traffic (asked for {split['requested_percent']:g}%)"
    )
    notes = {4: "  # the analysis reads both sides' /metrics", 6: "  # pass or fail, after the analysis"}
    for i, cmd in enumerate(commands):
        say(f"would run: {cmd}{notes.get(i, '')}")
    say(
        "then on a pass: mlops promote (the registry's policy) and the full rollout of "
        f"deployment/{settings.deploy.deployment} (see mlops deploy --target k8s --overlay {overlay} "
        "--dry-run); on a fail: exit 3, production untouched"
    )
    return 0


def _canary_k8s(args: argparse.Namespace, settings: Settings, model: Any, overlay: str, tag: str) -> int:
    from deploy.k8s_canary import canary_k8s

    outcome = canary_k8s(
        settings, model, overlay, tag, args.canary, _promote_as(args), args.smoke_url, args.dry_run
    )
    if args.dry_run:
        return _canary_k8s_plan(args, settings, model, overlay, tag, outcome)
    target = f"k8s:{overlay}"
    rollout = {"namespace": outcome.namespace, "image_tag": tag,
               "detail": outcome.rollout.detail if outcome.rollout else None}  # fmt: skip
    commands = [shlex.join(c) for c in outcome.commands]
    record, code = finish_canary(
        settings, model.ref, target, outcome, rollout, namespace=outcome.namespace, commands=commands
    )
    return _canary_report(args, model, target, record, code)


def _local(args: argparse.Namespace, settings: Settings) -> int:
    from deploy import local

    if args.stop:
        message = local.stop_local(settings)
        _print(args, {"target": "local", "stopped": True, "detail": message}, message)
        return 0
    model = resolve_model(settings, args.model or settings.api.model_ref, verify=True)
    if args.canary is not None:
        return _canary_local(args, settings, model)
    outcome = local.deploy_local(settings, model, host=args.host, port=args.port)
    detail = {
        "url": outcome.url,
        "detail": outcome.detail,
        "pid": outcome.server.pid if outcome.server else None,
        "previous_version": outcome.previous.version if outcome.previous else None,
    }
    record_deployment(settings, model.ref, "local", outcome.ok, detail)
    payload = {
        "target": "local", "ok": outcome.ok, "model": asdict(model), **detail,
        "smoke": outcome.smoke.failures if outcome.smoke else None,
    }  # fmt: skip
    done = f"deployed {model.name} v{model.version} ({model.ref}) at {outcome.url}"
    return _report(args, payload, outcome.ok, done, f"deploy FAILED and was rolled back: {outcome.detail}")


def _k8s(args: argparse.Namespace, settings: Settings) -> int:
    from deploy import k8s

    overlay = args.overlay or settings.deploy.overlay
    k8s.overlay_dir(settings, overlay)  # a wrong overlay is a usage error before any registry call
    model = resolve_model(settings, args.model or settings.api.model_ref, verify=not args.dry_run)
    if model.version is None or ":" not in model.ref:
        raise UsageError(
            f"{model.ref} is a local file; a cluster can only load registry refs (e.g. production:7)"
        )
    tag = args.image_tag or settings.deploy.image_tag
    if args.canary is not None:
        return _canary_k8s(args, settings, model, overlay, tag)
    outcome = k8s.deploy_k8s(settings, model, overlay, tag, smoke_url=args.smoke_url, dry_run=args.dry_run)
    if args.dry_run:
        if args.json:
            payload = {"target": "k8s", "overlay": overlay, "namespace": outcome.namespace,
                       "model": asdict(model), "image_tag": tag, "manifests": outcome.detail,
                       "commands": [shlex.join(c) for c in outcome.commands]}  # fmt: skip
            print(json.dumps(payload, indent=2))
        else:
            print(outcome.detail, end="")
            for cmd in outcome.commands:
                note = "  # only if the rollout or smoke test fails" if "undo" in cmd else ""
                print(f"deploy: would run: {shlex.join(cmd)}{note}", file=sys.stderr)
        return 0
    target = f"k8s:{overlay}"
    detail = {"namespace": outcome.namespace, "image_tag": tag, "detail": outcome.detail}
    record_deployment(settings, model.ref, target, outcome.ok, detail)
    payload = {"target": "k8s", "overlay": overlay, "namespace": outcome.namespace, "ok": outcome.ok,
               "model": asdict(model), "image_tag": tag, "detail": outcome.detail,
               "commands": [shlex.join(c) for c in outcome.commands]}  # fmt: skip
    done = f"deployed {model.name} v{model.version} to {target}: {outcome.detail}"
    return _report(args, payload, outcome.ok, done, f"deploy FAILED: {outcome.detail}")


def warn_without_trust(settings: Settings) -> None:
    """One stderr line when no trust policy is in force: approvals and deploys rest on weaker checks."""
    from registry.trust import policy_path

    if policy_path(settings) is None:
        print(
            "mlops: no trust policy is in force (trust.policy / MLOPS_TRUST_POLICY): approvals rest on the "
            "OS account and versions need no signed chain; create one with: mlops keys init --trust",
            file=sys.stderr,
        )


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.promotion import parse_expected, promote

    warn_without_trust(settings)
    expected = parse_expected(args.expect_production)
    done = promote(settings, args.ref, args.approved_by, args.actor, args.reason, expected, args.approver_key)
    if args.json:
        print(json.dumps(done, indent=2, sort_keys=True))
    else:
        was = f"production:{done['previous']}" if done["previous"] is not None else "nothing"
        who = f"{done['identity']['name']} ({done['identity']['source']})"
        print(
            f"promoted {done['from']} to {done['promoted']} (was {was}), approved by "
            f"{done['approved_by']}, authenticated as {who}"
        )
    return 0


def _approve(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.promotion import approve

    done = approve(settings, args.ref, args.approved_by, args.approver_key, args.actor, args.reason)
    if args.json:
        print(json.dumps(done, indent=2, sort_keys=True))
    else:
        print(f"{done['approver']} approved version {done['version']} (digest {done['digest'][:16]}), signed")
    return 0


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    from deploy.promotion import rollback

    done = rollback(settings, actor=args.actor, reason=args.reason)
    if args.json:
        print(json.dumps(done, indent=2, sort_keys=True))
    else:
        print(f"rolled production back from production:{done['rolled_back_from']} to {done['ref']}")
    return 0


def run_deploy(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of `mlops deploy`."""
    _check_options(args)
    if not getattr(args, "stop", False):
        warn_without_trust(settings)
    return _local(args, settings) if args.target == "local" else _k8s(args, settings)


def _train_job(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import shlex
    from datetime import UTC, datetime

    from deploy.train_job import plan, render_job, run_job
    from training.summary import json_on_gate_failure, print_summary

    run = os.environ.get("BUILD_NUMBER") or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    name = args.name or f"xray-train-{run}"
    documents = render_job(settings, args.target, name, args.workers, args.data, [])
    job = next(d for d in documents if d["kind"] == "Job")
    namespace = job["metadata"].get("namespace", "default")
    if args.dry_run:
        commands = plan(settings, namespace, name)
        if args.json:
            payload = {"job": name, "namespace": namespace, "workers": args.workers, "commands": commands}
            print(json.dumps({**payload, "manifests": documents}, indent=1))
        else:
            print(f"job/{name} in {namespace}: {args.workers} workers training on {args.data} (dry run)")
            print("\n".join(shlex.join(c) for c in commands))
        return 0
    with json_on_gate_failure(args.json):
        summary = run_job(settings, documents, name, args.timeout_s)
    print_summary(summary, args.json)
    return 0


def _add_train_job_command(subparsers: argparse._SubParsersAction) -> None:
    job = subparsers.add_parser(
        "train-job",
        help="run mlops train as the distributed Indexed Job on Kubernetes and wait for it",
        description="Render k8s/training/distributed (or the gpu-node-pool overlay) with this run's "
        "name, worker count and dataset, kubectl apply it, wait for the Job, and print the chief's "
        "summary (pod 0 registers; the others only train). Exit 3 when the gate failed, 1 when the Job "
        "failed otherwise (a lost worker: nothing registered).",
        epilog="Exit codes: 0 registered, 1 failed, 2 usage, 3 gate failed.",
    )
    job.add_argument("--data", required=True, metavar="SOURCE", help="gs://... (a snapshot shards by file)")
    job.add_argument("--workers", type=int, default=2, metavar="N", help="pods, one worker each (default 2)")
    job.add_argument(
        "--target", choices=("distributed", "gpu-node-pool"), default="distributed",
        help="k8s/training/distributed (CPU nodes) or overlays/gpu-node-pool (default distributed)",
    )  # fmt: skip
    job.add_argument("--name", metavar="JOB", help="the Job's name (default xray-train-$BUILD_NUMBER)")
    job.add_argument("--timeout-s", type=int, default=21600, metavar="S", help="wait this long (default 6 h)")
    job.add_argument("--dry-run", action="store_true", help="print the kubectl commands, apply nothing")
    job.add_argument("--json", action="store_true", help="print the chief's JSON summary")
    job.set_defaults(handler=_train_job)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    _add_promotion_commands(subparsers)
    _add_train_job_command(subparsers)
    parser = subparsers.add_parser(
        "deploy",
        help="roll the API out on the production model (local or Kubernetes)",
        description=(
            "Roll the prediction API out on a model version, smoke-test it (/readyz, /model, one "
            "/predict) and roll back on failure. local: switch the API on a stable port with no "
            "dropped request. k8s: render k8s/overlays/OVERLAY with the image tag and model, "
            "kubectl apply, wait for the rollout, smoke-test, `kubectl rollout undo` on failure."
        ),
        epilog="Exit codes: 0 deployed (with --canary: the canary passed and now serves all traffic), "
        "1 failed (rolled back), 2 usage, 3 the canary was pulled (production untouched).",
    )
    parser.add_argument("--target", choices=["local", "k8s"], required=True, help="where to deploy")
    parser.add_argument(
        "--model", metavar="REF", help="registry ref (default: api.model_ref, production:current)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    parser.add_argument(
        "--canary",
        type=float,
        metavar="PERCENT",
        help="serve the model to about PERCENT%% of requests beside the running production first, compare "
        "both sides' /metrics (error rate, p99 latency, class shares, mean confidence; thresholds in the "
        "[canary] settings), then roll it out fully (pass) or pull it (exit 3, production untouched)",
    )
    parser.add_argument(
        "--expect-production",
        metavar="N|none",
        help="with --canary: the production version the approval was given against; the promotion a "
        "passing canary makes fails with a conflict if production moved (default: as read at promotion)",
    )
    parser.add_argument(
        "--reason", help="with --canary: why it was approved (kept with the promotion in the audit log)"
    )
    group = parser.add_argument_group("local")
    group.add_argument("--port", type=int, metavar="P", help="stable port (default api.port)")
    group.add_argument("--host", metavar="H", help="address to listen on (default api.host)")
    group.add_argument("--stop", action="store_true", help="stop the local API and release its port")
    group = parser.add_argument_group("k8s")
    group.add_argument(
        "--overlay", metavar="NAME", help="k8s/overlays/NAME (default deploy.overlay: production)"
    )
    group.add_argument("--image-tag", metavar="T", help="API image tag (default deploy.image_tag)")
    group.add_argument(
        "--smoke-url", metavar="URL", help="smoke-test this URL instead of a kubectl port-forward"
    )
    group.add_argument(
        "--dry-run", action="store_true", help="print the manifests and the commands; apply nothing"
    )
    parser.set_defaults(handler=run_deploy)


def _add_promotion_commands(subparsers: argparse._SubParsersAction) -> None:
    """promote and rollback: the verbs around the promotion policy."""
    promote = subparsers.add_parser(
        "promote",
        help="copy a tested version to production",
        description="Copy a tested version to production after the promotion policy approves it: the "
        "approver is authenticated (Jenkins' input submitter in a Jenkins build, else your OS account) "
        "and listed in deploy.approvers, the gate and the latest model tests passed, the signature "
        "verifies, and production is still the version the approval was given against. Every refusal "
        "is recorded in the audit log.",
        epilog="Exit codes: 0 promoted, 1 error or conflict (production moved), 2 usage, 3 the policy "
        "said no.",
    )
    promote.add_argument("ref", metavar="REF", help="testing:N or testing:latest")
    promote.add_argument(
        "--approved-by",
        metavar="WHO",
        help="who approves; must be the authenticated identity (or an approver it maps to via "
        "deploy.approver_accounts); default: that identity",
    )
    promote.add_argument(
        "--expect-production",
        metavar="N|none",
        help="the production version the approval was given against; promotion fails with a conflict "
        "if production has moved since (default: production as read when the command starts)",
    )
    promote.add_argument(
        "--approver-key",
        type=Path,
        metavar="PEM",
        help="your approver private key (with a trust policy the key decides who approves; default "
        "trust.approver_key, else <home>/keys/approver-NAME.pem for --approved-by NAME)",
    )
    promote.add_argument("--reason", default="", help="why (kept in the audit log)")
    promote.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    promote.add_argument("--json", action="store_true", help="machine-readable output")
    promote.set_defaults(handler=_promote)

    approve = subparsers.add_parser(
        "approve",
        help="sign an approval of a version without moving production",
        description="Sign an approval statement of REF with your approver key (trust policy), naming its "
        "digest and the production it replaced; production does not move. Use it to re-approve the "
        "serving version after its approver's key was removed from the trust policy.",
        epilog="Exit codes: 0 approved, 1 error, 2 usage, 3 the key is not an approver key.",
    )
    approve.add_argument("ref", metavar="REF", help="testing:N, production:current or production:N")
    approve.add_argument("--approved-by", metavar="WHO", help="your approver name (must be your key's)")
    approve.add_argument("--approver-key", type=Path, metavar="PEM", help="your approver private key")
    approve.add_argument("--reason", default="", help="why (kept in the statement)")
    approve.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    approve.add_argument("--json", action="store_true", help="machine-readable output")
    approve.set_defaults(handler=_approve)

    rollback = subparsers.add_parser(
        "rollback",
        help="point production back at the previous version",
        description="Point production:current back at the version that was live before it.",
    )
    rollback.add_argument("--reason", default="", help="why (kept in the audit log)")
    rollback.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    rollback.add_argument("--json", action="store_true", help="machine-readable output")
    rollback.set_defaults(handler=_rollback)
