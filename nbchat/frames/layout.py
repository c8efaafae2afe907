"""Laying a described frame out within the token budget.

The budget is a promise (the estimate of the text is at most the budget, for any budget of at
least :data:`MIN_BUDGET`), and a summary should lose its least useful parts first: :func:`fit`
tries plans from the richest down, in a fixed order, counting each one's lines with
:func:`~nbchat.frames.tokens.estimate_tokens`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .model import COUNTS, FULL, NAMES, TABLE_LEVELS, Column, Described
from .text import DTYPE_LIMIT, NAME_LIMIT, count_text, escape_cell, escape_name
from .tokens import estimate_tokens

MIN_BUDGET = 60
"""The smallest budget always honoured; below it the minimal form is returned as it is."""


_LINE_WIDTH = 100  # characters of a compact column-list line


@dataclass(frozen=True)
class _Plan:
    """One way of writing the summary; the budget search tries richer plans first."""

    keep_level: int
    other_level: int
    keep_shown: int
    others_shown: int
    with_notes: bool = True
    with_rows: bool = False


class _Layout:
    """Writes a plan's lines and counts their tokens, remembering each line's count.

    Lines are counted one by one because :func:`estimate_tokens` is additive over lines:
    trying many plans then costs a dictionary look-up per unchanged line.
    """

    def __init__(self, described: Described, keep: Sequence[int], others: Sequence[int]) -> None:
        self.described = described
        self.keep = list(keep)
        self.others = list(others)
        self.name_limit = NAME_LIMIT
        self._costs: dict[str, int] = {}
        self._rows: list[str] | None = None

    def cost(self, lines: Sequence[str]) -> int:
        total = len(lines) - 1
        for line in lines:
            cost = self._costs.get(line)
            if cost is None:
                cost = self._costs[line] = estimate_tokens(line)
            total += cost
        return total

    def open_tag(self) -> str:
        described = self.described
        parts = [described.tag]
        for key, value in described.attributes:
            limit = self.name_limit if key == "name" else NAME_LIMIT
            parts.append(f'{key}="{escape_name(value, limit)}"')
        return "<" + " ".join(parts) + ">"

    def lines(self, plan: _Plan) -> list[str]:
        described = self.described
        columns = described.columns
        kept = self.keep[: plan.keep_shown]
        shown_others = self.others[: plan.others_shown]
        table: list[tuple[Column, int]] = []
        if plan.keep_level >= COUNTS or plan.other_level >= COUNTS:
            in_table = set(kept) if plan.keep_level >= COUNTS else set()
            if plan.other_level >= COUNTS:
                in_table.update(shown_others)
            levels = dict.fromkeys(kept, plan.keep_level)
            table = [(columns[i], levels.get(i, plan.other_level)) for i in sorted(in_table)]
        compact = [columns[i] for i in kept] if plan.keep_level == NAMES else []
        if plan.other_level == NAMES:
            compact += [columns[i] for i in shown_others]
        hidden = len(columns) - len(kept) - len(shown_others)

        lines = [self.open_tag()]
        if plan.with_notes:
            lines += described.notes
        if described.legend and any(c.facts and c.facts.marked(lv) for c, lv in table):
            lines.append(described.legend)
        lines += _table_lines(table)
        lines += _compact_lines(compact, after_table=bool(table))
        if hidden:
            more = " more" if table or compact else ""
            lines.append(f"… {count_text(hidden)}{more} columns not shown")
        if plan.with_rows:
            lines += self.sample_rows()
        lines.append(f"</{described.tag}>")
        return lines

    def sample_rows(self) -> list[str]:
        if self._rows is None:
            self._rows = self.described.sample_rows()
        return self._rows

    def table_lower_bound(self) -> int:
        """Fewest tokens any plan with a table row for every column can take."""
        rows = [
            f"| {escape_name(c.label)} | {escape_cell(c.dtype, DTYPE_LIMIT)} |"
            for c in self.described.columns
        ]
        fixed = [self.open_tag(), f"</{self.described.tag}>"]
        return self.cost(fixed) + sum(estimate_tokens(row) + 1 for row in rows)


def _table_lines(table: Sequence[tuple[Column, int]]) -> list[str]:
    if not table:
        return []
    with_summary = any(c.facts and c.facts.summary(level) for c, level in table)
    if with_summary:
        head = ["| column | dtype | nulls | distinct | summary |", "|-|-|-|-|-|"]
    else:
        head = ["| column | dtype | nulls | distinct |", "|-|-|-|-|"]
    return head + [column.row(level, with_summary) for column, level in table]


def _compact_lines(columns: Sequence[Column], *, after_table: bool) -> list[str]:
    """``name(dtype)`` items packed into lines, a trailing comma where a line continues."""
    if not columns:
        return []
    lines: list[str] = []
    current = "more columns: " if after_table else "columns: "
    fresh = True
    for column in columns:
        item = column.compact()
        if not fresh and len(current) + len(item) + 2 > _LINE_WIDTH:
            lines.append(current + ",")
            current, fresh = item, False
            continue
        current = current + item if fresh else current + ", " + item
        fresh = False
    lines.append(current)
    return lines


def _largest_fitting(
    layout: _Layout, make: Callable[[int], _Plan], high: int, budget: int
) -> list[str] | None:
    """The lines of ``make(k)`` for the largest ``k`` in ``0..high`` that fits the budget.

    A binary search: more items cost more tokens, give or take the digits of the "… N more"
    marker, and only a plan that was counted and fits is ever returned.
    """
    best: list[str] | None = None
    low = 0
    while low <= high:
        middle = (low + high) // 2
        lines = layout.lines(make(middle))
        if layout.cost(lines) <= budget:
            best, low = lines, middle + 1
        else:
            high = middle - 1
    return best


def fit(described: Described, budget: int, keep: frozenset[str], rows: int) -> str:
    """The richest plan that fits the budget, degrading in a fixed order.

    First the sample rows go, then frequent values, then statistics, then each column's table
    row becomes ``name(dtype)`` in a list that is cut with an explicit marker. Columns named in
    ``keep`` keep their full row until nothing else is left to give up; after them the notes
    go, and last the frame's name in the opening tag is shortened.
    """
    columns = described.columns
    keep_indices = [i for i, column in enumerate(columns) if column.keys & keep]
    kept = set(keep_indices)
    others = [i for i in range(len(columns)) if i not in kept]
    layout = _Layout(described, keep_indices, others)
    described.load_facts(keep_indices)
    n_keep, n_others = len(keep_indices), len(others)

    def fits(plan: _Plan) -> list[str] | None:
        lines = layout.lines(plan)
        return lines if layout.cost(lines) <= budget else None

    def done(lines: list[str]) -> str:
        text = "\n".join(lines)  # counted whole once more: the promise is about this text
        return text if estimate_tokens(text) <= budget else _minimal(layout, budget)

    plans: list[_Plan] = []
    if layout.table_lower_bound() <= budget:  # else skip computing what cannot be shown
        described.load_facts(others)
        if rows:
            plans.append(_Plan(FULL, FULL, n_keep, n_others, with_rows=True))
        plans += [_Plan(FULL, level, n_keep, n_others) for level in TABLE_LEVELS]
    plans.append(_Plan(FULL, NAMES, n_keep, n_others))
    for plan in plans:
        lines = fits(plan)
        if lines is not None:
            return done(lines)
    found = _largest_fitting(layout, lambda k: _Plan(FULL, NAMES, n_keep, k), n_others, budget)
    if found is not None:
        return done(found)
    for level in TABLE_LEVELS:
        lines = fits(_Plan(level, NAMES, n_keep, 0, with_notes=False))
        if lines is not None:
            return done(lines)
    found = _largest_fitting(
        layout, lambda k: _Plan(NAMES, NAMES, k, 0, with_notes=False), n_keep, budget
    )
    if found is not None:
        return done(found)
    return _minimal(layout, budget)


def _minimal(layout: _Layout, budget: int) -> str:
    """The tags alone, shrunk until they fit: the count of columns left out goes first (the
    tag says how many there are), then the name is shortened, then attributes other than
    name, library and type go from the last; returned as it is if even that is over."""
    lines = layout.lines(_Plan(NAMES, NAMES, 0, 0, with_notes=False))
    close = lines[-1]
    if layout.cost(lines) <= budget:
        return "\n".join(lines)
    attributes = layout.described.attributes
    while layout.cost([layout.open_tag(), close]) > budget:
        if layout.name_limit > 2:
            layout.name_limit = max(2, layout.name_limit // 2)
        elif len(attributes) > 3:
            attributes.pop()
        elif layout.name_limit > 1:
            layout.name_limit = 1
        else:
            break
    return layout.open_tag() + "\n" + close
