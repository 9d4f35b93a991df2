"""Notifications to the product owner: the evidence for a version, by SMTP or to an outbox folder."""

from __future__ import annotations

import argparse
import os
import smtplib
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from core.errors import MlopsError, UsageError
from core.settings import Settings
from core.templates import render
from registry.manifest import Manifest

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


def infer_event(manifest: Manifest) -> str:
    """The event a manifest is at: gate-failed, tested, or trained."""
    if not manifest.gate_passed:
        return "gate-failed"
    annotations = manifest.annotations
    if annotations.deployments:
        return "deployed"
    if annotations.approvals or manifest.area == "production":
        return "promoted"
    return "tested" if annotations.tests else "trained"


UNKNOWN = "unknown"  # production was not read (no registry at hand)


def approve_command(manifest: Manifest, settings: Settings, production: int | str | None = UNKNOWN) -> str:
    """The exact command that approves this version over the production version seen now."""
    approver = settings.deploy.approvers[0] if settings.deploy.approvers else "<approver>"
    command = f"mlops promote testing:{manifest.version} --approved-by {approver}"
    if production == UNKNOWN:
        return command
    return command + f" --expect-production {'none' if production is None else production}"


def _production(production: int | str | None) -> str:
    if production == UNKNOWN:
        return "not read"
    return "empty" if production is None else f"production:{production}"


def _metrics_rows(manifest: Manifest) -> list[tuple[str, str, str, str, str]]:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    return [
        (name, fmt(m.precision), fmt(m.recall), fmt(m.f1), "-" if m.support is None else str(m.support))
        for name, m in manifest.metrics.per_class.items()
    ]


def _label_files(issues: Mapping[str, Any] | None) -> list[str]:
    """The files the label check flagged (the first ones), as lines."""
    if not issues:
        return []
    return [
        f"{row['file']}: labelled {row['given']}, looks like {row['suggested']} ({row['probability']:.2f})"
        for row in issues.get("files", [])
    ]


def _sections(
    manifest: Manifest,
    event: str,
    settings: Settings,
    build_url: str | None,
    production: int | str | None = UNKNOWN,
) -> dict:
    """The facts of the email, shared by the text and the HTML parts."""
    gate = manifest.gate
    tests = manifest.annotations.latest_tests
    dataset, code = manifest.dataset, manifest.code
    accuracy = manifest.metrics.accuracy
    facts = {
        "Model": f"{manifest.name} version {manifest.version} ({manifest.area or '?'})",
        "Created": manifest.created_at or "?",
        "Code": f"{code.commit or '?'} {code.repo or ''}".strip(),
        "Dataset": f"{dataset.uri or '?'} (fingerprint {(dataset.fingerprint or '?')[:16]})",
        "Data revision": dataset.source.revision or "not recorded",
        "Accuracy": "not recorded" if accuracy is None else f"{accuracy:.4f}",
        "Gate": ("PASSED" if gate.passed else "FAILED") if gate else "not recorded",
        # An approval is given over this version: the promotion fails if production moves meanwhile.
        "Production now": _production(production),
    }
    if manifest.signed_by:
        facts["Signed by key"] = manifest.signed_by[:16]
    if tests is None:
        facts["Model tests"] = "not run yet"
    else:
        s = tests.summary
        facts["Model tests"] = (
            f"{'PASSED' if tests.passed else 'FAILED'}: {s.passed or 0} passed, "
            f"{s.failed or 0} failed, {s.errors or 0} errors, {s.skipped or 0} skipped "
            f"(at {tests.at or '?'}; JUnit {tests.junit or '?'})"
        )
    measured = tests.measurements if tests else {}
    if measured:
        facts["Measured"] = ", ".join(f"{k} {v}" for k, v in sorted(measured.items()))
    annotations = manifest.annotations
    if annotations.approvals:
        approval = annotations.approvals[-1]
        facts["Approved"] = f"by {approval.approved_by or '?'} at {approval.at or '?'}"
    if annotations.deployments:
        deployed = annotations.deployments[-1]
        facts["Deployed"] = f"{deployed.target}: {deployed.result} at {deployed.at or '?'}"
    if annotations.canary:
        last = annotations.canary[-1]
        figures = last.figures
        sides = ", ".join(
            f"{side} {f.get('requests')} req, {f.get('error_rate', 0):.1%} errors, "
            f"p99 {f.get('p99_latency_s')} s, confidence {f.get('mean_confidence')}"
            for side in ("canary", "baseline")
            if (f := figures.get(side))
        )
        why = "; ".join(last.reasons) or "every threshold held"
        facts["Canary"] = f"{(last.decision or '?').upper()} ({why}) at {last.at or '?'}: {sides}"
    parent = manifest.parent
    if parent:
        facts["Fine-tuned from"] = f"{parent.area}:{parent.version}"
    if build_url:
        facts["Build"] = build_url
    # Only a tested, gated, not yet approved testing version has anything left to approve.
    can_approve = (
        manifest.gate_passed
        and bool(tests and tests.passed)
        and event in ("trained", "tested", EVENT_CANDIDATE)
        and manifest.area == "testing"
        and not annotations.approvals
    )
    return {
        "facts": facts,
        "data_warnings": list(dataset.validation.warnings) if dataset.validation else [],
        "gate_reasons": list(gate.reasons) if gate else [],
        # Candidate vs production, paired on the same images, in words with the intervals.
        "verdicts": [c.verdict for c in gate.comparisons if c.verdict] if gate else [],
        "label_files": _label_files(dataset.validation.label_issues if dataset.validation else None),
        "failures": list(tests.failures) if tests else [],
        "rows": _metrics_rows(manifest),
        "approve": approve_command(manifest, settings, production) if can_approve else None,
        "approvers": ", ".join(settings.deploy.approvers),
        "jenkins_input": f"{build_url.rstrip('/')}/input/" if build_url and can_approve else None,
        "needs_tests": manifest.gate_passed and tests is None,
    }


def build_message(
    manifest: Manifest,
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
    elif attach and report is not None:
        report_link = f"attached ({report.name})"
    context = {"title": EVENTS[event], "s": s, "report_link": report_link}

    msg = EmailMessage()
    msg["Subject"] = f"[mlops] {manifest.name} v{manifest.version}: {EVENTS[event]}"
    msg["From"] = settings.notify.sender
    msg["To"] = ", ".join(to or [settings.notify.product_owner])
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = make_msgid(domain=settings.notify.sender.rpartition("@")[2] or "mlops.local")
    msg["X-Mlops-Event"] = event
    msg["X-Mlops-Version"] = str(manifest.version)
    msg.set_content(render("mlops", "email.txt", **context))
    msg.add_alternative(render("mlops", "email.html", **context), subtype="html")
    if attach and report is not None:
        msg.add_attachment(report.read_bytes(), maintype="text", subtype="html", filename=report.name)
    card = report.with_name("model_card.md") if report is not None else None
    if card is not None and card.is_file() and card.stat().st_size <= settings.notify.attach_max_bytes:
        # The signed card beside the report: what the approver approves the version for.
        msg.add_attachment(card.read_bytes(), maintype="text", subtype="markdown", filename=card.name)
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
    if manifest.area != "local":
        local = reg.fetch(ref)
        candidate = Path(local.dir) / "report.html"
        report = candidate if candidate.exists() else None
    production = reg.pointer().get("current") if manifest.area != "local" else UNKNOWN
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
