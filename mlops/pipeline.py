"""The three pipelines as plain stage sequences (the same the Jenkinsfile runs).

Each stage is one `mlops ...` command run in-process through `mlops.cli.main`, exactly the
command line the Jenkinsfile's `sh` step runs, so a pipeline that passes here passes there.
The sequences live in `code_stages` / `data_stages` / `tests_stages` so tests can compare
them with the Jenkinsfile.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from core.errors import EXIT_ERROR, EXIT_FAILED_CHECK, EXIT_OK, MlopsError, UsageError
from core.settings import Settings
from mlops.notify import EVENT_CANDIDATE, EVENT_TESTS

PIPELINES = ("code", "data", "tests")


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: a name and the `mlops` arguments it runs."""

    name: str
    argv: tuple[str, ...]
    capture_json: bool = False  # parse the command's --json output for later stages


@dataclass
class StageResult:
    """What one stage did: its exit code and how long it took."""

    name: str
    command: str
    code: int
    seconds: float
    output: Any = None

    @property
    def status(self) -> str:
        names = {EXIT_OK: "ok", EXIT_FAILED_CHECK: "FAILED (check)"}
        return names.get(self.code, f"FAILED (exit {self.code})")


@dataclass
class PipelineRun:
    """Runs stages in order, stops at the first failure and remembers every result."""

    global_argv: tuple[str, ...] = ()
    out: TextIO = field(default_factory=lambda: sys.stdout)
    results: list[StageResult] = field(default_factory=list)

    def run(self, stage: Stage) -> StageResult:
        """Run one stage; raise _Stop when it fails."""
        from mlops.cli import main  # late: mlops.cli imports this module

        number = len(self.results) + 1
        command = shlex.join(("mlops", *stage.argv))
        print(f"\n==> stage {number}: {stage.name}\n    $ {command}", file=self.out, flush=True)
        start = time.perf_counter()
        # A --json stage's stdout is kept for later stages (and summarised), not echoed.
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer) if stage.capture_json else contextlib.nullcontext():
                code = main([*self.global_argv, *stage.argv])
        except SystemExit as exc:  # argparse exits on a usage error
            code = exc.code if isinstance(exc.code, int) else EXIT_ERROR
        result = StageResult(stage.name, command, int(code), time.perf_counter() - start)
        if stage.capture_json:
            result.output = _last_json(buffer.getvalue())
            text = _digest(result.output) if result.output is not None else buffer.getvalue().strip()
            if text:
                print(text, file=self.out)
        self.results.append(result)
        print(f"<== stage {number}: {stage.name}: {result.status} in {result.seconds:.1f}s", file=self.out)
        if code != EXIT_OK:
            raise _Stop(result.code)
        return result

    def summary(self) -> str:
        """A table of every stage run: name, result, duration."""
        width = max([len(r.name) for r in self.results] + [5])
        lines = [f"{'stage':<{width}}  {'result':<16} {'seconds':>8}", "-" * (width + 27)]
        lines += [f"{r.name:<{width}}  {r.status:<16} {r.seconds:>8.1f}" for r in self.results]
        total = sum(r.seconds for r in self.results)
        lines.append(f"{'total':<{width}}  {'':<16} {total:>8.1f}")
        return "\n".join(lines)


class _Stop(Exception):
    """Stops a pipeline at a failed stage with that stage's exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _digest(output: Any) -> str:
    """One line from a --json output: what train/retrain registered, or what a version records."""
    if not isinstance(output, dict):
        return json.dumps(output)
    if isinstance(output.get("manifest"), dict):  # `mlops registry show REF --json`
        tests = (output["manifest"].get("annotations") or {}).get("tests") or [{}]
        last = tests[-1]
        summary = ", ".join(f"{v} {k}" for k, v in (last.get("summary") or {}).items())
        verdict = {True: "passed", False: "FAILED"}.get(last.get("passed"), "none recorded")
        return f"    {output.get('ref')}: {len(tests)} test run(s) recorded; latest {verdict} ({summary})"
    if output.get("skipped"):
        return f"    skipped: {output.get('message')}"
    validation = output.get("validation") or {}
    if validation.get("stops"):
        return "\n".join(f"    data validation stopped: {stop}" for stop in validation["stops"])
    accuracy = (output.get("metrics") or {}).get("accuracy")
    gate = (output.get("gate") or {}).get("passed")
    parts = [f"    registered {output.get('ref')}"]
    if isinstance(accuracy, int | float):
        parts.append(f"accuracy {accuracy:.3f}")
    labels: dict[bool | None, str] = {True: "gate passed", False: "gate FAILED"}
    parts.append(labels.get(gate, "gate -"))
    if output.get("report"):
        parts.append(f"report {output['report']}")
    line = ", ".join(parts)
    return "\n".join([line, *(f"    data warning: {w}" for w in validation.get("warnings") or [])])


def _last_json(text: str) -> Any:
    """The JSON document a --json command printed (whole output, else its last JSON line)."""
    with contextlib.suppress(ValueError):
        return json.loads(text)
    for line in reversed(text.strip().splitlines()):
        with contextlib.suppress(ValueError):
            return json.loads(line)
    return None


def registered_ref(output: Any) -> str:
    """The `testing:N` ref a train/retrain --json output names."""
    candidates = [output]
    if isinstance(output, dict):
        candidates += [output.get(k) for k in ("model", "registered", "version_info", "manifest")]
    for item in candidates:
        if isinstance(item, dict):
            if isinstance(item.get("ref"), str) and item["ref"].startswith("testing:"):
                return item["ref"]
            if isinstance(item.get("version"), int):
                return f"testing:{item['version']}"
    raise MlopsError(
        "could not read the registered version from the training output; "
        "run 'mlops registry list' to see what was registered"
    )


def model_tests_stage(ref: str, settings: Settings, with_api: bool, suite: str | None = None) -> Stage:
    """The model test suite (built-in, or the folder / git+URL@REV suite) against REF, with JUnit XML."""
    junit = settings.reports_dir / f"model-tests-{ref.replace(':', '-')}.xml"
    argv = ["test-model", ref, "--junit-xml", str(junit)]
    if suite:
        argv += ["--suite", suite]
    if with_api:
        argv.append("--with-api")
    return Stage("model tests", tuple(argv))


def code_stages(data: Path | str, settings: Settings, make_demo_data: bool) -> list[Stage]:
    """Code pipeline up to registration: [demo data and its reference set] → train (the gate is inside)."""
    stages = []
    if make_demo_data:
        stages.append(Stage("demo data", ("demo-data", "--out", str(data))))
        # The locked reference set: the generator's own seed (batch 3), never pushed, in a folder the
        # data pipeline never reads; registered once, on the demo's first use.
        reference = settings.home / "data" / "reference"
        stages.append(Stage("demo reference images", ("demo-data", "--out", str(reference), "--batch", "3")))
        stages.append(Stage("reference set", ("reference", "set", "--data", str(reference))))
    stages.append(Stage("train + gate + register", ("train", "--data", str(data), "--json"), True))
    return stages


def data_stages(data: Path | str) -> list[Stage]:
    """Data pipeline up to registration: retrain (the gate is inside retrain)."""
    return [Stage("retrain + gate + register", ("retrain", "--data", str(data), "--json"), True)]


def after_register_stages(ref: str, settings: Settings, event: str, suite: str | None = None) -> list[Stage]:
    """Test the candidate in a clone of production, then email the product owner."""
    return [
        model_tests_stage(ref, settings, with_api=True, suite=suite),
        Stage("notify product owner", ("notify", ref, "--event", event)),
    ]


def deploy_stages(ref: str, approver: str, deploy: bool = True, production: int | None = None) -> list[Stage]:
    """Semi-automated deploy: promote the approved version, then (with deploy) roll out the local API.

    The approval is given when the pipeline starts, over the production version of that moment; the
    promotion fails with a conflict if production moved while the pipeline ran.
    """
    over = "none" if production is None else str(production)
    stages = [
        Stage(
            "promote",
            ("promote", ref, "--approved-by", approver, "--expect-production", over,
             "--reason", "approved in mlops pipeline"),
        )
    ]  # fmt: skip
    if deploy:
        stages.append(Stage("deploy local", ("deploy", "--target", "local", "--model", "production:current")))
    return stages


def ensure_trust(settings: Settings, approvers: tuple[str, ...], out: TextIO) -> None:
    """On a laptop with no keys or trust policy configured, make them once, so signing is required.

    Trainer (the signing key), tester and approver key pairs under <home>/keys and a trust policy
    naming them and the built-in suite's digest under <home>/trust. Where keys or a policy are
    configured (Jenkins, Kubernetes), nothing is made: they come from outside.
    """
    if settings.signing.private_key or settings.signing.public_keys or settings.trust.policy:
        return
    from core.digests import tree_digest
    from registry.trust import init_trust
    from unit_testing.suites import BUILTIN_DIR

    # The suite as it is now is what the person running the laptop pipeline accepts; a later edit of
    # unit_testing/ is refused until accepted again (mlops keys accept-suite, never automatic).
    suite = tree_digest(BUILTIN_DIR)
    made = init_trust(settings, (suite,), approvers)
    for line in made:
        print(f"trust: created the {line}", file=out)
    if any(line.startswith("trust policy") for line in made):
        print(
            f"trust: required model test suite (the built-in one as it is now): {suite}; after editing "
            "unit_testing/, accept the new suite with the command a refusal prints (mlops keys accept-suite)",
            file=out,
        )


def current_production(settings: Settings) -> int | None:
    """The production version now (None: empty), the one a pipeline's approval is given over."""
    from registry import open_registry

    try:
        return open_registry(settings).pointer().get("current")
    except MlopsError:
        return None


def tests_ref(settings: Settings) -> str:
    """The version the tests pipeline checks: production:current, else testing:latest.

    The one place this is decided: `mlops pipeline tests` uses it, and the Jenkinsfile asks for it
    with `mlops pipeline tests --print-model-ref`.
    """
    from registry import NotFoundError, open_registry

    registry = open_registry(settings)
    try:
        registry.resolve("production:current")
        return "production:current"
    except NotFoundError:  # production is empty (other errors, e.g. no network, must not hide)
        return "testing:latest"


def _global_argv(args: argparse.Namespace) -> tuple[str, ...]:
    """Forward the global options this pipeline was called with to every stage."""
    argv: list[str] = []
    for option, value in (
        ("--registry", args.registry),
        ("--model-name", args.model_name),
        ("--config", args.config),
        ("--home", args.home),
    ):
        if value is not None:
            argv += [option, str(value)]
    return tuple(argv)


def run_pipeline(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Run one pipeline's stages in order; print a summary table; return the failing exit code."""
    out = out or sys.stdout
    if args.deploy and not args.approve_as:
        raise UsageError("--deploy needs --approve-as WHO (the approver recorded on the promotion)")
    if args.approve_as and args.pipeline == "tests":
        raise UsageError("the tests pipeline does not promote; use it without --approve-as")
    if args.data is not None and not _remote_source(args.data) and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder (a dataset has one sub-folder per class)")
    if args.suite is not None and not _remote_source(args.suite) and not Path(args.suite).is_dir():
        raise UsageError(f"--suite {args.suite}: no such folder (a folder of model tests, or git+URL@REV)")
    if args.pipeline == "data" and args.data is None:
        raise UsageError("the data pipeline needs --data DIR (the new dataset to retrain on)")

    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    run = PipelineRun(_global_argv(args), out)
    print(f"mlops pipeline {args.pipeline}: registry {settings.registry_uri}", file=out)
    if args.pipeline in ("code", "data"):
        ensure_trust(settings, (args.approve_as or "product-owner",), out)
    args.production = current_production(settings) if args.approve_as else None
    code = EXIT_OK
    try:
        _run_stages(run, args, settings)
    except _Stop as stop:
        code = stop.code
    print(f"\npipeline {args.pipeline}: {'ok' if code == EXIT_OK else 'FAILED'}\n{run.summary()}", file=out)
    if code == EXIT_OK and args.deploy:
        port = settings.api.port
        data = Path(args.data) if args.data and not _remote_source(args.data) else None
        image = next((data or settings.demo_data_dir).rglob("*.png"), "IMAGE.png")
        print(
            f"\nThe API is running in the background. Try:\n"
            f"  curl -s -F file=@{image} http://{settings.api.host}:{port}/predict\n"
            f"  upload page: http://{settings.api.host}:{port}/\n"
            f"Stop it with: mlops deploy --target local --stop",
            file=out,
        )
    return code


def _remote_source(value: str) -> bool:
    """A gs:// prefix or git+URL@REV: resolved by the stage itself, not a local folder to check here."""
    return str(value).startswith(("gs://", "git+"))


def _report_tests(run: PipelineRun, ref: str) -> None:
    """The tests pipeline's last stages: show what was recorded on REF, email the product owner."""
    run.run(Stage("record result", ("registry", "show", ref, "--json"), capture_json=True))
    run.run(Stage("notify product owner", ("notify", ref, "--event", EVENT_TESTS)))


def _run_stages(run: PipelineRun, args: argparse.Namespace, settings: Settings) -> None:
    """The stage sequence of args.pipeline; raises _Stop on the first failure."""
    if args.pipeline == "tests":
        ref = tests_ref(settings)
        try:
            run.run(model_tests_stage(ref, settings, with_api=True, suite=args.suite))
        except _Stop as failed:
            if failed.code != EXIT_FAILED_CHECK:
                raise
            # Failing new tests are the news: record and email them, then report exit 3.
            _report_tests(run, ref)
            raise
        _report_tests(run, ref)
        return
    if args.pipeline == "code":
        data = args.data if args.data is not None else settings.demo_data_dir
        make_demo_data = args.data is None and not settings.demo_data_dir.is_dir()
        stages = code_stages(data, settings, make_demo_data=make_demo_data)
    else:
        stages = data_stages(args.data)
    for stage in stages:
        result = run.run(stage)
    if isinstance(result.output, dict) and result.output.get("skipped"):
        # retrain found the production model's dataset unchanged: nothing new to test or approve.
        print(f"\n{result.output.get('message') or 'nothing to retrain'}", file=run.out)
        return
    ref = registered_ref(result.output)
    for stage in after_register_stages(ref, settings, EVENT_CANDIDATE, suite=args.suite):
        run.run(stage)
    if args.approve_as:
        for stage in deploy_stages(ref, args.approve_as, deploy=args.deploy, production=args.production):
            run.run(stage)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.print_model_ref:
        if args.pipeline != "tests" or args.data or args.approve_as or args.deploy:
            raise UsageError(
                "--print-model-ref goes with the tests pipeline alone: mlops pipeline tests --print-model-ref"
            )
        print(tests_ref(settings))
        return EXIT_OK
    return run_pipeline(args, settings)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "pipeline",
        help="run the code, data or tests pipeline locally",
        description=(
            "Run the same stage sequence as the Jenkinsfile on this machine. code: [demo data] → "
            "train (gate) → model tests (with the API) → notify. data: retrain (gate) → model tests → "
            "notify. tests: model tests on production:current (else testing:latest) → record → notify. "
            "With --approve-as WHO: promote; with --deploy too: start the local API (stop it with "
            "`mlops deploy --target local --stop`)."
        ),
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 gate or model tests failed.",
    )
    parser.add_argument("pipeline", choices=PIPELINES, help="which pipeline to run")
    parser.add_argument(
        "--data",
        metavar="SOURCE",
        help="dataset: a folder, gs://BUCKET/PREFIX or git+URL@REV (code: default the demo data under "
        "MLOPS_HOME)",
    )
    parser.add_argument(
        "--suite",
        metavar="SOURCE",
        help="model tests to run: a folder or git+URL@REV (default: the built-in suite, unit_testing/)",
    )
    parser.add_argument(
        "--approve-as", metavar="WHO", help="approve the tested candidate as WHO and promote it to production"
    )
    parser.add_argument(
        "--deploy", action="store_true", help="with --approve-as: also deploy the local API on it"
    )
    parser.add_argument(
        "--print-model-ref",
        action="store_true",
        help="tests only: print the ref the tests pipeline checks (production:current, else "
        "testing:latest) and run nothing; the Jenkinsfile uses it",
    )
    parser.set_defaults(handler=_handle)
