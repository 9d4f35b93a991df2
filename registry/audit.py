"""The audit log as a hash chain: one object per event, numbered, each naming its predecessor's hash.

Event N is the object `audit/<model>/<N, 12 digits>.json`, written create-only, so two writers can
never both append event N (the loser re-reads the head and appends N+1). Each event carries `seq`,
`prev` (sha256 of event N-1's stored bytes; zeros for event 1) and `hash` (sha256 of its own body
without `hash`). Deleting an event leaves a gap, editing one breaks its own hash or its successor's
`prev`, moving one breaks `seq`; `verify` names the first such event. The production pointer also
records the chain's head at each promotion and rollback (an anchor), so events up to then cannot be
dropped from the end unnoticed.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from registry.errors import AuditChainError, RegistryError
from registry.store import ObjectExists, Store

GENESIS = "0" * 64
_EVENT_NAME = re.compile(r"^([0-9]{12})\.json$")  # ASCII: \d would take any script's digits


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def body_hash(body: dict[str, Any]) -> str:
    """sha256 of an event's body without its own `hash` field."""
    return hashlib.sha256(_canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def _stored(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode()


@dataclass
class ChainReport:
    """What `verify` found: how many events, the head, and the first problem (None: intact)."""

    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problem: str | None = None
    unchained: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "sha256": self.head_hash},
            "problem": self.problem,
        }


class AuditLog:
    """The hash-chained audit log of one model in a store."""

    def __init__(self, store: Store, model_name: str) -> None:
        self.store = store
        self.prefix = f"audit/{model_name}/"
        self._head: tuple[int, str] | None = None  # last (seq, sha256 of bytes) this process saw
        self._parsed: dict[str, dict[str, Any]] = {}  # event key -> event, for `events`

    def _key(self, seq: int) -> str:
        return f"{self.prefix}{seq:012d}.json"

    def _find_head(self) -> tuple[int, str]:
        """The highest event number and the sha256 of its bytes ((0, zeros) for an empty log)."""
        if self._head is not None:
            seq, digest = self._head
        else:
            numbers = [int(m[1]) for n in self.store.children(self.prefix) if (m := _EVENT_NAME.match(n))]
            seq, digest = (max(numbers), "") if numbers else (0, GENESIS)
        while True:  # others may have appended since: walk forward to the real head
            data = self.store.read(self._key(seq + 1))
            if data is None:
                break
            seq, digest = seq + 1, hashlib.sha256(data).hexdigest()
        if not digest:
            data = self.store.read(self._key(seq))
            if data is None:
                raise RegistryError(f"audit event {seq} vanished while reading the log; retry")
            digest = hashlib.sha256(data).hexdigest()
        return seq, digest

    def head(self) -> tuple[int, str]:
        """The chain's head (seq, sha256 of its stored bytes), read fresh."""
        self._head = None
        self._head = self._find_head()
        return self._head

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append an event after the current head (create-only, retried past racing writers)."""
        for _ in range(1000):
            seq, prev = self._find_head()
            body = {**event, "seq": seq + 1, "prev": prev}
            body["hash"] = body_hash(body)
            data = _stored(body)
            try:
                self.store.write(self._key(seq + 1), data, create_only=True)
            except ObjectExists:
                self._head = None  # someone appended first: find the new head and follow it
                continue
            self._head = (seq + 1, hashlib.sha256(data).hexdigest())
            return body
        raise RegistryError("could not append to the audit log after 1000 tries; retry")

    def _chain_keys(self) -> tuple[dict[int, str], list[str]]:
        """The chained event keys by seq, and keys under the prefix that are not chain events."""
        chained: dict[int, str] = {}
        others = []
        for key in self.store.list(self.prefix):
            match = _EVENT_NAME.match(key[len(self.prefix) :])
            if match:
                chained[int(match[1])] = key
            else:
                others.append(key)
        return chained, others

    def read(self) -> tuple[list[tuple[int, bytes]], list[str]]:
        """Every chained event as (seq, bytes) in seq order, and keys that are not chain events."""
        chained, others = self._chain_keys()
        numbers = sorted(chained)
        datas = self.store.read_many([chained[n] for n in numbers])
        return [(n, d) for n, d in zip(numbers, datas, strict=True) if d is not None], others

    def events(self) -> list[dict[str, Any]]:
        """Every event in chain order (no verification; see `verify`, which always reads afresh).

        Events are create-only objects, so a long-lived reader (`mlops ui`) keeps the ones it has
        parsed and reads only new ones.
        """
        chained, _ = self._chain_keys()
        new = [key for key in chained.values() if key not in self._parsed]
        for key, data in zip(new, self.store.read_many(new), strict=True):
            if data is None:
                continue
            try:
                self._parsed[key] = json.loads(data)
            except ValueError:
                seq = int(_EVENT_NAME.match(key[len(self.prefix) :])[1])
                self._parsed[key] = {"seq": seq, "action": "?", "actor": "?", "at": "", "damaged": True}
        return [self._parsed[chained[n]] for n in sorted(chained) if chained[n] in self._parsed]

    def verify(self, anchors: list[dict[str, Any]] | None = None) -> ChainReport:
        """Walk the chain; report the first deleted, edited or reordered event, and check the anchors."""
        items, others = self.read()
        report = ChainReport(events=len(items), unchained=others)
        hashes: dict[int, str] = {}
        expected, prev = 1, GENESIS
        for seq, data in items:
            digest = hashlib.sha256(data).hexdigest()
            hashes[seq] = digest
            if report.problem is not None:
                continue
            if seq != expected:
                gap = f"events {expected} to {seq - 1} are" if seq - 1 > expected else f"event {expected} is"
                report.problem = f"{gap} missing: deleted from the audit log"
                continue
            try:
                body = json.loads(data)
            except ValueError:
                report.problem = f"event {seq} is not valid JSON: edited"
                continue
            if body.get("seq") != seq:
                report.problem = f"event {seq} holds event {body.get('seq')!r}: events were reordered"
            elif body.get("hash") != body_hash(body):
                report.problem = f"event {seq} was edited: its content no longer matches its own hash"
            elif body.get("prev") != prev:
                report.problem = (
                    f"event {seq - 1} was edited or replaced: event {seq} recorded sha256 "
                    f"{str(body.get('prev'))[:16]}..., event {seq - 1} now has {prev[:16]}..."
                )
            expected, prev = seq + 1, digest
        if items:
            report.head_seq, report.head_hash = items[-1][0], hashes[items[-1][0]]
        if report.problem is None and others:
            report.problem = f"{others[0]} is not an event of the chain: written around the log"
        for anchor in anchors or []:
            if report.problem is not None:
                break
            seq, digest = int(anchor.get("seq", 0)), str(anchor.get("sha256", ""))
            if seq == 0:
                continue
            if seq not in hashes:
                report.problem = (
                    f"event {seq} is missing: deleted from the audit log (the production pointer "
                    f"anchored it at {anchor.get('at', '?')})"
                )
            elif hashes[seq] != digest:
                report.problem = (
                    f"event {seq} was edited or replaced after the production pointer anchored it "
                    f"at {anchor.get('at', '?')}"
                )
        return report

    def check(self, anchors: list[dict[str, Any]] | None = None) -> ChainReport:
        """verify, raising AuditChainError on the first problem."""
        report = self.verify(anchors)
        if not report.ok:
            raise AuditChainError(
                f"the audit log is broken: {report.problem}; run `mlops registry audit --verify` "
                "and restore the log from its backup before promoting"
            )
        return report
