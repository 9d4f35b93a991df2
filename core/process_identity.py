"""Processes as /proc knows them: a pid's identity (start time, command line), who listens on a port.

A pid alone names a process only while it runs: once it exits the kernel may hand the number to
an unrelated process. A pid together with the process's start time (field 22 of /proc/PID/stat,
clock ticks since boot, fixed at fork and unchanged by exec) names one process for the whole uptime.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from core.processes import alive


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/PID/stat (after the command name, which may hold spaces), None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def cmdline(pid: int) -> list[str]:
    """The process's command line ([] when gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def identity(pid: int) -> dict[str, Any] | None:
    """{pid, start_time, cmdline} of a running process, None when it is gone (or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in {"Z", "X"}:
        return None
    # fields[0] is field 3 (state): field 22 (starttime) is fields[19].
    return {"pid": pid, "start_time": int(fields[19]), "cmdline": cmdline(pid)}


def process_group(pid: int) -> int | None:
    """The process group of pid (field 5 of its stat), None when it is gone."""
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def same_process(record: dict[str, Any]) -> bool:
    """Whether the process RECORD names (pid, start_time, cmdline) still runs as that very process.

    The start time must be equal: a recycled pid always has a later one. The program (argv[0]) must
    be the recorded one too; the rest of the command line may change, because a server we start
    execs into its final form (`mlops serve` becomes gunicorn in the same process). A record
    without a start time cannot be checked and never matches.
    """
    if not isinstance(record.get("pid"), int) or not isinstance(record.get("start_time"), int):
        return False
    now = identity(record["pid"])
    if now is None or now["start_time"] != record["start_time"]:
        return False
    recorded = record.get("cmdline") or []
    return bool(recorded) and now["cmdline"][:1] == recorded[:1]


def stop_group(record: dict[str, Any], timeout_s: float) -> str:
    """Stop the process RECORD names and its process group: "stopped", "killed", "gone" or "foreign".

    SIGTERM to the leader (gunicorn stops its workers gracefully), SIGKILL to the group after
    timeout_s. "foreign": the pid now belongs to another process, which is left alone.
    """
    pid = record["pid"]
    if not same_process(record):
        return "foreign" if alive(pid) else "gone"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    graceful = not alive(pid)
    # The server leads its own group (setsid at spawn): while any member lives, the kernel keeps the
    # group's number from being reused, so what is left in it is ours.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return "stopped" if graceful else "killed"


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP PORT (IPv4 and IPv6), from /proc/net/tcp and tcp6."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            # local_address is HEXADDR:HEXPORT; state 0A is LISTEN; the inode is the 10th column.
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rpartition(":")[2], 16) == port:
                inodes.add(parts[9])
    return inodes


def port_holders(port: int) -> list[int]:
    """Pids holding a socket that listens on TCP PORT (those this user may inspect), lowest first."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not wanted:
        return []
    holders = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # another user's process, or gone
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(fd) in wanted:
                    holders.append(int(entry.name))
                    break
    return sorted(holders)
