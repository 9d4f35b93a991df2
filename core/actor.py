"""Who is acting, for the registry's audit log."""

import getpass
import os


def default_actor() -> str:
    """Jenkins' BUILD_USER_ID, else the OS login name (from the environment or the password database)."""
    try:
        return os.environ.get("BUILD_USER_ID") or getpass.getuser()
    except (KeyError, OSError):  # no USER/LOGNAME and a uid with no passwd entry (some containers)
        return "unknown"
