"""What the notebook's variables put into a prompt: ``{name}`` interpolation.

``{name}`` is replaced by the value of a variable that exists in the user namespace. Anything
else in braces stays as typed, so code, JSON and set literals pasted into a prompt survive:
only a name that is defined is touched. ``{{`` and ``}}`` write a literal brace, for the rare
prompt that must show ``{name}`` while ``name`` is defined.

Values are bounded: a string goes in as it is up to ``MAX_TEXT`` characters, any other object
as a repr cut at ``MAX_REPR`` characters, with a marker that says how much was left out, so a
stray ``{big_list}`` never pushes megabytes into a request.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Mapping

__all__ = ["MAX_REPR", "MAX_TEXT", "bounded_text", "interpolate", "referenced_names"]

MAX_TEXT = 100_000
"""Characters of a string variable inserted before it is cut."""
MAX_REPR = 4_000
"""Characters of another object's repr inserted before it is cut."""

_FIELD = re.compile(r"\{\{|\}\}|\{([^\W\d]\w*)\}")

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


def referenced_names(template: str, namespace: Mapping[str, object]) -> list[str]:
    """The names ``interpolate`` would replace, in order of first use."""
    names: dict[str, None] = {}
    for match in _FIELD.finditer(template):
        name = match.group(1)
        if name is not None and name in namespace:
            names[name] = None
    return list(names)


def interpolate(
    template: str,
    namespace: Mapping[str, object],
    *,
    format_value: Callable[[str, object], str] | None = None,
) -> str:
    """Replace each ``{name}`` defined in ``namespace``; leave every other brace alone.

    ``format_value(name, value)`` turns a value into text (default: :func:`bounded_text`).
    """

    def substitute(match: re.Match[str]) -> str:
        matched = match.group(0)
        if matched in ("{{", "}}"):
            return matched[0]
        name = match.group(1)
        if name not in namespace:
            return matched
        value = namespace[name]
        return format_value(name, value) if format_value else bounded_text(value)

    return _FIELD.sub(substitute, template)
