"""The registry: immutable versions, refs, verified fetch, promotion by compare-and-swap, audit log."""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.actor import default_actor
from core.identity import authenticated_identity
from core.settings import Settings, load_settings
from registry.audit import AuditLog, ChainReport
from registry.checksums import describe_files
from registry.errors import (
    AuditChainError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    PolicyError,
    RefError,
    RegistryError,
)
from registry.manifest import (
    ANNOTATED,
    Annotation,
    Annotations,
    Manifest,
    ManifestError,
    annotation_from,
    annotations_from,
    require_lineage,
    to_json,
)
from registry.policy import Policy, authorize, check_evidence, evidence
from registry.refs import AREAS, REF_HELP, Ref, parse_ref, version_number
from registry.signing import SIGNATURE_FILE, check_signer, sign_folder, staged_folder
from registry.store import ObjectExists, Store, open_store
from registry.version import ANNOTATION_KINDS, SUMMARY_KEY, LocalModel, ModelVersion, summarize

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _stamp(moment: datetime) -> str:
    """A sortable object-name prefix (lexical order = time order)."""
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _loads(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError(f"{what} is not valid JSON; the registry is damaged: restore it") from None


def open_registry(settings: Settings) -> Registry:
    """The registry named by settings (registry.uri, registry.model_name), caching in settings.cache_dir."""
    return Registry.open(
        settings.registry_uri,
        settings.registry.model_name,
        cache_dir=settings.cache_dir,
        policy=Policy.from_settings(settings),
    )


# Refusals worth an audit event: a decision said no (policy, signature, integrity, a moved production,
# a broken audit chain). A malformed ref or a missing version is a usage error, not a decision.
REFUSALS = (PolicyError, IntegrityError, ConflictError, AuditChainError)


class Registry:
    """A model registry over a Store (local folder or GCS bucket)."""

    def __init__(
        self, store: Store, model_name: str, cache_dir: Path | None = None, policy: Policy | None = None
    ) -> None:
        if not _NAME.match(model_name):
            raise RegistryError(
                f"model name {model_name!r} is not valid: use letters, digits, '.', '_' and '-'"
            )
        self.store = store
        self.name = model_name
        # No cache_dir or policy: the ones the settings name (layered like every command's).
        if cache_dir is None or policy is None:
            settings = load_settings()
            cache_dir = settings.cache_dir if cache_dir is None else cache_dir
            policy = Policy.from_settings(settings) if policy is None else policy
        self.cache_dir = Path(cache_dir)
        self.policy = policy
        self.log = AuditLog(store, model_name)
        # Tests set this to inject a crash (raise) or a pause at a named step.
        self.fault_hook: Callable[[str], None] | None = None
        # Audit events by object key: objects are create-only, so a long-lived reader (mlops ui)
        # reads each event once.

    @classmethod
    def open(
        cls, uri: str, model_name: str, cache_dir: Path | None = None, policy: Policy | None = None
    ) -> Registry:
        """Open the registry at file://PATH or gs://BUCKET[/PREFIX] for one model name."""
        return cls(open_store(uri), model_name, cache_dir, policy)

    @property
    def uri(self) -> str:
        return self.store.uri

    # -- layout --------------------------------------------------------------------------------
    def _dir(self, area: str, version: int) -> str:
        return f"{area}/{self.name}/{version}/"

    @property
    def _pointer_key(self) -> str:
        return f"production/{self.name}/pointer.json"

    def _step(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _require_root(self) -> None:
        if not self.store.root_exists():
            raise NotFoundError(
                f"registry {self.uri} does not exist; check --registry / MLOPS_REGISTRY "
                "or register a model first (mlops train)"
            )

    # -- versions ------------------------------------------------------------------------------
    def _version(self, area: str, version: int, summary: dict[str, Any] | None = None) -> ModelVersion:
        key = self._dir(area, version)
        uri = f"{self.uri}/{key.rstrip('/')}"
        return ModelVersion(self.name, version, area, uri, lambda: self._manifest(area, version), summary)

    def _raw_manifest(self, area: str, version: int) -> Manifest:
        key = self._dir(area, version) + "manifest.json"
        data = self.store.read(key)
        if data is None:
            raise NotFoundError(f"{area}:{version} has no manifest in {self.uri}")
        # A production copy is byte-identical to testing; its area is where it is.
        return _parse_stored(_loads(data, f"{self.uri}/{key}"), f"{self.uri}/{key}").evolve(area=area)

    def _manifest(self, area: str, version: int) -> Manifest:
        return self._raw_manifest(area, version).evolve(annotations=self.annotations(version))

    def decorate(self, stored: Manifest, area: str, version: int) -> Manifest:
        """A stored manifest as handed out: the area it was read from, plus its annotations."""
        return stored.evolve(area=area, annotations=self.annotations(version))

    def annotations(self, version: int) -> Annotations:
        """Annotations of a version by kind, oldest first (shared by its testing and production copy).

        Approvals come from the production pointer's history, where each one was written in the same
        compare-and-swap as the promotion it allowed (older registries stored them as annotations).
        """
        return annotations_from(self._grouped_annotations(version))

    def _grouped_annotations(self, version: int) -> dict[str, list[dict[str, Any]]]:
        """The stored annotation entries of a version by kind (JSON), approvals from the pointer."""
        keys = self.store.list(f"annotations/{self.name}/{version}/")
        grouped: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ANNOTATION_KINDS}
        for key, data in zip(keys, self.store.read_many(keys), strict=True):
            if data is None:
                continue
            item = _loads(data, key)
            grouped.setdefault(item["kind"], []).append(item["entry"])
        for entry in self.pointer()["history"]:
            if entry.get("action") == "promote" and entry.get("version") == version and entry.get("approval"):
                approval = entry["approval"]
                grouped["approvals"].append(
                    {**approval, "at": entry["at"], "actor": entry["actor"], "id": entry["id"]}
                )
        grouped["approvals"].sort(key=lambda e: str(e.get("at", "")))
        return grouped

    def latest_annotations(self, versions: list[int], kind: str) -> dict[int, Any]:
        """The newest annotation of KIND of each version: one listing, one read per version that has one."""
        wanted = {str(v) for v in versions}
        prefix = f"annotations/{self.name}/"
        newest: dict[str, str] = {}
        for key in self.store.list(prefix):  # sorted: <N>/<time>-<kind>-<uuid>.json, oldest first
            version, _, leaf = key[len(prefix) :].partition("/")
            if version in wanted and f"-{kind}-" in leaf:
                newest[version] = key
        keys = list(newest.values())
        found = {
            int(version): _typed_entry(kind, _loads(data, key)["entry"], key)
            for (version, key), data in zip(newest.items(), self.store.read_many(keys), strict=True)
            if data
        }
        return {v: found.get(v) for v in versions}

    def manifests(self, versions: list[ModelVersion]) -> list[Manifest]:
        """The stored manifests (no annotations) of many versions, read concurrently where it helps."""
        keys = [self._dir(v.area, v.version) + "manifest.json" for v in versions]
        out = []
        for v, key, data in zip(versions, keys, self.store.read_many(keys), strict=True):
            if data is None:
                raise NotFoundError(f"{v.ref} has no manifest in {self.uri}")
            out.append(_parse_stored(_loads(data, key), key).evolve(area=v.area))
        return out

    @property
    def local_cache(self) -> Path:
        """This registry's and model's folder in the local cache (fetched versions, summaries)."""
        store_id = hashlib.sha256(self.uri.encode()).hexdigest()[:12]
        return self.cache_dir / "registry" / store_id / self.name

    def summaries(self, versions: list[ModelVersion]) -> list[dict[str, Any]]:
        """Listing fields of many versions: from listed metadata, the local cache, or their manifests.

        Manifests never change after registration (testing N and production N share one), so a
        summary read once stays right: a local list pays only for versions it has not seen.
        """
        path = self.local_cache / "summaries.json"
        try:
            cached: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            cached = {}
        need = [v for v in versions if v._summary is None and str(v.version) not in cached]
        fresh = {str(v.version): summarize(m) for v, m in zip(need, self.manifests(need), strict=True)}
        if fresh:
            cached.update(fresh)
            tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp.write_text(json.dumps(cached))
                os.replace(tmp, path)
            except OSError:
                tmp.unlink(missing_ok=True)  # a read-only cache only costs speed
        return [v._summary if v._summary is not None else cached[str(v.version)] for v in versions]

    def pointer(self) -> dict[str, Any]:
        """The production pointer: current, previous, stack of live versions, history."""
        return self._read_pointer()[0]

    def _read_pointer(self) -> tuple[dict[str, Any], object]:
        data, token = self.store.read_with_token(self._pointer_key)
        if data is None:
            return {"current": None, "previous": None, "stack": [], "history": []}, token
        return _loads(data, f"{self.uri}/{self._pointer_key}"), token

    def _promoted(self, pointer: dict[str, Any]) -> set[int]:
        return {e["version"] for e in pointer["history"] if e.get("action") == "promote"}

    def approved_versions(self) -> set[int]:
        """Versions that were promoted to production at some point (the pointer's history)."""
        return self._promoted(self.pointer())

    def list(self, area: str = "testing") -> list[ModelVersion]:
        """Registered versions of an area, ascending by version."""
        if area not in AREAS:
            raise RegistryError(f"unknown area {area!r}; use one of {', '.join(AREAS)}")
        self._require_root()
        found = self.store.numbered_metadata(f"{area}/{self.name}/", "manifest.json")
        if area == "production":
            # Only copies a pointer ever named count: a lost race or a crash leaves invisible orphans.
            promoted = self._promoted(self.pointer())
            found = {n: meta for n, meta in found.items() if n in promoted}
        return [self._version(area, n, self._listed_summary(meta)) for n, meta in found.items()]

    @staticmethod
    def _listed_summary(metadata: dict[str, str]) -> dict[str, Any] | None:
        try:
            summary: dict[str, Any] | None = json.loads(metadata[SUMMARY_KEY])
            return summary
        except (KeyError, ValueError):
            return None

    def resolve(self, ref: str) -> ModelVersion:
        """The version a ref names, or RefError / NotFoundError saying why not."""
        parsed = parse_ref(ref)
        if parsed.area == "local":
            return self._local(parsed)
        self._require_root()
        if parsed.area == "testing":
            return self._resolve_testing(parsed)
        return self._resolve_production(parsed)

    def _resolve_testing(self, parsed: Ref) -> ModelVersion:
        if parsed.selector == "latest":
            numbers = self.store.numbered_with(f"testing/{self.name}/", "manifest.json")
            if not numbers:
                raise NotFoundError(
                    f"no testing versions of {self.name!r} in {self.uri}; register one (mlops train)"
                )
            return self._version("testing", numbers[-1])
        if not self.store.exists(self._dir("testing", parsed.version) + "manifest.json"):
            raise NotFoundError(
                f"testing:{parsed.version} of {self.name!r} does not exist in {self.uri}; "
                "see mlops registry list"
            )
        return self._version("testing", parsed.version)

    def _resolve_production(self, parsed: Ref) -> ModelVersion:
        pointer = self.pointer()
        if parsed.selector:
            version = pointer.get(parsed.selector)
            if version is None:
                what = "current" if parsed.selector == "current" else "previous"
                raise NotFoundError(
                    f"production has no {what} version of {self.name!r} in {self.uri}; "
                    "promote one (mlops promote testing:N --approved-by WHO)"
                )
        else:
            version = parsed.version
            if version not in self._promoted(pointer):
                raise NotFoundError(
                    f"production:{version} of {self.name!r} was never promoted in {self.uri}; "
                    "see mlops registry list --area production"
                )
        if not self.store.exists(self._dir("production", version) + "manifest.json"):
            raise NotFoundError(f"production:{version} files are missing from {self.uri}; restore them")
        return self._version("production", version)

    def _local(self, parsed: Ref) -> ModelVersion:
        assert parsed.path is not None
        path = parsed.path.absolute()
        folder = path if path.is_dir() else path.parent
        sibling = folder / "manifest.json"
        manifest = Manifest()
        if sibling.is_file():
            manifest = _parse_stored(_loads(sibling.read_bytes(), str(sibling)), str(sibling))
        if path.is_dir():
            path = folder / manifest.model_file
            if not path.is_file():
                raise RefError(f"{folder} has no model file {manifest.model_file!r}")
        manifest = manifest.evolve(area="local", model_file=path.name)
        return ModelVersion(manifest.name or self.name, 0, "local", f"file://{path}", lambda: manifest)

    # -- writing -------------------------------------------------------------------------------
    def _audit(self, action: str, actor: str, reason: str = "", **what: Any) -> dict[str, Any]:
        event = {"at": _iso(_now()), "actor": actor, "action": action, "model": self.name, "reason": reason}
        event.update(what)
        return self.log.append(event, signer=self.policy.signing)  # decisions get a signed checkpoint

    def record_refusal(self, attempted: str, actor: str, reason: str, **what: Any) -> None:
        """Put a refused decision on the record (who, what, why); never hides the refusal itself."""
        try:
            self._audit("refuse", actor, reason, attempted=attempted, **what)
        except (RegistryError, OSError) as exc:  # a read-only store: the refusal still stands
            print(f"registry: warning: could not record the refusal in the audit log: {exc}", file=sys.stderr)

    def record_event(self, action: str, actor: str, reason: str = "", **what: Any) -> None:
        """Put a decision taken outside the registry on the record (a canary's verdict), like a refusal."""
        try:
            self._audit(action, actor, reason, **what)
        except (RegistryError, OSError) as exc:  # a read-only store: the decision still stands
            print(f"registry: warning: could not record {action!r} in the audit log: {exc}", file=sys.stderr)

    def check_writable(self, actor: str) -> None:
        """Pre-flight: write (and remove) a probe object, so a long job never ends in a failed upload."""
        if self.uri.startswith("gs://"):
            self._require_root()  # a bucket is never created implicitly; a local folder is
        key = f"probes/{self.name}/{uuid.uuid4().hex}.json"
        try:
            self.store.write(key, _dumps({"actor": actor, "at": _iso(_now())}), create_only=True)
        except (RegistryError, OSError) as exc:
            raise RegistryError(
                f"registry {self.uri} is not writable ({exc}); fix its permissions or --registry first"
            ) from None
        # Allowed to create but not to delete: `mlops registry fsck --repair` removes probes.
        with contextlib.suppress(RegistryError, OSError):
            self.store.delete(key)

    def _claim_version(self, actor: str) -> int:
        """Allocate the next version number race-free with a create-only claim object."""
        prefix = f"claims/{self.name}/"
        taken = [n for n in map(version_number, self.store.children(prefix)) if n is not None]
        taken += self.store.numbered_with(f"testing/{self.name}/", "manifest.json")
        candidate = max(taken, default=0) + 1
        for _ in range(1000):
            try:
                claim = {"actor": actor, "at": _iso(_now()), "id": uuid.uuid4().hex}  # unique content
                self.store.write(f"{prefix}{candidate}", _dumps(claim), create_only=True)
                return candidate
            except ObjectExists:
                candidate += 1  # someone else took it; numbers are never reused
        raise ConflictError("could not allocate a version number after 1000 tries; retry")

    def register(
        self, src_dir: Path, manifest: Manifest | dict[str, Any], actor: str, reason: str = ""
    ) -> ModelVersion:
        """Copy src_dir into the next testing version; files first, manifest last.

        The manifest must carry its lineage (registry.manifest.LINEAGE) with every field of its type:
        ManifestError names the first field that is missing or wrong, and nothing is written.
        """
        src_dir = Path(src_dir)
        if not src_dir.is_dir():
            raise NotFoundError(f"cannot register {src_dir}: not a folder")
        given = manifest.to_dict(annotations=False) if isinstance(manifest, Manifest) else manifest
        checked = require_lineage({k: v for k, v in given.items() if k != "annotations"})
        files = describe_files(src_dir, skip=("manifest.json", SIGNATURE_FILE))
        model_file = checked.model_file
        if model_file not in files:
            raise RegistryError(
                f"cannot register {src_dir}: model file {model_file!r} is missing "
                "(set the manifest's model_file to the model's path inside the folder)"
            )
        if not self.store.root_exists() and self.uri.startswith("gs://"):
            self._require_root()  # a bucket is never created implicitly
        try:
            key_id = check_signer(self.policy.signing)  # before a number is claimed
        except IntegrityError as exc:
            if self.store.root_exists():
                self.record_refusal("register", actor, str(exc), source=str(src_dir))
            raise
        version = self._claim_version(actor)
        self._step("register:claimed")
        full = checked.evolve(
            name=self.name,
            version=version,
            area="testing",
            created_at=_iso(_now()),
            files=Manifest.from_dict({"files": files}).files,
            registered_by=actor,
            signed_by=key_id or None,
            annotations=Annotations(),
        )
        stored = _dumps(full.to_dict(annotations=False))
        signature = None
        if key_id:
            # Sign exactly what is stored: the files and the manifest's bytes (which list their sha256).
            with staged_folder({rel: src_dir / rel for rel in files}, stored) as staged:
                signature = sign_folder(staged, self.policy.signing)
        prefix = self._dir("testing", version)
        for rel in files:
            self.store.put_file(prefix + rel, src_dir / rel)
            self._step(f"register:file:{rel}")
        self._step("register:files")
        if signature is not None:
            self.store.write(prefix + SIGNATURE_FILE, signature, create_only=True)
            self._step("register:signature")
        summary = {SUMMARY_KEY: json.dumps(summarize(full))}
        self.store.write(prefix + "manifest.json", stored, create_only=True, metadata=summary)
        self._step("register:manifest")
        if key_id and self.policy.trust is not None:
            self._attest_training(version, full, stored, actor, key_id)
        self._audit("register", actor, reason, version=version, area="testing", signed_by=key_id)
        return self._version("testing", version)

    def _attest_training(self, version: int, full: Manifest, stored: bytes, actor: str, key_id: str) -> None:
        """Sign the provenance and gate statements of a new version with the trainer (signing) key."""
        from registry.chain import attest, manifest_digest

        key = self.policy.signing.private_key
        assert key is not None
        digest = manifest_digest(full.files, stored)
        code, dataset = full.code, full.dataset
        provenance = {  # SLSA provenance v1: buildDefinition + runDetails
            "buildDefinition": {
                "buildType": "https://mlops-xray.dev/train/v1",
                "externalParameters": {
                    "dataset": {
                        "uri": dataset.uri,
                        "revision": dataset.source.revision,
                        "fingerprint": dataset.fingerprint,
                    },
                    "code": {"repo": code.repo, "commit": code.commit},
                    "params": to_json(full.params),
                },
                "resolvedDependencies": (
                    [{"uri": str(dataset.uri), "digest": {"fingerprint": str(dataset.fingerprint)}}]
                    if dataset.uri
                    else []
                ),
            },
            "runDetails": {
                "builder": {"id": code.build_url or "local"},
                "metadata": {"invocationId": code.build_url or "", "startedOn": full.created_at},
            },
            "trainer": {"actor": actor, "key_id": key_id},
            # Set by the training image where its digest is known; a claim of the signer, who signs it.
            "image_digest": os.environ.get("MLOPS_IMAGE_DIGEST") or None,
            "at": full.created_at,
        }
        gate_facts = {
            "passed": full.gate is not None and full.gate.passed is True,
            "reasons": list(full.gate.reasons) if full.gate else [],
            "accuracy": full.metrics.accuracy,
            "at": full.created_at,
        }
        password = self.policy.signing.password
        attest(self, version, digest, "provenance", provenance, key, password)
        attest(self, version, digest, "gate", gate_facts, key, password)

    def approve(
        self, ref: str, approver_key: Path, claimed: str | None, reason: str, actor: str
    ) -> dict[str, Any]:
        """Sign an approval of a version over the production it replaces, with an approver's key.

        The key decides who approves: it must be an approver key of the trust policy, and a claimed
        name must be its name. The approval names the version's digest and production:current (or,
        when the version already is current, the version it replaced), so it cannot be moved to
        another version or replayed over another production.
        """
        from registry.attestations import signer_key_id
        from registry.chain import attest

        trust = self.policy.trust
        if trust is None:
            raise PolicyError("signed approvals need a trust policy (trust.policy / MLOPS_TRUST_POLICY)")
        mv = self.resolve(ref)
        if mv.area == "local":
            raise RefError(f"approve takes a registry ref (testing:N, production:current), not {ref!r}")
        key_id = signer_key_id(approver_key)
        signer = trust.signer(key_id, "approver")
        if signer is None:
            raise PolicyError(
                f"the key {approver_key} (key id {key_id[:16]}) is not an approver key of the trust policy "
                f"{trust.path} (approvers: {', '.join(trust.names('approver')) or 'none'}); nothing approved"
            )
        if claimed and claimed != signer.name:
            raise PolicyError(
                f"--approved-by {claimed!r} disagrees with the approver key {approver_key}, which is "
                f"{signer.name!r}'s; approve with your own key"
            )
        local = self.fetch(mv.ref, refresh=True)
        assert local.digest is not None
        pointer = self.pointer()
        replaced = pointer["current"] if pointer["current"] != mv.version else pointer["previous"]
        facts = {
            "approver": signer.name,
            "reason": reason,
            "expected_production": replaced,
            "at": _iso(_now()),
            "actor": actor,
        }
        attest(self, mv.version, local.digest, "approval", facts, approver_key)
        return {**facts, "key_id": key_id, "version": mv.version, "digest": local.digest}

    def annotate(self, ref: str, entry: Annotation, actor: str) -> None:
        """Record a typed entry (TestRun, Deployment, MonitoringVerdict, CanaryVerdict) beside a version.

        Approvals are not annotations: promote writes them with the pointer.
        """
        if not isinstance(entry, ANNOTATED):
            kinds = ", ".join(t.__name__ for t in ANNOTATED)
            raise RegistryError(f"an annotation is one of {kinds}, not {type(entry).__name__}")
        kind = entry.KIND
        mv = self.resolve(ref)
        if mv.area == "local":
            raise RefError(f"cannot annotate {ref!r}: annotations need a registry version ({REF_HELP})")
        moment = _now()
        data = to_json(dataclasses.replace(entry, at=_iso(moment), actor=actor))
        key = f"annotations/{self.name}/{mv.version}/{_stamp(moment)}-{kind}-{uuid.uuid4().hex}.json"
        self.store.write(key, _dumps({"kind": kind, "entry": data}), create_only=True)
        self._audit(f"annotate:{kind}", actor, "", version=mv.version, area=mv.area, ref=ref)

    def _anchors(self, pointer: dict[str, Any]) -> builtins.list[dict[str, Any]]:
        return [h["audit_anchor"] for h in pointer["history"] if isinstance(h.get("audit_anchor"), dict)]

    def verify_audit(self, trusted_keys: Sequence[Path] | None = None) -> ChainReport:
        """Walk the audit chain, the pointer's anchors and the checkpoints; every problem.

        trusted_keys: the public keys that may sign checkpoints, from outside the registry
        (None: the policy's signing.public_keys; none at all: checkpoints are not checked).
        """
        self._require_root()
        keys = self.policy.signing.public_keys if trusted_keys is None else trusted_keys
        return self.log.verify(self._anchors(self.pointer()), keys)

    def promote(
        self,
        ref: str,
        *,
        expected_production: int | None,
        approved_by: str | None = None,
        actor: str | None = None,
        reason: str = "",
        approver_key: Path | None = None,
    ) -> ModelVersion:
        """Enforce the promotion policy, copy testing:N to production:N, swap the pointer (CAS).

        `expected_production` is the production version the approval was given against (None: it
        was empty); `approved_by` is a claim, checked against the authenticated identity. The
        approval is written in the pointer's compare-and-swap, so no promotion lands without it.
        Every refusal is an audit event; nothing else changes.
        """
        actor = actor or default_actor()
        if self.policy.trust is not None:
            return self._promote_signed(ref, expected_production, approved_by, approver_key, actor, reason)
        identity = authenticated_identity()
        attempt: dict[str, Any] = {
            "ref": ref,
            "approved_by": approved_by,
            "identity": identity.to_dict(),
            "expected_production": expected_production,
        }
        mv = self.resolve(ref)
        if mv.area != "testing":
            raise RefError(f"promote takes a testing ref (testing:N or testing:latest), not {ref!r}")
        attempt["version"] = mv.version
        try:
            chain = self.log.check(self._anchors(self.pointer()), self.policy.signing.public_keys)
            approver = authorize(identity, approved_by, self.policy, self.uri)
            self._expect(self.pointer(), expected_production, mv.version)
            # The registry's copy, downloaded and verified now (sha256 and signature), never a cache.
            local = self.fetch(mv.ref, refresh=True)
            check_evidence(local.manifest)
            pointer, token = self._read_pointer()
            self._expect(pointer, expected_production, mv.version)
        except REFUSALS as exc:
            self.record_refusal("promote", actor, str(exc), **attempt)
            raise
        approval = {
            "approved_by": approver,
            "identity": identity.to_dict(),
            "claimed_by": approved_by,
            "expected_production": expected_production,
            "reason": reason,
            "evidence": evidence(local.manifest, approver),
        }
        return self._land_promotion(mv, local, approval, pointer, token, chain, actor, reason, attempt)

    def _promote_signed(
        self,
        ref: str,
        expected_production: int | None,
        approved_by: str | None,
        approver_key: Path | None,
        actor: str,
        reason: str,
    ) -> ModelVersion:
        """Promotion under a trust policy: sign the approval, verify the whole chain, then swap the pointer.

        No environment variable, settings approver list or OS account counts: only the approver key.
        """
        from core.identity import os_account
        from registry.chain import verify_chain

        trust = self.policy.trust
        assert trust is not None
        mv = self.resolve(ref)
        if mv.area != "testing":
            raise RefError(f"promote takes a testing ref (testing:N or testing:latest), not {ref!r}")
        attempt: dict[str, Any] = {
            "ref": ref,
            "version": mv.version,
            "approved_by": approved_by,
            "account": os_account(),
            "expected_production": expected_production,
        }
        try:
            if approver_key is None:
                raise PolicyError(
                    "approving needs your approver key: --approver-key PATH (or trust.approver_key, or "
                    "<home>/keys/approver-NAME.pem for --approved-by NAME); nothing was promoted"
                )
            chain = self.log.check(self._anchors(self.pointer()))
            self._expect(self.pointer(), expected_production, mv.version)
            approval = self.approve(mv.ref, approver_key, approved_by, reason, actor)
            verdict = verify_chain(self, mv.ref, trust, full=True)
            verdict.require()
            pointer, token = self._read_pointer()
            self._expect(pointer, expected_production, mv.version)
        except REFUSALS as exc:
            self.record_refusal("promote", actor, str(exc), **attempt)
            raise
        local = self.fetch(mv.ref)
        identity = {"name": approval["approver"], "source": "approver-key", "key_id": approval["key_id"]}
        record = {
            "approved_by": approval["approver"],
            "identity": identity,
            "claimed_by": approved_by,
            "account": attempt["account"],
            "expected_production": expected_production,
            "reason": reason,
            "digest": approval["digest"],
            "evidence": evidence(local.manifest, approval["approver"]),
        }
        return self._land_promotion(mv, local, record, pointer, token, chain, actor, reason, attempt)

    def _land_promotion(
        self,
        mv: ModelVersion,
        local: LocalModel,
        approval: dict[str, Any],
        pointer: dict[str, Any],
        token: object,
        chain: ChainReport,
        actor: str,
        reason: str,
        attempt: dict[str, Any],
    ) -> ModelVersion:
        """Copy testing:N to production:N (files, signature, manifest last), then swap the pointer with the
        approval in it (compare-and-swap against TOKEN) and audit it: the one way a promotion lands."""
        src, dst = self._dir("testing", mv.version), self._dir("production", mv.version)
        for rel in local.manifest.files:
            self.store.copy(src + rel, dst + rel)
            self._step(f"promote:file:{rel}")
        self._step("promote:files")
        if (local.signature or {}).get("status") in ("signed", "unverified"):
            self.store.copy(src + SIGNATURE_FILE, dst + SIGNATURE_FILE)
        self.store.copy(src + "manifest.json", dst + "manifest.json")
        self._step("promote:manifest")
        entry = {
            "action": "promote",
            "version": mv.version,
            "at": _iso(_now()),
            "actor": actor,
            "reason": reason,
            "id": uuid.uuid4().hex,  # every pointer write is unique (GcsStore.write_if relies on it)
            "approval": approval,
            "signature": local.signature,
            "audit_anchor": {"seq": chain.head_seq, "sha256": chain.head_hash, "at": _iso(_now())},
        }
        new = {
            "current": mv.version,
            "previous": pointer["current"],
            "stack": [*pointer["stack"], mv.version],
            "history": [*pointer["history"], entry],
        }
        if not self.store.write_if(self._pointer_key, _dumps(new), token):
            conflict = ConflictError(
                f"production changed while promoting testing:{mv.version} (another promotion or rollback "
                "won); nothing was changed: check mlops registry list --area production and approve again"
            )
            self.record_refusal("promote", actor, str(conflict), **attempt)
            raise conflict
        self._step("promote:pointer")
        self._audit(
            "promote",
            actor,
            reason,
            version=mv.version,
            area="production",
            previous=pointer["current"],
            approval=approval,
            signature=local.signature,
            id=entry["id"],
        )
        return self._version("production", mv.version)

    def _expect(self, pointer: dict[str, Any], expected: int | None, version: int) -> None:
        """Refuse when production is not what the approval was given against, or already this version."""
        current = pointer["current"]
        if current == version:
            raise ConflictError(f"testing:{version} is already production:current; nothing to do")
        if current != expected:
            seen = f"production:{expected}" if expected is not None else "an empty production"
            now = f"production:{current}" if current is not None else "empty"
            raise ConflictError(
                f"the approval of testing:{version} was given over {seen}, but production is now {now}: "
                "production moved since; review the new situation and approve again"
            )

    def rollback(self, actor: str, reason: str = "") -> ModelVersion:
        """Point production:current back at the version that was live before it."""
        self._require_root()
        pointer, token = self._read_pointer()
        stack = pointer["stack"]
        if len(stack) < 2:
            raise RegistryError(
                f"production of {self.name!r} has no previous version to roll back to "
                f"(current: {pointer['current']})"
            )
        stack = stack[:-1]
        head_seq, head_hash = self.log.head()
        entry = {
            "action": "rollback",
            "version": stack[-1],
            "from": pointer["current"],
            "at": _iso(_now()),
            "actor": actor,
            "reason": reason,
            "id": uuid.uuid4().hex,  # every pointer write is unique (GcsStore.write_if relies on it)
            "audit_anchor": {"seq": head_seq, "sha256": head_hash, "at": _iso(_now())},
        }
        new = {
            "current": stack[-1],
            "previous": stack[-2] if len(stack) > 1 else None,
            "stack": stack,
            "history": [*pointer["history"], entry],
        }
        self._step("rollback:pointer")
        if not self.store.write_if(self._pointer_key, _dumps(new), token):
            raise ConflictError("production changed during the rollback; nothing was changed: retry")
        self._step("rollback:swapped")
        self._audit(
            "rollback",
            actor,
            reason,
            version=stack[-1],
            area="production",
            previous=pointer["current"],
            id=entry["id"],
        )
        return self._version("production", stack[-1])

    def audit(self) -> builtins.list[dict[str, Any]]:
        """Every event, oldest first: who, when, what, why (plus decisions a crash kept out of the log)."""
        self._require_root()
        events = self.log.events()
        return sorted(events + self.unlogged(events), key=lambda e: str(e.get("at", "")))

    def unlogged(self, events: builtins.list[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Events a crash kept out of the log, rebuilt from what is durable (pointer, manifests).

        The audit object is written after the change it records; a process dying in between
        would otherwise leave a registered version or a pointer swap with no event. The approval
        is in the pointer entry itself, so a recovered promotion still says who approved it.
        """
        recovered = {"recovered": True, "model": self.name}
        ids = {e.get("id") for e in events}
        keep = ("action", "version", "at", "actor", "reason", "id", "approval")
        out = [
            {**recovered, **{k: h[k] for k in keep if k in h}} | {"area": "production"}
            for h in self.pointer()["history"]
            if h.get("id") not in ids
        ]
        logged = {e.get("version") for e in events if e.get("action") == "register"}
        versions = [v for v in self.list("testing") if v.version not in logged]
        for v, summary in zip(versions, self.summaries(versions), strict=True):
            out.append(
                {**recovered, "action": "register", "version": v.version, "area": "testing", "reason": ""}
                | {"at": summary["created_at"], "actor": summary["registered_by"]}
            )
        return out

    def version_file(self, mv: ModelVersion, rel: str) -> bytes:
        """One file of a registered version (a report, a plot), checked against its manifest's sha256."""
        recorded = mv.manifest.files.get(rel)
        if recorded is None:
            raise NotFoundError(f"{mv.ref} has no file {rel!r}")
        data = self.store.read(self._dir(mv.area, mv.version) + rel)
        if data is None:
            raise NotFoundError(f"{mv.ref} file {rel!r} is missing from {self.uri}; restore it")
        if hashlib.sha256(data).hexdigest() != recorded.sha256:
            raise IntegrityError(f"{mv.ref} file {rel!r} does not match the sha256 in its manifest")
        return data

    # -- fetching ------------------------------------------------------------------------------
    def fetch(self, ref: str, dest: Path | None = None, refresh: bool = False) -> LocalModel:
        """Download a version's files, verify each sha256 and the signature; where they are.

        refresh: download from the registry even when the cache holds a verified copy, so the
        registry's copy is what gets verified (a clean cache must not hide a tampered registry).
        """
        from registry.fetch import fetch_version, verify_local

        mv = self.resolve(ref)
        if mv.area == "local":
            return verify_local(mv, dest, self.policy.signing)
        return fetch_version(self, mv, dest, refresh=refresh)

    def read_file(self, ref: str, rel: str) -> bytes:
        """One file of a registered version (e.g. golden/golden.json), verified against its manifest."""
        from registry.fetch import read_verified

        mv = self.resolve(ref)
        if mv.area == "local":
            raise RefError(f"read_file takes a registry ref (testing:N, production:N), not the file {ref!r}")
        return read_verified(self, mv, rel)


def _parse_stored(data: Any, where: str) -> Manifest:
    """A stored manifest, typed; a field of the wrong type means a damaged registry."""
    try:
        return Manifest.from_dict(data)
    except ManifestError as exc:
        raise IntegrityError(f"{where}: {exc}; the registry copy is damaged: restore it") from None


def _typed_entry(kind: str, entry: Any, where: str) -> Any:
    """A stored annotation entry as its typed part (plain JSON for a kind this code does not know)."""
    try:
        return annotation_from(kind, entry, where)
    except ManifestError as exc:
        raise IntegrityError(f"{where}: {exc}; the registry copy is damaged: restore it") from None
