"""The local API's listening socket, kept open across deployments (socket activation).

A zero-downtime switch needs the old and the new gunicorn to share ONE listening socket, so a
connection waiting in its accept queue is taken by whichever server accepts next and none is
reset. systemd does this with socket activation (LISTEN_FDS/LISTEN_PID), which gunicorn
supports; on a laptop or a CI agent there is no systemd, so a tiny holder process plays that
part: it binds the stable port, keeps it open, and hands the descriptor (SCM_RIGHTS) to
`mlops deploy`, which starts each new gunicorn with it as fd 3 and a private readiness socket
as fd 4.

    python -m deploy.sockets hold HOST PORT CONTROL      daemonize, bind, print the holder pid
    python -m deploy.sockets spawn LOG FD... -- CMD...   daemonize CMD with FDs as 3, 4, ...

The holder also watches the server that serves now (`watch`): a listening socket with nobody behind
it would leave clients waiting until their own timeout. When that server dies on its own, the holder
starts it again on the same socket ("restart": queued connections are served once it is ready), at
most `max_restarts` times a minute, or closes the socket and exits ("close"): then the kernel refuses
new connections and resets the queued ones at once. A deployment that stops a server on purpose
moves the watch first (`watch` the new one, or `unwatch`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import MlopsError
from core.process_identity import same_process, stop_group
from core.processes import alive
from deploy import process_records

LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed descriptor
BACKLOG = 2048  # queued connections survive a switch; give them room
ON_EXIT = ("restart", "close")
RESTART_WINDOW_S = 60.0  # max_restarts counts restarts within this window
MAX_REQUEST = 1 << 20  # a watch request carries the serve command and its environment


def control_address(name: str) -> str:
    """Linux abstract unix socket name: no path length limit, vanishes with the holder."""
    return "\0" + name


def fetch_listener(control: str, timeout_s: float = 5.0) -> socket.socket:
    """The stable listening socket, received from the holder."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        try:
            conn.connect(control_address(control))
            conn.sendall(b"fd\n")
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 16, 1)
        except OSError as exc:
            raise MlopsError(
                f"the local socket holder is not answering ({exc}); run 'mlops deploy --target local --stop'"
                " and deploy again"
            ) from None
    if not fds:
        raise MlopsError("the local socket holder sent no socket; stop and deploy again")
    return socket.socket(fileno=fds[0])


def _ask(control: str, request: bytes, timeout_s: float = 5.0) -> bytes:
    """Send one request line to the holder and return its answer (OSError when it is gone)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout_s)
        conn.connect(control_address(control))
        conn.sendall(request + b"\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def watch(
    control: str, pid: int, admin_port: int, spec: dict[str, Any], on_exit: str, max_restarts: int
) -> None:
    """Tell the holder which server serves now and what to do if it dies on its own."""
    request = {"pid": pid, "admin_port": admin_port, "spec": spec, "on_exit": on_exit,
               "max_restarts": max_restarts}  # fmt: skip
    try:
        answer = _ask(control, b"watch " + json.dumps(request).encode())
    except OSError as exc:
        raise MlopsError(f"the local socket holder is not answering ({exc}); stop and deploy again") from None
    if answer != b"ok":
        raise MlopsError(
            f"the local socket holder refused to watch pid {pid}: {answer.decode(errors='replace')}"
        )


def unwatch(control: str) -> None:
    """Stop watching: the server is about to be stopped on purpose."""
    with contextlib.suppress(OSError):  # no holder: nothing watches
        _ask(control, b"unwatch")


def holder_status(control: str) -> dict[str, Any] | None:
    """What the holder watches now: pid, admin_port, restarts, events; None when it does not answer."""
    try:
        return json.loads(_ask(control, b"status"))
    except (OSError, ValueError):
        return None


def stop_holder(holder: dict[str, Any]) -> None:
    """Ask the holder (its record: pid, start_time, cmdline, control) to close the stable socket and exit."""
    with contextlib.suppress(OSError):  # gone already, or stuck: stopping it below settles it
        _ask(holder["control"], b"stop")
    deadline = time.monotonic() + 5
    while same_process(holder) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop_group(holder, 5)  # only if that pid is still the holder, never a process that took its number


def start_holder(host: str, port: int, control: str, log: Path) -> int:
    """Start a detached holder bound to host:port; its pid. A clear error when the port is taken."""
    done = subprocess.run(
        [sys.executable, "-m", "deploy.sockets", "hold", host, str(port), control, str(log)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        raise MlopsError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "holder failed")
    return int(done.stdout.strip())


def spawn(
    cmd: list[str], sockets: list[socket.socket], log: Path, env: dict[str, str], cwd: Path | None = None
) -> int:
    """Start CMD detached, with `sockets` as fds 3, 4, ... (LISTEN_FDS); its pid, which gunicorn keeps."""
    fds = [s.fileno() for s in sockets]
    done = subprocess.run(
        [sys.executable, "-m", "deploy.sockets", "spawn", str(log), *map(str, fds), "--", *cmd],
        pass_fds=fds,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        raise MlopsError(f"could not start {cmd[0]}: {done.stderr.strip()}")
    return int(done.stdout.strip())


def _daemonize(log: Path) -> tuple[int, int]:
    """Fork into a new session; the child gets (0, write end), the parent (child pid, read end)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return pid, read_end
    os.close(read_end)
    os.setsid()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    return 0, write_end


def _hold(host: str, port: int, control: str, log: Path) -> int:
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        hint = " (another server uses it: pick --port)" if exc.errno == errno.EADDRINUSE else ""
        print(f"cannot listen on {host}:{port}: {exc.strerror}{hint}", file=sys.stderr)
        return 1
    listener.listen(BACKLOG)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(control_address(control))
    except OSError as exc:
        print(f"socket holder {control!r} already runs: {exc.strerror}", file=sys.stderr)
        return 1
    server.listen(8)
    pid, ready = _daemonize(log)
    if pid:
        # Parent: wait for the child to say it serves, then report its pid and leave.
        listener.close()
        server.close()
        ok = os.read(ready, 1) == b"1"
        print(pid)
        return 0 if ok else 1
    os.write(ready, b"1")
    os.close(ready)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    return _Holder(listener, server).run()


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.strip()


class _Holder:
    """The holder's loop: hand out the socket, watch the serving server, restart it or close."""

    def __init__(self, listener: socket.socket, control: socket.socket) -> None:
        self.listener = listener
        self.control = control
        self.watched: dict[str, Any] | None = None
        self.pidfd: int | None = None
        self.restarts: list[float] = []
        self.events: list[str] = []
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ, "control")

    def say(self, message: str) -> None:
        self.events = [*self.events[-19:], f"{_stamp()} {message}"]
        print(f"{_stamp()} holder: {message}", flush=True)

    def run(self) -> int:
        uid = os.getuid()
        while True:
            # Without pidfd (old kernels) the watched pid is polled every half second.
            for key, _ in self.selector.select(
                timeout=None if self.pidfd is not None or not self.watched else 0.5
            ):
                if key.data == "control":
                    conn, _ = self.control.accept()
                    with conn:
                        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
                        if struct.unpack("3i", creds)[1] != uid:
                            continue  # only the user who deployed may take or steer the socket
                        if self.answer(conn, _read_request(conn)):
                            return 0
            if self.watched and not alive(self.watched["pid"]) and self.server_died():
                return 0

    def answer(self, conn: socket.socket, request: bytes) -> bool:
        """Handle one control request; True when the holder is to exit."""
        if request == b"fd":
            socket.send_fds(conn, [b"ok"], [self.listener.fileno()])
        elif request == b"stop":
            self.set_watch(None)
            self.listener.close()
            conn.sendall(b"bye")
            return True
        elif request.startswith(b"watch "):
            try:
                spec = json.loads(request[6:])
                if spec["on_exit"] not in ON_EXIT or not isinstance(spec["pid"], int):
                    raise ValueError(spec["on_exit"])
            except (ValueError, KeyError, TypeError) as exc:
                conn.sendall(f"bad watch request: {exc}".encode())
                return False
            self.set_watch(spec)
            self.say(f"watching pid {spec['pid']} (on exit: {spec['on_exit']})")
            conn.sendall(b"ok")
        elif request == b"unwatch":
            if self.watched:
                self.say(f"no longer watching pid {self.watched['pid']}")
            self.set_watch(None)
            conn.sendall(b"ok")
        elif request == b"status":
            keys = ("pid", "start_time", "cmdline", "admin_port", "log")
            status = {k: self.watched.get(k) for k in keys} if self.watched else {}
            status.update(restarts=len(self.restarts), events=self.events)
            conn.sendall(json.dumps(status).encode())
        return False

    def set_watch(self, spec: dict[str, Any] | None) -> None:
        if self.pidfd is not None:
            self.selector.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self.watched = spec
        if spec is None:
            return
        try:
            self.pidfd = os.pidfd_open(spec["pid"])
            self.selector.register(self.pidfd, selectors.EVENT_READ, "server")
        except (AttributeError, OSError):
            self.pidfd = None  # no pidfd here, or the process is already gone: polled instead

    def server_died(self) -> bool:
        """The watched server exited on its own: restart it, or close; True when the holder exits."""
        assert self.watched is not None
        spec = self.watched
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S]
        self.say(f"server pid {spec['pid']} exited on its own")
        if spec["on_exit"] == "restart" and len(self.restarts) < spec["max_restarts"]:
            try:
                record = _restart(self.listener, spec["spec"])
            except (OSError, MlopsError, subprocess.SubprocessError) as exc:
                self.say(f"restart failed: {exc}")
            else:
                self.restarts.append(now)
                pid = record["pid"]
                keys = ("pid", "start_time", "cmdline", "admin_port", "log")
                self.set_watch({**spec, **{k: record[k] for k in keys}})
                self.say(f"restarted it as pid {pid} ({len(self.restarts)} in the last minute)")
                return False
        why = "restart limit reached" if spec["on_exit"] == "restart" else "on exit: close"
        self.say(f"closing the port ({why}): clients are refused until the next deploy")
        self.set_watch(None)
        self.listener.close()  # queued connections are reset, new ones refused: no one waits on nothing
        return True


def _restart(listener: socket.socket, spec: dict[str, Any]) -> dict[str, Any]:
    """Start the serve command again on the shared socket plus a fresh readiness socket; its record.

    The record goes to disk (deploy.process_records) before anything else: if this holder dies
    later, `mlops deploy --target local --stop` still finds the server it started.
    """
    private = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    private.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    private.bind(("127.0.0.1", 0))
    private.listen(64)
    admin_port = private.getsockname()[1]
    log = Path(spec["log_dir"]) / f"api-{datetime.now(UTC):%Y%m%dT%H%M%S}-restart-{admin_port}.log"
    try:
        pid = spawn(spec["cmd"], [listener, private], log, spec["env"], Path(spec["cwd"]))
    finally:
        private.close()
    folder = Path(spec["records_dir"])
    record = process_records.write(
        folder, pid, "server", admin_port=admin_port, log=str(log), started_by="socket holder (restart)",
        **spec.get("model", {}),
    )  # fmt: skip
    process_records.prune(folder)  # the server it replaces is gone
    return record


def _spawn(log: Path, fds: list[int], cmd: list[str]) -> int:
    pid, ready = _daemonize(log)
    if pid:
        # The pipe closes on exec (close-on-exec): only then is the pid the command's, with its own
        # command line, which the caller records. A failed exec writes why instead.
        failed = b"".join(iter(lambda: os.read(ready, 4096), b""))
        if failed:
            print(failed.decode(errors="replace"), file=sys.stderr)
            return 1
        print(pid)
        return 0
    # Move the passed sockets to 3, 4, ... without clobbering one another or the ready pipe.
    moved = fcntl.fcntl(ready, fcntl.F_DUPFD_CLOEXEC, 200)
    os.close(ready)
    ready = moved
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for offset, fd in enumerate(high):
        os.dup2(fd, LISTEN_FDS_START + offset, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())  # exec keeps the pid: the server sees its own
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        os.write(ready, f"cannot run {cmd[0]}: {exc.strerror}".encode())
        print(f"cannot run {cmd[0]}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    return 127


def main(argv: list[str]) -> int:
    """`hold` or `spawn`; see the module docstring."""
    if argv[:1] == ["hold"] and len(argv) == 5:
        return _hold(argv[1], int(argv[2]), argv[3], Path(argv[4]))
    if argv[:1] == ["spawn"] and "--" in argv:
        split = argv.index("--")
        return _spawn(Path(argv[1]), [int(fd) for fd in argv[2:split]], argv[split + 1 :])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
