"""What a summary is made of: described columns, their facts, and how much of them to show.

Each library module turns its objects into a :class:`Described` frame whose columns get their
:class:`Facts` only when asked (computing them is the slow part); the layout then picks, per
column, a detail level from :data:`NAMES` up to :data:`FULL` that fits the budget. Keeping
this shape in one place is what lets one layout serve pandas, polars and numpy alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .text import DTYPE_LIMIT, escape_cell, escape_name, quote_if_needed

# How much of a column a table row shows; lower levels are what the budget falls back to.
NAMES = 0  # name(dtype) in the compact list
COUNTS = 1  # + nulls and distinct values
STATS = 2  # + min/median/max, ranges, shares
TOP_1 = 3  # + the most frequent value
TOP_3 = 4  # + the three most frequent values
FULL = 5  # + the five most frequent values
_TOP_COUNT = {TOP_1: 1, TOP_3: 3, FULL: 5}
TABLE_LEVELS = (FULL, TOP_3, TOP_1, STATS, COUNTS)


@dataclass
class Facts:
    """What one column's table row says, already formatted and marked."""

    nulls: str = ""
    distinct: str = ""
    stats: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    counts_marked: bool = False
    stats_marked: bool = False
    top_marked: bool = False

    def summary(self, level: int) -> str:
        parts = list(self.stats) if level >= STATS else []
        if level >= TOP_1 and self.top:
            parts.append("top: " + ", ".join(self.top[: _TOP_COUNT[level]]))
        return " · ".join(parts)

    def marked(self, level: int) -> bool:
        return (
            (level >= COUNTS and self.counts_marked)
            or (level >= STATS and self.stats_marked)
            or (level >= TOP_1 and self.top_marked)
        )


def fill_facts(facts: Facts, fill: Callable[[], Any] | None) -> Facts:
    """Run a column's kind-specific ``fill`` (None for a kind with nothing more to say), then
    mark the counts when the distinct count is an estimate.

    Every library module ends a column this way; the marking rule is kept here once so that
    a ``~`` means the same in a pandas, a polars and a numpy table.
    """
    if fill is not None:
        fill()
    facts.counts_marked = facts.counts_marked or facts.distinct.startswith("~")
    return facts


@dataclass
class Column:
    label: str
    dtype: str
    keys: frozenset[str]
    facts: Facts | None = None

    def row(self, level: int, with_summary: bool) -> str:
        facts = self.facts or Facts()
        cells = [
            escape_name(self.label),
            escape_cell(self.dtype, DTYPE_LIMIT),
            facts.nulls,
            facts.distinct,
        ]
        if with_summary:
            cells.append(facts.summary(level))
        return "| " + " | ".join(cells) + " |"

    def compact(self) -> str:
        name = escape_name(quote_if_needed(self.label))
        return f"{name}({escape_cell(self.dtype, DTYPE_LIMIT)})"


@dataclass
class Described:
    """A frame as the renderer sees it: fixed lines, columns, and how to get more facts."""

    tag: str
    attributes: list[tuple[str, str]]
    notes: list[str]
    legend: str
    columns: list[Column]
    load_facts: Callable[[Sequence[int]], None]
    sample_rows: Callable[[], list[str]]


@dataclass
class Options:
    sample_size: int
    rows: int
    seed: int
