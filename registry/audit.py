"""The audit log as a hash chain: one object per event, numbered, each naming its predecessor's hash.

Event N is the object `audit/<model>/<N, 12 digits>.json`, written create-only, so two writers can
never both append event N (the loser re-reads the head and appends N+1). Each event carries `seq`,
`prev` (sha256 of event N-1's stored bytes; zeros for event 1) and `hash` (sha256 of its own body
without `hash`). Deleting an event leaves a gap, editing one breaks its own hash or its successor's
`prev`, moving one breaks `seq`; `verify` names the first such event. The production pointer also
records the chain's head at each promotion and rollback (an anchor).

A hash chain alone cannot tell a shortened or re-hashed log from an honest one, so every decision
(promote, rollback, refuse) is signed as it is appended (registry.checkpoints): the event carries a
checkpoint over its own hash, and the same checkpoint is stored as `checkpoints/<N>.json`. With the
trusted public keys, `verify` reports a log shorter than a checkpoint, an event that differs from what
a checkpoint signed, a checkpoint no trusted key made, and a decision without a checkpoint (forged);
events after the last checkpoint are counted as unanchored.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry import checkpoints
from registry.checkpoints import CHECKPOINTED, MUST_BE_SIGNED
from registry.errors import AuditChainError, RegistryError, SignatureError
from registry.signing import SigningConfig
from registry.store import ObjectExists, Store

GENESIS = "0" * 64
CHECKPOINT_DIR = "checkpoints/"  # under audit/<model>/: one signed checkpoint per decision
_EVENT_NAME = re.compile(r"^([0-9]{12})\.json$")  # ASCII: \d would take any script's digits


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def body_hash(body: dict[str, Any]) -> str:
    """sha256 of an event's body without its own `hash` and the `checkpoint` that signs that hash."""
    unhashed = ("hash", "checkpoint")
    return hashlib.sha256(_canonical({k: v for k, v in body.items() if k not in unhashed})).hexdigest()


def _stored(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True, default=str) + "\n").encode()


@dataclass
class ChainReport:
    """What `verify` found: events, head, every problem (one line each), and how far signatures reach."""

    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    findings: list[str] = field(default_factory=list)
    unchained: list[str] = field(default_factory=list)
    checked: bool = False  # whether checkpoints were verified (trusted keys were given)
    checkpoints: int = 0  # events covered by a valid signed checkpoint (inline or object)
    anchored: int = 0  # the chain up to this event is vouched for by a trusted signature
    unanchored: int = 0  # events after it: not an error, but nothing vouches for them yet

    @property
    def problem(self) -> str | None:
        """The first finding (None: intact)."""
        return self.findings[0] if self.findings else None

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head": {"seq": self.head_seq, "sha256": self.head_hash},
            "problem": self.problem,
            "findings": self.findings,
            "checkpoints": {
                "checked": self.checked,
                "signed": self.checkpoints,
                "anchored_to": self.anchored,
                "unanchored": self.unanchored,
            },
        }


class AuditLog:
    """The hash-chained audit log of one model in a store."""

    def __init__(self, store: Store, model_name: str) -> None:
        self.store = store
        self.model = model_name
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

    def append(self, event: dict[str, Any], signer: SigningConfig | None = None) -> dict[str, Any]:
        """Append an event after the current head (create-only, retried past racing writers).

        A decision (promote, rollback, refuse) is signed as it is written: its checkpoint rides in
        the event itself, so no crash can separate the two, and is copied to `checkpoints/<N>.json`.
        """
        for _ in range(1000):
            seq, prev = self._find_head()
            body = {**event, "seq": seq + 1, "prev": prev}
            body["hash"] = body_hash(body)
            signed = self._sign(body, signer) if event.get("action") in CHECKPOINTED else None
            if signed is not None:
                body["checkpoint"] = {"at": signed.at, "key_id": signed.key_id, "signature": signed.signature}
            data = _stored(body)
            try:
                self.store.write(self._key(seq + 1), data, create_only=True)
            except ObjectExists:
                self._head = None  # someone appended first: find the new head and follow it
                continue
            self._head = (seq + 1, hashlib.sha256(data).hexdigest())
            if signed is not None:
                self._write_checkpoint(signed)
            return body
        raise RegistryError("could not append to the audit log after 1000 tries; retry")

    def _sign(self, body: dict[str, Any], signer: SigningConfig | None) -> checkpoints.Checkpoint | None:
        """The event's checkpoint, signed with the appender's key (None: it holds none, or it failed)."""
        if signer is None or signer.private_key is None:
            return None
        at = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        try:
            return checkpoints.sign(
                self.model, body["seq"], body["hash"], at, signer.private_key, signer.password
            )
        except SignatureError as exc:  # the decision is still recorded; verify will call it unsigned
            print(f"registry: warning: audit event {body['seq']} left unsigned: {exc}", file=sys.stderr)
            return None

    def _write_checkpoint(self, signed: checkpoints.Checkpoint) -> None:
        """The checkpoint as its own create-only object: it outlives the events a truncation deletes."""
        try:
            self.store.write(self._checkpoint_key(signed.size), checkpoints.dumps(signed), create_only=True)
        except ObjectExists:
            pass  # written already (the event holds the same signature)
        except (RegistryError, OSError) as exc:
            print(f"registry: warning: checkpoint {signed.size} not written: {exc}", file=sys.stderr)

    def _checkpoint_key(self, size: int) -> str:
        return f"{self.prefix}{CHECKPOINT_DIR}{size:012d}.json"

    def _chain_keys(self) -> tuple[dict[int, str], list[str]]:
        """The chained event keys by seq, and keys under the prefix that are not chain events."""
        chained: dict[int, str] = {}
        others = []
        for key in self.store.list(self.prefix):
            match = _EVENT_NAME.match(key[len(self.prefix) :])
            if match:
                chained[int(match[1])] = key
            elif not key.startswith(self.prefix + CHECKPOINT_DIR):
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
                match = _EVENT_NAME.match(key[len(self.prefix) :])
                assert match is not None  # _chain_keys keeps only names that match
                seq = int(match[1])
                self._parsed[key] = {"seq": seq, "action": "?", "actor": "?", "at": "", "damaged": True}
        return [self._parsed[chained[n]] for n in sorted(chained) if chained[n] in self._parsed]

    def verify(
        self, anchors: list[dict[str, Any]] | None = None, trusted_keys: Sequence[Path] | None = None
    ) -> ChainReport:
        """Walk the chain, check the pointer's anchors and (given trusted public keys) the checkpoints.

        Every problem is one finding: a deleted, edited or reordered event, an object written around
        the log, and with keys: a checkpoint not signed by a trusted key, a log shorter than a
        checkpoint (truncated), an event that differs from what a checkpoint signed (re-chained), a
        decision with no signed checkpoint (forged). Events after the last checkpoint are counted.
        """
        items, others = self.read()
        report = ChainReport(events=len(items), unchained=others)
        hashes: dict[int, str] = {}
        bodies: dict[int, dict[str, Any]] = {}
        problem: str | None = None
        expected, prev = 1, GENESIS
        for seq, data in items:
            digest = hashlib.sha256(data).hexdigest()
            hashes[seq] = digest
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            if isinstance(body, dict):
                bodies[seq] = body
            if problem is None:
                problem = _link_problem(seq, expected, prev, body)
            expected, prev = seq + 1, digest
        if items:
            report.head_seq, report.head_hash = items[-1][0], hashes[items[-1][0]]
        report.findings += [problem] if problem else []
        report.findings += [f"{key} is not an event of the chain: written around the log" for key in others]
        report.findings += _anchor_problems(anchors or [], hashes)
        if trusted_keys:
            self._check_checkpoints(report, bodies, checkpoints.trusted_keys(trusted_keys))
        return report

    def _check_checkpoints(
        self, report: ChainReport, bodies: dict[int, dict[str, Any]], trusted: dict[str, Any]
    ) -> None:
        """Verify inline and stored checkpoints against the chain; findings and anchoring into report."""
        report.checked = True
        signed: set[int] = set()  # event numbers a valid checkpoint vouches for, as they are now
        bad_inline: set[int] = set()
        for seq, body in bodies.items():
            inline = body.get("checkpoint")
            if inline is None:
                continue
            what = f"event {seq} ({body.get('action', '?')} by {body.get('actor', '?')})"
            try:
                cp = checkpoints.Checkpoint.from_dict(
                    {**inline, "model": self.model, "size": seq, "head": body_hash(body)}
                )
            except (ValueError, TypeError) as exc:
                report.findings.append(f"{what}: its checkpoint is damaged ({exc})")
                bad_inline.add(seq)
                continue
            why = checkpoints.problem(cp, trusted)
            if why is None:
                signed.add(seq)
            else:  # an edit after signing changes the hash the signature covers: lands here too
                report.findings.append(f"{what}: its checkpoint is {why}")
                bad_inline.add(seq)
        last = max(bodies, default=0)
        for key, data in self._checkpoint_objects():
            name = key[len(self.prefix) :]
            match = _EVENT_NAME.match(name[len(CHECKPOINT_DIR) :])
            try:
                cp = checkpoints.Checkpoint.from_dict(json.loads(data))
            except ValueError as exc:
                report.findings.append(f"{name} is not a checkpoint ({exc}): written around the log")
                continue
            if not match or int(match[1]) != cp.size or cp.model != self.model:
                report.findings.append(
                    f"{name} holds a checkpoint of {cp.model} at event {cp.size}: moved or copied"
                )
                continue
            why = checkpoints.problem(cp, trusted)
            if why is not None:
                report.findings.append(f"checkpoint at event {cp.size} ({cp.at}): {why}")
            elif cp.size > last:
                gone = (
                    f"events {last + 1} to {cp.size} were" if cp.size > last + 1 else f"event {cp.size} was"
                )
                report.findings.append(
                    f"the log ends at event {last} but a checkpoint signed at {cp.at} covers {cp.size}: "
                    f"{gone} deleted (truncated)"
                )
            elif cp.size not in bodies or body_hash(bodies[cp.size]) != cp.head:
                report.findings.append(
                    f"event {cp.size} is not the event a checkpoint signed at {cp.at}: "
                    "the chain was rewritten (re-chained) up to it"
                )
            else:
                signed.add(cp.size)
        first = min(signed, default=None)
        report.checkpoints = len(signed)
        report.anchored = max(signed, default=0)
        report.unanchored = sum(seq > report.anchored for seq in bodies)
        # A decision is signed when written; one without a valid checkpoint of its own was not
        # written by a trusted appender. Decisions before the first checkpoint predate checkpoints.
        forged = [
            seq
            for seq, body in sorted(bodies.items())
            if body.get("action") in MUST_BE_SIGNED
            and seq not in signed | bad_inline
            and (first is None or seq > first)
        ]
        if first is None and forged:
            report.findings.append(
                f"{len(forged)} decisions (events {_listing(forged)}) and no signed checkpoint at all: "
                "checkpoints deleted, decisions forged, or a log from before checkpoints (the next "
                "promotion, rollback or refusal by a key holder signs one)"
            )
            return
        for seq in forged:
            body = bodies[seq]
            report.findings.append(
                f"event {seq} ({body.get('action')} by {body.get('actor', '?')} at {body.get('at', '?')}) "
                "has no signed checkpoint: forged (every promotion and rollback is signed)"
            )

    def _checkpoint_objects(self) -> list[tuple[str, bytes]]:
        """Every object under the checkpoints folder, with its bytes."""
        keys = self.store.list(self.prefix + CHECKPOINT_DIR)
        return [(k, d) for k, d in zip(keys, self.store.read_many(keys), strict=True) if d is not None]

    def check(
        self, anchors: list[dict[str, Any]] | None = None, trusted_keys: Sequence[Path] | None = None
    ) -> ChainReport:
        """verify, raising AuditChainError on the first problem."""
        report = self.verify(anchors, trusted_keys)
        if not report.ok:
            more = f" (and {len(report.findings) - 1} more)" if len(report.findings) > 1 else ""
            raise AuditChainError(
                f"the audit log is broken: {report.problem}{more}; run `mlops registry audit --verify` "
                "and restore the log from its backup before promoting"
            )
        return report


def _link_problem(seq: int, expected: int, prev: str, body: Any) -> str | None:
    """What is wrong with event `seq` as the successor of the event whose bytes hash to `prev`."""
    if seq != expected:
        gap = f"events {expected} to {seq - 1} are" if seq - 1 > expected else f"event {expected} is"
        return f"{gap} missing: deleted from the audit log"
    if not isinstance(body, dict):
        return f"event {seq} is not valid JSON: edited"
    if body.get("seq") != seq:
        return f"event {seq} holds event {body.get('seq')!r}: events were reordered"
    if body.get("hash") != body_hash(body):
        return f"event {seq} was edited: its content no longer matches its own hash"
    if body.get("prev") != prev:
        return (
            f"event {seq - 1} was edited or replaced: event {seq} recorded sha256 "
            f"{str(body.get('prev'))[:16]}..., event {seq - 1} now has {prev[:16]}..."
        )
    return None


def _anchor_problems(anchors: list[dict[str, Any]], hashes: dict[int, str]) -> list[str]:
    """Events the production pointer anchored that are gone or changed."""
    for anchor in anchors:
        seq, digest = int(anchor.get("seq", 0)), str(anchor.get("sha256", ""))
        if seq == 0:
            continue
        if seq not in hashes:
            return [
                f"event {seq} is missing: deleted from the audit log (the production pointer "
                f"anchored it at {anchor.get('at', '?')})"
            ]
        if hashes[seq] != digest:
            return [
                f"event {seq} was edited or replaced after the production pointer anchored it "
                f"at {anchor.get('at', '?')}"
            ]
    return []


def _listing(numbers: list[int]) -> str:
    """'3, 6, 9' or '3, 6, 9, ... (12 in all)'."""
    shown = ", ".join(map(str, numbers[:5]))
    return shown if len(numbers) <= 5 else f"{shown}, ... ({len(numbers)} in all)"
