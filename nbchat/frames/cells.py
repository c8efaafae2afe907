"""Figures written as table cells: frequent values, lengths, types, ranges, and sample rows.

The three library modules compute their figures differently but write them here, so that a
pandas, a polars and a numpy column holding the same values read the same.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .libraries import numpy_module
from .sampling import Scale
from .text import (
    VALUE_LIMIT,
    count_text,
    escape_cell,
    escape_name,
    number_text,
    quote_if_needed,
    time_text,
)

TOP_VALUES = 5  # frequent values (or types) listed at most
_ROW_VALUE_LIMIT = 24  # characters of a value in the sample-rows table


def top_text(pairs: Iterable[tuple[object, int]], scale: Scale, sampled: int) -> list[str]:
    """``["a ~12%", "b ~3.1%"]`` from (value, count in sample) pairs, most frequent first.

    Only values seen at least twice are listed: a value seen once in a sample is not
    "frequent", and listing it would leak a raw row for nothing. Exact summaries show counts;
    estimated ones show shares of all rows, since a count cannot be scaled up honestly.
    """
    shown: list[str] = []
    for value, count in pairs:
        if count < 2 or len(shown) == TOP_VALUES:
            break
        text = escape_cell(quote_if_needed(_value_text(value)), VALUE_LIMIT)
        figure = count_text(count) if scale.exact else scale.share(count, sampled)
        shown.append(f"{text} {figure}")
    return shown


def _value_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return number_text(value) if not math.isnan(value) else "NaN"
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def length_text(lengths: Any, scale: Scale) -> str:
    np = numpy_module()
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return ""
    low, high = int(lengths.min()), int(lengths.max())
    if low == high:
        return f"len {scale.value(low)}"
    return f"len {scale.value(low)}–{scale.value(high)}"


def types_text(values: Iterable[object], scale: Scale) -> str:
    counts = Counter(type(v).__name__ for v in values if v is not None)
    total = sum(counts.values())
    if not total:
        return ""
    parts = [f"{name} {scale.share(n, total)}" for name, n in counts.most_common(TOP_VALUES)]
    more = len(counts) - TOP_VALUES
    return "types: " + ", ".join(parts) + (f", +{more} more" if more > 0 else "")


def range_text(low: object, high: object, low_mark: str, high_mark: str) -> str:
    return f"{low_mark}{time_text(low)} → {high_mark}{time_text(high)}"


def numeric_stats(
    low: float | None, median: float | None, high: float | None, exact_ends: bool, scale: Scale
) -> list[str]:
    end_mark = "" if exact_ends else scale.mark
    stats = []
    if low is not None:
        stats.append(f"min {end_mark}{number_text(low)}")
    if median is not None:
        stats.append(f"median {scale.value(median)}")
    if high is not None:
        stats.append(f"max {end_mark}{number_text(high)}")
    return stats


def duration_stats(
    low: object, median: object, high: object, end_mark: str, median_mark: str
) -> list[str]:
    """Min, median and max of durations, each as its library prints it (``0 days 00:05:00``,
    ``5m``): unlike :func:`numeric_stats`, there is no one number format to bring them to."""
    return [f"min {end_mark}{low}", f"median {median_mark}{median}", f"max {end_mark}{high}"]


def _cell_value(value: object) -> str:
    """A raw value for the sample-rows table: missing values of every library read ``null``."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return "null"
    if isinstance(value, float):
        return "null" if math.isnan(value) else f"{value:.6g}"
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return time_text(value)
    return _value_text(value)


def rows_table(
    labels: Sequence[str], positions: Sequence[int], columns: Sequence[Sequence[object]]
) -> list[str]:
    """The opt-in raw rows: a small pipe table keyed by each row's position in the frame."""
    if not positions:
        return []
    head = ["row", *(escape_name(label, _ROW_VALUE_LIMIT) for label in labels)]
    lines = [
        f"sample rows ({len(positions)} picked at random from the sample, in frame order):",
        "| " + " | ".join(head) + " |",
        "|" + "-|" * len(head),
    ]
    for index, position in enumerate(positions):
        cells = [count_text(int(position))]
        cells += [escape_cell(_cell_value(column[index]), _ROW_VALUE_LIMIT) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
