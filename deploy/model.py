"""What a rollout serves: a registry ref pinned to the exact version (shared by local and k8s)."""

from __future__ import annotations

from dataclasses import dataclass

from core.settings import Settings


@dataclass(frozen=True)
class Model:
    """What to serve: the exact ref the server loads, and the version it must report."""

    ref: str
    name: str
    version: int | None


def resolve_model(settings: Settings, ref: str, verify: bool = False, actor: str = "") -> Model:
    """The exact version a ref names now, pinned (production:current → production:7).

    verify: download the registry's copy and check every sha256 and the signature before anything
    is rolled out; a refusal is recorded in the audit log and raised.
    """
    from registry import IntegrityError, open_registry

    reg = open_registry(settings)
    found = reg.resolve(ref)
    pinned = ref if found.area == "local" else f"{found.area}:{found.version}"
    if verify:
        from core.actor import default_actor
        from registry.chain import check_trust

        try:
            local = reg.fetch(pinned, refresh=True)
        except IntegrityError as exc:  # a signature error is one too
            if found.area != "local":
                reg.record_refusal("deploy", actor or default_actor(), str(exc), ref=pinned)
            raise
        check_trust(reg, pinned, local, actor or default_actor(), "deploy")  # signed chain (trust policy)
    if found.area == "local":
        return Model(ref, found.name, found.manifest.version or None)
    return Model(pinned, found.name, found.version)
