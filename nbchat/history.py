"""The conversation of one notebook: turns keyed by cell, written through to a store.

A conversation is an ordered list of turns: a user message and the reply to it. In a notebook a
turn belongs to the cell that asked for it, so the conversation follows the notebook:

* running a new cell appends a turn;
* running a cell again replaces that cell's turn *in place*, and the request for it carries only
  the turns before it (:meth:`History.before`), as if the cells below had not run yet;
* when the re-run cell's prompt is new, the later turns (those with a cell id) were answered
  from its old text: they are marked :attr:`~nbchat.turn.Turn.stale`, stored so, and left out
  of requests until their own cells run again (which makes a fresh, unmarked turn);
* without a cell id (terminal IPython) turns simply append.

Every change is written, in one transaction, to a :class:`~nbchat.store.HistoryStore` under the
notebook's :func:`~nbchat.store.notebook_key`, so that a restarted kernel picks its conversation
up again. A path the store does not know may be a renamed or copied notebook:
:meth:`History.claim` looks its cells up (:mod:`nbchat.identity`) before its first turn is kept.
A commit changes the memory only once its write has committed or failed: an interrupt
(Kernel → Interrupt) in the middle of the write rolls both back, so memory and file never
disagree about which turns there are.

Two kernels on one notebook (two tabs) write one conversation. Neither takes a position from its
own memory: the store appends after whatever is stored and replaces a cell's turn only in that
cell's row (see :mod:`nbchat.schema`), so the file holds both kernels' turns in commit order.
Each kernel's memory holds the turns it loaded and those it committed; a restart reads them all.

Storage is a convenience, never a reason to fail a cell. When the file cannot be opened or
written, :class:`History` logs one warning on the ``nbchat`` logger, carries on in memory, and
tries again at the next change, writing what it missed; a turn that cannot be stored at all (a
lone surrogate) is left out with a warning and the next one is saved. A file that may only be
read is read, with one line saying new turns will not be kept.
``scrub`` runs over every text before it is kept, in memory as on disk.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from . import identity
from .prompt import Attachment
from .store import Change, Conversation, HistoryStore, Written
from .turn import Turn, TurnStatus

__all__ = ["History", "Turn", "TurnStatus", "scrub_prompt"]

log = logging.getLogger("nbchat")

_STORE_ERRORS = (sqlite3.Error, OSError, ValueError)


class History:
    """The current conversation of one notebook.

    Kept in memory and, when there is a store, written through to it one transaction per change,
    so that a new ``History`` for the same notebook key (a restarted kernel makes one) starts
    where this one stopped. If the store fails, one warning is logged, the conversation goes on
    in memory, and the next change tries the store again. Safe to use from several threads.
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
        # What the store has not got yet: turns in commit order, the system prompt, and
        # whether the next write starts a new conversation.
        self._unsaved: tuple[Turn, ...] = ()
        self._system_unsaved = False
        self._new = False
        self._failing = False  # a warning is out; the next write that works says so
        self._unclaimed = False  # the store knew no conversation of this notebook at load
        if store is not None:
            self._load(store)

    def __repr__(self) -> str:
        return f"<History {self._key!r}: {len(self)} turns>"

    @property
    def turns(self) -> tuple[Turn, ...]:
        """All turns, in order."""
        with self._lock:
            return tuple(self._turns)

    @property
    def key(self) -> str:
        """The notebook key the conversation is stored under."""
        return self._key

    @property
    def store(self) -> HistoryStore | None:
        """Where the conversation is written (None: in memory only, or a read-only file)."""
        return self._store

    @property
    def conversation_id(self) -> int | None:
        """The stored conversation's id; None before it is first written."""
        with self._lock:
            return self._conversation_id

    @property
    def unclaimed(self) -> bool:
        """The store knew no conversation of this notebook's path, and none was looked for
        yet: :meth:`claim` may find the one it had under another path."""
        return self._unclaimed

    def claim(self, cell_ids: Sequence[str]) -> None:
        """Before the first turn of a notebook the store does not know: if these cells (the
        saved notebook's, or the running cell's) belong to a conversation of another path, go
        on with it (a rename) or with a copy of it (a copy), by :func:`nbchat.identity.follow`,
        and say so in one line. Looked for once: later calls do nothing."""
        store = self._store
        if not self._unclaimed or store is None or not cell_ids:
            return
        with self._lock:
            if not self._unclaimed:
                return
            self._unclaimed = False
            try:
                followed = identity.follow(store, self._key, cell_ids)
            except _STORE_ERRORS as error:
                self._warn(store, error)
                return
            if followed is None or self._turns:
                return
            self.switch(followed.conversation)
        log.warning("%s", followed.message(self._key))

    def switch(self, conversation: Conversation) -> None:
        """Go on with ``conversation``, as the store holds it: its turns and system prompt
        replace the ones in memory, and the next turns are written to it."""
        with self._lock:
            self._unclaimed = False
            self._turns = list(conversation.turns)
            self._system = conversation.system
            self._conversation_id = conversation.id
            self._unsaved, self._system_unsaved, self._new = (), False, False

    def clean(self, turn: Turn) -> Turn:
        """``turn`` as it is kept: ``scrub`` run over its prompt and reply (see
        :func:`scrub_prompt` for what becomes of the attachments)."""
        prompt, attachments = scrub_prompt(self._scrub, turn.prompt, turn.attachments)
        return replace(turn, prompt=prompt, reply=self._scrub(turn.reply), attachments=attachments)

    @property
    def stored(self) -> bool:
        """The store holds a conversation of this notebook, an empty one too (after a reset):
        a notebook the store has seen is not rebuilt from its saved outputs."""
        with self._lock:
            return self._conversation_id is not None

    def before(self, cell_id: str | None) -> tuple[Turn, ...]:
        """What a request from this cell carries: the turns before the cell's own turn, if it
        has one, all turns otherwise (and for ``None``)."""
        with self._lock:
            return tuple(self._turns[: self._position(cell_id)])

    def commit(self, turn: Turn) -> Turn:
        """Put ``turn`` in place of its cell's turn, or at the end; and into the store.

        ``scrub`` runs over the prompt and the reply first (see :func:`scrub_prompt` for what
        becomes of the attachments), and what is kept in memory is the scrubbed turn too, so a
        pasted key is neither written nor sent again. Returns the turn as kept. An interrupt
        during the write propagates and leaves neither the memory nor the file changed.

        A cell's turn replaced with a new prompt marks the later turns stale, in the same write.
        """
        clean = self.clean(turn)
        with self._lock:
            turns = list(self._turns)
            position = self._position(clean.cell_id)
            changed = [clean]
            if position < len(turns):
                if turns[position].prompt != clean.prompt:
                    changed += _marked_stale(turns, position + 1)
                turns[position] = clean
            else:
                turns.append(clean)
            rewritten = {t.cell_id for t in changed if t.cell_id is not None}
            unsaved = tuple(t for t in self._unsaved if t.cell_id not in rewritten)
            self._save(unsaved=(*unsaved, *changed), system=self._system)
            self._turns = turns
        return clean

    def new_conversation(self) -> int | None:
        """Start afresh: no turns from now on; the older conversation stays in the store.

        The system prompt carries over. The new conversation is stored at once, so a restarted
        kernel finds it rather than the old one. Returns the stored id of the conversation
        left (for ``%chat open`` to bring it back), or None when it had no turns or none
        were stored.
        """
        with self._lock:
            if not self._turns:
                return None  # the current conversation is already empty
            left = self._conversation_id if self._store is not None else None
            self._save(unsaved=(), system=self._system, new=True)
            self._turns = []
            return left

    @property
    def system(self) -> str | None:
        """The system prompt, stored with the conversation so that it survives a restart."""
        with self._lock:
            return self._system

    @system.setter
    def system(self, value: str | None) -> None:
        clean = None if value is None else self._scrub(value)
        with self._lock:
            self._save(unsaved=self._unsaved, system=clean, set_system=True)

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

    def _load(self, store: HistoryStore) -> None:
        try:
            stored = store.latest(self._key)
        except _STORE_ERRORS as error:
            self._warn(store, error)
            return
        if stored is not None:
            self._conversation_id = stored.id
            self._turns = list(stored.turns)
            self._system = stored.system
        else:
            self._unclaimed = identity.is_notebook_path(self._key)
        if store.read_only:
            self._store = None
            log.warning(
                "nbchat: %s is read-only: the conversation so far is read, new turns will not"
                " be kept",
                store.path,
            )

    def _save(
        self,
        *,
        unsaved: tuple[Turn, ...],
        system: str | None,
        set_system: bool = False,
        new: bool = False,
    ) -> None:
        """Write what the store lacks, then (and only then) take on the new state.

        The write either commits or fails as a whole; a failure of the store is warned about
        and the state kept for the next try, an interrupt leaves the state as it was.
        """
        new = new or self._new
        set_system = set_system or self._system_unsaved
        store = self._store
        idle = self._conversation_id is None and not (
            new or unsaved or (set_system and system is not None)
        )
        written: Written | None = None
        if store is not None and not idle:
            change = Change(
                None if new else self._conversation_id,
                new=new,
                system=system,
                set_system=set_system,
                turns=unsaved,
            )
            try:
                written = store.write(self._key, change)
            except _STORE_ERRORS as error:
                if not self._failing:
                    self._warn(store, error)
        self._system = system
        if new:
            self._conversation_id = None
        if written is None or store is None:
            if store is not None:
                self._unsaved, self._system_unsaved, self._new = unsaved, set_system, new
            return
        self._conversation_id = written.conversation_id
        self._unsaved, self._system_unsaved, self._new = (), False, False
        self._unclaimed = False  # the notebook has a conversation of its own now
        if self._failing:
            self._failing = False
            log.warning("nbchat: the conversation history is saved to %s again", store.path)
        for skipped in written.skipped:
            log.warning(
                "nbchat: one turn (cell %s) cannot be saved: its text is not valid Unicode;"
                " it stays in memory, later turns are saved",
                skipped.cell_id,
            )
        if written.system_skipped:
            log.warning("nbchat: the system prompt cannot be saved: it is not valid Unicode")

    def _warn(self, store: HistoryStore, error: BaseException) -> None:
        self._failing = True
        log.warning(
            "nbchat: the conversation history cannot be kept in %s (%s: %s); it stays in"
            " memory and is saved once the file can be written again",
            store.path,
            type(error).__name__,
            error,
        )


def _marked_stale(turns: list[Turn], start: int) -> list[Turn]:
    """Mark the turns from ``start`` on stale, in place; returns those newly marked. Turns
    without a cell id are left alone: they cannot be re-run to be refreshed, nor rewritten in
    the store (a turn is replaced only by its cell id)."""
    marked = []
    for position in range(start, len(turns)):
        turn = turns[position]
        if turn.cell_id is not None and not turn.stale:
            turns[position] = replace(turn, stale=True)
            marked.append(turns[position])
    return marked


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
