"""The registry: immutable versions, refs, verified fetch, promotion by compare-and-swap, audit log."""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.settings import Settings, load_settings
from registry.checksums import describe_files
from registry.errors import ConflictError, NotFoundError, RefError, RegistryError
from registry.refs import AREAS, REF_HELP, Ref, parse_ref
from registry.store import ObjectExists, Store, open_store
from registry.version import ANNOTATION_KINDS, SUMMARY_KEY, LocalModel, ModelVersion, summarize

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


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
    return Registry.open(settings.registry_uri, settings.registry.model_name, cache_dir=settings.cache_dir)


class Registry:
    """A model registry over a Store (local folder or GCS bucket)."""

    def __init__(self, store: Store, model_name: str, cache_dir: Path | None = None) -> None:
        if not _NAME.match(model_name):
            raise RegistryError(
                f"model name {model_name!r} is not valid: use letters, digits, '.', '_' and '-'"
            )
        self.store = store
        self.name = model_name
        # No cache_dir: the one the settings name (home/cache, layered like every command's).
        self.cache_dir = Path(cache_dir) if cache_dir is not None else load_settings().cache_dir
        # Tests set this to inject a crash (raise) or a pause at a named step.
        self.fault_hook: Callable[[str], None] | None = None

    @classmethod
    def open(cls, uri: str, model_name: str, cache_dir: Path | None = None) -> Registry:
        """Open the registry at file://PATH or gs://BUCKET[/PREFIX] for one model name."""
        return cls(open_store(uri), model_name, cache_dir)

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

    def _raw_manifest(self, area: str, version: int) -> dict[str, Any]:
        key = self._dir(area, version) + "manifest.json"
        data = self.store.read(key)
        if data is None:
            raise NotFoundError(f"{area}:{version} has no manifest in {self.uri}")
        manifest = _loads(data, f"{self.uri}/{key}")
        manifest["area"] = area  # a production copy is byte-identical to testing; its area is where it is
        return manifest

    def _manifest(self, area: str, version: int) -> dict[str, Any]:
        manifest = self._raw_manifest(area, version)
        manifest["annotations"] = self.annotations(version)
        return manifest

    def annotations(self, version: int) -> dict[str, list[dict[str, Any]]]:
        """Annotations of a version by kind, oldest first (shared by its testing and production copy)."""
        keys = self.store.list(f"annotations/{self.name}/{version}/")
        grouped: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ANNOTATION_KINDS}
        for key, data in zip(keys, self.store.read_many(keys), strict=True):
            if data is None:
                continue
            item = _loads(data, key)
            grouped.setdefault(item["kind"], []).append(item["entry"])
        return grouped

    def manifests(self, versions: list[ModelVersion]) -> list[dict[str, Any]]:
        """The stored manifests (no annotations) of many versions, read concurrently where it helps."""
        keys = [self._dir(v.area, v.version) + "manifest.json" for v in versions]
        out = []
        for v, key, data in zip(versions, keys, self.store.read_many(keys), strict=True):
            if data is None:
                raise NotFoundError(f"{v.ref} has no manifest in {self.uri}")
            manifest = _loads(data, key)
            manifest["area"] = v.area
            out.append(manifest)
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
            return json.loads(metadata[SUMMARY_KEY])
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
        manifest: dict[str, Any] = {}
        if sibling.is_file():
            manifest = _loads(sibling.read_bytes(), str(sibling))
        if path.is_dir():
            model_file = manifest.get("model_file", "model.keras")
            path = folder / model_file
            if not path.is_file():
                raise RefError(f"{folder} has no model file {model_file!r}")
        manifest = {**manifest, "area": "local", "model_file": path.name}
        manifest.setdefault("annotations", {kind: [] for kind in ANNOTATION_KINDS})
        return ModelVersion(manifest.get("name", self.name), 0, "local", f"file://{path}", lambda: manifest)

    # -- writing -------------------------------------------------------------------------------
    def _audit(self, action: str, actor: str, reason: str = "", **what: Any) -> None:
        moment = _now()
        event = {"at": _iso(moment), "actor": actor, "action": action, "model": self.name, "reason": reason}
        event.update(what)
        key = f"audit/{self.name}/{_stamp(moment)}-{uuid.uuid4().hex}.json"
        self.store.write(key, _dumps(event), create_only=True)

    def record_refusal(self, action: str, actor: str, reason: str, **what: Any) -> None:
        """Append an audit event for a decision refused before anything changed (action `refused:ACTION`)."""
        self._audit(f"refused:{action}", actor, reason, **what)

    def _claim_version(self, actor: str) -> int:
        """Allocate the next version number race-free with a create-only claim object."""
        prefix = f"claims/{self.name}/"
        taken = [int(n) for n in self.store.children(prefix) if n.isdigit()]
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

    def register(self, src_dir: Path, manifest: dict[str, Any], actor: str, reason: str = "") -> ModelVersion:
        """Copy src_dir into the next testing version; files first, manifest last."""
        src_dir = Path(src_dir)
        if not src_dir.is_dir():
            raise NotFoundError(f"cannot register {src_dir}: not a folder")
        files = describe_files(src_dir)
        model_file = manifest.get("model_file", "model.keras")
        if model_file not in files:
            raise RegistryError(
                f"cannot register {src_dir}: model file {model_file!r} is missing "
                "(set manifest['model_file'] to the model's path inside the folder)"
            )
        if not self.store.root_exists() and self.uri.startswith("gs://"):
            self._require_root()  # a bucket is never created implicitly
        version = self._claim_version(actor)
        self._step("register:claimed")
        prefix = self._dir("testing", version)
        for rel in files:
            self.store.put_file(prefix + rel, src_dir / rel)
            self._step(f"register:file:{rel}")
        full = {k: v for k, v in manifest.items() if k != "annotations"}
        full.update(
            name=self.name,
            version=version,
            area="testing",
            created_at=_iso(_now()),
            model_file=model_file,
            files=files,
            registered_by=actor,
        )
        self._step("register:files")
        summary = {SUMMARY_KEY: json.dumps(summarize(full))}
        self.store.write(prefix + "manifest.json", _dumps(full), create_only=True, metadata=summary)
        self._step("register:manifest")
        self._audit("register", actor, reason, version=version, area="testing")
        return self._version("testing", version)

    def annotate(self, ref: str, kind: str, data: dict[str, Any], actor: str) -> None:
        """Record test results, approvals or deployments beside an immutable version."""
        if not _KIND.match(kind):
            raise RegistryError(
                f"annotation kind {kind!r} is not valid; use e.g. {', '.join(ANNOTATION_KINDS)}"
            )
        mv = self.resolve(ref)
        if mv.area == "local":
            raise RefError(f"cannot annotate {ref!r}: annotations need a registry version ({REF_HELP})")
        moment = _now()
        entry = {**data, "at": _iso(moment), "actor": actor}
        key = f"annotations/{self.name}/{mv.version}/{_stamp(moment)}-{kind}-{uuid.uuid4().hex}.json"
        self.store.write(key, _dumps({"kind": kind, "entry": entry}), create_only=True)
        self._audit(f"annotate:{kind}", actor, "", version=mv.version, area=mv.area, ref=ref)

    def promote(
        self, ref: str, actor: str, reason: str = "", evidence: dict[str, Any] | None = None
    ) -> ModelVersion:
        """Copy testing:N to production:N, then swap the production pointer to N (CAS)."""
        mv = self.resolve(ref)
        if mv.area != "testing":
            raise RefError(f"promote takes a testing ref (testing:N or testing:latest), not {ref!r}")
        pointer, token = self._read_pointer()
        if pointer["current"] == mv.version:
            raise RegistryError(f"testing:{mv.version} is already production:current; nothing to do")
        manifest = self._raw_manifest("testing", mv.version)
        src, dst = self._dir("testing", mv.version), self._dir("production", mv.version)
        for rel in manifest["files"]:
            self.store.copy(src + rel, dst + rel)
            self._step(f"promote:file:{rel}")
        self._step("promote:files")
        self.store.copy(src + "manifest.json", dst + "manifest.json")
        self._step("promote:manifest")
        stack = [*pointer["stack"], mv.version]
        entry = {
            "action": "promote",
            "version": mv.version,
            "at": _iso(_now()),
            "actor": actor,
            "reason": reason,
            "id": uuid.uuid4().hex,  # every pointer write is unique (GcsStore.write_if relies on it)
        }
        new = {
            "current": mv.version,
            "previous": pointer["current"],
            "stack": stack,
            "history": [*pointer["history"], entry],
        }
        if not self.store.write_if(self._pointer_key, _dumps(new), token):
            raise ConflictError(
                f"production changed while promoting testing:{mv.version} (another promotion or rollback "
                "won); nothing was changed: check mlops registry list --area production and retry"
            )
        self._step("promote:pointer")
        self._audit(
            "promote",
            actor,
            reason,
            version=mv.version,
            area="production",
            previous=pointer["current"],
            evidence=evidence or {},
            id=entry["id"],
        )
        return self._version("production", mv.version)

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
        entry = {
            "action": "rollback",
            "version": stack[-1],
            "from": pointer["current"],
            "at": _iso(_now()),
            "actor": actor,
            "reason": reason,
            "id": uuid.uuid4().hex,  # every pointer write is unique (GcsStore.write_if relies on it)
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

    def audit(self) -> list[dict[str, Any]]:
        """Every event, oldest first: who, when, what, why."""
        self._require_root()
        keys = self.store.list(f"audit/{self.name}/")
        events = [
            _loads(data, key) for key, data in zip(keys, self.store.read_many(keys), strict=True) if data
        ]
        return sorted(events + self._unlogged(events), key=lambda e: e["at"])

    def _unlogged(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Events a crash kept out of the log, rebuilt from what is durable (pointer, manifests).

        The audit object is written after the change it records; a process dying in between
        would otherwise leave a registered version or a pointer swap with no event.
        """
        recovered = {"recovered": True, "model": self.name}
        ids = {e.get("id") for e in events}
        out = [
            {**recovered, **{k: h[k] for k in ("action", "version", "at", "actor", "reason", "id")}}
            | {"area": "production"}
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

    # -- fetching ------------------------------------------------------------------------------
    def fetch(self, ref: str, dest: Path | None = None) -> LocalModel:
        """Download a version's files, verify each sha256, and return where they are."""
        from registry.fetch import fetch_version, verify_local

        mv = self.resolve(ref)
        if mv.area == "local":
            return verify_local(mv, dest)
        return fetch_version(self, mv, dest)
