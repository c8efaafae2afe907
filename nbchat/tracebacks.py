"""The last exception as prompt context, for ``%chat explain`` and ``%%chat --error``.

A model asked "why did this fail?" needs what a colleague looking over the user's shoulder
would read: the exception's type and message, the lines of the *user's* code it passed through
(notebook cells and the user's own files; not the hundred frames inside pandas, the standard
library or IPython, which are named and counted instead), the source of the cell that failed,
and what the variables that cell names hold. :func:`error_context` writes that as one block,
within a token budget, for a transcript to fold under one label.

Which cell failed is known exactly: :class:`ErrorRecorder` follows IPython's ``post_run_cell``
event and keeps each exception with the execution count of its cell (a ``UsageError`` from a
mistyped magic is not an exception worth explaining, and does not replace it). Exceptions raised
before nbchat was loaded are found where IPython leaves them, ``sys.last_value``. A frame's cell
comes from IPython's own compiler, which maps each cell's code name (terminal IPython's
``<ipython-input-5-…>``, ipykernel's ``/tmp/ipykernel_…/….py``) to its execution count.
"""

from __future__ import annotations

import ast
import functools
import keyword
import linecache
import os
import re
import sys
import sysconfig
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ContextError, NoExceptionError
from .secrets import mask_secrets

__all__ = [
    "ERROR_BUDGET_SHARES",
    "ErrorContext",
    "ErrorRecorder",
    "LastError",
    "error_context",
    "named_variables",
]

ERROR_BUDGET_SHARES = 3
"""The whole error context may take this many times the per-summary budget (``--df-tokens``):
3,000 tokens by default."""

_MAX_CHAIN = 5  # chained exceptions described at most
_MAX_FRAMES = 24  # user frames shown per exception (the first 8 and the last 16)
_MAX_VARIABLES = 12
_REPR_SHARE = 4  # a value that is not a frame takes at most a quarter of a summary's budget
_INTERNAL_PACKAGES = frozenset({"IPython", "ipykernel", "nbchat", "traitlets", "tornado", "zmq"})
_HIDDEN_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython"})
_INPUT_NAME = re.compile(r"^<ipython-input-(\d+)-")
_IDENTIFIER = re.compile(r"\b[^\W\d]\w*\b")


@dataclass(frozen=True, slots=True)
class LastError:
    """An exception a cell raised, and what is needed to tell which cells it passed through."""

    exception: BaseException
    cell: int | None
    """The execution count of the cell that raised it, when known."""
    cell_names: Mapping[str, int] = field(default_factory=dict)
    """IPython's map from a cell's code name (a frame's filename) to its execution count."""


def _is_usage_error(error: BaseException) -> bool:
    kind = type(error)
    return kind.__name__ == "UsageError" and kind.__module__.startswith("IPython.")


class ErrorRecorder:
    """Keeps the last exception a cell raised, with its cell's number (``post_run_cell``)."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.last: LastError | None = None

    def _cell_names(self) -> Mapping[str, int]:
        names = getattr(getattr(self.shell, "compile", None), "_filename_map", None)
        return names if isinstance(names, Mapping) else {}

    def post_run_cell(self, result: Any) -> None:
        """Note ``result``'s exception, if it has one worth explaining."""
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if not isinstance(error, BaseException) or _is_usage_error(error):
            return
        count = getattr(result, "execution_count", None)
        self.last = LastError(error, count if isinstance(count, int) else None, self._cell_names())

    def latest(self) -> LastError:
        """The last exception, or :class:`NoExceptionError` (one line) when there is none."""
        if self.last is not None:
            return self.last
        value = getattr(sys, "last_value", None)
        if isinstance(value, BaseException) and not _is_usage_error(value):
            names = self._cell_names()
            return LastError(value, _outermost_cell(value, names), names)
        raise NoExceptionError(
            "no cell has raised an exception yet, so there is no error to explain",
            name="error",
            hint="run the cell that fails, then %chat explain",
        )


# -- where a frame's code lives ---------------------------------------------------------------


@functools.cache
def _standard_library() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {os.path.normpath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(sorted(path + os.sep for path in found))


@functools.cache
def _own_package() -> str:
    return str(Path(__file__).resolve().parent) + os.sep


@dataclass(frozen=True, slots=True)
class _Place:
    """Where a frame's code lives: a cell, a user's file, a library, or the machinery."""

    kind: str  # "cell", "file", "library", "internal"
    cell: int | None = None
    library: str = ""


@functools.lru_cache(maxsize=4096)
def _file_place(filename: str) -> _Place:
    if filename.startswith("<"):
        return _Place("internal")
    path = os.path.normpath(os.path.abspath(filename))
    if path.startswith(_own_package()):
        return _Place("internal")
    if not os.path.exists(path):
        # Compiled extensions name their sources relative to their package
        # ("pandas/_libs/hashtable.pyx"): not the user's, since the user's files exist.
        first = Path(filename).parts[0] if not os.path.isabs(filename) else ""
        if not first or first in _INTERNAL_PACKAGES:
            return _Place("internal")
        return _Place("library", library=first)
    parts = Path(path).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            index = parts.index(marker)
            package = parts[index + 1] if index + 1 < len(parts) else marker
            package = package.removesuffix(".py").split(".")[0]
            if package in _INTERNAL_PACKAGES:
                return _Place("internal")
            return _Place("library", library=package)
    if path.startswith(_standard_library()):
        return _Place("library", library="the standard library")
    return _Place("file")


def _place(filename: str, cell_names: Mapping[str, int]) -> _Place:
    number = cell_names.get(filename)
    if number is None:
        match = _INPUT_NAME.match(filename)
        number = int(match.group(1)) if match else None
    if number is not None:
        return _Place("cell", cell=number)
    return _file_place(filename)


def _outermost_cell(error: BaseException, cell_names: Mapping[str, int]) -> int | None:
    if isinstance(error, SyntaxError) and error.filename:
        return _place(error.filename, cell_names).cell
    tb = error.__traceback__
    while tb is not None:
        found = _place(tb.tb_frame.f_code.co_filename, cell_names).cell
        if found is not None:
            return found
        tb = tb.tb_next
    return None


# -- the traceback, user frames only ----------------------------------------------------------


def _type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    if module in ("builtins", "__main__"):
        return kind.__qualname__
    return f"{module}.{kind.__qualname__}"


def _message(error: BaseException) -> str:
    try:
        text = str(error.msg if isinstance(error, SyntaxError) and error.msg else error)
    except Exception as failure:  # a broken __str__ must not hide the error itself
        text = f"<str() failed: {type(failure).__name__}>"
    notes = getattr(error, "__notes__", None)
    if isinstance(notes, Sequence) and not isinstance(notes, str):
        text = "\n".join([text, *(str(note) for note in notes)])
    return text


def _where(place: _Place, filename: str, line: int | None, function: str) -> str:
    at = f"In[{place.cell}]" if place.kind == "cell" else _short_path(filename)
    text = f"{at}, line {line}" if line is not None else at
    return text if function == "<module>" else f"{text}, in {function}"


def _short_path(filename: str) -> str:
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith(".." + os.sep) else relative


def _frames(error: BaseException, cell_names: Mapping[str, int]) -> list[str]:
    """The traceback's user frames, two lines each; runs of other frames become one line."""
    lines: list[str] = []
    hidden: dict[str, int] = {}
    last_key: tuple[types.CodeType, int] | None = None
    repeats = 0
    user_frames: list[list[str]] = []

    def flush_hidden() -> None:
        if hidden:
            where = ", ".join(f"{count} in {name}" for name, count in hidden.items())
            user_frames.append([f"  … frames inside libraries: {where}"])
            hidden.clear()

    def flush_repeats() -> None:
        nonlocal repeats
        if repeats:
            user_frames.append([f"  [the frame above repeated {repeats:,} more times]"])
            repeats = 0

    places: dict[str, _Place] = {}
    tb = error.__traceback__
    while tb is not None:
        code, number = tb.tb_frame.f_code, tb.tb_lineno
        tb = tb.tb_next
        key = (code, number)
        if key == last_key:  # a recursion: thousands of frames, checked first and cheaply
            repeats += 1
            continue
        filename, function = code.co_filename, code.co_name
        place = places.get(filename)
        if place is None:
            place = places[filename] = _place(filename, cell_names)
        if place.kind == "internal":
            continue
        if place.kind == "library":
            flush_repeats()
            last_key = None
            hidden[place.library] = hidden.get(place.library, 0) + 1
            continue
        flush_repeats()
        flush_hidden()
        last_key = key
        frame = [f"  {_where(place, filename, number, function)}"]
        source = linecache.getline(filename, number).strip()
        if source:
            frame.append(f"    {source}")
        user_frames.append(frame)
    flush_repeats()
    flush_hidden()
    if len(user_frames) > _MAX_FRAMES:
        head, tail = user_frames[: _MAX_FRAMES // 3], user_frames[-(_MAX_FRAMES * 2 // 3) :]
        left_out = len(user_frames) - len(head) - len(tail)
        user_frames = [*head, [f"  … {left_out:,} more frames left out"], *tail]
    for frame in user_frames:
        lines.extend(frame)
    return lines


def _syntax_lines(error: SyntaxError, cell_names: Mapping[str, int]) -> list[str]:
    place = _place(error.filename or "", cell_names)
    lines = [f"  {_where(place, error.filename or '<unknown>', error.lineno, '<module>')}"]
    text = (error.text or "").rstrip("\n")
    if text.strip():
        indent = len(text) - len(text.lstrip())
        lines.append(f"    {text.strip()}")
        if error.offset:
            lines.append("    " + " " * max(error.offset - 1 - indent, 0) + "^")
    return lines


def _chain(error: BaseException) -> Iterator[tuple[BaseException, str]]:
    """The exception and those it was raised from or during, newest first, each with the
    sentence Python prints above the newer one."""
    seen: set[int] = set()
    current: BaseException | None = error
    link = ""
    count = 0
    while current is not None and id(current) not in seen and count < _MAX_CHAIN:
        seen.add(id(current))
        yield current, link
        count += 1
        if current.__cause__ is not None:
            current, link = current.__cause__, "direct cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "during handling"
        else:
            current = None


_LINKS = {
    "direct cause": "The above exception was the direct cause of the following exception:",
    "during handling": "During handling of the above exception, another exception occurred:",
}


def _traceback_text(error: BaseException, cell_names: Mapping[str, int], budget: int) -> str:
    from .excerpt import excerpt

    blocks: list[str] = []
    for current, link in _chain(error):
        if isinstance(current, SyntaxError):
            frames = _syntax_lines(current, cell_names)
        else:
            frames = _frames(current, cell_names)
        message = excerpt(_message(current), max(budget // 4, 20)).text
        if isinstance(current, SyntaxError):
            parts = frames
        elif any(not line.startswith("  …") for line in frames):
            parts = ["Traceback (your code only):", *frames]
        else:
            parts = ["Raised outside your code:", *frames]
        block = "\n".join([*parts, f"{_type_name(current)}: {message}".rstrip(": ")])
        if link:
            block = f"{block}\n\n{_LINKS[link]}"
        blocks.append(block)
    return "\n\n".join(reversed(blocks))


# -- the variables the cell names -------------------------------------------------------------


def named_variables(source: str, namespace: Mapping[str, object]) -> list[str]:
    """The notebook variables ``source`` names, in the order it first names them: values only
    (no modules, functions, classes, or IPython's own names)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        candidates = [w for w in _IDENTIFIER.findall(source) if not keyword.iskeyword(w)]
    else:
        names = [node for node in ast.walk(tree) if isinstance(node, ast.Name)]
        names.sort(key=lambda node: (node.lineno, node.col_offset))
        candidates = [node.id for node in names]
    found: list[str] = []
    for name in dict.fromkeys(candidates):
        if name.startswith("_") or name in _HIDDEN_NAMES or name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, types.ModuleType) or callable(value):
            continue
        found.append(name)
        if len(found) == _MAX_VARIABLES:
            break
    return found


def _variable_text(
    name: str, value: object, *, budget: int, prompt: str, rows: int
) -> tuple[str, bool]:
    from .context import MAX_TEXT, bounded_text, value_text
    from .excerpt import excerpt
    from .frames import MIN_BUDGET, is_frame

    if is_frame(value):
        if budget < MIN_BUDGET:
            return "", True
        text, _ = value_text(name, value, prompt=prompt, tokens=budget, rows=rows)
        return text, False
    text = bounded_text(repr(value[: MAX_TEXT + 1]) if isinstance(value, str) else value)
    shown = excerpt(f"{name} ({type(value).__name__}) = {text}", budget)
    return shown.text, shown.cut


# -- the whole context ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorContext:
    """The error context for a prompt: its text, and the label a transcript folds it under."""

    text: str
    label: str
    cut: bool


def _cell_source(namespace: Mapping[str, object], number: int) -> tuple[str, str]:
    """Cell ``number``'s source as typed, and as IPython ran it (magics rewritten)."""
    raw = namespace.get(f"_i{number}")
    history = namespace.get("In")
    ran = history[number] if isinstance(history, list) and 0 <= number < len(history) else ""
    typed = raw if isinstance(raw, str) else str(ran)
    return typed, str(ran) or typed


def error_context(
    last: LastError,
    namespace: Mapping[str, object],
    *,
    tokens: int = 1000,
    rows: int = 0,
    question: str = "",
) -> ErrorContext:
    """The last exception, the failing cell's source and its variables, within
    ``ERROR_BUDGET_SHARES × tokens`` estimated tokens; each dataframe's summary within
    ``tokens``. Columns ``question`` or the cell names keep their lines in a summary."""
    from .excerpt import excerpt, fence
    from .frames import estimate_tokens

    budget = ERROR_BUDGET_SHARES * tokens
    error = last.exception
    cell = f' cell="{last.cell}"' if last.cell is not None else ""
    opening, closing = f'<error type="{_type_name(error)}"{cell}>', "</error>"
    cut = False
    traceback = excerpt(_traceback_text(error, last.cell_names, budget), budget // 2)
    cut |= traceback.cut
    parts = [opening, traceback.text]
    used = estimate_tokens("\n".join([*parts, closing]))
    source, ran = _cell_source(namespace, last.cell) if last.cell is not None else ("", "")
    names = named_variables(ran or source, namespace)
    header = "\nWhat the variables it names hold now:"
    listed = f"(not shown, over the budget: {', '.join(names)})"
    reserve = estimate_tokens(f"{header}\n{listed}") + 2 if names else 0
    if source.strip():
        room = min(tokens, budget - used - reserve - 24)
        shown = excerpt(source.strip("\n"), max(room, 1))
        cut |= shown.cut
        section = f"\nThe cell that failed, In[{last.cell}]:\n{fence(shown.text, 'python')}"
        parts.append(section)
        used += estimate_tokens(section) + 1
    if names:
        parts.append(header)
        used += estimate_tokens(header) + 1
    left_out: list[str] = []
    reserve = estimate_tokens(listed) + 1
    for index, name in enumerate(names):
        room = budget - used - reserve
        share = tokens if _is_frame(namespace[name]) else tokens // _REPR_SHARE
        text, dropped = "", True
        if room > 0:
            prompt = question + "\n" + source
            try:
                text, dropped = _variable_text(
                    name, namespace[name], budget=min(share, room), prompt=prompt, rows=rows
                )
            except ContextError as failure:
                text = excerpt(f"{name}: (could not be described: {failure})", room).text
                dropped = False
        if not text or estimate_tokens(text) + 1 > room:
            left_out.extend(names[index:])
            break
        cut |= dropped
        parts.append(text)
        used += estimate_tokens(text) + 1
    if left_out:
        cut = True
        parts.append(f"(not shown, over the budget: {', '.join(left_out)})")
    inner = mask_secrets("\n".join(parts[1:]))  # sent unasked: no key-shaped value goes
    room = budget - estimate_tokens(f"{opening}\n\n{closing}")
    if estimate_tokens(inner) > room:  # a last guard: the budget is never exceeded
        inner, cut = excerpt(inner, room).text, True
    text = f"{opening}\n{inner}\n{closing}"
    where = f" in In[{last.cell}]" if last.cell is not None else ""
    label = f"error · {type(error).__name__}{where}" + (" · cut" if cut else "")
    return ErrorContext(text, label, cut)


def _is_frame(value: object) -> bool:
    from .frames import is_frame

    return is_frame(value)
