"""The conversation of one notebook: turns keyed by cell, written through to a store.

A conversation is an ordered list of turns: a user message and the reply to it. In a notebook a
turn belongs to the cell that asked for it, so the conversation follows the notebook:

* running a new cell appends a turn;
* running a cell again replaces that cell's turn *in place*, and the request for it carries only
  the turns before it (:meth:`History.before`), as if the cells below had not run yet;
* without a cell id (terminal IPython) turns simply append.

Every change is written, in one transaction, to a :class:`~nbchat.store.HistoryStore` under the
notebook's :func:`~nbchat.store.notebook_key`, so that a restarted kernel picks its conversation
up again. Storage is a convenience, never a reason to fail a cell: when the file cannot be opened
or written, :class:`History` logs one warning on the ``nbchat`` logger and carries on in memory.
``scrub`` runs over every text before it is kept, in memory as on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TypeVar

from .prompt import Attachment
from .store import HistoryStore
from .turn import Turn, TurnStatus

__all__ = ["History", "Turn", "TurnStatus", "scrub_prompt"]

log = logging.getLogger("nbchat")

_T = TypeVar("_T")


class History:
    """The current conversation of one notebook.

    Kept in memory and, when there is a store, written through to it one transaction per change,
    so that a new ``History`` for the same notebook key (a restarted kernel makes one) starts
    where this one stopped. If the store fails, one warning is logged and the conversation goes
    on in memory. Safe to use from several threads.
    """

    def __init__(
        self,
        store: HistoryStore | None = None,
        notebook_key: str = "",
        *,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self._store = store
        self._key = notebook_key
        self._scrub: Callable[[str], str] = scrub if scrub is not None else _unchanged
        self._lock = threading.RLock()
        self._turns: list[Turn] = []
        self._system: str | None = None
        self._conversation_id: int | None = None
        stored = self._stored(lambda store: store.latest(notebook_key))
        if stored is not None:
            self._conversation_id = stored.id
            self._turns = list(stored.turns)
            self._system = stored.system

    def __repr__(self) -> str:
        return f"<History {self._key!r}: {len(self)} turns>"

    @property
    def turns(self) -> tuple[Turn, ...]:
        """All turns, in order."""
        with self._lock:
            return tuple(self._turns)

    def before(self, cell_id: str | None) -> tuple[Turn, ...]:
        """What a request from this cell carries: the turns before the cell's own turn, if it
        has one, all turns otherwise (and for ``None``)."""
        with self._lock:
            return tuple(self._turns[: self._position(cell_id)])

    def commit(self, turn: Turn) -> Turn:
        """Put ``turn`` in place of its cell's turn, or at the end; and into the store.

        ``scrub`` runs over the prompt and the reply first (see :func:`scrub_prompt` for what
        becomes of the attachments), and what is kept in memory is the scrubbed turn too, so a
        pasted key is neither written nor sent again. Returns the turn as kept.
        """
        prompt, attachments = scrub_prompt(self._scrub, turn.prompt, turn.attachments)
        clean = replace(turn, prompt=prompt, reply=self._scrub(turn.reply), attachments=attachments)
        with self._lock:
            position = self._position(clean.cell_id)
            if position < len(self._turns):
                self._turns[position] = clean
            else:
                self._turns.append(clean)
            conversation_id = self._conversation_id
            if conversation_id is None:
                turns, system = tuple(self._turns), self._system
                self._conversation_id = self._stored(
                    lambda store: store.create_conversation(self._key, system=system, turns=turns)
                )
            else:
                self._stored(lambda store: store.put_turn(conversation_id, position, clean))
        return clean

    def new_conversation(self) -> None:
        """Start afresh: no turns from now on; the older conversation stays in the store.

        The system prompt carries over. The new conversation is stored at once, so a restarted
        kernel finds it rather than the old one.
        """
        with self._lock:
            if not self._turns:
                return  # the current conversation is already empty
            self._turns = []
            system = self._system
            self._conversation_id = self._stored(
                lambda store: store.create_conversation(self._key, system=system)
            )

    @property
    def system(self) -> str | None:
        """The system prompt, stored with the conversation so that it survives a restart."""
        with self._lock:
            return self._system

    @system.setter
    def system(self, value: str | None) -> None:
        clean = None if value is None else self._scrub(value)
        with self._lock:
            self._system = clean
            conversation_id = self._conversation_id
            if conversation_id is not None:
                self._stored(lambda store: store.set_system(conversation_id, clean))
            elif clean is not None or self._turns:
                turns = tuple(self._turns)
                self._conversation_id = self._stored(
                    lambda store: store.create_conversation(self._key, system=clean, turns=turns)
                )

    def last(self) -> Turn | None:
        """The turn at the end of the conversation (a re-run cell keeps its earlier place)."""
        with self._lock:
            return self._turns[-1] if self._turns else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._turns)

    def __iter__(self) -> Iterator[Turn]:
        return iter(self.turns)

    def _position(self, cell_id: str | None) -> int:
        """Where this cell's turn is, or goes: its current place, else the end."""
        if cell_id is not None:
            for position, turn in enumerate(self._turns):
                if turn.cell_id == cell_id:
                    return position
        return len(self._turns)

    def _stored(self, action: Callable[[HistoryStore], _T]) -> _T | None:
        """``action(store)``; if the store fails, warn once and go on in memory only."""
        store = self._store
        if store is None:
            return None
        try:
            return action(store)
        except (sqlite3.Error, OSError, ValueError) as error:
            self._store = None
            log.warning(
                "nbchat: the conversation history cannot be kept in %s (%s: %s); "
                "it stays in memory and will not survive a kernel restart",
                store.path,
                type(error).__name__,
                error,
            )
            return None


def scrub_prompt(
    scrub: Callable[[str], str], prompt: str, attachments: tuple[Attachment, ...]
) -> tuple[str, tuple[Attachment, ...]]:
    """``scrub(prompt)``, with the attachments moved so that each still covers its summary.

    The text is always exactly ``scrub(prompt)``. When that changes the prompt and it has
    attachments, the typed pieces and the summaries are scrubbed one by one and the spans laid
    out again over the scrubbed pieces, so a summary that grew or shrank (or follows text that
    did) keeps its fold. Should the pieces joined differ from the whole prompt scrubbed (a key
    across the edge of a summary), the attachments are dropped: no fold is better than a fold
    over the wrong text.
    """
    whole = scrub(prompt)
    if whole == prompt or not attachments:
        return whole, attachments
    pieces: list[str] = []
    moved: list[Attachment] = []
    length = position = 0
    for attachment in attachments:
        before = scrub(prompt[position : attachment.start])
        summary = scrub(prompt[attachment.start : attachment.end])
        start = length + len(before)
        moved.append(replace(attachment, start=start, end=start + len(summary)))
        pieces += (before, summary)
        length = start + len(summary)
        position = attachment.end
    pieces.append(scrub(prompt[position:]))
    if "".join(pieces) != whole:
        return whole, ()
    return whole, tuple(moved)


def _unchanged(text: str) -> str:
    return text
