"""Run the model test suite against a registry ref in a subprocess and record the result."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import CheckFailed, MlopsError
from core.settings import Settings, settings_env
from unit_testing.suites import BUILTIN_DIR, Suite, resolve_suite

SUITE_DIR = BUILTIN_DIR  # its pytest.ini (plugin, strict markers, warnings as errors) runs every suite


@dataclass
class SuiteResult:
    ref: str
    passed: bool
    summary: dict[str, int]
    junit: str
    exit_code: int
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    measurements: dict[str, float | str] = field(default_factory=dict)
    api_url: str | None = None
    annotated: bool = False
    suite: dict[str, Any] = field(default_factory=dict)  # Suite.record(): kind, uri, revision

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_measurements(path: Path) -> dict[str, float | str]:
    """The values tests recorded with `record_property` (latency, agreement, accuracy)."""
    found: dict[str, float | str] = {}
    for prop in ET.parse(path).getroot().iter("property"):
        value = prop.get("value") or ""
        try:
            found[prop.get("name") or "?"] = float(value)
        except ValueError:
            found[prop.get("name") or "?"] = value
    return found


def parse_junit(path: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """Counts, failed test ids and skip reasons from a pytest JUnit XML file."""
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures: list[str] = []
    skipped: list[str] = []
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if (failure := case.find("failure")) is not None:
            counts["failed"] += 1
            failures.append(f"{name}: {(failure.get('message') or '').splitlines()[0][:300]}")
        elif (error := case.find("error")) is not None:
            counts["errors"] += 1
            failures.append(f"{name} (error): {(error.get('message') or '')[:300]}")
        elif (skip := case.find("skipped")) is not None:
            counts["skipped"] += 1
            skipped.append(f"{name}: {skip.get('message') or ''}")
        else:
            counts["passed"] += 1
    return counts, failures, skipped


def default_junit_path(settings: Settings, ref: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.runs_dir / f"model-tests-{ref.replace(':', '-').replace('/', '_')}-{stamp}.xml"


def run_pytest(
    ref: str,
    settings: Settings,
    junit_xml: Path,
    api_url: str | None = None,
    extra_args: tuple[str, ...] = (),
    output_to_stderr: bool = False,
    suite_dir: Path = SUITE_DIR,
    traffic_token: str | None = None,
) -> int:
    """Run the suite in suite_dir in a child pytest with the same python; return pytest's exit code.

    TRAFFIC_TOKEN: the token of the API the suite calls when we started it (else the environment's)."""
    junit_xml.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pytest", str(suite_dir),
        "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(suite_dir),
        "--model-ref", ref,
        f"--junit-xml={junit_xml}",
        "-o", f"junit_suite_name=model-tests[{ref}]",
        "-o", "junit_family=xunit1",  # keeps record_property values (latency, agreement) in the XML
        "-p", "no:cacheprovider",  # the suite may live in a read-only site-packages
        "-ra", "-v", "--tb=short",
    ]  # fmt: skip
    if api_url:
        command += ["--api-url", api_url]
    command += list(extra_args)
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    if traffic_token:
        env["MLOPS_TRAFFIC_TOKEN"] = traffic_token
    sys.stdout.flush()
    # With --json our stdout must stay pure JSON, so pytest's progress goes to stderr.
    stdout = 2 if output_to_stderr else None  # fd 2: works even when sys.stderr is replaced
    return subprocess.run(command, env=env, check=False, stdout=stdout).returncode


def run_suite(
    ref: str,
    settings: Settings,
    junit_xml: Path | None = None,
    api_url: str | None = None,
    with_api: bool = False,
    annotate: bool = True,
    output_to_stderr: bool = False,
    actor: str | None = None,
    suite: str | None = None,
) -> SuiteResult:
    """Run the suite (built-in, or the folder / git+URL@REV `suite` names) on a version; record the result."""
    from core.actor import default_actor
    from registry import IntegrityError, open_registry
    from registry.manifest import TestRun, TestSummary, load

    reg = open_registry(settings)
    version = reg.resolve(ref)  # a bad ref fails here, in one line, before pytest starts
    area = version.area
    # Pin the ref so the result lands on this version even if testing:latest moves meanwhile.
    pinned = version.ref
    try:
        # The registry's copy, not a cached one: every sha256 and the signature, before pytest starts.
        fetched = reg.fetch(pinned, refresh=True)
        manifest = fetched.manifest
    except IntegrityError as exc:  # a signature error is one too
        if area != "local":
            reg.record_refusal("test-model", actor or default_actor(), str(exc), ref=pinned)
        raise
    junit_xml = Path(junit_xml) if junit_xml else default_junit_path(settings, pinned)
    chosen: Suite = resolve_suite(suite, settings.cache_dir, settings.sources.git_timeout_s)
    at = (
        f" at {chosen.revision[:12]}{' + uncommitted changes' if chosen.dirty else ''}"
        if chosen.revision
        else ""
    )
    print(
        f"model tests ({chosen.name}{at}): {manifest.name} {pinned} → {junit_xml}",
        file=sys.stderr,
        flush=True,
    )

    served_candidate = with_api and not api_url  # the smoke tests then ran against this very version
    if served_candidate:
        from unit_testing.live_api import serve_candidate

        with serve_candidate(pinned, settings) as live:
            code = run_pytest(
                pinned,
                settings,
                junit_xml,
                api_url=live.url,
                traffic_token=live.traffic_token,
                output_to_stderr=output_to_stderr,
                suite_dir=chosen.path,
            )
            api_url = live.url
    else:
        code = run_pytest(
            pinned,
            settings,
            junit_xml,
            api_url=api_url,
            output_to_stderr=output_to_stderr,
            suite_dir=chosen.path,
        )

    if code not in (0, 1) or not junit_xml.exists():
        reasons = {
            2: "interrupted",
            3: "internal pytest error",
            4: "pytest usage error",
            5: "no tests collected",
        }
        raise MlopsError(
            f"model test suite did not run ({reasons.get(code, f'exit {code}')}); see output above"
        )
    summary, failures, skipped = parse_junit(junit_xml)
    passed = code == 0 and summary["failed"] == 0 and summary["errors"] == 0
    result = SuiteResult(
        pinned, passed, summary, str(junit_xml.resolve()), code, failures, skipped,
        parse_measurements(junit_xml), api_url, suite=chosen.record(),
    )  # fmt: skip
    if annotate and area != "local":
        test_run = TestRun(
            passed=passed,
            suite=chosen.name,
            suite_source=chosen.record(),
            summary=load(TestSummary, summary),
            junit=result.junit,
            failures=tuple(failures),
            measurements=result.measurements,
            extra={
                "skipped": skipped,
                "api_url": api_url,
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
        )
        reg.annotate(pinned, test_run, actor=actor or default_actor())
        result.annotated = True
        _attest(reg, settings, fetched, chosen, result, served_candidate)
    return result


def _attest(
    reg: Any, settings: Settings, fetched: Any, suite: Suite, result: SuiteResult, with_api: bool
) -> None:
    """Sign the result with the tester key (when there is one) over the suite's content digest."""
    from registry.chain import attest

    key = settings.tester_key_path
    if key is None or fetched.digest is None:
        if reg.policy.trust is not None:
            print("model tests: no tester key (trust.tester_key): the result is not signed", file=sys.stderr)
        return
    facts = {
        "passed": result.passed,
        "summary": result.summary,
        "suite_digest": result.suite["digest"],
        "suite_source": result.suite,
        "with_api": with_api,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    attest(reg, fetched.version, fetched.digest, "tests", facts, key)


def check(result: SuiteResult) -> None:
    """Raise CheckFailed (exit 3) when the suite failed."""
    if not result.passed:
        s = result.summary
        raise CheckFailed(
            f"model tests failed on {result.ref}: {s['failed']} failed, {s['errors']} errors "
            f"({s['passed']} passed); JUnit: {result.junit}"
        )
