"""A prompt as data: the text sent, and where in it each attached summary sits.

A user message is sent as one string, but the faces show it in parts: what was typed, and each
dataframe or array summary folded away under its label. :class:`Prompt` keeps both, so no face
ever parses a summary back out of the text, and history stores the same spans with the turn.

:func:`compose` is the one place a message is made from what the user gave: the typed text with
``{name}`` filled from the namespace (:mod:`nbchat.context`), then the summaries asked for by
``--df`` or the panel's context picker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cells import CellRange
    from .images import ImagePart
    from .sizes import SizeNote
    from .tracebacks import LastError

__all__ = ["Attachment", "Prompt", "compose"]

_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Attachment:
    """A variable's summary inside a prompt, shown folded under its label."""

    name: str
    """The variable it describes."""
    label: str
    """What a transcript shows instead of the summary, e.g. ``sales · pandas DataFrame ·
    1,000 × 5``."""
    start: int
    """Where the summary begins in :attr:`Prompt.text`."""
    end: int
    """Where it ends (exclusive)."""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "label": self.label, "start": self.start, "end": self.end}

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> Attachment:
        start, end = raw.get("start"), raw.get("end")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start <= end:
            raise ValueError(f"an attachment needs 0 ≤ start ≤ end, got {start!r}, {end!r}")
        return cls(str(raw.get("name", "")), str(raw.get("label", "")), start, end)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A user message: :attr:`text` exactly as sent, and the summaries it holds."""

    text: str
    attachments: tuple[Attachment, ...] = ()
    notes: tuple[SizeNote, ...] = ()
    """Values cut short and long texts in it, which the user is told of (:mod:`nbchat.sizes`)."""
    images: tuple[ImagePart, ...] = ()
    """Images sent after the text as content parts; each has its marker in :attr:`text`."""

    def parts(self) -> Iterator[tuple[str, Attachment | None]]:
        """The text in order, as ``(piece, None)`` for typed text and ``(summary,
        attachment)`` for each summary; blank typed pieces between summaries are left out."""
        position = 0
        for attachment in self.attachments:
            before = self.text[position : attachment.start]
            if before.strip():
                yield before.strip(), None
            yield self.text[attachment.start : attachment.end], attachment
            position = attachment.end
        rest = self.text[position:]
        if rest.strip():
            yield rest.strip(), None


class _Builder:
    """Joins text and summaries, noting where each summary lands."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.length = 0
        self.attachments: list[Attachment] = []

    def text(self, piece: str) -> None:
        self.pieces.append(piece)
        self.length += len(piece)

    def summary(self, name: str, label: str, summary: str) -> None:
        self.attachments.append(Attachment(name, label, self.length, self.length + len(summary)))
        self.text(summary)

    def strip(self) -> tuple[str, list[Attachment]]:
        """The joined text without surrounding blanks, spans moved and clipped to match."""
        joined = "".join(self.pieces)
        lead = len(joined) - len(joined.lstrip())
        text = joined.strip()
        spans = []
        for a in self.attachments:
            start = min(max(a.start - lead, 0), len(text))
            end = min(max(a.end - lead, 0), len(text))
            if end > start:
                spans.append(Attachment(a.name, a.label, start, end))
        return text, spans


def compose(
    typed: str,
    namespace: Mapping[str, object],
    *,
    fill: bool = True,
    frames: Sequence[str] = (),
    tokens: int = 1000,
    rows: int = 0,
    images: Sequence[str | ImagePart] = (),
    cells: Sequence[CellRange] = (),
    error: LastError | None = None,
) -> Prompt:
    """The message for ``typed``: each defined ``{name}`` (and ``{In[n]}``, ``{Out[n]}``)
    filled in (unless ``fill`` is False: then it goes as typed), then the cells named in
    ``cells`` (:mod:`nbchat.cells`), the context of ``error`` (:mod:`nbchat.tracebacks`) and a
    summary of each dataframe named in ``frames``, separated by blank lines, then a marker for
    each image in ``images`` (a variable's name, or a part already made, such as a cell's
    output). A ``{name}`` whose value is an image becomes its marker, and every image is sent
    as a part after the text (:mod:`nbchat.images`).

    Raises a :class:`~nbchat.errors.ContextError` (one line, for the user) when a name in
    ``frames`` is undefined or not a frame, a frame cannot be described, or a cell named does
    not exist.
    """
    from .context import CellField, Field, fields, frame_attachment, value_text
    from .images import image_attachment, image_part, is_image
    from .sizes import typed_note, value_note

    builder = _Builder()
    notes: list[SizeNote] = []
    parts: list[ImagePart] = []
    typed_characters = 0
    for piece in fields(typed, namespace) if fill else (typed,):
        if isinstance(piece, str):
            builder.text(piece)
            typed_characters += len(piece)
            continue
        if isinstance(piece, Field) and is_image(piece.value):  # {fig}, and {_} after a plot
            parts.append(image_part(piece.name, piece.value))
            builder.text(parts[-1].marker)
            continue
        if isinstance(piece, CellField) or piece.name == "_":
            from .cells import field_piece

            cell = field_piece(piece, namespace, tokens=tokens, rows=rows, prompt=typed)
            if cell is not None:
                builder.summary(cell.name, cell.label, cell.text)
                continue
        assert isinstance(piece, Field)
        text, label = value_text(piece.name, piece.value, prompt=typed, tokens=tokens, rows=rows)
        if label is None:
            builder.text(text)
            note = value_note(piece.name, piece.value, text)
            if note is not None:
                notes.append(note)
        else:
            builder.summary(piece.name, label, text)
    text, spans = builder.strip()
    builder = _Builder()
    builder.text(text)
    if cells:
        from .cells import pieces_for

        for cell in pieces_for(cells, namespace, tokens=tokens, rows=rows, prompt=typed):
            builder.text(_SEPARATOR)
            builder.summary(cell.name, cell.label, cell.text)
    if error is not None:
        from .tracebacks import error_context

        context = error_context(error, namespace, tokens=tokens, rows=rows, question=typed)
        builder.text(_SEPARATOR)
        builder.summary("error", context.label, context.text)
    for name in frames:
        summary, label = frame_attachment(name, namespace, prompt=typed, tokens=tokens, rows=rows)
        builder.text(_SEPARATOR)
        builder.summary(name, label, summary)
    for number, image in enumerate(images):
        parts.append(image_attachment(image, namespace) if isinstance(image, str) else image)
        builder.text("\n" if number else _SEPARATOR)
        builder.text(parts[-1].marker)
    message, frame_spans = builder.strip()
    pasted = typed_note(typed_characters, typed)
    return Prompt(
        message,
        (*spans, *frame_spans),
        (*notes, *([pasted] if pasted else [])),
        tuple(parts),
    )
