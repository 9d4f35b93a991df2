"""Who is approving, from an authenticated source: Jenkins' input submitter, else the OS account.

A command-line `--approved-by` is only a claim; the promotion policy (registry.policy) compares it
with the identity found here. Inside a Jenkins build the Jenkinsfile passes the `input` step's
submitter (Jenkins authenticated that user and checked the step's `submitter` list); anywhere else
the identity is the login name of the process's real uid, read from the password database rather
than from $USER or $LOGNAME, which any caller can set.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass

SUBMITTER_ENV = "MLOPS_INPUT_SUBMITTER"  # set by the Jenkinsfile from input's submitterParameter
JENKINS_BUILD_ENV = ("JENKINS_URL", "BUILD_URL")  # present in every Jenkins build step

SOURCE_JENKINS = "jenkins-input"
SOURCE_OS = "os-user"
SOURCE_UNTRUSTED = "untrusted"


@dataclass(frozen=True)
class Identity:
    """An authenticated name and where it came from (jenkins-input, os-user, or untrusted)."""

    name: str
    source: str
    problem: str = ""  # why an untrusted identity is not believed

    def to_dict(self) -> dict[str, str]:
        """The identity as recorded in the audit log and the pointer history."""
        return {"name": self.name, "source": self.source}


def os_account(uid: int | None = None) -> str:
    """The login name of a uid (default: this process's real uid), or `uid:N` when it has none."""
    uid = os.getuid() if uid is None else uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # containers often run a uid with no passwd entry
        return f"uid:{uid}"


def authenticated_identity(env: Mapping[str, str] | None = None) -> Identity:
    """The Jenkins input submitter inside a Jenkins build, else the OS account of this process."""
    env = os.environ if env is None else env
    submitter = env.get(SUBMITTER_ENV, "").strip()
    if not submitter:
        return Identity(os_account(), SOURCE_OS)
    if all(env.get(name) for name in JENKINS_BUILD_ENV):
        return Identity(submitter, SOURCE_JENKINS)
    return Identity(
        submitter,
        SOURCE_UNTRUSTED,
        f"{SUBMITTER_ENV} is only believed inside a Jenkins build ({' and '.join(JENKINS_BUILD_ENV)} set)",
    )
