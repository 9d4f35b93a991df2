"""`mlops ui`: the verb, its errors, and the real gunicorn server it becomes."""

from __future__ import annotations

import pytest
import requests
from html_text import table_rows
from ui_server import start_ui, stop_ui


def test_ui_verb_is_registered(cli):
    result = cli("ui", "--help")
    assert result.code == 0 and "read-only" in result.out


def test_a_bad_registry_fails_before_serving(cli):
    result = cli("--registry", "s3://bucket/models", "ui")
    assert result.code == 1 and "unsupported registry uri" in result.err


def test_bad_options_are_usage_errors(cli):
    assert cli("ui", "--workers", "0").code == 2


@pytest.mark.slow
def test_mlops_ui_serves_the_registry_under_gunicorn(versions, registry_uri, tmp_path):
    server = start_ui(registry_uri, tmp_path)
    try:
        html = requests.get(server.url + "/", timeout=30).text
        assert [r[0] for r in table_rows(html, "versions")] == ["testing:3", "testing:2", "testing:1"]
        assert requests.post(server.url + "/", timeout=30).status_code == 405
        assert requests.get(server.url + "/versions/3", timeout=30).status_code == 200
    finally:
        stop_ui(server)
    assert server.process.returncode == 0, server.log.read_text()[-2000:]
