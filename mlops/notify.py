"""Notifications to the product owner: the evidence for a version, by SMTP or to an outbox folder."""

from __future__ import annotations

import argparse
import os
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from core.errors import MlopsError, UsageError
from core.settings import Settings
from core.templates import render

# What the pipelines send (the Jenkinsfile and `mlops pipeline` use these names).
EVENT_CANDIDATE = "candidate"  # code/data pipeline: a gated version passed the model tests, awaits approval
EVENT_TESTS = "tested"  # tests pipeline: a new test suite ran against the current model
EVENT_DEPLOYED = "deployed"

EVENTS = {
    "trained": "trained and passed the gate",
    "gate-failed": "FAILED the gate",
    "tested": "model tests finished",
    EVENT_CANDIDATE: "passed the gate and the model tests: awaiting approval",
    "promoted": "promoted to production",
    "deployed": "deployed",
}


def infer_event(manifest: dict[str, Any]) -> str:
    """The event a manifest is at: gate-failed, tested, or trained."""
    if not (manifest.get("gate") or {}).get("passed", False):
        return "gate-failed"
    annotations = manifest.get("annotations") or {}
    if annotations.get("deployments"):
        return "deployed"
    if annotations.get("approvals") or manifest.get("area") == "production":
        return "promoted"
    return "tested" if annotations.get("tests") else "trained"


UNKNOWN = "unknown"  # production was not read (no registry at hand)


def approve_command(
    manifest: dict[str, Any], settings: Settings, production: int | str | None = UNKNOWN
) -> str:
    """The exact command that approves this version over the production version seen now."""
    approver = settings.deploy.approvers[0] if settings.deploy.approvers else "<approver>"
    command = f"mlops promote testing:{manifest['version']} --approved-by {approver}"
    if production == UNKNOWN:
        return command
    return command + f" --expect-production {'none' if production is None else production}"


def _production(production: int | str | None) -> str:
    if production == UNKNOWN:
        return "not read"
    return "empty" if production is None else f"production:{production}"


def _metrics_rows(manifest: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    per_class = (manifest.get("metrics") or {}).get("per_class") or {}

    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, int | float) else "-"

    return [
        (name, fmt(m.get("precision")), fmt(m.get("recall")), fmt(m.get("f1")), str(m.get("support", "-")))
        for name, m in per_class.items()
    ]


def _sections(
    manifest: dict[str, Any],
    event: str,
    settings: Settings,
    build_url: str | None,
    production: int | str | None = UNKNOWN,
) -> dict:
    """The facts of the email, shared by the text and the HTML parts."""
    gate = manifest.get("gate") or {}
    tests = ((manifest.get("annotations") or {}).get("tests") or [None])[-1]
    dataset = manifest.get("dataset") or {}
    code = manifest.get("code") or {}
    metrics = manifest.get("metrics") or {}
    accuracy = metrics.get("accuracy")
    facts = {
        "Model": f"{manifest.get('name')} version {manifest.get('version')} ({manifest.get('area', '?')})",
        "Created": str(manifest.get("created_at", "?")),
        "Code": f"{code.get('commit') or '?'} {code.get('repo') or ''}".strip(),
        "Dataset": f"{dataset.get('uri', '?')} (fingerprint {str(dataset.get('fingerprint', '?'))[:16]})",
        "Data revision": str((dataset.get("source") or {}).get("revision") or "not recorded"),
        "Accuracy": f"{accuracy:.4f}" if isinstance(accuracy, int | float) else "not recorded",
        "Gate": ("PASSED" if gate.get("passed") else "FAILED") if gate else "not recorded",
        # An approval is given over this version: the promotion fails if production moves meanwhile.
        "Production now": _production(production),
    }
    if manifest.get("signed_by"):
        facts["Signed by key"] = str(manifest["signed_by"])[:16]
    if tests is None:
        facts["Model tests"] = "not run yet"
    else:
        s = tests.get("summary") or {}
        facts["Model tests"] = (
            f"{'PASSED' if tests.get('passed') else 'FAILED'}: {s.get('passed', 0)} passed, "
            f"{s.get('failed', 0)} failed, {s.get('errors', 0)} errors, {s.get('skipped', 0)} skipped "
            f"(at {tests.get('at', '?')}; JUnit {tests.get('junit', '?')})"
        )
    measured = (tests or {}).get("measurements") or {}
    if measured:
        facts["Measured"] = ", ".join(f"{k} {v}" for k, v in sorted(measured.items()))
    annotations = manifest.get("annotations") or {}
    if annotations.get("approvals"):
        last = annotations["approvals"][-1]
        facts["Approved"] = f"by {last.get('approved_by', '?')} at {last.get('at', '?')}"
    if annotations.get("deployments"):
        last = annotations["deployments"][-1]
        facts["Deployed"] = f"{last.get('target', '?')}: {last.get('result', '?')} at {last.get('at', '?')}"
    if annotations.get("canary"):
        last = annotations["canary"][-1]
        figures = last.get("figures") or {}
        sides = ", ".join(
            f"{side} {f.get('requests')} req, {f.get('error_rate', 0):.1%} errors, "
            f"p99 {f.get('p99_latency_s')} s, confidence {f.get('mean_confidence')}"
            for side in ("canary", "baseline")
            if (f := figures.get(side))
        )
        why = "; ".join(last.get("reasons") or []) or "every threshold held"
        facts["Canary"] = (
            f"{str(last.get('decision', '?')).upper()} ({why}) at {last.get('at', '?')}: {sides}"
        )
    parent = manifest.get("parent")
    if parent:
        facts["Fine-tuned from"] = f"{parent.get('area')}:{parent.get('version')}"
    if build_url:
        facts["Build"] = build_url
    # Only a tested, gated, not yet approved testing version has anything left to approve.
    can_approve = (
        bool(gate.get("passed"))
        and bool(tests and tests.get("passed"))
        and event in ("trained", "tested", EVENT_CANDIDATE)
        and manifest.get("area") == "testing"
        and not (manifest.get("annotations") or {}).get("approvals")
    )
    return {
        "facts": facts,
        "data_warnings": list((dataset.get("validation") or {}).get("warnings") or []),
        "gate_reasons": list(gate.get("reasons") or []),
        "failures": list((tests or {}).get("failures") or []),
        "rows": _metrics_rows(manifest),
        "approve": approve_command(manifest, settings, production) if can_approve else None,
        "approvers": ", ".join(settings.deploy.approvers),
        "jenkins_input": f"{build_url.rstrip('/')}/input/" if build_url and can_approve else None,
        "needs_tests": bool(gate.get("passed")) and tests is None,
    }


def build_message(
    manifest: dict[str, Any],
    event: str,
    settings: Settings,
    to: list[str] | None = None,
    build_url: str | None = None,
    report: Path | None = None,
    production: int | str | None = UNKNOWN,
) -> EmailMessage:
    """The email for one event on one version: plain text, an HTML alternative, the report."""
    if event not in EVENTS:
        raise UsageError(f"unknown event {event!r}; choose one of: {', '.join(EVENTS)}")
    s = _sections(manifest, event, settings, build_url, production)
    report_link = None
    attach = (
        report is not None and report.exists() and report.stat().st_size <= settings.notify.attach_max_bytes
    )
    if report is not None and report.exists() and not attach:
        report_link = f"{report} (too large to attach)"
    elif attach:
        report_link = f"attached ({report.name})"
    context = {"title": EVENTS[event], "s": s, "report_link": report_link}

    msg = EmailMessage()
    msg["Subject"] = f"[mlops] {manifest.get('name')} v{manifest.get('version')}: {EVENTS[event]}"
    msg["From"] = settings.notify.sender
    msg["To"] = ", ".join(to or [settings.notify.product_owner])
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = make_msgid(domain=settings.notify.sender.rpartition("@")[2] or "mlops.local")
    msg["X-Mlops-Event"] = event
    msg["X-Mlops-Version"] = str(manifest.get("version"))
    msg.set_content(render("mlops", "email.txt", **context))
    msg.add_alternative(render("mlops", "email.html", **context), subtype="html")
    if attach:
        msg.add_attachment(report.read_bytes(), maintype="text", subtype="html", filename=report.name)
    return msg


def send_message(msg: EmailMessage, settings: Settings) -> str:
    """Send by SMTP when notify.smtp_host is set, else write an .eml to the outbox; say where it went."""
    n = settings.notify
    if not n.smtp_host:
        settings.outbox.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = settings.outbox / f"{stamp}-v{msg['X-Mlops-Version']}-{msg['X-Mlops-Event']}.eml"
        path.write_bytes(bytes(msg))
        return str(path)
    where = f"{n.smtp_host}:{n.smtp_port}"
    try:
        with smtplib.SMTP(n.smtp_host, n.smtp_port, timeout=n.smtp_timeout_s) as smtp:
            if n.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if n.smtp_user:
                smtp.login(n.smtp_user, n.smtp_password)
            smtp.send_message(msg)
    except ConnectionRefusedError:
        raise MlopsError(
            f"SMTP server {where} refused the connection; check notify.smtp_host/smtp_port, "
            "or unset notify.smtp_host to write emails to the outbox"
        ) from None
    except smtplib.SMTPAuthenticationError as exc:
        raise MlopsError(
            f"SMTP login to {where} as {n.smtp_user!r} failed ({exc.smtp_code}); "
            "check notify.smtp_user and MLOPS_SMTP_PASSWORD"
        ) from None
    except smtplib.SMTPException as exc:
        raise MlopsError(f"SMTP server {where} did not take the email: {str(exc).splitlines()[0]}") from None
    except (TimeoutError, OSError) as exc:
        raise MlopsError(f"cannot reach SMTP server {where}: {exc}") from None
    return f"smtp://{where}"


def notify(
    ref: str,
    settings: Settings,
    event: str | None = None,
    to: list[str] | None = None,
    build_url: str | None = None,
) -> str:
    """Email the product owner the evidence for a registry version; return where it went."""
    from registry import open_registry

    reg = open_registry(settings)
    manifest = reg.resolve(ref).manifest
    event = event or infer_event(manifest)
    report = None
    if manifest.get("area") != "local":
        local = reg.fetch(ref)
        candidate = Path(local.dir) / "report.html"
        report = candidate if candidate.exists() else None
    production = reg.pointer().get("current") if manifest.get("area") != "local" else UNKNOWN
    msg = build_message(
        manifest, event, settings, to=to, build_url=build_url, report=report, production=production
    )
    return send_message(msg, settings)


def _notify(args: argparse.Namespace, settings: Settings) -> int:
    to = [a.strip() for a in (args.to or "").split(",") if a.strip()] or None
    where = notify(args.ref, settings, event=args.event, to=to, build_url=args.build_url)
    print(f"sent to {', '.join(to or [settings.notify.product_owner])} via {where}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "notify",
        help="email the product owner the evidence for a version",
        description="Email the product owner the metrics, gate reasons, test results and the exact "
        "approve command for a version: by SMTP when notify.smtp_host is set, else an .eml file "
        "in the outbox folder.",
    )
    parser.add_argument("ref", metavar="REF", help="testing:latest, testing:7, production:current, ...")
    parser.add_argument("--event", choices=list(EVENTS), help="what happened (default: from the manifest)")
    parser.add_argument("--to", metavar="ADDR", help="recipients, comma-separated (default: product owner)")
    parser.add_argument(
        "--build-url",
        metavar="URL",
        default=os.environ.get("BUILD_URL"),
        help="Jenkins build URL for the approval link (default: $BUILD_URL)",
    )
    parser.set_defaults(handler=_notify)
