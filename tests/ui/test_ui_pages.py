"""The registry browser's pages through the Flask test client, over a real local registry."""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from urllib.parse import quote

import pytest
from html_text import by_id, find_all, table_rows, text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifests import lineage
from registry_builder import (
    CLASSES,
    SPLIT_A,
    annotation_of_tests,
    baseline,
    gate,
    manifest,
    metrics,
    run_folder,
)

from registry import Registry


def page(client, url: str, status: int = 200) -> str:
    response = client.get(url)
    assert response.status_code == status, response.get_data(as_text=True)[-600:]
    return response.get_data(as_text=True)


def test_versions_table_shows_gate_tests_signature_stage_and_who(client):
    html = page(client, "/")
    rows = table_rows(html, "versions")
    assert [r[0] for r in rows] == ["testing:3", "testing:2", "testing:1"]  # newest first
    three, two, one = rows
    assert three[2:8] == ["0.800", "failed", "failed 2 failed, 0 errors", "unsigned", "testing", "jenkins"]
    assert two[3:8] == ["passed", "passed 14 tests", "unsigned", "was in production", "jenkins"]
    assert one[3:7] == ["passed", "passed 14 tests", "unsigned", "production (current)"]
    assert "production:current is version 1" in text(by_id(html, "count"))


def test_production_tab_lists_what_was_promoted(client):
    rows = table_rows(page(client, "/?area=production"), "versions")
    assert [r[0] for r in rows] == ["production:2", "production:1"]


def test_a_signature_in_the_manifest_is_shown(reg: Registry, tmp_path, make_client):
    own = metrics([[4, 1, 0], [0, 5, 0], [1, 0, 3]])
    own_manifest = manifest(own, gate(own, None))
    signed = {**own_manifest, "signature": {"bundle": "model.sig", "verified": True}}
    reg.register(run_folder(tmp_path, 7, SPLIT_A), lineage(**signed), actor="ci")
    reg.register(
        run_folder(tmp_path, 8, SPLIT_A), lineage(**{**signed, "signature": "model.sig"}), actor="ci"
    )
    reg.register(
        run_folder(tmp_path, 9, SPLIT_A),
        lineage(**{**own_manifest, "signed_by": "7c63eedd1c20f990aa"}),
        actor="ci",
    )
    rows = table_rows(page(make_client(), "/"), "versions")
    # signed_by is the registry's to fill when it signs: a caller's claim is not stored.
    assert [r[5] for r in rows] == ["unsigned", "signed", "signed, verified"]


def test_version_page_shows_the_evidence(client, versions):
    html = page(client, f"/versions/{versions['v1']}")
    lineage = text(by_id(html, "lineage"))
    for fact in ("0a1b2c3d4e5f", "gs://xray-data/v1", "COVID: 30", "train 63", "architecture=small_cnn"):
        assert fact in lineage
    assert text(by_id(html, "signature")) == "unsigned"
    assert [r[0] for r in table_rows(html, "per-class")] == CLASSES
    assert table_rows(html, "per-class")[0][1:] == ["0.800", "0.800", "0.800", "5"]
    assert table_rows(html, "confusion") == [["COVID", "4", "1", "0"], ["Normal", "0", "5", "0"],
                                             ["Viral Pneumonia", "1", "0", "3"]]  # fmt: skip
    assert [r[0] for r in table_rows(html, "criteria")][:2] == ["accuracy", "recall:COVID"]
    assert table_rows(html, "tests")[0][2] == "passed 14 tests"
    assert "approved by product-owner (run by alice): first model" in text(by_id(html, "approvals"))
    assert "local · ok · smoke passed" in text(by_id(html, "deployments"))
    plots = [img["attrs"]["src"] for img in find_all(by_id(html, "main"), "img")]
    assert plots == [f"/versions/{versions['v1']}/files/plots/confusion_matrix.png"]
    for src in [*plots, by_id(html, "report-link")["attrs"]["href"]]:
        assert client.get(src).status_code == 200


def test_report_and_plots_are_served_verified_and_sandboxed(client, versions, registry_uri):
    report = client.get(f"/versions/{versions['v3']}/files/report.html")
    assert report.status_code == 200 and b"Report 3" in report.data
    assert report.headers["Content-Security-Policy"].startswith("sandbox")
    plot = client.get(f"/versions/{versions['v3']}/files/plots/confusion_matrix.png")
    assert plot.mimetype == "image/png" and plot.data.startswith(b"\x89PNG")
    assert client.get(f"/versions/{versions['v3']}/files/model.keras").status_code == 404
    assert client.get(f"/versions/{versions['v3']}/files/../../production/pointer.json").status_code == 404
    # A file changed behind the registry's back is refused, not shown.
    stored = Path(registry_uri.removeprefix("file://")) / "testing/xray-classifier/3/report.html"
    stored.write_text("<html>tampered</html>")
    tampered = client.get(f"/versions/{versions['v3']}/files/report.html")
    assert tampered.status_code == 503 and b"does not match the sha256" in tampered.data


def test_the_model_card_is_linked_and_served_verified(client, versions, registry_uri):
    html = page(client, f"/versions/{versions['v3']}")
    href = by_id(html, "card-link")["attrs"]["href"]
    assert href == f"/versions/{versions['v3']}/files/model_card.md"
    card = client.get(href)
    assert card.status_code == 200 and card.mimetype == "text/plain"
    assert card.data.startswith(b"# Model card: version 3") and b"## Intended use" in card.data
    stored = Path(registry_uri.removeprefix("file://")) / "testing/xray-classifier/3/model_card.md"
    stored.write_text("# tampered")
    assert client.get(href).status_code == 503


def test_comparison_is_side_by_side_on_the_same_split(client, versions):
    html = page(client, "/compare")  # defaults: testing:latest vs production:current
    assert "same test split" in text(by_id(html, "split-note"))
    assert "both evaluated on testing:3's test split (15 images)" in text(by_id(html, "split-note"))
    headline = table_rows(html, "headline")
    assert headline == [["Accuracy", "0.800", "0.867", "-0.067"], ["Images", "15", "15", ""]]
    covid, _, viral = table_rows(html, "per-class")
    # candidate [[5,0,0],[0,5,0],[3,0,2]] vs production on that split [[4,1,0],[0,5,0],[1,0,4]]
    assert covid == [
        "COVID",
        "0.625",
        "0.800",
        "-0.175",
        "1.000",
        "0.800",
        "+0.200",
        "0.769",
        "0.800",
        "-0.031",
    ]
    assert viral[4:7] == ["0.400", "0.800", "-0.400"]
    assert table_rows(html, "confusion-candidate")[2] == ["Viral Pneumonia", "3", "0", "2"]
    assert table_rows(html, "confusion-production")[2] == ["Viral Pneumonia", "1", "0", "4"]
    reasons = text(by_id(html, "gate-reasons"))
    assert "recall:Viral Pneumonia 0.400 < 0.600" in reasons and "not_worse_than_production 0.800" in reasons
    assert "✓ accuracy" in reasons
    assert f"promote testing:{versions['v3']}" in text(by_id(html, "approve-command"))


def test_comparison_says_when_the_splits_differ(reg: Registry, tmp_path, make_client, versions):
    other_split = [{**row, "sha256": "e" * 64} for row in SPLIT_A[:5]]
    own = metrics([[2, 0, 0], [0, 2, 0], [0, 0, 1]])
    v = reg.register(
        run_folder(tmp_path, 9, other_split), lineage(**manifest(own, gate(own, None))), actor="ci"
    ).version
    html = page(make_client(), f"/compare?candidate={v}&production=production:2")
    note = text(by_id(html, "split-note"))
    assert "not the same split" in note and "the test splits differ" in note
    assert table_rows(html, "headline")[1] == ["Images", "5", "14", ""]


def test_comparison_with_an_empty_production(reg: Registry, tmp_path, make_client):
    own = metrics([[4, 1, 0], [0, 5, 0], [1, 0, 3]])
    reg.register(run_folder(tmp_path, 1, SPLIT_A), lineage(**manifest(own, gate(own, None))), actor="ci")
    html = page(make_client(), "/compare")
    assert "production is empty" in text(by_id(html, "split-note"))
    assert table_rows(html, "headline")[0] == ["Accuracy", "0.857", "-", "-"]


def test_the_approve_command_is_exact(client, reg: Registry, tmp_path, cli, versions):
    """Run the command the page shows: it reaches the real promotion policy, and then promotes."""
    html = page(client, f"/versions/{versions['v3']}")
    command = shlex.split(text(by_id(html, "approve-command")).replace("YOUR-NAME", "product-owner"))
    assert command[0] == "mlops"
    refused = cli(*command[1:])
    assert refused.code == 3 and "its latest model tests failed" in refused.err  # v3's tests failed
    assert by_id(html, "approve-jenkins")["attrs"]["href"] == "https://jenkins.example.com/job/xray/13/input/"

    own = metrics([[5, 0, 0], [0, 5, 0], [0, 0, 4]])
    body = manifest(own, gate(own, baseline(versions["v1"], metrics([[4, 1, 0], [0, 5, 0], [1, 0, 3]]))))
    v4 = reg.register(run_folder(tmp_path, 4, SPLIT_A), lineage(**body), actor="ci").version
    reg.annotate(f"testing:{v4}", annotation_of_tests(14, 0), actor="ci")
    html = page(client, f"/versions/{v4}")
    assert "approve-jenkins" not in html  # not built by Jenkins: no input step to link to
    command = shlex.split(text(by_id(html, "approve-command")).replace("YOUR-NAME", "product-owner"))
    assert cli(*command[1:]).code == 0
    assert reg.pointer()["current"] == v4


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=alice", {("alice", "promote")}),
        ("action=rollback", {("bob", "rollback")}),
        ("version=2&action=promote", {("alice", "promote")}),
    ],
)
def test_audit_log_filters(client, query, expected):
    rows = table_rows(page(client, f"/audit?{query}"), "events")
    assert {(r[1], r[2]) for r in rows} == expected


def test_audit_log_is_newest_first_and_filters_by_date(client):
    rows = table_rows(page(client, "/audit"), "events")
    assert rows == sorted(rows, key=lambda r: r[0], reverse=True) and len(rows) > 8
    today = rows[0][0][:10]
    assert len(table_rows(page(client, f"/audit?since={today}&until={today}"), "events")) == len(rows)
    assert "No events match." in page(client, "/audit?until=2000-01-01")


@pytest.mark.parametrize(
    ("url", "status", "words"),
    [
        ("/versions/99", 404, "testing:99 of 'xray-classifier' does not exist"),
        ("/?area=staging", 400, "area='staging'"),
        ("/?page=0", 400, "page='0' is not a positive whole number"),
        ("/compare?candidate=../etc/passwd", 400, "use a version number or a ref"),
        ("/compare?candidate=/etc/hosts", 400, "use a version number or a ref"),
        ("/compare?production=production:9", 404, "was never promoted"),
        ("/audit?version=two", 400, "'two' is not a version number"),
        ("/audit?version=²", 400, "'²' is not a version number"),
        ("/?page=²", 400, "is not a positive whole number"),
        ("/?page=" + "9" * 5000, 400, "is not a positive whole number"),
        ("/compare?candidate=²", 400, "use a version number or a ref"),
        ("/audit?since=yesterday", 400, "use YYYY-MM-DD"),
        ("/nowhere", 404, "no page /nowhere"),
    ],
)
def test_bad_requests_get_a_clear_4xx_page(client, url, status, words):
    html = page(client, url, status)
    assert words in text(by_id(html, "error")).replace("&#39;", "'")


def test_past_the_last_page_shows_the_last_page(client):
    assert [r[0] for r in table_rows(page(client, "/?page=40"), "versions")] == [
        "testing:3",
        "testing:2",
        "testing:1",
    ]


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_the_browser_only_reads(client, registry_uri, versions):
    root = Path(registry_uri.removeprefix("file://"))
    before = _snapshot(root)
    urls = ["/", "/?area=production", "/compare", "/audit", "/audit?actor=alice"]
    urls += [f"/versions/{v}" for v in versions.values()]
    for url in urls:
        page(client, url)
        for method in (client.post, client.put, client.delete):
            assert method(url).status_code == 405
    assert _snapshot(root) == before


def test_no_registry_yet_is_a_clear_page(make_client):
    html = page(make_client(), "/", 404)
    assert "does not exist" in text(by_id(html, "error"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(["/", "/audit", "/compare", "/versions/1", "/versions/1/files/"]),
    params=st.dictionaries(
        st.sampled_from(
            ["area", "page", "candidate", "production", "actor", "action", "version", "since", "until"]
        ),
        st.text(max_size=20),
        max_size=4,
    ),
    tail=st.text(max_size=12),
)
def test_any_query_gets_a_page_or_a_4xx_never_a_500(client, path, params, tail):
    url = path + (quote(tail) if path.endswith("files/") else "")
    response = client.get(url, query_string=params)
    assert response.status_code < 500, (url, params, response.get_data(as_text=True)[-300:])


def test_comparison_shows_the_paired_test_with_intervals_and_the_verdict(
    reg: Registry, tmp_path, make_client
):
    """A real gate decision (training.gate with training.paired) for a candidate worse on one class."""
    from core.settings import GateSettings
    from training.evaluate import compute_metrics
    from training.gate import decide
    from training.paired import compare

    truth = [c for c in CLASSES for _ in range(40)]
    production = list(truth)
    candidate = truth[:40] + [CLASSES[0]] * 15 + truth[55:]  # 15 of class 2's 40 missed
    own = compute_metrics(truth, candidate, CLASSES)
    base = {
        "ref": "production:1",
        "version": 1,
        "accuracy": 1.0,
        "metrics": compute_metrics(truth, production, CLASSES),
    }
    decision = decide(own, GateSettings(), base, compare(truth, candidate, production, CLASSES))
    reg.register(run_folder(tmp_path, 1, SPLIT_A), lineage(**manifest(own, decision)), actor="ci")
    html = page(make_client(), "/compare")
    verdict = text(by_id(html, "verdict-1"))
    assert verdict.startswith("regression against production:1 on the test split")
    assert f"on class {CLASSES[1]}" in verdict and "recall -0.375, 95% CI [" in verdict
    rows = {row[0]: row for row in table_rows(html, "paired-1")}
    assert rows["Accuracy"][1] == "-0.125" and rows["Accuracy"][3] == "120"
    low, high = (float(x) for x in rows[f"Recall {CLASSES[1]}"][2].strip("[]").split(", "))
    assert low < -0.375 < high < -0.02
