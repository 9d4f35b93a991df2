"""Every process a local deployment starts, on disk until it is stopped: one record per process.

`<home>/deploy/processes/<pid>-<start_time>.json` holds {pid, start_time, cmdline, role, ...} (see
core.process_identity). `mlops deploy` writes one for the socket holder and for each server it
starts; the holder writes one for each server it restarts. A record outlives whoever wrote it, so
`mlops deploy --target local --stop` finds a server that a holder restarted and then died.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.process_identity import identity, same_process


def write(folder: Path, pid: int, role: str, **about: Any) -> dict[str, Any]:
    """Record the running process PID (its start time and command line) as ROLE; the record."""
    found = identity(pid)
    record = {**(found or {"pid": pid, "start_time": None, "cmdline": []}), "role": role, **about}
    if found is None:
        return record  # already gone: nothing to stop later
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}-{found['start_time']}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)  # whole or absent, even if the writer dies now
    return record


def read_all(folder: Path) -> list[dict[str, Any]]:
    """Every record in FOLDER (unreadable ones skipped: they name nothing that can be checked)."""
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("pid"), int):
            records.append(record)
    return records


def prune(folder: Path) -> None:
    """Drop the records of processes that are gone (or whose pid now names another process)."""
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = {}
        if not isinstance(record, dict) or not same_process(record):
            path.unlink(missing_ok=True)
