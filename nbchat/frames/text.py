"""Formatting for the summary block: figures readable in few tokens, and text that cannot break it.

Every module writes its numbers, times and counts through these helpers, so one figure reads
the same wherever it appears, and every name or value goes through :func:`escape_cell` or
:func:`escape_name`, so none can end a table cell or close the surrounding element.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

NAME_LIMIT = 80  # characters of a frame or column name kept
VALUE_LIMIT = 40  # characters of a frequent value kept
DTYPE_LIMIT = 48  # characters of a (nested) dtype kept


def count_text(n: int) -> str:
    return f"{n:,}"


_CONTROL = re.compile(r"[\x00-\x1f\x7f\\|]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "|": "\\|"}
_XML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_name(text: str, limit: int) -> str:
    """A long name cut in the middle: its end (``…_2023_v2``) tells similar names apart."""
    if len(text) <= limit:
        return text
    head = max(1, (limit - 1) * 2 // 3)
    tail = max(0, limit - 1 - head)
    return text[:head] + "…" + (text[len(text) - tail :] if tail else "")


def escape_name(text: str, limit: int = NAME_LIMIT) -> str:
    return escape_cell(_cut_name(text, limit), limit)


def escape_cell(text: str, limit: int) -> str:
    """Text safe inside a table cell of the block: one line, no bare ``|``, no markup.

    Backslashes, newlines and other control characters are written as escapes and ``|`` as
    ``\\|``, so a value cannot end its cell or its row; ``&``, ``<``, ``>`` and ``"`` become
    entities, so no value can close the surrounding element or an attribute. The text is cut
    first, so the limit counts what the reader sees.
    """
    cut = _cut(text, limit)
    escaped = _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m[0], f"\\x{ord(m[0]):02x}"), cut)
    return escaped.translate(_XML)


def quote_if_needed(text: str) -> str:
    """Quote values a list would misread: empty, padded with spaces, or holding ``, ``."""
    if not text or text != text.strip() or ", " in text or text.startswith('"'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def number_text(value: float) -> str:
    """A figure to about four significant digits, readable: ``12,350``, ``0.01235``, ``1.2e+09``.

    Python integers below a quadrillion keep every digit, with separators, because an exact
    integer (a min, a max, an id) is worth its digits.
    """
    if isinstance(value, int) and abs(value) < 10**15:
        return f"{value:,}"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    magnitude = abs(number)
    if number.is_integer() and magnitude < 1e6:
        return f"{int(number):,}"
    if 1e-4 <= magnitude < 1e9:
        rounded = float(f"{number:.4g}")
        return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:.4g}"
    return f"{number:.4g}"


def rough_text(value: float) -> str:
    """An estimated count to two significant figures: more digits would be false precision."""
    if value < 100:
        return f"{round(value):,}"
    digits = math.floor(math.log10(value)) - 1
    return f"{round(value, -digits):,.0f}"


def share_text(fraction: float) -> str:
    percent = 100 * fraction
    text = f"{percent:.1f}".removesuffix(".0") if percent >= 10 else f"{percent:.2g}"
    return text + "%"


def shape_text(shape: Sequence[int]) -> str:
    if not shape:
        return "scalar"
    parts = [count_text(n) for n in shape]
    if len(parts) > 4:
        return " × ".join([*parts[:2], "…", parts[-1]]) + f" ({len(shape)} dims)"
    return " × ".join(parts)


_OFFSET = re.compile(r"(?:[+-]\d\d:?\d\d|Z)$")


def time_text(value: object) -> str:
    """A datetime as a reader writes it: ``2024-01-01``, ``2024-01-14 21:19``, no offset.

    Zero seconds, zero fractions and a midnight time of day are left out; the time zone is
    in the dtype, so the offset would add tokens and nothing else.
    """
    text = str(value).replace("T", " ")
    text = _OFFSET.sub("", text)
    text = re.sub(r"\.0+$", "", text)
    text = text.removesuffix(" 00:00:00")
    return re.sub(r"( \d\d:\d\d):00$", r"\1", text)
