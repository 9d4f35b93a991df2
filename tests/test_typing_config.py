"""mypy (run by `make lint`) covers every package, strictly where the contracts live, and every
`type: ignore` names its error code and says why."""

from __future__ import annotations

import io
import re
import tokenize
import tomllib

from project_packages import ROOT, project_packages

# `# type: ignore[code]  # why`: the code mypy checks (ignore-without-code); the why is for people.
_IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)")
_EXPLAINED = re.compile(r"^\[[a-z0-9-]+(,\s*[a-z0-9-]+)*\]\s+#\s*\S")


def _mypy() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def unexplained_ignores(source: str) -> list[int]:
    """Line numbers of `type: ignore` comments that lack an error code or a reason after it."""
    lines = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        match = _IGNORE.search(token.string) if token.type == tokenize.COMMENT else None
        if match and not _EXPLAINED.match(match["rest"]):
            lines.append(token.start[0])
    return lines


def test_mypy_checks_every_package():
    assert sorted(_mypy()["files"]) == project_packages()


def test_core_and_registry_are_strict():
    strict = [o for o in _mypy()["overrides"] if o.get("disallow_untyped_defs")]
    assert len(strict) == 1 and {"core.*", "registry.*"} <= set(strict[0]["module"])
    flags = ("disallow_any_generics", "disallow_untyped_calls", "disallow_incomplete_defs", "warn_return_any")
    assert all(strict[0].get(flag) is True for flag in flags)


def test_the_ignore_rule_tells_explained_from_bare():
    assert unexplained_ignores("x = f()  # type: ignore[arg-type]  # the stub says str\n") == []
    assert unexplained_ignores("x = f()  # type: ignore\n") == [1]
    assert unexplained_ignores("x = f()  # type: ignore[arg-type]\n") == [1]
    assert unexplained_ignores("x = f()  # type: ignore  # no code\n") == [1]
    assert unexplained_ignores('x = "# type: ignore"\n') == []  # text in a string is no comment


def test_every_type_ignore_says_why():
    found = {}
    for package in [*project_packages(), "tests", "benchmarks", "scripts"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            if lines := unexplained_ignores(path.read_text()):
                found[str(path.relative_to(ROOT))] = lines
    assert not found, f"`# type: ignore[code]  # why` expected: {found}"
