"""A reply in terminal IPython: the text streamed to stdout as it arrives, then a footer.

Terminal IPython cannot show HTML, so the Markdown source is written as it comes, only the
pieces that are new since the last chunk (never the whole reply again), and the footer follows
in :mod:`nbchat.views`' words. A reply that failed or was interrupted before any text prints
nothing here, not even a footer: the magic's one-line ``UsageError`` says all there is to say.

Everything written shows its control characters instead of sending them
(:func:`nbchat.options.shown`): a model's text reaching a terminal raw could set the clipboard
(OSC 52), hide a link (OSC 8) or clear the screen.
"""

from __future__ import annotations

import sys
from typing import TextIO

from . import views
from .options import shown
from .protocol import Choice
from .reply import Reply

__all__ = ["PlainDisplay"]


class PlainDisplay:
    """Streams a reply as plain text, for shells that cannot show HTML (terminal IPython)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._pieces_written = 0
        self._chars_written = 0

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _write(self, out: TextIO, text: str) -> None:
        out.write(shown(text))

    def __call__(self, reply: Reply) -> None:
        out = self._out()
        if reply.status == "pending":
            for note in reply.message.notes:
                self._write(out, f"[{views.size_note_text(note)}]\n")
            return
        if reply.status == "streaming":
            pieces = reply.text_pieces()
            new = "".join(pieces[self._pieces_written :])
            self._pieces_written = len(pieces)
            if new:
                self._write(out, new)
                self._chars_written += len(new)
                out.flush()
            return
        texts = reply.texts() or [""]
        if reply.status != "done" and not any(texts):
            return  # failed or stopped before any text: the magic's one line says it all
        choices = reply.result.choices

        def choice(index: int) -> Choice | None:
            return choices[index] if index < len(choices) else None

        text = texts[0]
        self._write(out, text[self._chars_written :])
        self._chars_written = len(text)
        extras = views.choice_markdown("", choice(0))  # a refusal, tool calls
        if extras:
            self._write(out, f"\n\n{extras}" if text else extras)
        for index, other in enumerate(texts[1:], start=1):
            heading = views.choice_heading(index + 1, markdown=True)
            self._write(out, f"\n\n{heading}\n{views.choice_markdown(other, choice(index))}")
        self._write(out, f"\n{views.footer_text(views.Footing.of_reply(reply))}\n")
        out.flush()
