"""A trust set for tests: trainer, tester and approver key pairs and a policy, as a team would hold them.

The policy and the private keys live outside the registry (under the test's tmp folder); the
environment names them the way Jenkins and the Deployment do (MLOPS_TRUST_POLICY and the key paths).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from registry.signing import generate_key_pair

SUITE = "sha256:" + "5" * 64  # the required suite digest the tests below sign over


@dataclass
class TrustSet:
    """Where the keys and the policy are, and how to rewrite the policy (rotation)."""

    folder: Path
    policy: Path
    suites: tuple[str, ...] = (SUITE,)
    roles: dict[str, tuple[str, Path]] = field(default_factory=dict)  # name -> (role, private key)

    def key(self, name: str) -> Path:
        return self.roles[name][1]

    def add(self, name: str, role: str) -> Path:
        """Make a key pair for NAME in ROLE (not yet in the policy unless write() is called)."""
        private = self.folder / f"{name}.pem"
        generate_key_pair(private, private.with_suffix(".pub"))
        self.roles[name] = (role, private)
        return private

    def write(self, names: list[str] | None = None, allow_unsigned: bool = False) -> None:
        """Write the policy naming NAMES (default: every key made), as an operator edits it."""
        names = list(self.roles) if names is None else names
        suites = ", ".join(f'"{s}"' for s in self.suites)
        lines = [f"allow_unsigned = {'true' if allow_unsigned else 'false'}", f"required_suites = [{suites}]"]
        for name in names:
            role, private = self.roles[name]
            lines += [
                "[[signers]]",
                f'name = "{name}"',
                f'role = "{role}"',
                f'key = "{private.with_suffix(".pub")}"',
            ]
        self.policy.write_text("\n".join(lines) + "\n")


def make_trust(folder: Path, monkeypatch: pytest.MonkeyPatch) -> TrustSet:
    """The standard set: ci-trainer, ci-tester, product-owner (approver); configured in the environment."""
    folder.mkdir(parents=True, exist_ok=True)
    trust = TrustSet(folder, folder / "policy.toml")
    trust.add("ci-trainer", "trainer")
    trust.add("ci-tester", "tester")
    trust.add("product-owner", "approver")
    trust.write()
    monkeypatch.setenv("MLOPS_TRUST_POLICY", str(trust.policy))
    monkeypatch.setenv("MLOPS_SIGNING_PRIVATE_KEY", str(trust.key("ci-trainer")))
    monkeypatch.setenv("MLOPS_TRUST_TESTER_KEY", str(trust.key("ci-tester")))
    return trust


def sign_tests(reg: Any, ref: str, trust: TrustSet, passed: bool = True, with_api: bool = True) -> None:
    """What `mlops test-model --with-api` signs with the tester key after a run of the required suite."""
    from registry.chain import attest

    local = reg.fetch(ref, refresh=True)
    summary = {"passed": 12 if passed else 9, "failed": 0 if passed else 3, "errors": 0}
    facts = {"passed": passed, "summary": summary, "suite_digest": SUITE, "with_api": with_api}
    attest(reg, local.version, local.digest, "tests", facts, trust.key("ci-tester"))
