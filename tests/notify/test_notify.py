"""`mlops notify`: the product owner's email, by real SMTP (aiosmtpd) or to the outbox folder."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from html_text import by_id, find_all, parse, table_rows
from html_text import text as text_of

from core.settings import load_settings
from mlops.notify import build_message
from registry import open_registry
from registry.manifest import CanaryVerdict, Deployment, Manifest, load

PASSED = {
    "passed": True,
    "suite": "unit_testing",
    "summary": {"passed": 14, "failed": 0, "errors": 0, "skipped": 2},
    "measurements": {"latency_median_ms": 2.74, "resolution_agreement": 0.9531},
}
FAILED = {
    "passed": False,
    "suite": "unit_testing",
    "summary": {"passed": 11, "failed": 2, "errors": 0, "skipped": 1},
    "failures": ["test_model_performance.py::test_accuracy_meets_gate: accuracy 0.610 < gate 0.800"],
}


def _read(path: str) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(Path(path).read_bytes())


def _parts(msg: EmailMessage) -> tuple[str, str]:
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def _outbox_file(result) -> str:
    assert result.code == 0, result.err
    return result.out.strip().rpartition(" via ")[2]


def test_tested_version_email_has_evidence_and_exact_approve_command(
    cli, settings, make_version, monkeypatch
):
    monkeypatch.setenv("BUILD_URL", "https://jenkins.example.com/job/xray/42/")
    ref = make_version(tests=PASSED)
    path = _outbox_file(cli("notify", ref))
    assert Path(path).parent == settings.outbox and path.endswith("-v1-tested.eml")
    msg = _read(path)
    assert msg["To"] == "product-owner@example.com" and msg["From"] == "mlops@example.com"
    assert msg["Subject"] == "[mlops] xray-classifier v1: model tests finished"
    text, html = _parts(msg)
    for body in (text, html):
        # The approval names the production version it is given over (empty here).
        assert "mlops promote testing:1 --approved-by product-owner --expect-production none" in body
        assert "https://jenkins.example.com/job/xray/42/input/" in body
        assert "0.9000" in body and "0.880" in body  # accuracy, covid recall
        assert "14 passed, 0 failed" in body
        assert "latency_median_ms 2.74" in body
    assert "Production now: empty" in text
    assert table_rows(html, "per-class")[0] == ["covid", "0.910", "0.880", "0.895", "50"]
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["report.html"]
    assert b"Evaluation report" in attachments[0].get_content().encode()


def test_gate_failure_email_lists_reasons_and_offers_no_approval(cli, make_version):
    ref = make_version(gate_passed=False)
    msg = _read(_outbox_file(cli("notify", ref)))
    text, html = _parts(msg)
    assert msg["X-Mlops-Event"] == "gate-failed" and "FAILED the gate" in msg["Subject"]
    assert "accuracy 0.550 < threshold 0.800" in text
    reasons = [text_of(li) for li in find_all(by_id(html, "gate-reasons"), "li")]
    assert reasons == ["accuracy 0.550 < threshold 0.800", "recall normal 0.2 < 0.6"]
    assert "mlops promote" not in text and "mlops promote" not in html


def test_failed_tests_are_listed_and_block_the_approve_command(cli, make_version):
    ref = make_version(tests=FAILED)
    text, _ = _parts(_read(_outbox_file(cli("notify", ref, "--event", "tested"))))
    assert "FAILED: 11 passed, 2 failed" in text and "accuracy 0.610 < gate 0.800" in text
    assert "mlops promote" not in text


def test_untested_version_says_tests_are_still_due(cli, make_version):
    ref = make_version()
    text, _ = _parts(_read(_outbox_file(cli("notify", ref))))
    assert "Model tests:    not run yet" in text and "mlops promote" not in text


def test_smtp_delivery_to_a_real_server(cli, make_version, smtp_server, monkeypatch):
    controller, handler = smtp_server
    monkeypatch.setenv("MLOPS_NOTIFY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MLOPS_NOTIFY_SMTP_PORT", str(controller.port))
    ref = make_version(tests=PASSED)
    result = cli(
        "notify", ref, "--to", "alice@example.com, bob@example.com", "--build-url", "http://ci/job/1"
    )
    assert result.code == 0, result.err
    assert f"smtp://127.0.0.1:{controller.port}" in result.out
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == ["alice@example.com", "bob@example.com"]
    msg = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
    assert "http://ci/job/1/input/" in msg.get_body(("plain",)).get_content()


def test_starttls_and_login(cli, make_version, tls_smtp_server, tls_files, monkeypatch):
    controller, handler = tls_smtp_server
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files[0]))  # trust the test's self-signed certificate
    for key, value in {
        "MLOPS_NOTIFY_SMTP_HOST": "127.0.0.1",
        "MLOPS_NOTIFY_SMTP_PORT": str(controller.port),
        "MLOPS_NOTIFY_SMTP_STARTTLS": "true",
        "MLOPS_NOTIFY_SMTP_USER": "mlops",
        "MLOPS_SMTP_PASSWORD": "s3cret",
    }.items():
        monkeypatch.setenv(key, value)
    ref = make_version(tests=PASSED)
    assert cli("notify", ref).code == 0
    assert len(handler.envelopes) == 1

    monkeypatch.setenv("MLOPS_SMTP_PASSWORD", "wrong")
    result = cli("notify", ref)
    assert result.code == 1 and "SMTP login to" in result.err and "MLOPS_SMTP_PASSWORD" in result.err
    assert len(handler.envelopes) == 1


def test_connection_refused_is_one_line_exit_1(cli, make_version, closed_port, monkeypatch, settings):
    monkeypatch.setenv("MLOPS_NOTIFY_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MLOPS_NOTIFY_SMTP_PORT", str(closed_port))
    ref = make_version(tests=PASSED)
    result = cli("notify", ref)
    assert result.code == 1
    assert result.err.strip() == (
        f"mlops notify: error: SMTP server 127.0.0.1:{closed_port} refused the connection; check "
        "notify.smtp_host/smtp_port, or unset notify.smtp_host to write emails to the outbox"
    )
    assert not settings.outbox.exists()  # nothing half-sent


def test_unknown_event_is_a_usage_error(cli, make_version):
    assert cli("notify", make_version(), "--event", "exploded").code == 2


def test_promoted_and_deployed_emails_say_who_approved_and_where_it_runs(
    cli, settings, make_version, os_approver
):
    ref = make_version(tests=PASSED)
    assert cli("promote", ref, "--approved-by", "product-owner").code == 0
    msg = _read(_outbox_file(cli("notify", "production:current")))
    text, _ = _parts(msg)
    assert msg["X-Mlops-Event"] == "promoted" and "promoted to production" in msg["Subject"]
    assert "Approved:       by product-owner at " in text
    assert "mlops promote" not in text  # nothing left to approve
    # The tests pipeline re-tests production: its email has nothing to approve either.
    text, _ = _parts(_read(_outbox_file(cli("notify", "production:current", "--event", "tested"))))
    assert "mlops promote" not in text and "14 passed" in text
    open_registry(settings).annotate(
        "production:current", Deployment(target="local", result="ok"), actor="pytest"
    )
    text, _ = _parts(_read(_outbox_file(cli("notify", "production:current", "--event", "deployed"))))
    assert "Deployed:       local: ok at " in text


def test_the_pipelines_send_distinct_events_and_the_candidate_one_offers_approval(cli, make_version):
    """The code/data pipelines' email (a candidate awaiting approval) is not the tests pipeline's."""
    from mlops.notify import EVENT_CANDIDATE, EVENT_TESTS, EVENTS

    assert EVENT_CANDIDATE != EVENT_TESTS and {EVENT_CANDIDATE, EVENT_TESTS} <= set(EVENTS)
    ref = make_version(tests=PASSED)
    msg = _read(_outbox_file(cli("notify", ref, "--event", EVENT_CANDIDATE)))
    assert msg["X-Mlops-Event"] == "candidate"
    subject = "[mlops] xray-classifier v1: passed the gate and the model tests: awaiting approval"
    assert msg["Subject"] == subject
    assert "mlops promote testing:1 --approved-by product-owner" in _parts(msg)[0]


def test_the_email_carries_the_canary_verdict_and_figures(cli, settings, make_version):
    ref = make_version(tests=PASSED)
    side = {"requests": 120, "errors": 0, "error_rate": 0.0, "p99_latency_s": 0.05, "mean_confidence": 0.9}
    record = {
        "decision": "pulled",
        "verdict": "fail",
        "reasons": ["p99 latency 600 ms vs 50 ms on the baseline (x12.0 > x2)"],
        "figures": {"canary": {**side, "p99_latency_s": 0.6}, "baseline": side},
    }
    open_registry(settings).annotate(ref, load(CanaryVerdict, record), actor="pytest")
    text, html_part = _parts(_read(_outbox_file(cli("notify", ref))))
    assert "Canary:         PULLED (p99 latency 600 ms vs 50 ms" in text
    assert "canary 120 req, 0.0% errors, p99 0.6 s" in text and "baseline 120 req" in text
    assert "PULLED" in html_part


EVIL = "<script>alert(1)</script>"


def test_the_html_part_has_the_facts_tables_and_escapes_outside_strings(tmp_path):
    """Class names, gate reasons and test names come from outside: they are text in the email, not markup."""
    manifest = {
        "name": "xray-classifier",
        "version": 4,
        "area": "testing",
        "code": {"commit": "abc1234"},
        "dataset": {"uri": "gs://data/xray", "fingerprint": "f" * 64, "validation": {"warnings": [EVIL]}},
        "metrics": {
            "accuracy": 0.8125,
            "per_class": {EVIL: {"precision": 0.5, "recall": 0.25, "f1": 1 / 3, "support": 8}},
        },
        "gate": {"passed": False, "reasons": [f"recall {EVIL} 0.250 < 0.6"]},
        "annotations": {"tests": [{**FAILED, "failures": [EVIL]}]},
    }
    settings = load_settings(env={"MLOPS_HOME": str(tmp_path)})
    typed = Manifest.from_dict(manifest)
    html = build_message(typed, "gate-failed", settings).get_body(("html",)).get_content()
    doc = parse(html)
    assert find_all(doc, "script") == []
    assert text_of(find_all(doc, "h2")[0]) == "FAILED the gate"
    assert [text_of(h) for h in find_all(doc, "h3")] == [
        "Data warnings (value skew, trained anyway)",
        "Gate reasons",
        "Per-class metrics",
        "Failed tests",
    ]
    facts = {
        text_of(row["children"][0]): text_of(row["children"][1])
        for row in find_all(by_id(html, "facts"), "tr")
    }
    assert facts["Model"] == "xray-classifier version 4 (testing)"
    assert facts["Accuracy"] == "0.8125" and facts["Gate"] == "FAILED"
    assert facts["Model tests"].startswith("FAILED: 11 passed, 2 failed, 0 errors, 1 skipped")
    assert table_rows(html, "per-class") == [[EVIL, "0.500", "0.250", "0.333", "8"]]
    assert [text_of(li) for li in find_all(by_id(html, "gate-reasons"), "li")] == [
        f"recall {EVIL} 0.250 < 0.6"
    ]
    assert [text_of(li) for li in find_all(by_id(html, "data-warnings"), "li")] == [EVIL]
    assert [text_of(li) for li in find_all(by_id(html, "failures"), "li")] == [EVIL]
    assert find_all(doc, "pre") == []  # nothing to approve


def test_email_shows_both_sides_with_intervals_and_the_flagged_files(cli, settings, tmp_path):
    """A real gate decision (paired, production much better on class normal) and a label check."""
    from manifests import lineage

    from core.settings import GateSettings
    from training.evaluate import compute_metrics
    from training.gate import decide
    from training.paired import compare

    truth = ["covid"] * 50 + ["normal"] * 50
    production = list(truth)
    candidate = truth[:50] + ["covid"] * 20 + truth[70:]  # misses 20 of normal's 50
    metrics = compute_metrics(truth, candidate, ["covid", "normal"])
    baseline = {"ref": "production:3", "version": 3, "accuracy": 1.0}
    gate = decide(
        metrics, GateSettings(), baseline, compare(truth, candidate, production, ["covid", "normal"])
    )
    src = tmp_path / "version"
    src.mkdir()
    (src / "model.keras").write_bytes(b"not loaded when notifying")
    issues = {
        "n": 100, "flagged": 1, "share": 0.01,
        "pairs": [{"given": "normal", "suggested": "covid", "count": 1}],
        "files": [{"file": "normal/x.png", "given": "normal", "suggested": "covid", "probability": 0.97}],
    }  # fmt: skip
    manifest = {
        "model_file": "model.keras", "classes": ["covid", "normal"],
        "dataset": {"uri": "gs://data/xray", "fingerprint": "f" * 64, "validation": {"label_issues": issues}},
        "metrics": metrics, "gate": gate,
    }  # fmt: skip
    ref = open_registry(settings).register(src, lineage(**manifest), actor="pytest").ref
    text, html = _parts(_read(_outbox_file(cli("notify", ref))))
    verdicts = [text_of(li) for li in find_all(by_id(html, "verdicts"), "li")]
    assert len(verdicts) == 1 and verdicts[0].startswith("regression against production:3 on the test split")
    assert "recall -0.400, 95% CI [" in verdicts[0] and "on class normal" in verdicts[0]
    assert verdicts[0] in text.replace("\n    ", " ")
    files = [text_of(li) for li in find_all(by_id(html, "label-files"), "li")]
    assert files == ["normal/x.png: labelled normal, looks like covid (0.97)"]
