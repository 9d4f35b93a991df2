"""A Jenkinsfile's structure for tests: comments stripped, blocks found by header, braces matched."""

from __future__ import annotations

import re

_QUOTES = ("'''", '"""', "'", '"')


def strip_comments(source: str) -> str:
    """SOURCE without // and /* */ comments (quotes respected: a URL's // in a string stays)."""
    out: list[str] = []
    i, quote = 0, None
    while i < len(source):
        if quote:
            if source.startswith(quote, i):
                out.append(quote)
                i, quote = i + len(quote), None
            else:
                step = 2 if source[i] == "\\" else 1
                out.append(source[i : i + step])
                i += step
            continue
        quote = next((q for q in _QUOTES if source.startswith(q, i)), None)
        if quote:
            out.append(quote)
            i += len(quote)
        elif source.startswith("//", i):
            end = source.find("\n", i)
            i = len(source) if end < 0 else end
        elif source.startswith("/*", i):
            i = source.index("*/", i) + 2
        else:
            out.append(source[i])
            i += 1
    return "".join(out)


def block(code: str, header: str, own: bool = False) -> str:
    """The body of the first `HEADER {...}` block in CODE (HEADER a regex), with OWN only one at CODE's
    own level (a stage's post, not a nested stage's); AssertionError if none."""
    found = next(
        (
            m
            for m in re.finditer(header + r"\s*\{", code, re.M)
            if not own or code.count("{", 0, m.start()) == code.count("}", 0, m.start())
        ),
        None,
    )
    assert found, f"no block {header!r}"
    depth, start = 1, found.end()
    for i in range(start, len(code)):
        depth += {"{": 1, "}": -1}.get(code[i], 0)
        if depth == 0:
            return code[start:i]
    raise AssertionError(f"block {header!r} is not closed")


def stage(code: str, name: str) -> str:
    """The body of stage('NAME')."""
    return block(code, r"\bstage\('" + re.escape(name) + r"'\)")


def own_lines(body: str) -> str:
    """BODY without its nested blocks: the directives at its own level."""
    out, depth = [], 0
    for char in body:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0 and char != "}":
            out.append(char)
    return "".join(out)
