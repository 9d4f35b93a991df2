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
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from core.errors import MlopsError
from core.processes import alive, terminate

LISTEN_FDS_START = 3  # sd_listen_fds(3): the first passed descriptor
BACKLOG = 2048  # queued connections survive a switch; give them room


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


def stop_holder(control: str, pid: int) -> None:
    """Ask the holder to close the stable socket and wait until it has exited."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(5)
            conn.connect(control_address(control))
            conn.sendall(b"stop\n")
            conn.recv(16)
    except OSError:
        pass  # gone already, or stuck: terminate below settles it
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        terminate(pid, 5, group=True)


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
    uid = os.getuid()
    while True:
        conn, _ = server.accept()
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            if struct.unpack("3i", creds)[1] != uid:
                continue  # only the user who deployed may take the socket
            request = conn.recv(16).strip()
            if request == b"fd":
                socket.send_fds(conn, [b"ok"], [listener.fileno()])
            elif request == b"stop":
                listener.close()
                conn.sendall(b"bye")
                return 0


def _spawn(log: Path, fds: list[int], cmd: list[str]) -> int:
    pid, ready = _daemonize(log)
    if pid:
        os.read(ready, 1)
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
    os.write(ready, b"1")
    os.close(ready)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
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
