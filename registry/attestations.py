"""Signed statements about a version: in-toto Statement v1 in a DSSE envelope, one object each.

Every decision about a version (its provenance, its gate, a model test run, an approval, a canary) is
an in-toto Statement whose subject is the version's digest (`version_digest`: the root digest
model-signing signs in `model.sig`, so a statement and the signature name the same bytes), signed in
a DSSE envelope with the key of whoever decided. Statements are built and validated with
`in-toto-attestation` and signed and verified with `securesystemslib`'s DSSE (the in-toto project's
reference code); keys are the P-256 PEM pairs registry.signing makes, named by the same key id.

They are stored create-only under `attestations/<model>/<version>/`, beside the version rather than
inside its folder or its manifest: testing:N and production:N share them, and the signed version
folder never changes after registration. Anyone who can write the registry can add an object there;
only a key the trust policy (registry.trust) names makes it count.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError, SignatureError

if TYPE_CHECKING:
    from registry.store import Store

PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATES = {
    "provenance": "https://slsa.dev/provenance/v1",
    "gate": "https://mlops-xray.dev/attestations/gate/v1",
    "tests": "https://mlops-xray.dev/attestations/model-tests/v1",
    "approval": "https://mlops-xray.dev/attestations/approval/v1",
    "canary": "https://mlops-xray.dev/attestations/canary/v1",
}
_OBJECT = re.compile(r"^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-([a-z]+)-[0-9a-f]{32}\.dsse\.json$")


def version_digest(files: Mapping[str, str]) -> str:
    """The root digest of a version: sha256 over its files' sha256 in name order (model-signing's subject).

    `files` maps each relative path of the signed folder (the version's files and manifest.json) to
    its sha256 hex; model-signing hashes the same list into the subject of `model.sig`.
    """
    hasher = hashlib.sha256()
    for name in sorted(files):
        hasher.update(bytes.fromhex(files[name]))
    return hasher.hexdigest()


def now_iso() -> str:
    """UTC now as a statement time."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Attestation:
    """A verified statement: its kind, subject digest, predicate, and the key id that signed it."""

    kind: str
    subject: str
    predicate: dict[str, Any]
    key_id: str
    key: str  # the object it was read from

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "key_id": self.key_id,
            "predicate": self.predicate,
        }


def statement(kind: str, name: str, digest: str, predicate: dict[str, Any]) -> bytes:
    """An in-toto Statement v1 (validated) about the version `digest` names, as JSON bytes."""
    from google.protobuf import json_format
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    if kind not in PREDICATES:
        raise RegistryError(f"unknown attestation kind {kind!r}; use one of {', '.join(PREDICATES)}")
    subject = ResourceDescriptor(name=name, digest={"sha256": digest})
    stmt = Statement([subject.pb], PREDICATES[kind], {"kind": kind, **predicate})
    stmt.validate()
    return json_format.MessageToJson(stmt.pb, sort_keys=True).encode()


def _private_key(path: Path, password: str = "") -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the signing key {path}: {exc.strerror or exc}") from None
    try:
        return serialization.load_pem_private_key(data, password.encode() or None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"cannot load the signing key {path}: {exc}") from None


def pem_key_id(pem: bytes) -> str:
    """The key id of a PEM public key (sha256 of its SubjectPublicKeyInfo PEM, as model-signing names it)."""
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise SignatureError("not a PEM public key") from None
    canonical = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(canonical).hexdigest()


def signer_key_id(private_key: Path, password: str = "") -> str:
    """The key id of a private key's public half."""
    from cryptography.hazmat.primitives import serialization

    public = _private_key(private_key, password).public_key()
    return pem_key_id(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def sign(payload: bytes, private_key: Path, password: str = "") -> bytes:
    """A DSSE envelope over an in-toto statement, signed with the PEM private key; the envelope's JSON."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey

    key = _private_key(private_key, password)
    key_id = signer_key_id(private_key, password)
    signer = CryptoSigner(key, SSlibKey.from_crypto(key.public_key(), keyid=key_id))
    envelope = Envelope(payload, PAYLOAD_TYPE, {})
    envelope.sign(signer)
    return json.dumps(envelope.to_dict(), sort_keys=True).encode()


def open_envelope(data: bytes, trusted: Mapping[str, bytes], where: str) -> Attestation:
    """Verify a DSSE envelope with one of the trusted PEM public keys (by key id); its statement.

    Raises SignatureError when it is not an envelope, no trusted key signed it, or the statement
    inside is not a valid in-toto Statement v1 of a known kind.
    """
    from cryptography.hazmat.primitives import serialization
    from google.protobuf import json_format
    from in_toto_attestation.v1.statement import Statement
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import Key, SSlibKey

    try:
        envelope = Envelope.from_dict(json.loads(data))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureError(f"{where} is not a DSSE envelope") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise SignatureError(f"{where}: payload type {envelope.payload_type!r} is not an in-toto statement")
    keys: list[Key] = [  # list is invariant: verify takes any Key
        SSlibKey.from_crypto(serialization.load_pem_public_key(pem), keyid=key_id)
        for key_id, pem in trusted.items()
        if key_id in envelope.signatures
    ]
    if not keys:
        signers = ", ".join(k[:16] for k in envelope.signatures) or "nobody"
        raise SignatureError(f"{where} is signed by {signers}, not by a key the trust policy names")
    try:
        accepted = envelope.verify(keys, 1)
    except VerificationError:
        raise SignatureError(
            f"{where}: its signature does not verify: the statement was altered or forged"
        ) from None
    try:
        stmt = Statement([], "", {})
        json_format.Parse(envelope.payload, stmt.pb)
        stmt.validate()
        body = json.loads(envelope.payload)
        kind = body["predicate"]["kind"]
        if PREDICATES.get(kind) != body["predicateType"]:
            raise ValueError(kind)
        subject = body["subject"][0]["digest"]["sha256"]
    except (ValueError, KeyError, TypeError, IndexError, json_format.ParseError):
        raise SignatureError(
            f"{where}: the signed payload is not an in-toto statement of a known kind"
        ) from None
    return Attestation(kind, subject, body["predicate"], next(iter(accepted)), where)


def prefix(model: str, version: int) -> str:
    """Where a version's attestations live in the store."""
    return f"attestations/{model}/{version}/"


def put(store: Store, model: str, version: int, kind: str, envelope: bytes) -> str:
    """Store one envelope create-only, named so that name order is time order; its object key."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    key = f"{prefix(model, version)}{stamp}-{kind}-{uuid.uuid4().hex}.dsse.json"
    store.write(key, envelope, create_only=True)
    return key


def read_all(store: Store, model: str, version: int) -> list[tuple[str, bytes]]:
    """Every stored envelope of a version, oldest first, with its object key (unknown names skipped)."""
    keys = [k for k in store.list(prefix(model, version)) if _OBJECT.match(k.rsplit("/", 1)[-1])]
    return [(k, d) for k, d in zip(keys, store.read_many(keys), strict=True) if d is not None]
