"""CLI verbs `mlops triggers install|status|hook|run`: local git push triggers for the three pipelines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.settings import Settings
from mlops import push_hooks, trigger_runs

ZERO = "0" * 40  # git's "no commit": a deleted branch


def _global_argv(args: argparse.Namespace, settings: Settings) -> list[str]:
    """What every hook and run passes to mlops: the same home and registry as this command."""
    argv = ["--home", str(settings.home.resolve()), "--registry", settings.registry_uri]
    if args.model_name:
        argv += ["--model-name", args.model_name]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    return argv


def _install(args: argparse.Namespace, settings: Settings) -> int:
    repos = {name: getattr(args, name) for name in push_hooks.PIPELINES if getattr(args, name)}
    watched = push_hooks.install(
        settings, repos, _global_argv(args, settings), branch=args.branch, init=args.init, force=args.force
    )
    if args.json:
        print(json.dumps([{**vars(w), "repo": str(w.repo)} for w in watched], indent=1))
        return 0
    for item in watched:
        print(f"{item.pipeline:<5} pipeline: a push to {item.branch} of {item.repo} runs it")
    print(f"runs go one at a time; logs in {settings.trigger_logs} (mlops triggers status)")
    return 0


def _hook(args: argparse.Namespace, settings: Settings) -> int:
    watched = push_hooks.Watched(args.pipeline, Path(args.repo), args.branch)
    global_argv = _global_argv(args, settings)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        _old, new, ref = parts
        if new == ZERO:
            print(f"mlops: {ref} deleted: nothing to run", file=sys.stderr)
        elif ref != f"refs/heads/{watched.branch}":
            print(
                f"mlops: push to {ref} not run (the {watched.pipeline} pipeline runs on pushes to "
                f"{watched.branch})",
                file=sys.stderr,
            )
        else:
            record = trigger_runs.queue(settings, watched, new, global_argv)
            print(
                f"mlops: {watched.pipeline} pipeline queued for {new[:12]}; log {record.log} "
                "(mlops triggers status)",
                file=sys.stderr,
            )
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    return trigger_runs.run(settings, args.run_id, _global_argv(args, settings))


def _status(args: argparse.Namespace, settings: Settings) -> int:
    config = push_hooks.load_config(settings)
    runs = trigger_runs.records(settings)[-args.last :] if args.last > 0 else []
    if args.json:
        data = {
            "repositories": {k: {**vars(w), "repo": str(w.repo)} for k, w in config.items()},
            "runs": [trigger_runs.describe(r) for r in runs],
        }
        print(json.dumps(data, indent=1))
        return 0
    if not config:
        print("no push triggers installed (mlops triggers install --help)")
    for item in config.values():
        print(f"{item.pipeline:<5} <- pushes to {item.branch} of {item.repo}")
    for record in runs:
        exit_code = "-" if record.exit_code is None else str(record.exit_code)
        print(
            f"{record.queued_at[:19].replace('T', ' ')}  {record.pipeline:<5} {record.rev[:12]}  "
            f"{trigger_runs.current_state(record):<12} exit {exit_code:<2} {record.log}"
        )
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register this area's verbs."""
    parser = subparsers.add_parser(
        "triggers",
        help="install local git push triggers for the code, data and tests pipelines",
        description="Local push triggers, the laptop equivalent of the Jenkins jobs: a post-receive hook "
        "in each repository queues its pipeline when a push lands (code: the pushed commit; data: the "
        "pushed dataset revision; tests: the pushed test suite). Runs go in the background, one at a "
        "time, each with its own log; a push never waits for them and is never refused.",
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 (run) gate or model tests said no.",
    )
    verbs = parser.add_subparsers(dest="triggers_command", metavar="ACTION")
    verbs.required = True

    install = verbs.add_parser(
        "install",
        help="install the hooks in the code, dataset and tests repositories",
        description="Install a post-receive hook in each repository named (bare repositories, the "
        "'remotes' you push to, are the usual choice). Refuses to replace a hook it did not write.",
    )
    for name, what in (("code", "code"), ("data", "dataset"), ("tests", "model tests")):
        install.add_argument(f"--{name}", metavar="REPO", help=f"the {what} repository ({name} pipeline)")
    install.add_argument(
        "--branch", metavar="NAME", help="branch whose pushes run (default: each repo's HEAD)"
    )
    install.add_argument("--init", action="store_true", help="create missing repositories (git init --bare)")
    install.add_argument(
        "--force", action="store_true", help="replace a post-receive hook mlops did not write"
    )
    install.add_argument("--json", action="store_true", help="print what was installed as JSON")
    install.set_defaults(handler=_install)

    status = verbs.add_parser(
        "status", help="show the watched repositories and recent runs", description="Watched repos and runs."
    )
    status.add_argument("--last", type=int, default=20, metavar="N", help="how many runs (default 20)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=_status)

    hook = verbs.add_parser(
        "hook",
        help="(called by the hook) queue runs for the refs git passes on stdin",
        description="Read post-receive lines (OLD NEW REF) on stdin and queue PIPELINE for a push to "
        "--branch. Returns at once.",
    )
    hook.add_argument("pipeline", choices=push_hooks.PIPELINES, help="which pipeline a push runs")
    hook.add_argument("--repo", required=True, metavar="REPO", help="the repository pushed to")
    hook.add_argument("--branch", required=True, metavar="NAME", help="the branch whose pushes run")
    hook.set_defaults(handler=_hook)

    run = verbs.add_parser(
        "run",
        help="(started by the hook) run one queued pipeline run when the lock is free",
        description="Wait for the pipeline lock, then run `mlops pipeline` for a queued run and record "
        "its exit code. Exit code: the pipeline's.",
    )
    run.add_argument("run_id", metavar="RUN_ID", help="a run id from mlops triggers status")
    run.set_defaults(handler=_run)
