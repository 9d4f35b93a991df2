"""Who the audit log says acted."""

import getpass
import os
import pwd

import pytest

from core.actor import default_actor


def test_jenkins_build_user_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUILD_USER_ID", "alice")
    monkeypatch.setenv("USER", "jenkins")
    assert default_actor() == "alice"


def test_login_name_without_user_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jenkins agents and containers often run with no USER/LOGNAME: the uid's passwd entry names them.
    for name in ("BUILD_USER_ID", "USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    assert default_actor() == pwd.getpwuid(os.getuid()).pw_name


def test_unknown_uid_is_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BUILD_USER_ID", "USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry() -> str:
        raise OSError("no passwd entry for uid 12345")

    monkeypatch.setattr(getpass, "getuser", no_entry)
    assert default_actor() == "unknown"
