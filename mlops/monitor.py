"""CLI verb monitor: check production's live traffic and feedback, report, record, alert, maybe retrain.

    mlops monitor [--model REF] [--window 24h | --since T [--until T]] [--json] [--report FILE]
                  [--traffic-class production|smoke|test|canary] [--engine duckdb|bigquery]
                  [--notify [alert|always]] [--trigger-retrain --data URI]
    mlops monitor compact [--before YYYY-MM-DD]     (merge closed days' batches; converts JSON lines)

The analysis is monitoring/ (drift per input statistic and for the predictions, live accuracy and
per-class recall); this verb writes the HTML report, records the result on the version (annotation
`monitoring`, which also appends an audit event), emails the product owner, and exits 3 when a
threshold is crossed, so Jenkins can branch on it. With --trigger-retrain (or
monitor.trigger_data_pipeline), live accuracy below the gate runs `mlops pipeline data --data URI`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.errors import EXIT_FAILED_CHECK, EXIT_OK, UsageError
from core.settings import Settings
from registry.monitoring_log import TRAFFIC_CLASSES


def _lines(summary: dict[str, Any]) -> list[str]:
    """The human summary: verdict, drift, accuracy."""
    out = [
        f"{summary['model']} version {summary['version']} ({summary['ref']}): "
        f"{summary['records']} predictions from {summary['window']['since']} to {summary['window']['until']}",
    ]
    if summary["other_versions"]:
        others = ", ".join(f"version {v}: {n}" for v, n in summary["other_versions"].items())
        out.append(f"  (skipped records of other versions: {others})")
    if summary.get("other_traffic_classes"):
        others = ", ".join(f"{c}: {n}" for c, n in summary["other_traffic_classes"].items())
        out.append(
            f"  (left out, not {summary['traffic_class']} traffic: {others}; --traffic-class to check)"
        )
    if summary.get("damaged_batches"):
        out.append(
            f"  WARNING: {len(summary['damaged_batches'])} damaged batch object(s) left out and kept where "
            f"they are: {', '.join(summary['damaged_batches'][:5])}; inspect them, then move them aside"
        )
    drift = summary["drift"]
    if drift["judged"]:
        out.append(f"drift: {', '.join(drift['drifted']) or 'none'}")
        for row in drift["features"]:
            psi = "-" if row["psi"] is None else f"{row['psi']:.3f}"
            p = "-" if row["p_value"] is None else f"{row['p_value']:.2g}"
            moved = "-" if row.get("moved") is None else f"{row['moved']:.0%}"
            w = "-" if row.get("wasserstein_sd") is None else f"{row['wasserstein_sd']:.2f}"
            flag = "  DRIFT" if row["drifted"] else ""
            out.append(
                f"  {row['feature']:<15} PSI {psi:>7}  p {p:>8}  moved {moved:>5}  W/sd {w:>6}  "
                f"n {row['n_live']}{flag}"
            )
    else:
        out.append(f"drift: not judged ({drift['note']})")
    acc = summary["accuracy"]
    if acc["judged"]:
        recalls = ", ".join(
            f"{k} {v['recall']:.3f} ({v['support']})"
            for k, v in acc["per_class"].items()
            if v["recall"] is not None
        )
        out.append(
            f"live accuracy: {acc['accuracy']:.3f} on {acc['n']} labelled predictions; recall {recalls}"
        )
    else:
        out.append(f"live accuracy: not judged ({acc['note']})")
    held = acc.get("against_held_out") or {}
    if held.get("judged"):
        needed = held.get("labels_needed")
        out.append(
            f"  against held-out {held['held_out_accuracy']:.3f}: "
            f"p {held['p_value']:.2g} (alpha {held['alpha']})"
            + (
                f"; a drop of {summary['thresholds']['detect_drop']} needs >= {needed} labels "
                "to be seen with 80% power"
                if needed
                else ""
            )
        )
    est = summary.get("estimate") or {}
    if est.get("judged"):
        low, high = est["interval"]
        ref = "" if est.get("reference") is None else f" (reference {est['reference']:.3f})"
        out.append(f"estimated accuracy (no labels): {est['accuracy']:.3f} [{low:.3f}, {high:.3f}]{ref}")
    deferral = summary.get("deferral") or {}
    if deferral.get("judged"):
        out.append(
            f"deferral rate: {deferral['rate']:.3f} ({deferral['deferred']} of {deferral['n']}; "
            f"expected {deferral['expected']:.3f}, p {deferral['p_value']:.2g})"
        )
    if summary["passed"]:
        out.append("PASSED: no threshold crossed")
    else:
        out.append(f"ALERT: {len(summary['alerts'])} alert(s)")
        for alert in summary["alerts"]:
            out.append(f"  - {alert['message']}")
            out.append(f"    check: {alert['check']}")
    return out


def build_email(
    summary: dict[str, Any], settings: Settings, report: Path | None, build_url: str | None
) -> EmailMessage:
    """The monitoring email to the product owner: the verdict, the figures, the report attached."""
    verdict = "ALERT" if summary["alerts"] else "ok"
    msg = EmailMessage()
    msg["Subject"] = f"[mlops] {summary['model']} v{summary['version']}: monitoring {verdict}"
    if summary["alerts"]:
        msg.replace_header("Subject", f"{msg['Subject']} ({summary['alerts'][0]['message']})")
    msg["From"] = settings.notify.sender
    msg["To"] = settings.notify.product_owner
    msg["Date"] = datetime.now(UTC)
    msg["Message-ID"] = make_msgid(domain=settings.notify.sender.rpartition("@")[2] or "mlops.local")
    msg["X-Mlops-Event"] = "monitoring-alert" if summary["alerts"] else "monitoring"
    msg["X-Mlops-Version"] = str(summary["version"])
    text = "\n".join(_lines(summary))
    if summary.get("retrain_recommended"):
        text += (
            "\n\nLive accuracy is below the gate: retrain on newly labelled data "
            "(mlops pipeline data --data URI)."
        )
    if build_url:
        text += f"\n\nBuild: {build_url}"
    msg.set_content(text + "\n")
    if report is not None and report.exists() and report.stat().st_size <= settings.notify.attach_max_bytes:
        msg.add_attachment(report.read_bytes(), maintype="text", subtype="html", filename=report.name)
    return msg


def _trigger_retrain(args: argparse.Namespace, settings: Settings, data: str) -> int:
    """Run the data pipeline on DATA, its output on stderr so stdout stays one JSON document."""
    from mlops.pipeline import run_pipeline

    pipeline_args = argparse.Namespace(
        pipeline="data",
        data=data,
        suite=None,
        approve_as=None,
        deploy=False,
        registry=args.registry,
        model_name=args.model_name,
        config=args.config,
        home=args.home,
    )
    # Children (the model tests' API server) write to fd 1 directly: point it at stderr meanwhile.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return run_pipeline(pipeline_args, settings, out=sys.stderr)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 1)
        os.close(saved)


def compact(args: argparse.Namespace, settings: Settings) -> int:
    """Merge each closed day's batches (and JSON-lines logs) into large Parquet objects."""
    from registry import open_registry
    from registry.monitoring_log import KINDS, compact, days
    from registry.store import open_store

    before = args.before or datetime.now(UTC).strftime("%Y-%m-%d")  # today is still being written
    store = open_store(settings.monitor_store_uri)
    model = open_registry(settings).name
    damaged: list[str] = []
    for kind in KINDS:
        for day in [d for d in days(store, model, kind) if d < before]:
            done = compact(store, model, kind, day)
            damaged += done.damaged
            if done.written or done.removed:
                print(f"{kind} {day}: {done.rows} records into {len(done.written)} object(s), "
                      f"{done.removed} batch object(s) removed")  # fmt: skip
    for key in damaged:
        print(f"damaged, left in place: {key} (inspect it, then move it aside)", file=sys.stderr)
    return EXIT_OK


def monitor(args: argparse.Namespace, settings: Settings) -> int:
    """Run one check; report, record, notify, optionally retrain; exit 3 when a threshold is crossed."""
    from monitoring import check, report, window

    if args.action == "compact":
        return compact(args, settings)
    m = settings.monitor
    if args.engine == "bigquery":
        return bigquery(args, settings)
    ref = args.model or m.model_ref
    retrain = args.trigger_retrain or m.trigger_data_pipeline
    data = args.data or m.data_uri
    if retrain and not data:
        raise UsageError(
            "--trigger-retrain needs --data URI (or monitor.data_uri): the dataset to retrain on"
        )
    span = window.make_window(args.window or m.window, args.since, args.until)
    result = check.run_check(settings, ref, span, traffic_class=args.traffic_class)
    summary = result.summary

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = (
        args.report
        or settings.home / "reports" / f"monitor-{summary['model']}-v{summary['version']}-{stamp}.html"
    )
    summary["report"] = str(report.write_report(result, Path(path)))

    if not args.no_record:
        from registry import RefError, open_registry
        from registry.manifest import MonitoringVerdict, load

        record = {k: v for k, v in summary.items() if k not in ("drift", "accuracy")}
        record["drifted"] = summary["drift"]["drifted"]
        record["accuracy"] = {k: summary["accuracy"][k] for k in ("judged", "n", "accuracy", "unmatched")}
        try:
            verdict = load(MonitoringVerdict, record)
            open_registry(settings).annotate(ref, verdict, actor=args.actor)
            summary["recorded"] = True
        except RefError:
            summary["recorded"] = False  # a plain model file has no registry version to annotate
    if args.notify == "always" or (args.notify == "alert" and summary["alerts"]):
        from mlops.notify import send_message

        email = build_email(summary, settings, Path(summary["report"]), args.build_url)
        summary["notified"] = send_message(email, settings)
    if summary["retrain_recommended"] and retrain:
        print(f"live accuracy below the gate: running the data pipeline on {data}", file=sys.stderr)
        summary["retrain"] = {"data": data, "exit_code": _trigger_retrain(args, settings, data)}

    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print("\n".join(_lines(summary)))
        print(f"report: {summary['report']}")
        if summary.get("notified"):
            print(f"emailed {settings.notify.product_owner} via {summary['notified']}")
    return EXIT_OK if summary["passed"] else EXIT_FAILED_CHECK


def bigquery(args: argparse.Namespace, settings: Settings) -> int:
    """Print (or, with --run, run) the window queries for BigQuery external tables over the bucket."""
    import time

    from monitoring import bigquery as bq
    from monitoring import window
    from monitoring.query import window_parameters
    from registry import open_registry

    span = window.make_window(args.window or settings.monitor.window, args.since, args.until)
    registry = open_registry(settings)
    version = args.model.rsplit(":", 1)[-1] if args.model and args.model[-1:].isdigit() else "VERSION"
    params = window_parameters(span.since, span.until, time.time(), version, args.traffic_class)
    if args.run:
        print(json.dumps(bq.run(args.bq_dataset, params), indent=2, default=str))
    else:
        print(bq.printable(settings.monitor_store_uri, registry.name, args.bq_dataset, params))
    return EXIT_OK


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs (only where the monitoring package is installed: not the serving image)."""
    try:
        import monitoring  # noqa: F401  (the analysis; the serving image does not ship it)
    except ModuleNotFoundError as exc:
        if exc.name != "monitoring":
            raise  # a broken install must say so, as in mlops/cli.py
        return
    parser = subparsers.add_parser(
        "monitor",
        help="compare live traffic and feedback with the version's reference profile",
        description="Drift of each input statistic (size, format, intensity mean, spread and histogram) and "
        "of the predictions (class shares, confidence) against the version's reference profile (PSI and a "
        "two-sample test), and live accuracy and per-class recall from POST /feedback, each against the "
        "[monitor] thresholds. Writes an HTML report, records the result on the version and in the "
        "audit log.",
        epilog="Exit codes: 0 no threshold crossed (or too little data to judge), 1 error, 2 usage, "
        "3 a threshold was crossed.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("check", "compact"),
        default="check",
        help="check (default) a window; compact: merge closed days' batches into large Parquet objects "
        "(and convert JSON-lines logs), so a query reads a few objects per day instead of thousands",
    )
    parser.add_argument(
        "--model", metavar="REF", help="version to check (default: monitor.model_ref, production:current)"
    )
    parser.add_argument(
        "--traffic-class",
        choices=TRAFFIC_CLASSES,
        default="production",
        help="which traffic to check (default production: smoke, test and canary requests are left out)",
    )
    parser.add_argument(
        "--engine",
        choices=("duckdb", "bigquery"),
        default="duckdb",
        help="duckdb (default): run the window queries here; bigquery: print the external tables and the "
        "same queries for BigQuery (with --run: run them, needs google-cloud-bigquery and credentials)",
    )
    parser.add_argument(
        "--bq-dataset", default="mlops_monitoring", help="BigQuery dataset (--engine bigquery)"
    )
    parser.add_argument("--run", action="store_true", help="with --engine bigquery: run the queries")
    parser.add_argument("--before", metavar="DAY", help="compact: days before this one (default: today, UTC)")
    parser.add_argument(
        "--window",
        metavar="DURATION",
        help="how far back from --until: 90m, 24h, 7d (default: monitor.window)",
    )
    parser.add_argument("--since", metavar="TIME", help="window start, ISO 8601 (overrides --window)")
    parser.add_argument("--until", metavar="TIME", help="window end, ISO 8601 (default: now)")
    parser.add_argument(
        "--report",
        metavar="FILE",
        type=Path,
        help="HTML report path (default: <home>/reports/monitor-...html)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--notify",
        nargs="?",
        const="alert",
        choices=("alert", "always"),
        help="email the product owner the result: when a threshold is crossed (alert, the default) or always",
    )
    parser.add_argument("--build-url", metavar="URL", help="a Jenkins build URL for the email")
    parser.add_argument(
        "--trigger-retrain",
        action="store_true",
        help="when live accuracy is below the gate, run the data pipeline on --data (default off; "
        "also monitor.trigger_data_pipeline)",
    )
    parser.add_argument(
        "--data", metavar="URI", help="dataset for --trigger-retrain (default: monitor.data_uri)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not record the result on the version")
    parser.add_argument(
        "--actor", default=default_actor(), help="who runs it (default $BUILD_USER_ID, else the login name)"
    )
    parser.set_defaults(handler=monitor)
