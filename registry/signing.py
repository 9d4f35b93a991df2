"""Signed versions: OpenSSF model-signing over a version's folder, with an elliptic-curve key pair.

At registration the version's folder (every file plus the manifest exactly as stored) is signed into
a Sigstore bundle, stored beside them as `model.sig`. Verification re-hashes the folder and checks
the bundle with one of the trusted public keys (the bundle names its key by the sha256 of the public
key, so key rotation is a second trusted key, not a re-sign). Offline: no Sigstore service is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from registry.errors import RegistryError, SignatureError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

    from core.settings import Settings

SIGNATURE_FILE = "model.sig"  # beside manifest.json in a version's folder (model-signing's default name)
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class SigningConfig:
    """Which key signs, which keys verify, and whether an unsigned version is refused."""

    private_key: Path | None = None
    public_keys: tuple[Path, ...] = ()
    required: bool = False
    password: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningConfig:
        """The [signing] settings with the home key pair as the default."""
        return cls(
            settings.signing_key_path,
            settings.public_key_paths,
            settings.signing.required,
            settings.signing.key_password,
        )


@dataclass(frozen=True)
class Verified:
    """What a verification established: `signed` by key_id, `unsigned`, or `unverified` (no key to check)."""

    status: str
    key_id: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"status": self.status, "key_id": self.key_id}


def _public_id(public_key: PublicKeyTypes) -> str:
    """The key id model-signing records in a bundle: sha256 of the SubjectPublicKeyInfo PEM."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def key_id_of(public_key: PublicKeyTypes) -> str:
    """The key id of a loaded public key (sha256 of its SubjectPublicKeyInfo PEM)."""
    return _public_id(public_key)


def load_public_key(path: Path) -> PublicKeyTypes:
    """A PEM public key file, loaded (a clear error when it is not one)."""
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_public_key(_read(path, "public key"))
    except ValueError:
        raise SignatureError(f"{path} is not a PEM public key") from None


def load_private_key(path: Path, password: str = "") -> PrivateKeyTypes:
    """A PEM private key file, loaded (a clear error when it cannot be)."""
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(_read(path, "private key"), password.encode() or None)
    except (ValueError, TypeError) as exc:
        hint = "set MLOPS_SIGNING_KEY_PASSWORD" if "encrypted" in str(exc).lower() else "check the file"
        raise SignatureError(f"cannot load the signing key {path}: {exc} ({hint})") from None


def public_key_id(path: Path) -> str:
    """The key id of a PEM public key file (a clear error when it is not one)."""
    return _public_id(load_public_key(path))


def private_key_id(path: Path, password: str = "") -> str:
    """The key id of a PEM private key's public half (a clear error when it cannot be loaded)."""
    return _public_id(load_private_key(path, password).public_key())


def generate_key_pair(private_path: Path, public_path: Path) -> str:
    """Write a new P-256 key pair (private key mode 0600, never overwritten); its key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    for path in (private_path, public_path):
        if path.exists():
            raise RegistryError(f"{path} already exists; remove it first to make a new key pair")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: a concurrent init cannot overwrite a key that already signed something.
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    return _public_id(key.public_key())


def check_signer(config: SigningConfig) -> str | None:
    """Pre-flight: the signing key loads and is one the verifiers trust; its key id (None: no key)."""
    if config.private_key is None:
        if config.required:
            raise SignatureError(
                "signing is required but no private key is configured: set signing.private_key "
                "(MLOPS_SIGNING_PRIVATE_KEY) or run `mlops keys init`"
            )
        return None
    key_id = private_key_id(config.private_key, config.password)
    trusted = {public_key_id(p) for p in config.public_keys}
    if trusted and key_id not in trusted:
        raise SignatureError(
            f"the signing key {config.private_key} (key id {key_id[:16]}) is not one of the trusted public "
            "keys (signing.public_keys): versions it signs would be refused; configure the matching pair"
        )
    return key_id


@contextlib.contextmanager
def _temp_file(data: bytes | None = None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mlops-sig-"))
    path = folder / SIGNATURE_FILE
    try:
        if data is not None:
            path.write_bytes(data)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sign_folder(folder: Path, config: SigningConfig) -> bytes:
    """Sign every file under folder into a Sigstore bundle with the private key; the bundle's bytes."""
    from model_signing import signing

    assert config.private_key is not None
    if (folder / SIGNATURE_FILE).exists():
        raise RegistryError(f"{folder} already holds a {SIGNATURE_FILE}; it would be signed over")
    with _temp_file() as out:
        try:
            password = config.password.encode() or None
            # model-signing passes the password to cryptography, which wants bytes.
            config_ = signing.Config().use_elliptic_key_signer(
                private_key=config.private_key,
                password=password,  # type: ignore[arg-type]  # model-signing annotates str; passes it on as is
            )
            config_.sign(folder, out)
        except (ValueError, TypeError, OSError) as exc:
            raise SignatureError(f"signing {folder.name} with {config.private_key} failed: {exc}") from None
        return out.read_bytes()


def signature_key_id(signature: bytes, what: str) -> str:
    """The key id a bundle says it was signed with."""
    try:
        return str(json.loads(signature)["verificationMaterial"]["publicKey"]["hint"])
    except (ValueError, KeyError, TypeError):
        raise SignatureError(
            f"{what}: {SIGNATURE_FILE} is not a model-signing bundle with a public key hint; "
            "the signature is damaged or forged: do not use this version"
        ) from None


def _mismatch(message: str) -> str:
    """model-signing's manifest diff as a short list of file names."""
    # The diff arrives as str(list): an item holding both quote kinds is escaped (\'name\').
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)\\?'", message)
    added = re.findall(r"Extra files found in model \\?'[^']*?\\?': ([^'\"\]\\]+)", message)
    missing = re.findall(r"Missing files in model \\?'[^']*?\\?': ([^'\"\]\\]+)", message)
    parts = []
    if changed:
        parts.append("changed: " + ", ".join(changed))
    if added:
        parts.append("added: " + ", ".join(a.strip() for a in added))
    if missing:
        parts.append("missing: " + ", ".join(m.strip() for m in missing))
    return "; ".join(parts) or message[:200]


def verify_folder(folder: Path, signature: bytes | None, config: SigningConfig, what: str) -> Verified:
    """Check a version's folder against its signature; raise SignatureError naming what is wrong."""
    if signature is None:
        if config.required:
            raise SignatureError(
                f"{what} is not signed and signing is required (signing.required): refusing it; "
                "register it again with a signing key"
            )
        return Verified("unsigned")
    key_id = signature_key_id(signature, what)
    trusted = {public_key_id(p): p for p in config.public_keys}
    if not trusted:
        if config.required:
            raise SignatureError(
                f"{what}: signing is required but no public key is configured to verify it "
                "(signing.public_keys / MLOPS_SIGNING_PUBLIC_KEYS)"
            )
        return Verified("unverified", key_id)
    if key_id not in trusted:
        raise SignatureError(
            f"{what} is signed by key {key_id[:16]}..., which is not a trusted key "
            f"({', '.join(k[:16] + '...' for k in sorted(trusted))}): refusing a foreign signature"
        )
    from cryptography.exceptions import InvalidSignature
    from model_signing import verifying

    with _temp_file(signature) as path:
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=trusted[key_id]).verify(folder, path)
        except InvalidSignature:
            raise SignatureError(
                f"{what}: the signature does not verify with key {key_id[:16]}...: "
                "the signed content was altered; do not use this version"
            ) from None
        except ValueError as exc:
            raise SignatureError(
                f"{what} differs from what was signed ({_mismatch(str(exc))}): "
                "the registry copy was altered; do not use this version"
            ) from None
    return Verified("signed", key_id)


def staged_folder(files: dict[str, Path], manifest: bytes) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder holding `files` (hard links where possible) and the manifest bytes."""

    @contextlib.contextmanager
    def stage() -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="mlops-version-"))
        try:
            for rel, src in files.items():
                dst = folder / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(src, dst)
                except OSError:  # another filesystem: copy
                    shutil.copyfile(src, dst)
            (folder / MANIFEST_FILE).write_bytes(manifest)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return stage()
