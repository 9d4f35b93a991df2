"""How to approve a version: the exact `mlops promote` command and the Jenkins input link.

The browser changes nothing; approving stays with the CLI (or Jenkins' `input` step), where the
promotion policy checks the approver, the gate, the tests and current production.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from core.settings import Settings
from registry.manifest import Manifest


@dataclass(frozen=True)
class Approval:
    """What a page shows under 'To approve'."""

    ref: str
    command: str
    jenkins: str | None
    state: str


def approval(settings: Settings, manifest: Manifest, stage: str) -> Approval:
    """The command (and Jenkins link, when the version came from a Jenkins build) approving a version."""
    ref = f"testing:{manifest.version}"
    command = " ".join(
        [
            "mlops",
            "--registry",
            shlex.quote(settings.registry_uri),
            "--model-name",
            shlex.quote(settings.registry.model_name),
            "promote",
            ref,
            "--approved-by",
            "YOUR-NAME",
            "--reason",
            shlex.quote("metrics, report and model tests reviewed"),
        ]
    )
    build_url = manifest.code.build_url or ""
    jenkins = f"{build_url.rstrip('/')}/input/" if build_url.startswith(("http://", "https://")) else None
    gate = manifest.gate.passed if manifest.gate else None
    if stage == "production (current)":
        state = f"{ref} is production:current already"
    elif gate is False:
        state = "Its gate failed: the promotion policy will refuse it"
    else:
        state = "The promotion policy (approver, gate passed, model tests passed) is checked before copying"
    return Approval(ref, command, jenkins, state)
