"""Settings: defaults, file, environment and overrides, in that order, with real types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.errors import UsageError
from core.settings import load_settings


def test_defaults_need_no_file_or_env():
    settings = load_settings(env={})
    assert settings.gate.accuracy_threshold == 0.80
    assert settings.registry_uri.startswith("file://")
    assert settings.registry_uri.endswith("/.mlops/registry")


def test_layers_apply_in_order(tmp_path: Path):
    config = tmp_path / "mlops.toml"
    config.write_text("[gate]\naccuracy_threshold = 0.9\nrecall_floor = 0.5\n[train]\nepochs = 3\n")
    env = {"MLOPS_GATE_ACCURACY_THRESHOLD": "0.95", "MLOPS_REGISTRY": "gs://bucket/prefix"}
    settings = load_settings(overrides={"train.epochs": 7}, env=env, config_file=config)
    assert settings.gate.accuracy_threshold == 0.95  # env beats file
    assert settings.gate.recall_floor == 0.5  # file beats default
    assert settings.train.epochs == 7  # override beats file
    assert settings.registry_uri == "gs://bucket/prefix"


def test_tuple_and_bool_values_are_parsed():
    env = {"MLOPS_DEPLOY_APPROVERS": "alice, bob", "MLOPS_NOTIFY_SMTP_STARTTLS": "yes"}
    settings = load_settings(env=env)
    assert settings.deploy.approvers == ("alice", "bob")
    assert settings.notify.smtp_starttls is True


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLOPS_TRAIN_EPOCHS": "many"}, "cannot read 'many' as int"),
        ({"MLOPS_TRAIN_EPOCHZ": "3"}, "unknown setting MLOPS_TRAIN_EPOCHZ"),
        ({"MLOPS_CONFIG": "/nonexistent/mlops.toml"}, "does not exist"),
    ],
)
def test_bad_values_are_clear_usage_errors(env, message):
    with pytest.raises(UsageError, match=message):
        load_settings(env=env)


def test_secrets_are_refused_in_the_file(tmp_path: Path):
    config = tmp_path / "mlops.toml"
    config.write_text('[notify]\nsmtp_password = "hunter2"\n')
    with pytest.raises(UsageError, match="secret"):
        load_settings(env={}, config_file=config)


def test_bad_setting_from_cli_exits_2(cli, monkeypatch):
    monkeypatch.setenv("MLOPS_TRAIN_EPOCHS", "lots")
    result = cli("rollback")
    assert result.code == 2
    assert "MLOPS_TRAIN_EPOCHS: cannot read 'lots' as int" in result.err
    assert cli("rollback", "--help").code == 0  # --help never needs settings


HOME = "/srv/mlops-state"  # never created: the settings only name paths
HOME_PATHS = {
    "registry_dir": "/srv/mlops-state/registry",
    "cache_dir": "/srv/mlops-state/cache",
    "runs_dir": "/srv/mlops-state/runs",
    "reports_dir": "/srv/mlops-state/reports",
    "outbox": "/srv/mlops-state/outbox",
    "demo_data_dir": "/srv/mlops-state/data/demo",
    "deploy_dir": "/srv/mlops-state/deploy",
    "deploy_state": "/srv/mlops-state/deploy/local.json",
    "deploy_logs": "/srv/mlops-state/deploy/logs",
    "triggers_config": "/srv/mlops-state/triggers/triggers.json",
    "triggers_lock": "/srv/mlops-state/triggers/pipeline.lock",
    "trigger_runs": "/srv/mlops-state/triggers/runs",
    "trigger_logs": "/srv/mlops-state/triggers/logs",
}


def test_every_home_path_follows_the_home_setting():
    settings = load_settings(env={"MLOPS_HOME": HOME})
    assert {name: str(getattr(settings, name)) for name in HOME_PATHS} == HOME_PATHS
    assert settings.registry_uri == "file:///srv/mlops-state/registry"
    moved = load_settings(env={"MLOPS_HOME": "/elsewhere"})
    assert str(moved.deploy_state) == "/elsewhere/deploy/local.json"
    assert str(load_settings(env={}).outbox) == ".mlops/outbox"  # the default home, relative


def test_the_home_paths_are_where_the_architecture_doc_says():
    """docs/architecture.md's table of home paths agrees with the settings, row by row."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `<home>/([\w./-]+)`", doc, re.M)
    assert len(rows) >= 6, "the table of home paths is gone from docs/architecture.md"
    for name, where in rows:
        assert HOME_PATHS[name] == f"{HOME}/{where}", name


def test_a_registry_opened_without_a_cache_dir_caches_where_the_settings_say(tmp_path, monkeypatch):
    """registry/ reads no MLOPS_HOME itself: a config file's home reaches it through the settings."""
    from registry import Registry

    monkeypatch.delenv("MLOPS_HOME", raising=False)
    (tmp_path / "conf.toml").write_text(f'home = "{tmp_path / "from-file"}"\n')
    monkeypatch.setenv("MLOPS_CONFIG", str(tmp_path / "conf.toml"))
    reg = Registry.open(f"file://{tmp_path / 'reg'}", "xray")
    assert reg.cache_dir == tmp_path / "from-file" / "cache"
