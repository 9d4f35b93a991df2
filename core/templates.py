"""Jinja environments for a package's templates/ folder: HTML autoescaped, plain text as written."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment(package: str) -> jinja2.Environment:
    """The environment that loads PACKAGE/templates/ (an undefined name is an error, not a blank)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        # Escape everything but plain-text templates: a template of a new kind starts escaped.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default=True
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(package: str, template: str, **context: Any) -> str:
    """PACKAGE/templates/TEMPLATE rendered with CONTEXT."""
    return environment(package).get_template(template).render(**context)
