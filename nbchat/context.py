"""What the notebook's variables put into a prompt: ``{name}`` interpolation and attachments.

``{name}`` is replaced by the value of a variable that exists in the user namespace. Anything
else in braces stays as typed, so code, JSON and set literals pasted into a prompt survive:
only a name that is defined is touched. ``{{`` and ``}}`` write a literal brace, for the rare
prompt that must show ``{name}`` while ``name`` is defined.

Values are bounded: a dataframe (pandas, polars) or array becomes its summary under a token
budget (:mod:`nbchat.frames`), a string goes in as it is up to ``MAX_TEXT`` characters, any
other object as a repr cut at ``MAX_REPR`` characters, with a marker that says how much was
left out, so a stray ``{big_list}`` never pushes megabytes into a request.

Columns the prompt names keep their full line in a summary that had to be cut to fit: asking
about ``revenue`` on a 5,000-column frame must not lose ``revenue``.
"""

from __future__ import annotations

import logging
import re
import reprlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .errors import NotAFrameError, SummaryError, UndefinedNameError

__all__ = [
    "MAX_REPR",
    "MAX_TEXT",
    "CellField",
    "Field",
    "bounded_text",
    "fields",
    "frame_attachment",
    "frame_summary",
    "mentioned_columns",
    "value_text",
]

MAX_TEXT = 100_000
"""Characters of a string variable inserted before it is cut."""
MAX_REPR = 4_000
"""Characters of another object's repr inserted before it is cut."""

log = logging.getLogger("nbchat")

_FIELD = re.compile(r"\{\{|\}\}|\{([^\W\d]\w*)\}|\{(In|Out)\[(-?\d+)\]\}")

_repr = reprlib.Repr()
_repr.maxstring = MAX_REPR
_repr.maxother = MAX_REPR
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 200
_repr.maxdict = 100
_repr.maxlevel = 4


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"


def bounded_text(value: object) -> str:
    """``value`` as prompt text: a string itself, anything else a bounded repr."""
    if isinstance(value, str):
        return _cut(value, MAX_TEXT)
    try:
        text = _repr.repr(value)
    except Exception as error:  # a broken __repr__ must not break the question
        text = f"<{type(value).__name__} object; repr failed: {error}>"
    return _cut(text, MAX_REPR)


def _column_names(value: object) -> list[str]:
    """A frame's column names, without running anything costly (a lazy frame's schema)."""
    if type(value).__name__ == "LazyFrame":
        try:
            return [str(name) for name in value.collect_schema().names()]  # type: ignore[attr-defined]
        except Exception:
            return []
    columns = getattr(value, "columns", None)
    if columns is None:
        name = getattr(value, "name", None)  # a Series
        return [str(name)] if name is not None else []
    try:
        return [str(column) for column in columns]
    except TypeError:
        return []


def mentioned_columns(value: object, prompt: str) -> list[str]:
    """The columns of ``value`` that ``prompt`` names, as whole words."""
    if not prompt:
        return []
    words = set(re.findall(r"\w+", prompt))
    found = []
    for column in _column_names(value):
        if column in words:
            found.append(column)
        elif column and not _WORD.fullmatch(column) and column in prompt:
            found.append(column)  # "unit price", "price ($)": matched as typed
    return found


_WORD = re.compile(r"\w+")


def frame_summary(
    name: str, value: object, *, prompt: str = "", tokens: int = 1000, rows: int = 0
) -> str:
    """The summary of a dataframe or array for a prompt; columns ``prompt`` names kept whole.

    Raises :class:`SummaryError` when the frame's own library fails on it (an exotic dtype, a
    missing optional dependency): the question is then not sent, and the user is told in one
    line which variable could not be described, rather than shown a traceback from deep
    inside pandas or polars.
    """
    from .frames import summarize

    keep = mentioned_columns(value, prompt)
    try:
        return summarize(value, name, budget=tokens, rows=rows, keep=keep)
    except Exception as error:
        log.debug("nbchat: summarizing %r failed", name, exc_info=True)
        reason = " ".join(str(error).split())[:200] or "no message"
        raise SummaryError(
            f"could not summarize {name!r} ({type(error).__name__}: {reason})",
            name=name,
            hint=f"send text instead: text = str({name}.head()), then {{text}} in the prompt",
        ) from error


def value_text(
    name: str, value: object, *, prompt: str = "", tokens: int = 1000, rows: int = 0
) -> tuple[str, str | None]:
    """What ``{name}`` becomes, and the label to fold it under: a dataframe or array gives its
    summary and a label; anything else bounded text and None (it is shown as typed)."""
    from .frames import frame_label, is_frame

    if is_frame(value):
        summary = frame_summary(name, value, prompt=prompt, tokens=tokens, rows=rows)
        return summary, f"{name} · {frame_label(value)}"
    return bounded_text(value), None


def frame_attachment(
    name: str,
    namespace: Mapping[str, object],
    *,
    prompt: str = "",
    tokens: int = 1000,
    rows: int = 0,
) -> tuple[str, str]:
    """The summary of the dataframe ``name`` and its label, for ``--df`` and the panel's
    context picker; a name that is undefined or not a frame is a :class:`ContextError`."""
    from .frames import is_frame

    if name not in namespace:
        raise UndefinedNameError(
            f"{name!r} is not defined in the notebook", name=name, hint="run the cell that makes it"
        )
    value = namespace[name]
    if not is_frame(value):
        raise NotAFrameError(
            f"{name!r} is a {type(value).__module__}.{type(value).__qualname__}, not a "
            "pandas or polars dataframe or a numpy array",
            name=name,
            hint="use {" + name + "} in the prompt",
        )
    summary, label = value_text(name, value, prompt=prompt, tokens=tokens, rows=rows)
    return summary, label or name


@dataclass(frozen=True, slots=True)
class Field:
    """A ``{name}`` of a prompt whose name is defined, with the value it names."""

    name: str
    value: object


@dataclass(frozen=True, slots=True)
class CellField:
    """A ``{In[n]}`` or ``{Out[n]}`` of a prompt: a cell's source or output (see ``cells``)."""

    kind: str
    """``"In"`` or ``"Out"``."""
    number: int
    """As typed: an execution count, or negative to count back from the latest cell."""


def fields(template: str, namespace: Mapping[str, object]) -> Iterator[str | Field | CellField]:
    """``template`` as literal text, :class:`Field` and :class:`CellField` pieces, in order.

    Only a ``{name}`` whose name is defined in ``namespace`` becomes a field, and ``{In[n]}`` or
    ``{Out[n]}`` only where IPython keeps ``In`` and ``Out``; every other brace stays as typed,
    and ``{{``/``}}`` become single braces.
    """
    position = 0
    for match in _FIELD.finditer(template):
        matched = match.group(0)
        name, kind = match.group(1), match.group(2)
        if name is not None and name not in namespace:
            continue  # stays in the literal text around it
        if kind is not None and kind not in namespace:
            continue
        yield template[position : match.start()]
        position = match.end()
        if kind is not None:
            yield CellField(kind, int(match.group(3)))
        elif name is None:
            yield matched[0]  # "{{" or "}}"
        else:
            yield Field(name, namespace[name])
    yield template[position:]
