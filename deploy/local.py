"""Local rollout: switch the API on a stable port to a new model with no failed request.

Start the new gunicorn on the SAME listening socket as the old one (see deploy.sockets) plus a
private readiness socket; wait until it is ready there; smoke-test it there; stop the old one
gracefully (its workers finish their requests, queued connections go to the new one); check the
stable port serves the new version. If the new server fails before the old one stops, the old
one never stopped; if the check after the switch fails, the previous version is started again.

Between deployments the socket holder watches the serving server (deploy.on_server_exit): if it dies
on its own, the holder restarts it on the same socket or closes the port, so no client waits on a
port nobody serves. A deployment moves the watch before it stops a server on purpose.

Every process started here or by the holder is recorded with its start time and command line
(deploy.process_records): stopping signals a recorded pid only while it is still that process, and
finds a server the holder restarted even after the holder itself died.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import socket
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import MlopsError, UsageError
from core.process_identity import cmdline, port_holders, process_group, same_process, stop_group
from core.processes import wait_ready
from core.settings import Settings
from deploy import process_records, sockets
from deploy.model import Model
from deploy.smoke import SmokeResult, smoke_test


@dataclass
class Server:
    """One running gunicorn generation."""

    pid: int
    admin_port: int
    ref: str
    name: str
    version: int | None
    log: str
    started_at: str
    workers: int | None = None  # None: a state file from before this was recorded
    # Which process the pid named (core.process_identity); None: a state file from before.
    start_time: int | None = None
    cmdline: list[str] | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


@dataclass
class Outcome:
    """What a deployment did; `ok` False means it rolled back."""

    ok: bool
    url: str
    server: Server | None
    previous: Server | None
    detail: str
    smoke: SmokeResult | None = None


def state_path(settings: Settings) -> Path:
    """The local deployment's state file (a settings path)."""
    return settings.deploy_state


def load_state(settings: Settings) -> dict[str, Any]:
    """The local deployment's state, {} when none."""
    path = state_path(settings)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError:
        raise MlopsError(f"{path} is not valid JSON; delete it after stopping the API by hand") from None


def _save_state(settings: Settings, state: dict[str, Any]) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _exclusive(settings: Settings):
    """One local deployment at a time: a second waits rather than racing on the state file."""
    path = state_path(settings).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say("another local deployment is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def records_dir(settings: Settings) -> Path:
    """Where every process this deployment started is recorded (deploy.process_records)."""
    return settings.deploy_dir / "processes"


def running(record: dict[str, Any] | Server | None) -> bool:
    """Whether the recorded process (holder or server) still runs as that very process."""
    if isinstance(record, Server):
        record = asdict(record)
    return same_process(record) if record else False


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _say(message: str) -> None:
    print(f"deploy: {message}", file=sys.stderr, flush=True)


def serve_command(settings: Settings) -> list[str]:
    """The command that serves the API (docs/architecture.md: the serving entry point), before its options."""
    if settings.deploy.serve_command:
        return shlex.split(settings.deploy.serve_command)
    return [sys.executable, "-m", "model_api"]


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def server_spec(settings: Settings, model: Model, host: str, port: int) -> dict[str, Any]:
    """How to start (and restart) a server for MODEL: command, environment, working folder, logs."""
    cmd = [
        *serve_command(settings),
        "--model", model.ref, "--host", host, "--port", str(port),
        "--workers", str(settings.api.workers),
    ]  # fmt: skip
    env = {
        **os.environ,
        # The server must see the registry and home this deploy saw, whatever its cwd.
        "MLOPS_HOME": str(settings.home.resolve()),
        "MLOPS_REGISTRY": settings.registry_uri,
        "MLOPS_MODEL_NAME": settings.registry.model_name,
    }
    return {
        "cmd": cmd, "env": env, "cwd": os.getcwd(), "log_dir": str(settings.deploy_logs.resolve()),
        "records_dir": str(records_dir(settings).resolve()),
        "model": {"ref": model.ref, "name": model.name, "version": model.version},
    }  # fmt: skip


def start_server(settings: Settings, model: Model, listener: socket.socket, host: str, port: int) -> Server:
    """Start one gunicorn generation on the shared listener plus a private readiness socket."""
    logs = settings.deploy_logs
    logs.mkdir(parents=True, exist_ok=True)
    private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    private.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    private.bind(("127.0.0.1", 0))
    private.listen(64)
    admin_port = private.getsockname()[1]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    log = logs / f"api-{stamp}-v{model.version}-{admin_port}.log"
    spec = server_spec(settings, model, host, port)
    try:
        pid = sockets.spawn(spec["cmd"], [listener, private], log, spec["env"])
    finally:
        private.close()  # the server holds its own copy
    record = process_records.write(
        records_dir(settings), pid, "server", admin_port=admin_port, log=str(log),
        started_by="mlops deploy", **spec["model"],
    )  # fmt: skip
    return Server(
        pid, admin_port, model.ref, model.name, model.version, str(log), _now(), settings.api.workers,
        record["start_time"], record["cmdline"],
    )  # fmt: skip


def _watch(settings: Settings, holder: dict[str, Any], server: Server, host: str, port: int) -> None:
    """Make the holder watch SERVER: restart it or close the port if it dies on its own."""
    model = Model(server.ref, server.name, server.version)
    sockets.watch(
        holder["control"], server.pid, server.admin_port, server_spec(settings, model, host, port),
        settings.deploy.on_server_exit, settings.deploy.max_restarts,
    )  # fmt: skip


def _adopt(state: dict[str, Any]) -> dict[str, Any]:
    """The state with `current` as the holder knows it: a server it restarted has a new pid."""
    holder, current = state.get("holder"), state.get("current")
    if not holder or not current:
        return state
    status = sockets.holder_status(holder["control"])
    if status and status.get("pid") and status["pid"] != current["pid"]:
        _say(f"the holder restarted the server: pid {current['pid']} is now pid {status['pid']}")
        current = {**current, "pid": status["pid"], "admin_port": status["admin_port"],
                   "log": status.get("log") or current["log"], "start_time": status.get("start_time"),
                   "cmdline": status.get("cmdline")}  # fmt: skip
        return {**state, "current": current}
    return state


def _stop(server: Server, settings: Settings) -> None:
    # sockets.spawn made the server a process-group leader: a SIGKILL reaches its workers too.
    outcome = stop_group(asdict(server), settings.deploy.stop_timeout_s)
    if outcome == "foreign":
        _say(
            f"pid {server.pid} is no longer the v{server.version} server (another process has it): left alone"
        )
    elif outcome != "gone":
        _say(f"stopped pid {server.pid} (v{server.version})" + (" by SIGKILL" if outcome == "killed" else ""))
    process_records.prune(records_dir(settings))


def _ensure_holder(settings: Settings, state: dict[str, Any], host: str, port: int) -> dict[str, Any]:
    holder = state.get("holder")
    if holder is not None and running(holder):
        if (state["host"], state["port"]) != (host, port):
            raise UsageError(
                f"the local API already listens on {state['host']}:{state['port']}; deploy without"
                " --port/--host, or stop it first with 'mlops deploy --target local --stop'"
            )
        return holder
    home_id = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:12]
    control = f"mlops-deploy-{os.getuid()}-{home_id}-{port}"
    log = settings.deploy_logs / "holder.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        pid = sockets.start_holder(host, port, control, log)
    except MlopsError as exc:
        raise MlopsError(_port_taken(settings, host, port) or str(exc)) from None
    record = process_records.write(records_dir(settings), pid, "holder", control=control)
    _say(f"listening on {host}:{port} (socket holder pid {pid})")
    return {"pid": pid, "control": control, "start_time": record["start_time"], "cmdline": record["cmdline"]}


def _printable(text: str) -> str:
    """TEXT with control characters shown as '?': a command line is anyone's to choose."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _port_taken(settings: Settings, host: str, port: int) -> str | None:
    """Why host:port cannot be had, naming the pid that listens on it and what to do; None: nobody."""
    holders = port_holders(port)
    if not holders:
        return None
    ours = [r for r in process_records.read_all(records_dir(settings)) if same_process(r)]
    for record in ours:
        if any(pid == record["pid"] or process_group(pid) == record["pid"] for pid in holders):
            what = f"v{record.get('version')} ({record.get('ref')})" if record.get("ref") else record["role"]
            return (
                f"cannot listen on {host}:{port}: pid {record['pid']} holds it, the local API's {what} "
                f"that an earlier deployment started (its socket holder is gone); run 'mlops deploy "
                "--target local --stop' to stop it, then deploy again"
            )
    named = ", ".join(f"pid {pid} ({_printable(' '.join(cmdline(pid)))[:80] or '?'})" for pid in holders[:3])
    return f"cannot listen on {host}:{port}: another program listens on it: {named}; stop it, or pick --port"


def _launch(settings: Settings, model: Model, holder: dict[str, Any], host: str, port: int) -> Server:
    listener = sockets.fetch_listener(holder["control"])
    try:
        return start_server(settings, model, listener, host, port)
    finally:
        listener.close()


def _bring_up(settings: Settings, model: Model, holder: dict[str, Any], host: str, port: int):
    """Start a generation and wait until it is ready and passes the smoke test on its private port."""
    server = _launch(settings, model, holder, host, port)
    _say(f"started v{model.version} ({model.ref}) as pid {server.pid}; waiting for /readyz")
    ready = f"{server.admin_url}/readyz"
    why = wait_ready(ready, settings.deploy.ready_timeout_s, lambda: running(server))
    if why is not None:
        _stop(server, settings)
        tail = _log_tail(server.log)
        if "Address already in use" in tail or "Connection in use" in tail:
            why += (
                " (it bound the port itself instead of using the socket passed to it: the serve"
                " command must run gunicorn in its own process, e.g. exec it, so LISTEN_FDS reaches it)"
            )
        return None, f"new server {why}\n{tail}", None
    smoke = smoke_test(server.admin_url, model.version, timeout_s=settings.deploy.smoke_timeout_s)
    if not smoke.passed:
        _stop(server, settings)
        return None, "smoke test failed: " + "; ".join(smoke.failures), smoke
    return server, "", smoke


def _confirm(url: str, version: int | None, timeout_s: float) -> SmokeResult:
    """After the old server stopped, the stable port must answer with the new version."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = smoke_test(url, version, timeout_s=timeout_s)
        if result.passed or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def deploy_local(
    settings: Settings, model: Model, host: str | None = None, port: int | None = None
) -> Outcome:
    """Switch the local API to `model` with no dropped request; roll back on failure."""
    with _exclusive(settings):
        return _deploy_local(settings, model, host, port)


def _deploy_local(settings: Settings, model: Model, host: str | None, port: int | None) -> Outcome:
    if settings.deploy.on_server_exit not in sockets.ON_EXIT:
        raise UsageError(
            f"deploy.on_server_exit is {settings.deploy.on_server_exit!r}; use one of: "
            + ", ".join(sockets.ON_EXIT)
        )
    state = load_state(settings)
    up = running(state.get("holder"))
    if up:
        state = _adopt(state)
    host = host or (state.get("host") if up else None) or settings.api.host
    port = port or (state.get("port") if up else None) or settings.api.port
    url = f"http://{host}:{port}"
    holder = _ensure_holder(settings, state if up else {}, host, port)
    old = Server(**state["current"]) if up and state.get("current") else None
    if old and not running(old):
        _say(f"the previous server (pid {old.pid}) is not running; starting fresh")
        old = None
    base = {"host": host, "port": port, "url": url, "holder": holder}

    new, why, smoke = _bring_up(settings, model, holder, host, port)
    if new is None:
        if old is None:
            sockets.stop_holder(holder)  # nothing serves: don't leave clients queued
            _save_state(settings, {**base, "holder": None, "current": None, "previous": state.get("current")})
        detail = f"{why}; " + (f"still serving v{old.version} ({old.ref})" if old else "nothing is serving")
        return Outcome(False, url, old, old, detail, smoke)

    _watch(settings, holder, new, host, port)  # from now on the old one's exit is expected
    if old is not None:
        _stop(old, settings)
    confirm = _confirm(url, model.version, timeout_s=10)
    if not confirm.passed:
        _say("stable port check failed: " + "; ".join(confirm.failures) + "; restarting the previous version")
        sockets.unwatch(holder["control"])
        _stop(new, settings)
        restored = None
        if old is not None:
            prev = Model(old.ref, old.name, old.version)
            restored, why_back, _ = _bring_up(settings, prev, holder, host, port)
            if restored is None:
                _say(f"restarting the previous version failed too: {why_back}")
        if restored is None:
            sockets.stop_holder(holder)
        else:
            _watch(settings, holder, restored, host, port)
        _save_state(
            settings,
            {**base, "holder": holder if restored else None,
             "current": asdict(restored) if restored else None, "previous": asdict(new)},
        )  # fmt: skip
        detail = "after the switch: " + "; ".join(confirm.failures)
        detail += f"; restarted v{old.version}" if restored and old else "; nothing is serving"
        return Outcome(False, url, restored, old, detail, confirm)

    _save_state(
        settings,
        {**base, "current": asdict(new), "previous": asdict(old) if old else state.get("previous")},
    )
    return Outcome(True, url, new, old, f"serving v{model.version} ({model.ref}) on {url}", smoke)


def stop_local(settings: Settings) -> str:
    """Stop the local API and release its port; a sentence saying what happened."""
    with _exclusive(settings):
        return _stop_local(settings)


def _stop_local(settings: Settings) -> str:
    state = load_state(settings)
    folder = records_dir(settings)
    recorded = process_records.read_all(folder)
    holder = state.get("holder")
    if holder is not None and running(holder):
        state = _adopt(state)  # the server the holder may have restarted is the one to stop
        sockets.unwatch(holder["control"])  # stopping it on purpose: no restart
    # Every server this deployment or its holder started: the state file's, and every record on
    # disk (a server the holder restarted just before it died is only there).
    servers: dict[int, tuple[str, dict[str, Any]]] = {}
    for role, what in (("canary", "canary"), ("current", "API")):
        if state.get(role):
            servers[state[role]["pid"]] = (
                f"{what} pid {state[role]['pid']} (v{state[role]['version']})",
                state[role],
            )
    for record in recorded:
        if record.get("role") == "server" and record["pid"] not in servers:
            servers[record["pid"]] = (
                f"server pid {record['pid']} (v{record.get('version')}, started by "
                f"{record.get('started_by', 'a deployment')})", record,
            )  # fmt: skip
    stopped, left = [], []
    for what, record in servers.values():
        outcome = stop_group(record, settings.deploy.stop_timeout_s)
        if outcome in ("stopped", "killed"):
            stopped.append(what + (" by SIGKILL" if outcome == "killed" else ""))
        elif outcome == "foreign":
            left.append(record["pid"])
    holders = [holder] if holder else []
    holders += [r for r in recorded if r.get("role") == "holder" and r["pid"] != (holder or {}).get("pid")]
    for record in holders:
        if running(record):
            sockets.stop_holder({"control": "", **record})
    process_records.prune(folder)
    if not state and not recorded:
        return "no local deployment to stop"
    _save_state(
        settings, {**state, "holder": None, "current": None, "canary": None, "previous": state.get("current")}
    )
    message = ("stopped " + ", ".join(stopped)) if stopped else "the local API was not running"
    if left:
        message += (
            f"; left alone pid {', '.join(map(str, left))}: recorded for this deployment, but that pid now"
            " names another process (its start time or program differs)"
        )
    return message
