"""What the user is told about the size of a message: a value cut short, a very long paste.

:mod:`nbchat.context` cuts a long string variable at ``MAX_TEXT`` characters and a long repr at
``MAX_REPR``, with a marker the model reads. That is not enough: the user must see it too. A
:class:`SizeNote` records each such cut, and each value or typed text long enough to be worth a
word (:data:`LARGE_TEXT` characters), so that a face can show it above the reply and in the
message (the words are :mod:`nbchat.views`').
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .budget import estimate_text
from .context import MAX_REPR, MAX_TEXT

__all__ = ["LARGE_TEXT", "SizeNote", "typed_note", "value_note"]

LARGE_TEXT = 20_000
"""Characters of typed text (or of one value) from which the user is told its size."""

_MARKER = re.compile(r"… \[([\d,]+) more characters cut\]\Z")


@dataclass(frozen=True, slots=True)
class SizeNote:
    """A value cut short in a message, or text in it long enough to mention."""

    name: str | None
    """The variable of ``{name}``; None for the text typed (or pasted) into the message."""
    sent: int
    """Characters that went into the message."""
    total: int
    """Characters it had (its repr's, for an object other than a string)."""
    tokens: int
    """Estimated tokens of what was sent."""

    @property
    def cut(self) -> bool:
        return self.sent < self.total


def value_note(name: str, value: object, text: str) -> SizeNote | None:
    """The note for ``{name}`` filled with ``text``: a cut, or a large value; else None."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return SizeNote(name, MAX_TEXT, len(value), estimate_text(text))
    match = _MARKER.search(text)
    if match is not None and match.start() == MAX_REPR and not isinstance(value, str):
        more = int(match.group(1).replace(",", ""))
        return SizeNote(name, MAX_REPR, MAX_REPR + more, estimate_text(text))
    if len(text) >= LARGE_TEXT:
        return SizeNote(name, len(text), len(text), estimate_text(text))
    return None


def typed_note(typed_characters: int, typed: str) -> SizeNote | None:
    """The note for the text typed into a message, when it is long (a paste)."""
    if typed_characters < LARGE_TEXT:
        return None
    return SizeNote(None, typed_characters, typed_characters, estimate_text(typed))
