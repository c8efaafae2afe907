"""Cells and outputs as prompt context: ``--cell N``, ``--cells A:B``, ``{In[n]}``, ``{Out[n]}``.

Cells are named by the execution counts the user sees (``[5]`` beside a cell, ``In[5]`` and
``Out[5]`` in IPython). Everything is read from the notebook's own namespace, where IPython
keeps it: ``_i5`` holds cell 5's source as typed (``In[5]`` holds it after IPython rewrote its
magics), ``Out`` the value each cell's last expression showed. A negative number counts back
from the latest cell *before* the one running (``-1`` is the previous cell), since the running
``%%chat`` cell is the question, not its context.

An output is sent as the user saw it: its ``text/plain`` repr, made by the shell's own
formatter, or the summary of a dataframe or array. Every piece is cut to a token budget with a
marker saying what was left out (:mod:`nbchat.excerpt`), and is an attachment that a transcript
folds under its label, as it folds dataframe summaries.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import UnknownCellError
from .secrets import mask_secrets

if TYPE_CHECKING:
    from .context import CellField, Field

__all__ = [
    "MAX_RANGE",
    "CellPiece",
    "CellRange",
    "cell_input",
    "cell_output",
    "field_piece",
    "latest_cell",
    "output_piece",
    "output_text",
    "pieces_for",
    "resolve",
]

MAX_RANGE = 20
"""Cells one ``--cells`` range may name: a range is for the last few cells, not the notebook."""

_RANGE = re.compile(r"^\s*(-?\d+)?\s*(:)?\s*(-?\d+)?\s*$")


@dataclass(frozen=True, slots=True)
class CellRange:
    """``--cell N`` or ``--cells A:B`` as typed: a number, or a slice of the cells so far."""

    start: int | None
    stop: int | None
    single: bool
    """A single cell (``N``), rather than a slice (``A:B``, ``-3:``)."""
    text: str
    """As typed, for messages."""

    @classmethod
    def parse(cls, raw: str, *, single: bool = False) -> CellRange:
        """``N``, ``-N``, ``A:B``, ``A:``, ``:B``; ValueError for anything else."""
        match = _RANGE.match(raw)
        if match is None:
            raise ValueError(f"takes a cell number such as 5 or -1, got {raw!r}")
        start_text, colon, stop_text = match.groups()
        if colon is None and start_text is None:
            raise ValueError(f"takes a cell number or a range such as -3: or 3:5, got {raw!r}")
        if single and colon is not None:
            raise ValueError(f"takes one cell number (for a range use --cells {raw}), got {raw!r}")
        start = int(start_text) if start_text is not None else None
        stop = int(stop_text) if stop_text is not None else None
        if 0 in (start, stop):
            raise ValueError(f"counts cells from 1 (or back from -1), got {raw!r}")
        return cls(start, stop, colon is None, raw.strip())


@dataclass(frozen=True, slots=True)
class CellPiece:
    """One attached piece: a cell's source or its output, ready for a prompt."""

    name: str
    """``In[5]`` or ``Out[5]``."""
    label: str
    """What a transcript shows folded, e.g. ``In[5] · 3 lines``."""
    text: str


def latest_cell(namespace: Mapping[str, object]) -> int:
    """The number of the latest cell before the running one (0 when none has run).

    IPython stores a cell's source in ``In`` before running it, so while a cell runs, ``In``
    ends with that cell.
    """
    history = namespace.get("In")
    if not isinstance(history, list):
        raise UnknownCellError(
            "cells can only be named in IPython (a notebook or terminal IPython), which keeps "
            "their In/Out history",
            name="In",
        )
    return max(len(history) - 2, 0)


def _ranges(numbers: Sequence[int]) -> str:
    """``1–4, 7, 9–12``: numbers as compact ranges, at most a few dozen characters."""
    runs: list[str] = []
    index = 0
    while index < len(numbers):
        end = index
        while end + 1 < len(numbers) and numbers[end + 1] == numbers[end] + 1:
            end += 1
        first, last = numbers[index], numbers[end]
        runs.append(str(first) if first == last else f"{first}–{last}")
        index = end + 1
    if len(runs) > 8:
        runs = [*runs[:3], "…", *runs[-4:]]
    return ", ".join(runs)


def _which_exist(latest: int) -> str:
    if latest == 0:
        return "no cell has run before this one"
    return f"cells {_ranges(list(range(1, latest + 1)))} have run"


def _absolute(number: int, latest: int, option: str) -> int:
    """A typed cell number as an execution count; UnknownCellError when no such cell ran."""
    absolute = latest + 1 + number if number < 0 else number
    if not 1 <= absolute <= latest:
        raise UnknownCellError(
            f"{option}: there is no cell {number} ({_which_exist(latest)})", name=str(number)
        )
    return absolute


def resolve(spec: CellRange, namespace: Mapping[str, object], option: str = "--cells") -> list[int]:
    """The execution counts ``spec`` names, oldest first.

    A single number must name a cell that ran; a range is a Python slice of the cells before
    this one (``3:5`` is cells 3 and 4, ``-3:`` the last three), and each number in it must
    name a cell too, except a stop one past the latest. A range leaves out nbchat's own cells
    (``%%chat``, ``%chat``) and empty ones: their text is in the conversation already, or is
    nothing.
    """
    latest = latest_cell(namespace)
    if spec.single:
        assert spec.start is not None
        return [_absolute(spec.start, latest, option)]
    start = 1 if spec.start is None else _absolute(spec.start, latest, option)
    if spec.stop is None or spec.stop == latest + 1:
        stop = latest + 1
    else:
        stop = _absolute(spec.stop, latest, option)
    numbers = [number for number in range(start, stop) if _has_code(namespace, number)]
    if not numbers:
        raise UnknownCellError(
            f"{option} {spec.text} names no cell with code ({_which_exist(latest)})",
            name=spec.text,
        )
    if len(numbers) > MAX_RANGE:
        raise UnknownCellError(
            f"{option} {spec.text} names {len(numbers)} cells; at most {MAX_RANGE} go in one "
            "message",
            name=spec.text,
        )
    return numbers


def _has_code(namespace: Mapping[str, object], number: int) -> bool:
    source = _source(namespace, number).strip()
    return bool(source) and not source.startswith(("%%chat", "%chat"))


def _source(namespace: Mapping[str, object], number: int) -> str:
    raw = namespace.get(f"_i{number}")
    if isinstance(raw, str):
        return raw
    history = namespace.get("In")
    if isinstance(history, list) and 0 <= number < len(history):
        return str(history[number])
    return ""


def _outputs(namespace: Mapping[str, object]) -> Mapping[object, object]:
    outputs = namespace.get("Out")
    return outputs if isinstance(outputs, Mapping) else {}


def cell_input(
    namespace: Mapping[str, object], number: int, *, tokens: int, option: str = "In"
) -> CellPiece:
    """Cell ``number``'s source as typed, fenced, cut to ``tokens``; ``number`` may count back
    from the latest cell (``-1``)."""
    from .excerpt import excerpt, fence

    absolute = _absolute(number, latest_cell(namespace), option)
    source = mask_secrets(_source(namespace, absolute).strip("\n"))
    header = f"In[{absolute}]:\n"
    shown = excerpt(source, max(tokens - 8, 1))
    lines = source.count("\n") + 1 if source else 0
    label = f"In[{absolute}] · {lines:,} line{'s' if lines != 1 else ''}"
    if shown.cut:
        label += " · cut"
    return CellPiece(f"In[{absolute}]", label, header + fence(shown.text, "python"))


def cell_output(
    namespace: Mapping[str, object],
    number: int,
    *,
    tokens: int,
    rows: int = 0,
    prompt: str = "",
    option: str = "Out",
) -> CellPiece:
    """What cell ``number`` showed as its result, as text within ``tokens``."""
    latest = latest_cell(namespace)
    absolute = _absolute(number, latest, option)
    outputs = _outputs(namespace)
    if absolute not in outputs:
        shown = sorted(n for n in outputs if isinstance(n, int) and n <= latest)
        have = f"cells with one: {_ranges(shown)}" if shown else "no cell has shown one yet"
        raise UnknownCellError(
            f"{option}: cell {absolute} showed no output ({have})", name=f"Out[{absolute}]"
        )
    value = outputs[absolute]
    return output_piece(f"Out[{absolute}]", value, tokens=tokens, rows=rows, prompt=prompt)


def output_piece(
    name: str, value: object, *, tokens: int, rows: int = 0, prompt: str = ""
) -> CellPiece:
    """An output value as the user saw it, under ``name`` (``Out[5]``, ``_``)."""
    from .context import value_text
    from .excerpt import fence
    from .frames import is_frame

    if is_frame(value):
        summary, label = value_text(name, value, prompt=prompt, tokens=tokens, rows=rows)
        return CellPiece(name, label or name, summary)
    text, cut = output_text(value, tokens=max(tokens - 8, 1))
    label = f"{name} · {type(value).__name__}" + (" · cut" if cut else "")
    return CellPiece(name, label, f"{name}:\n" + fence(text))


def output_text(value: object, *, tokens: int) -> tuple[str, bool]:
    """``value``'s ``text/plain`` repr as the notebook showed it, cut to ``tokens``."""
    from .excerpt import excerpt

    text = mask_secrets(_plain_text(value))
    shown = excerpt(text, tokens)
    return shown.text, shown.cut


def _plain_text(value: object) -> str:
    """The shell's own ``text/plain`` formatter (IPython's pretty printer, which also cuts long
    sequences); a bounded repr outside IPython or when the formatter fails."""
    from .context import bounded_text
    from .runtime import running_shell

    shell = running_shell()
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    plain = formatters.get("text/plain") if isinstance(formatters, Mapping) else None
    if plain is not None:
        try:
            text = plain(value)
        except Exception:
            text = None
        if isinstance(text, str):
            return text
    return bounded_text(value)


def pieces_for(
    specs: Sequence[CellRange],
    namespace: Mapping[str, object],
    *,
    tokens: int,
    rows: int = 0,
    prompt: str = "",
) -> list[CellPiece]:
    """The source and output of every cell ``specs`` name, in order, each within ``tokens``."""
    pieces: list[CellPiece] = []
    seen: set[int] = set()
    for spec in specs:
        option = "--cell" if spec.single else "--cells"
        for number in resolve(spec, namespace, option):
            if number in seen:
                continue
            seen.add(number)
            pieces.append(cell_input(namespace, number, tokens=tokens, option=option))
            if number in _outputs(namespace):
                pieces.append(
                    cell_output(namespace, number, tokens=tokens, rows=rows, prompt=prompt)
                )
    return pieces


def field_piece(
    piece: CellField | Field,
    namespace: Mapping[str, object],
    *,
    tokens: int,
    rows: int = 0,
    prompt: str = "",
) -> CellPiece | None:
    """What ``{In[n]}``, ``{Out[n]}`` or ``{_}`` becomes in a prompt; None for a ``{_}`` that
    is the user's own variable rather than the last output (it is then filled as any name)."""
    from .context import CellField

    if isinstance(piece, CellField):
        typed = f"{{{piece.kind}[{piece.number}]}}"
        if piece.kind == "In":
            return cell_input(namespace, piece.number, tokens=tokens, option=typed)
        return cell_output(
            namespace, piece.number, tokens=tokens, rows=rows, prompt=prompt, option=typed
        )
    outputs = _outputs(namespace)
    for number in sorted((n for n in outputs if isinstance(n, int)), reverse=True):
        if outputs[number] is piece.value:
            return output_piece(
                f"Out[{number}]", piece.value, tokens=tokens, rows=rows, prompt=prompt
            )
    if not outputs and isinstance(piece.value, str) and not piece.value:
        raise UnknownCellError("{_}: no cell has shown an output yet", name="_")
    return None
