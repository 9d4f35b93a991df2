"""Housekeeping: find what interrupted writes left in a registry and, on request, remove it.

Leftovers are never part of a complete version: temp files of a local store's atomic renames,
half-registered versions (files but no manifest: the manifest is written last), production copies
no pointer ever named (a lost race or a crash before the swap), write probes, and decisions a crash
kept out of the audit log (repaired by appending them, marked recovered). Anything younger than the
grace period may belong to a write still in progress and is only reported.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from registry.refs import version_number

if TYPE_CHECKING:
    from registry.core import Registry

KINDS = ("temp-file", "half-registered", "unpromoted-copy", "probe", "unlogged")


@dataclass(frozen=True)
class Finding:
    """One leftover: its kind, what it is, the objects it holds and how old its newest part is."""

    kind: str
    what: str
    keys: tuple[str, ...]
    age_s: float
    event: dict[str, Any] | None = None  # an unlogged decision, as it would be appended

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["age_s"] = round(self.age_s, 1)
        data.pop("event")
        return data


def _by_version(times: dict[str, float], prefix: str) -> dict[int, dict[str, float]]:
    groups: dict[int, dict[str, float]] = defaultdict(dict)
    for key, mtime in times.items():
        number, _, _rest = key[len(prefix) :].partition("/")
        version = version_number(number)
        if version is not None:
            groups[version][key] = mtime
    return groups


def _iso_age(at: str, now: float) -> float:
    from datetime import datetime

    try:
        return now - datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError):
        return float("inf")


def scan(reg: Registry) -> list[Finding]:
    """Every leftover in the registry of reg's model, oldest first."""
    reg._require_root()
    now = time.time()
    found = [Finding("temp-file", key, (key,), now - t) for key, t in reg.store.temp_objects().items()]
    testing = f"testing/{reg.name}/"
    for version, objects in _by_version(reg.store.list_times(testing), testing).items():
        if f"{testing}{version}/manifest.json" not in objects:
            age = now - max(objects.values())
            found.append(Finding("half-registered", f"testing:{version}", tuple(sorted(objects)), age))
    production = f"production/{reg.name}/"
    promoted = {e["version"] for e in reg.pointer()["history"] if e.get("action") == "promote"}
    for version, objects in _by_version(reg.store.list_times(production), production).items():
        if version not in promoted:
            age = now - max(objects.values())
            found.append(Finding("unpromoted-copy", f"production:{version}", tuple(sorted(objects)), age))
    for key, mtime in reg.store.list_times(f"probes/{reg.name}/").items():
        found.append(Finding("probe", key, (key,), now - mtime))
    for event in reg.unlogged(reg.log.events()):
        what = f"{event['action']} {event.get('area', '')}:{event.get('version', '')}"
        found.append(Finding("unlogged", what, (), _iso_age(str(event.get("at", "")), now), event))
    return sorted(found, key=lambda f: -f.age_s)


def repair(reg: Registry, findings: list[Finding], grace_s: float, actor: str) -> list[Finding]:
    """Remove (or, for unlogged decisions, append) every finding older than grace_s; those handled."""
    done = []
    for finding in findings:
        if finding.age_s < grace_s:
            continue  # may be a write in progress
        if finding.kind == "unlogged":
            assert finding.event is not None
            event = {k: v for k, v in finding.event.items() if k not in ("seq", "prev", "hash")}
            # Signed by the repairing key holder: a recovered decision is vouched for like any other.
            reg.log.append(event | {"recovered": True, "recovered_by": actor}, signer=reg.policy.signing)
        else:
            for key in finding.keys:
                reg.store.delete(key)
        done.append(finding)
    if done:
        counts = {kind: sum(f.kind == kind for f in done) for kind in KINDS}
        reg._audit(
            "fsck",
            actor,
            "removed leftovers of interrupted writes",
            repaired={k: v for k, v in counts.items() if v},
            objects=[key for f in done for key in f.keys],
        )
    return done
