"""Who is acting, from a source the caller cannot set: the OS account of this process.

A command-line `--approved-by` is only a claim; the promotion policy (registry.policy) compares it
with the identity found here. The identity is the login name of the process's real uid, read from
the password database rather than from $USER or $LOGNAME, which any caller can set. No environment
variable is evidence of identity (issue 23): inside Jenkins an approval is a statement signed with
the controller's approver credential after its `input` step, verified against the trust policy
(registry.trust), not a variable naming the submitter.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

SOURCE_OS = "os-user"


@dataclass(frozen=True)
class Identity:
    """An authenticated name and where it came from (os-user)."""

    name: str
    source: str

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


def authenticated_identity() -> Identity:
    """The OS account of this process: the only identity believed without a key."""
    return Identity(os_account(), SOURCE_OS)
