"""CLI verb test-model: run the model test suite against a registry ref."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.settings import Settings


def _test_model(args: argparse.Namespace, settings: Settings) -> int:
    from unit_testing.runner import check, run_suite

    result = run_suite(
        args.ref,
        settings,
        junit_xml=args.junit_xml,
        api_url=args.api_url,
        with_api=args.with_api,
        annotate=not args.no_record,
        output_to_stderr=args.json,
        actor=args.actor,
        suite=args.suite,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        s = result.summary
        verdict = "PASSED" if result.passed else "FAILED"
        print(
            f"model tests {verdict} on {result.ref}: {s['passed']} passed, {s['failed']} failed, "
            f"{s['errors']} errors, {s['skipped']} skipped; JUnit: {result.junit}"
        )
        print(f"  suite digest: {result.suite.get('digest')}")
        if result.suite.get("revision"):
            print(f"  suite: {result.suite['uri']} at commit {result.suite['revision']}")
        if result.measurements:
            print("  measured: " + ", ".join(f"{k} {v}" for k, v in sorted(result.measurements.items())))
        for line in result.skipped:
            print(f"  skipped: {line}")
        if result.annotated:
            print(f"recorded on {result.ref} (annotation 'tests')")
    check(result)
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "test-model",
        help="run the model test suite against a registry ref",
        description="Run the model test suite (unit_testing/, or the folder or git+URL@REV --suite "
        "names) against a registry ref and record the result, with the suite's commit, on that "
        "version. Exit 3 when a test fails.",
    )
    parser.add_argument("ref", metavar="REF", help="testing:latest, testing:7, production:current, ...")
    parser.add_argument(
        "--suite",
        metavar="SOURCE",
        help="the model tests to run: a folder, or a repository at a revision written git+URL@REV "
        "(checked out read-only; its commit is recorded with the result). Default: the built-in suite",
    )
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="JUnit XML (default under runs dir)")
    api = parser.add_mutually_exclusive_group()
    api.add_argument("--api-url", metavar="URL", help="smoke-test a live API already serving REF")
    api.add_argument(
        "--with-api",
        action="store_true",
        help="start the serving entry point (`mlops-serve --model REF`) on a free loopback port for the "
        "HTTP smoke tests",
    )
    parser.add_argument(
        "--actor", metavar="WHO", help="who ran the tests (default $BUILD_USER_ID, else the login name)"
    )
    parser.add_argument("--no-record", action="store_true", help="do not record the result on the version")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_test_model)
