"""The trust policy: which keys may sign which statements, read from a file outside the registry.

A TOML file (settings `trust.policy`, `MLOPS_TRUST_POLICY`; default `<home>/trust/policy.toml` when it
exists) that the registry's writers cannot change: on a laptop a file in the home folder, in
Kubernetes a Secret or ConfigMap mounted read-only, in Jenkins a controller credential. Never a
registry object, and never an approver list from `--config` or the environment: a key decides.

    allow_unsigned = false                 # refuse any version whose chain does not verify
    required_suites = ["sha256:..."]       # model test suite digests a passing test run must name

    [[signers]]
    name = "ci-trainer"                    # who, as reports show it
    role = "trainer"                       # trainer | tester | approver
    key = "keys/trainer.pub"               # PEM public key, relative to this file; or pem = "..."

Signing is required whenever a policy exists (`allow_unsigned` defaults to false). With no policy at
all the registry keeps its older, weaker checks (an approver list and the OS account) and says so.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UsageError
from registry.attestations import pem_key_id
from registry.errors import RegistryError, SignatureError

if TYPE_CHECKING:
    from core.settings import Settings

ROLES = ("trainer", "tester", "approver")


class TrustPolicyError(RegistryError):
    """The trust policy file is missing, unreadable or malformed: nothing can be verified."""


@dataclass(frozen=True)
class Signer:
    """One key the policy trusts, for one role, under a name."""

    name: str
    role: str
    key_id: str
    pem: bytes = field(repr=False)


@dataclass(frozen=True)
class TrustPolicy:
    """Who may sign what, and what a passing test run must have run."""

    path: Path
    signers: tuple[Signer, ...]
    required_suites: tuple[str, ...]
    allow_unsigned: bool = False

    def keys(self, role: str) -> dict[str, bytes]:
        """The PEM public keys of a role by key id."""
        return {s.key_id: s.pem for s in self.signers if s.role == role}

    def signer(self, key_id: str, role: str) -> Signer | None:
        """The policy's entry for a key in a role (None: that key may not sign for that role)."""
        return next((s for s in self.signers if s.key_id == key_id and s.role == role), None)

    def names(self, role: str) -> list[str]:
        return sorted({s.name for s in self.signers if s.role == role})

    def trainer_key_files(self) -> tuple[Path, ...]:
        """The trainer keys as PEM files (model-signing verifies with a file), written once per process."""
        return tuple(_pem_file(s.pem) for s in self.signers if s.role == "trainer")


_PEM_FILES: dict[bytes, Path] = {}


def _pem_file(pem: bytes) -> Path:
    if pem not in _PEM_FILES:
        fd, name = tempfile.mkstemp(prefix="mlops-trusted-", suffix=".pub")
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        _PEM_FILES[pem] = Path(name)
    return _PEM_FILES[pem]


def _signer(entry: object, base: Path, where: str) -> Signer:
    if not isinstance(entry, dict):
        raise TrustPolicyError(f"{where}: each [[signers]] entry is a table with name, role and key or pem")
    name, role = entry.get("name"), entry.get("role")
    if not isinstance(name, str) or not name.strip():
        raise TrustPolicyError(f"{where}: a signer has no name")
    if role not in ROLES:
        raise TrustPolicyError(f"{where}: signer {name!r} has role {role!r}; use one of {', '.join(ROLES)}")
    unknown = set(entry) - {"name", "role", "key", "pem", "key_id"}
    if unknown:
        raise TrustPolicyError(f"{where}: signer {name!r} has unknown fields {', '.join(sorted(unknown))}")
    if "pem" in entry:
        pem = str(entry["pem"]).encode()
    elif "key" in entry:
        path = Path(str(entry["key"])).expanduser()
        path = path if path.is_absolute() else base / path
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise TrustPolicyError(f"{where}: signer {name!r}: cannot read {path}: {exc.strerror}") from None
    else:
        raise TrustPolicyError(f"{where}: signer {name!r} needs key = PATH or pem = PEM")
    try:
        key_id = pem_key_id(pem)
    except SignatureError:
        raise TrustPolicyError(f"{where}: signer {name!r}: not a PEM public key") from None
    if entry.get("key_id") and entry["key_id"] != key_id:
        raise TrustPolicyError(f"{where}: signer {name!r}: key_id does not match its key ({key_id[:16]})")
    return Signer(name.strip(), role, key_id, pem)


def load_policy(path: Path) -> TrustPolicy:
    """Parse and check a trust policy file; TrustPolicyError saying what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TrustPolicyError(f"cannot read the trust policy {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TrustPolicyError(f"the trust policy {path} is not valid TOML: {exc}") from None
    unknown = set(data) - {"allow_unsigned", "required_suites", "signers"}
    if unknown:
        raise TrustPolicyError(f"the trust policy {path} has unknown keys: {', '.join(sorted(unknown))}")
    allow = data.get("allow_unsigned", False)
    suites = data.get("required_suites", [])
    if not isinstance(allow, bool):
        raise TrustPolicyError(f"{path}: allow_unsigned must be true or false")
    if not isinstance(suites, list) or not all(
        isinstance(s, str) and s.startswith("sha256:") for s in suites
    ):
        raise TrustPolicyError(f"{path}: required_suites must be a list of 'sha256:HEX' suite digests")
    signers = tuple(_signer(e, path.parent, str(path)) for e in data.get("signers", []))
    return TrustPolicy(path, signers, tuple(suites), allow)


def policy_path(settings: Settings) -> Path | None:
    """The trust policy file settings name (trust.policy), else the home one when it exists."""
    if settings.trust.policy:
        return Path(settings.trust.policy).expanduser()
    default = settings.trust_policy_path
    return default if default.is_file() else None


def policy_for(settings: Settings) -> TrustPolicy | None:
    """The trust policy in force (None: there is none); a named but broken policy is an error."""
    path = policy_path(settings)
    return None if path is None else load_policy(path)


def _render(signers: list[tuple[str, str, Path]], suites: tuple[str, ...], base: Path) -> str:
    lines = [
        "# Trust policy: which keys may sign which statements (registry/trust.py, docs/trust.md).",
        "# Keep it where the registry's writers cannot change it.",
        "allow_unsigned = false",
        f"required_suites = [{', '.join(repr(s).replace(chr(39), chr(34)) for s in suites)}]",
    ]
    for name, role, key in signers:
        rel = os.path.relpath(key, base)
        lines += ["", "[[signers]]", f'name = "{name}"', f'role = "{role}"', f'key = "{rel}"']
    return "\n".join(lines) + "\n"


def init_trust(settings: Settings, suites: tuple[str, ...], approvers: tuple[str, ...]) -> list[str]:
    """Make the laptop trust set once: trainer, tester and approver key pairs and a policy naming them.

    The trainer key is the signing key (registry.signing signs model.sig with it). Existing keys are
    kept; an existing policy is never rewritten. Returns what was created, for the caller to print.
    """
    from registry.signing import generate_key_pair

    made = []
    keys = settings.keys_dir
    pairs = [("trainer", "trainer", keys / "signing-key.pem", keys / "signing-key.pub")]
    pairs.append(("tester", "tester", keys / "tester.pem", keys / "tester.pub"))
    pairs += [
        (a, "approver", approver_key_path(settings, a), approver_key_path(settings, a).with_suffix(".pub"))
        for a in approvers
    ]
    for name, _, private, public in pairs:
        if not private.exists():
            generate_key_pair(private, public)
            made.append(f"{name} key {private}")
    path = settings.trust_policy_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _render([(n, r, pub) for n, r, _, pub in pairs], suites, path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        made.append(f"trust policy {path}")
    return made


def approver_key_path(settings: Settings, approver: str) -> Path:
    """An approver's private key on a laptop: <home>/keys/approver-NAME.pem."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in approver)
    return settings.keys_dir / f"approver-{safe}.pem"


_SUITE_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_SUITES_LINE = re.compile(r"^required_suites\s*=\s*\[[^\]\n]*\][ \t]*(#.*)?$", re.M)


def accept_suite(path: Path, digest: str) -> bool:
    """Add DIGEST to the policy file's required_suites (a person's act); False when already there.

    Only the one `required_suites = [...]` line is rewritten, so comments and signers stay as they
    are; the file is checked before and after, and replaced atomically.
    """
    if not _SUITE_DIGEST.fullmatch(digest):
        raise UsageError(f"{digest!r} is not a suite digest: give sha256: and 64 lowercase hex digits")
    policy = load_policy(path)
    if digest in policy.required_suites:
        return False
    text = path.read_text()
    line = "required_suites = " + json.dumps([*policy.required_suites, digest])  # TOML reads a JSON list
    found = _SUITES_LINE.findall(text)
    if len(found) > 1:
        raise TrustPolicyError(f"{path}: more than one required_suites line; edit it by hand")
    if found:
        text = _SUITES_LINE.sub(lambda _: line, text, count=1)
    elif "required_suites" in text:
        raise TrustPolicyError(f"{path}: required_suites spans several lines; add {digest} by hand")
    else:
        text = line + "\n" + text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    try:
        if digest not in load_policy(tmp).required_suites:
            raise TrustPolicyError(f"{path}: could not add {digest}; edit required_suites by hand")
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
