"""Model registry: a local folder or GCS bucket with `testing/` and `production/` areas.

Public API (the contract other packages code against; implemented in this package):

    from registry import open_registry, Registry, ModelVersion, LocalModel
    from registry import RegistryError, RefError, NotFoundError, ConflictError, IntegrityError

    reg = open_registry(settings)              # from core.settings.Settings (uri + model name)
    reg = Registry.open(uri, model_name)        # file://PATH or gs://BUCKET[/PREFIX]

    reg.register(src_dir, manifest, actor=, reason="") -> ModelVersion
        Copy every file under src_dir (model.keras, report.html, plots/...) into the next
        testing version; the manifest (dict or registry.manifest.Manifest) must carry its lineage
        (ManifestError names the missing or mistyped field); the registry fills name/version/area/
        created_at/files (sha256 + size per file). Files first, manifest last: no manifest = not registered.
    reg.list(area="testing") -> list[ModelVersion]           ascending by version
    reg.resolve(ref) -> ModelVersion                          refs: testing:latest, testing:7,
        production:current, production:previous, production:7, or a plain local path to a
        model file (area "local", version 0, manifest from a sibling manifest.json if any);
        ModelVersion.manifest is the typed registry.manifest.Manifest
    reg.fetch(ref, dest=None, refresh=False) -> LocalModel    files verified by sha256 and the
        signature; cached (refresh: verify the registry's copy, not the cache)
        LocalModel(dir, model_path, manifest, version, signature)
    reg.annotate(ref, entry, actor=) -> None                  a TestRun, Deployment, MonitoringVerdict or
        CanaryVerdict (registry.manifest) stored beside the immutable version;
        ModelVersion.manifest.annotations.<kind> lists them
        (approvals come from the production pointer, written with the promotion)
    reg.promote(ref, expected_production=, approved_by=None, actor=None, reason="") -> ModelVersion
        the promotion policy (registry.policy: authenticated approver, gate and tests, signature,
        production still `expected_production`), then testing:N → production:N (server-side copy)
        and a compare-and-swap of the pointer carrying the approval; every refusal is an audit event
    reg.rollback(actor=, reason="") -> ModelVersion           production:current := previous
    reg.audit() -> list[dict]                                 append-only events: who, when, what, why
    reg.latest_annotations(versions, kind) -> {N: entry|None}  newest annotation of a kind, one listing
    reg.version_file(mv, relpath) -> bytes                    one file (report, plot), sha256-checked
    reg.audit() -> list[dict]                                 the hash-chained log: who, when, what, why
    reg.verify_audit(trusted_keys=None) -> ChainReport        every finding: deleted, edited, reordered,
        truncated or re-chained events, forged decisions; checkpoints signed by trusted_keys (paths,
        from outside the registry; None: the policy's signing.public_keys), unanchored tail counted
    reg.record_refusal(attempted, actor, reason, **what)      a refused decision, on the record

Every error a user can cause is a RegistryError (an core.errors.MlopsError, exit code 1);
SignatureError is an IntegrityError; PolicyError (the policy said no) exits 3.
"""

from registry.core import Registry, open_registry
from registry.errors import ConflictError, IntegrityError, NotFoundError, RefError, RegistryError
from registry.version import LocalModel, ModelVersion

__all__ = [
    "ConflictError",
    "IntegrityError",
    "LocalModel",
    "ModelVersion",
    "NotFoundError",
    "RefError",
    "Registry",
    "RegistryError",
    "open_registry",
]
