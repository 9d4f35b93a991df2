"""Signed checkpoints over the audit chain: "the log of MODEL had N events, event N's hash was H".

As in transparency logs (C2SP tlog-checkpoint: origin, tree size, root hash, signed as a note), a
checkpoint is a short text signed by the key of the actor that appended: here the chain's length and
the `hash` of its head event stand where a Merkle tree's size and root would. Event N's hash covers
its `prev` (the sha256 of event N-1's bytes), so one checkpoint vouches for the whole chain up to N.

Which keys are trusted to sign is never read from the registry: verifiers pass the public keys
(settings' signing.public_keys today, a trust policy later). Keys are the registry's signing key
pairs (EC P-256, as `mlops keys init` writes) or Ed25519.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import SignatureError
from registry.signing import key_id_of, load_private_key, load_public_key

# Decisions: each one's event carries its own checkpoint when its appender holds a key.
CHECKPOINTED = frozenset({"promote", "rollback", "refuse"})
# Those that change what serves must be signed: one without a checkpoint is reported as forged. A
# refusal may come from a process holding no key (an API worker refusing a version at load): it
# changes nothing, so an unsigned one is only unanchored.
MUST_BE_SIGNED = frozenset({"promote", "rollback"})
FORMAT = "mlops-audit-checkpoint/v1"  # the note's first line: a signature is never valid for other text


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement about the chain: its length, its head event's hash, who signed and when."""

    model: str
    size: int
    head: str
    at: str
    key_id: str
    signature: str  # base64

    def note(self) -> bytes:
        """The exact bytes signed (line-based, so no two field values can be confused)."""
        return f"{FORMAT}\n{self.model}\n{self.size}\n{self.head}\n{self.at}\n".encode()

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "size": self.size,
            "head": self.head,
            "at": self.at,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        """Parse a stored checkpoint; ValueError naming what is malformed."""
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        texts: dict[str, str] = {}
        for key in ("model", "head", "at", "key_id", "signature"):
            value = data.get(key)
            if not isinstance(value, str) or not value or "\n" in value:
                raise ValueError(f"field {key!r} is missing or not one line of text")
            texts[key] = value
        size = data.get("size")
        if type(size) is not int or size < 1:
            raise ValueError("field 'size' is not a positive whole number")
        return cls(size=size, **texts)


def sign(model: str, size: int, head: str, at: str, private_key: Path, password: str = "") -> Checkpoint:
    """A checkpoint signed with the private key (SignatureError when it cannot be loaded)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = load_private_key(private_key, password)
    unsigned = Checkpoint(model, size, head, at, key_id_of(key.public_key()), "")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.sign(unsigned.note(), ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.sign(unsigned.note())
    else:
        raise SignatureError(f"{private_key} is neither an EC nor an Ed25519 key; checkpoints need one")
    return Checkpoint(model, size, head, at, unsigned.key_id, base64.b64encode(raw).decode())


def trusted_keys(paths: Sequence[Path]) -> dict[str, Any]:
    """The public keys that may sign checkpoints, by key id (SignatureError for an unreadable one)."""
    keys: dict[str, Any] = {}
    for path in paths:
        key = load_public_key(Path(path))
        keys[key_id_of(key)] = key
    return keys


def problem(checkpoint: Checkpoint, trusted: dict[str, Any]) -> str | None:
    """Why the checkpoint's signature is not good, or None when a trusted key made it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = trusted.get(checkpoint.key_id)
    if key is None:
        return f"signed by key {checkpoint.key_id[:16]}..., which is not a trusted key"
    try:
        raw = base64.b64decode(checkpoint.signature, validate=True)
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, checkpoint.note(), ec.ECDSA(hashes.SHA256()))
        else:
            key.verify(raw, checkpoint.note())
    except (InvalidSignature, ValueError):
        return f"its signature does not verify with key {checkpoint.key_id[:16]}...: forged or edited"
    return None


def dumps(checkpoint: Checkpoint) -> bytes:
    """A checkpoint object's stored bytes."""
    return (json.dumps(checkpoint.to_dict(), indent=2, sort_keys=True) + "\n").encode()
