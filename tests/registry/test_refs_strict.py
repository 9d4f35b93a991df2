"""Refs and version names from outside are parsed strictly: a look-alike never names another version."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.errors import EXIT_USAGE
from core.numbers import ascii_int
from registry import RefError, Registry, open_registry
from registry.refs import parse_ref

HOSTILE_REFS = [
    "testing:\u00b2",  # superscript two: str.isdigit() is true, int() raises
    "testing:\u0661\u0660",  # Arabic-Indic 10: int() reads it as 10
    "testing:" + "9" * 5000,  # int() refuses over 4,300 digits with a ValueError
    "production:-1",
    "testing:1 ",  # a trailing space used to be stripped: another string names the same version
    " testing:1",
    "testing:01",  # a leading zero: not the canonical spelling
    "testing:+1",
    "testing:1_0",
    "testing:1\n",
    "testing:1\x00",
    "production:\uff11",  # fullwidth digit one
]


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_hostile_refs_are_usage_errors_naming_the_ref(ref: str, reg: Registry, model_dir, manifest):
    for _ in range(10):  # testing:1 .. testing:10 exist, so a lenient parse would find one
        reg.register(model_dir(), manifest, actor="a")
    with pytest.raises(RefError) as caught:
        reg.resolve(ref)
    assert caught.value.exit_code == EXIT_USAGE
    shown = repr(ref) if len(ref) <= 80 else repr(ref[:40])
    assert shown in str(caught.value)
    assert len(str(caught.value)) < 400  # a 5,000-digit ref is cut in the message


@pytest.mark.parametrize("ref", HOSTILE_REFS)
def test_cli_exit_code_2_and_no_traceback(ref: str, cli, settings, model_dir, manifest):
    reg = open_registry(settings)
    for _ in range(10):
        reg.register(model_dir(), manifest, actor="a")
    result = cli("registry", "show", ref)
    assert result.code == 2, result.err
    assert "Traceback" not in result.err
    assert (repr(ref) if len(ref) <= 80 else repr(ref[:40])) in result.err


def test_canonical_refs_still_parse():
    assert parse_ref("testing:7").version == 7
    assert parse_ref("production:123456789").version == 123456789
    assert parse_ref("testing:latest").selector == "latest"
    with pytest.raises(RefError):
        parse_ref("testing:1234567890")  # ten digits: over the bound


@pytest.mark.parametrize(
    ("text", "number"),
    [("0", 0), ("7", 7), ("42", 42), ("\u00b2", None), ("\u0661", None), ("07", None), ("-1", None),
     ("+1", None), (" 1", None), ("1 ", None), ("1_0", None), ("", None), ("9" * 19, None)],
)  # fmt: skip
def test_ascii_int(text: str, number: int | None):
    assert ascii_int(text) == number


def test_look_alike_version_folders_are_not_versions(tmp_path: Path, model_dir, manifest):
    """A registry writer's folder named with other digits is neither listed nor allocated over."""
    root = tmp_path / "registry"
    reg = Registry.open(f"file://{root}", "xray", cache_dir=tmp_path / "cache")
    reg.register(model_dir(), manifest, actor="a")
    versions = root / "testing" / "xray"
    for name in ("\u00b2", "\u0661\u0660", "007"):
        shutil.copytree(versions / "1", versions / name)
    assert [v.version for v in reg.list("testing")] == [1]
    assert reg.register(model_dir(), manifest, actor="a").version == 2
    assert reg.resolve("testing:latest").version == 2
