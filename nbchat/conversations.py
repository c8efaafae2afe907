"""Seeing, reopening and importing a session's stored conversations.

A session goes on with one conversation at a time; the store keeps every other one (after
``%chat reset``, the panel's New conversation, an import, other notebooks). Here they are
listed (:func:`listing`), made current again (:func:`open_conversation`) or started from an
exported file (:func:`import_conversation`). Each switch tells the session's faces through
``conversation_changed`` and answers with the id of the conversation it left, so that a face
can say how to come back: ``%chat open ID``.

What opening means depends on whose the conversation is. One of this notebook's own is made
current again, in place: a restart finds it. One of another notebook is copied into this
notebook (its parent recorded), so that two notebooks never write one conversation.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .catalog import (
    Summary,
    copy_conversation,
    create_conversation,
    read_conversation,
    reopen,
    summaries,
)
from .errors import BusyError, ConversationError
from .store import Conversation, HistoryStore
from .turn import Turn

if TYPE_CHECKING:
    from .session import ChatSession

__all__ = ["Listing", "Switched", "import_conversation", "listing", "open_conversation"]

_STORE_ERRORS = (sqlite3.Error, OSError)


@dataclass(frozen=True, slots=True)
class Listing:
    """What ``%chat conversations`` shows."""

    notebook_key: str
    current: int | None
    """The id of the session's conversation (None before it is stored)."""
    mine: list[Summary]
    """This notebook's conversations, most recent first."""
    elsewhere: list[Summary]
    """Recently active conversations of other notebooks."""


@dataclass(frozen=True, slots=True)
class Switched:
    """A conversation the session now goes on with."""

    conversation: Conversation
    left: int | None
    """The id of the conversation the session was in (None: it had none stored)."""
    copied_from: Summary | None = None
    """When it is a copy (another notebook's, opened here), the conversation copied."""
    skipped: int = 0
    """Imported turns left out because their text cannot be stored (a lone surrogate)."""


def _store(session: ChatSession, doing: str) -> HistoryStore:
    store = session.history.store
    if store is None:
        raise ConversationError(
            f"cannot {doing}: this session keeps no history store",
            hint="the history is in memory only, or its file is read-only",
        )
    return store


def _unavailable(doing: str, error: BaseException) -> ConversationError:
    return ConversationError(
        f"cannot {doing}: the history store failed ({type(error).__name__}: {error})",
        hint="nothing changed",
    )


def listing(session: ChatSession, *, elsewhere: int = 5) -> Listing:
    """The notebook's conversations and the recent ones of other notebooks."""
    store = _store(session, "list the conversations")
    key = session.history.key
    try:
        with store.transaction(write=False) as db:
            mine, others = summaries(db, key, elsewhere=elsewhere)
    except _STORE_ERRORS as error:
        raise _unavailable("list the conversations", error) from None
    return Listing(key, session.history.conversation_id, mine, others)


def open_conversation(session: ChatSession, conversation_id: int) -> Switched:
    """Go on with stored conversation ``conversation_id``: this notebook's own is made current
    again; another notebook's is copied into this one. Raises :class:`ConversationError` when
    there is no such conversation, :class:`BusyError` while a reply streams."""
    _not_busy(session)
    store = _store(session, "open a conversation")
    history = session.history
    left = history.conversation_id if len(history) else None
    try:
        with store.transaction(write=True) as db:
            found = read_conversation(db, conversation_id)
            if found is None:
                raise ConversationError(
                    f"there is no conversation {conversation_id}",
                    hint="%chat conversations lists them",
                )
            copied_from: Summary | None = None
            if found.notebook_key == history.key:
                reopen(db, conversation_id)
                current = found
            else:
                copied_from = _summary_of(found)
                current = copy_conversation(db, conversation_id, history.key, origin="open")
    except _STORE_ERRORS as error:
        raise _unavailable("open a conversation", error) from None
    history.switch(current)
    session.events.emit("conversation_changed")
    return Switched(current, left, copied_from)


def import_conversation(
    session: ChatSession, system: str | None, turns: Sequence[Turn]
) -> Switched:
    """Start a new conversation of this notebook from ``turns`` (an export read back by
    :func:`nbchat.importer.read`), scrubbed as committed turns are; the one the session was
    in stays in the store."""
    _not_busy(session)
    store = _store(session, "import a conversation")
    history = session.history
    left = history.conversation_id if len(history) else None
    clean = [history.clean(turn) for turn in turns]
    scrubbed = session.scrub(system) if system else None
    try:
        with store.transaction(write=True) as db:
            made, skipped = create_conversation(
                db, history.key, system=scrubbed, turns=clean, origin="import"
            )
    except _STORE_ERRORS as error:
        raise _unavailable("import a conversation", error) from None
    history.switch(made)
    session.events.emit("conversation_changed")
    return Switched(made, left, skipped=skipped)


def _not_busy(session: ChatSession) -> None:
    if session.busy:
        raise BusyError(
            "A reply is streaming in this notebook", hint="wait for it, or stop it, then switch"
        )


def _summary_of(conversation: Conversation) -> Summary:
    turns = conversation.turns
    return Summary(
        id=conversation.id,
        notebook_key=conversation.notebook_key,
        created=conversation.created,
        last_active=max([conversation.created, *(t.created for t in turns)]),
        turns=len(turns),
        first_prompt=turns[0].prompt if turns else "",
        model=turns[-1].model if turns else "",
    )
