"""npm-groovy-lint (CodeNarc on Java 17) finds no error in the Jenkinsfile and the Job DSL files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "node_modules" / ".bin" / "npm-groovy-lint"

pytestmark = pytest.mark.slow


def groovy_lint(*paths: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run npm-groovy-lint as CI does, with the network closed to it (it must download nothing)."""
    assert LINT.exists(), "npm-groovy-lint is missing: run `make setup-test` (npm ci)"
    assert shutil.which("java"), "npm-groovy-lint needs Java 17: run `make setup-test`"
    env = {
        **os.environ,
        # Any download attempt goes to a closed loopback port and fails the run.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "npm_config_offline": "true",
    }
    return subprocess.run(
        [str(LINT), "--noserver", "--failon", "error", *map(str, paths)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_jenkinsfile_and_job_dsl_have_no_lint_error():
    jobs = sorted((ROOT / "jenkins" / "jobs").glob("*.groovy"))
    assert len(jobs) >= 4
    result = groovy_lint(ROOT / "Jenkinsfile", ROOT / "jenkins" / "monitor.Jenkinsfile", *jobs)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "'Error'" in result.stdout  # the summary table was printed: the files were linted


def test_a_broken_jenkinsfile_fails_the_lint(tmp_path):
    """The lint can fail: an unclosed block is an error."""
    broken = tmp_path / "Jenkinsfile"
    text = (ROOT / "Jenkinsfile").read_text()
    broken.write_text(text[: text.rindex("}")])  # drop the closing brace of `pipeline {`
    result = groovy_lint(broken, cwd=tmp_path)
    assert result.returncode != 0, result.stdout[-2000:]
