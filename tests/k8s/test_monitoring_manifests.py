"""k8s/monitoring: rules checked and unit-tested by the real promtool, a dashboard in valid PromQL over
metrics the API exports, a ServiceMonitor that finds the Service, and the feedback token's Secret."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from test_k8s_manifests import APP_OVERLAYS, by_kind, docs, kustomize, validate

from model_api.metrics import ApiMetrics

HERE = Path(__file__).resolve().parent
RULES_TEST = HERE / "monitoring_rules_test.yaml"
METRIC = re.compile(r"(?<![\w:])(mlops_api_[a-z_]+)\b")  # not the middle of a recording rule name
RECORDED = re.compile(r"\b([a-z_]+:[a-z_]+:[a-z0-9_]+)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (scripts/bootstrap.sh test does it)"
    return found


def rules_spec() -> dict:
    (rule,) = by_kind(docs("monitoring"), "PrometheusRule")
    return rule["spec"]


def check_rules(spec: dict, folder: Path) -> subprocess.CompletedProcess[str]:
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )


def test_renders_and_what_kubernetes_knows_validates_strictly():
    documents = docs("monitoring")
    assert sorted(d["kind"] for d in documents) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    assert {d["metadata"]["namespace"] for d in documents} == {"mlops"}
    result = validate(kustomize("monitoring"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rules(tmp_path):
    result = check_rules(rules_spec(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout
    alerts = {r["alert"] for g in rules_spec()["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == {
        "XrayApiHighErrorRate", "XrayApiLatencyP99High", "XrayApiPredictionLogDropping",
        "XrayApiPredictionLogFailing", "XrayApiClassShareShift", "XrayApiConfidenceDrop",
    }  # fmt: skip


def test_promtool_rejects_a_broken_rule(tmp_path):
    """The check above can fail: a typo in PromQL is caught."""
    spec = rules_spec()
    spec["groups"][0]["rules"][0]["expr"] = "sum(rate(mlops_api_requests_total[5m]) > 0.02"
    result = check_rules(spec, tmp_path)
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


def unit_test_rules(spec: dict, folder: Path) -> subprocess.CompletedProcess[str]:
    """promtool test rules: the alerts against synthetic series (annotation text is checked above)."""
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (folder / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(RULES_TEST, folder / "rules_test.yaml")
    return subprocess.run(
        [promtool(), "test", "rules", "rules_test.yaml"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_each_alert_fires_on_bad_series_and_not_on_healthy_ones(tmp_path):
    result = unit_test_rules(rules_spec(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alert_unit_tests_can_fail(tmp_path):
    """A loosened threshold no longer fires where the tests expect an alert."""
    spec = rules_spec()
    rule = spec["groups"][0]["rules"][0]
    rule["expr"] = rule["expr"].replace("> 0.02", "> 0.5")
    result = unit_test_rules(spec, tmp_path)
    assert result.returncode != 0 and "XrayApiHighErrorRate" in result.stdout + result.stderr


def exported_metrics() -> set[str]:
    """Every sample name the API's /metrics can show (counters add _total, histograms _bucket/_sum/_count)."""
    names = set()
    for family in ApiMetrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def dashboard() -> dict:
    (config,) = by_kind(docs("monitoring"), "ConfigMap")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    return json.loads(config["data"]["xray-api-dashboard.json"])


def test_rules_and_dashboard_only_use_metrics_the_api_exports():
    exported = exported_metrics()
    recorded = {r["record"] for g in rules_spec()["groups"] for r in g["rules"] if "record" in r}
    rule_text = json.dumps(rules_spec())
    panel_text = json.dumps(dashboard()["panels"])
    used = set(METRIC.findall(rule_text)) | set(METRIC.findall(panel_text))
    assert used - exported == set(), sorted(used - exported)
    assert set(RECORDED.findall(rule_text)) <= recorded
    # The alerts' main inputs really are there.
    assert {"mlops_api_reference_class_share", "mlops_api_prediction_confidence_sum"} <= exported
    assert "mlops_api_monitoring_records_dropped_total" in used


def test_every_dashboard_query_is_valid_promql(tmp_path):
    """promtool parses each panel's query, given as a recording rule ($namespace filled in)."""
    board = dashboard()
    exprs = [t["expr"].replace("$namespace", "mlops") for p in board["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    rules = [{"record": f"dashboard:panel:q{i}", "expr": expr} for i, expr in enumerate(exprs)]
    result = check_rules({"groups": [{"name": "dashboard", "rules": rules}]}, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and board["uid"] == "mlops-xray-api"


def test_the_service_monitor_finds_the_api_service():
    (monitor,) = by_kind(docs("monitoring"), "ServiceMonitor")
    (service,) = by_kind(docs("overlays/production"), "Service")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]


@pytest.mark.parametrize("target", APP_OVERLAYS)
def test_every_overlay_takes_the_feedback_token_from_an_optional_secret(target):
    """Each overlay's API takes POST /feedback's token from a Secret, once, never as a value."""
    (deployment,) = by_kind(docs(target), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (token,) = [e for e in container["env"] if e["name"] == "MLOPS_FEEDBACK_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {
        "name": "xray-api-feedback",
        "key": "token",
        "optional": True,
    }
    assert "value" not in token


@pytest.mark.parametrize("text", [rules_spec, dashboard])
def test_no_secret_or_token_value_is_in_the_manifests(text):
    assert "Bearer " not in json.dumps(text())
