"""Whole numbers from outside text (headers, refs, object names, environment), parsed strictly.

`str.isdigit()` is true for superscript two (which `int` then refuses with a traceback) and for
Arabic-Indic digits (which `int` reads as ASCII ones), and `int` accepts "+7", " 7" and "7_0": each
lets one spelling name another number.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"0|[1-9][0-9]*")


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """The number written in canonical ASCII decimal (no sign, spaces or leading zeros), else None."""
    if len(text) > max_digits or not _DECIMAL.fullmatch(text):
        return None
    return int(text)
