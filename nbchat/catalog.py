"""The store's conversations as a collection: listed, found by a cell, moved, copied, made.

:class:`~nbchat.history.History` reads and writes one conversation at a time; the commands
that look across conversations (``%chat conversations``, ``%chat open``, ``%chat import``) and
the rule that lets a conversation follow its notebook (:mod:`nbchat.identity`) need a few more
queries. They live here, each on a connection inside a transaction the caller holds
(:meth:`~nbchat.store.HistoryStore.transaction`), so that a caller can do several in one
transaction: find, move and read back a conversation, or nothing at all.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from .schema import put_turn, read_turns, recency
from .store import Conversation
from .turn import Turn

__all__ = [
    "Origin",
    "Summary",
    "copy_conversation",
    "create_conversation",
    "holders",
    "read_conversation",
    "rekey",
    "reopen",
    "summaries",
]

Origin = Literal["copy", "open", "import"]
"""How a conversation that did not start in its notebook came to be: copied along with a
copied notebook, copied from another notebook by ``%chat open``, or imported from a file."""

_CHUNK = 500  # cell ids per query: well under SQLite's limit on bound values


@dataclass(frozen=True, slots=True)
class Summary:
    """One line of ``%chat conversations``: a conversation without its turns."""

    id: int
    notebook_key: str
    created: float
    last_active: float
    """When its latest turn was made, or when it was started or reopened if later."""
    turns: int
    first_prompt: str
    """The first 200 characters of its first prompt ("" when it has no turns)."""
    model: str
    """The model of its latest turn ("" when it has no turns)."""
    parent: int | None = None
    """The conversation it was copied from, if it was."""
    origin: str | None = None
    """How it came to be (:data:`Origin`); None when it started in its notebook."""


_SUMMARY = """
    SELECT c.id, c.notebook_key, c.created,
           MAX(c.created, COALESCE(c.opened, c.created), COALESCE(MAX(t.created), 0)),
           COUNT(t.position),
           (SELECT SUBSTR(prompt, 1, 200) FROM turns f
             WHERE f.conversation_id = c.id ORDER BY f.position LIMIT 1),
           (SELECT model FROM turns m
             WHERE m.conversation_id = c.id ORDER BY m.position DESC LIMIT 1),
           c.parent, c.origin
      FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id
"""


def _summary(row: Sequence[object]) -> Summary:
    conversation_id, key, created, active, turns, first, model, parent, origin = row
    return Summary(
        id=int(cast(int, conversation_id)),
        notebook_key=str(key),
        created=float(cast(float, created)),
        last_active=float(cast(float, active)),
        turns=int(cast(int, turns)),
        first_prompt=first if isinstance(first, str) else "",
        model=model if isinstance(model, str) else "",
        parent=parent if isinstance(parent, int) else None,
        origin=origin if isinstance(origin, str) else None,
    )


def summaries(
    db: sqlite3.Connection, notebook_key: str, *, elsewhere: int = 5
) -> tuple[list[Summary], list[Summary]]:
    """The notebook's conversations, most recent first, and the ``elsewhere`` most recently
    active conversations with turns of other notebooks (looked for among the 50 newest)."""
    # Only constants and recency()'s clause are formatted into these queries; values are bound.
    mine = db.execute(
        f"{_SUMMARY} WHERE c.notebook_key = ? GROUP BY c.id ORDER BY {recency(db, 'c')}",
        (notebook_key,),
    ).fetchall()
    others = db.execute(
        f"{_SUMMARY} WHERE c.id IN (SELECT id FROM conversations WHERE notebook_key != ?"  # noqa: S608
        " ORDER BY id DESC LIMIT 50) GROUP BY c.id HAVING COUNT(t.position) > 0"
        " ORDER BY 4 DESC, c.id DESC LIMIT ?",
        (notebook_key, elsewhere),
    ).fetchall()
    return [_summary(row) for row in mine], [_summary(row) for row in others]


def holders(db: sqlite3.Connection, cell_ids: Iterable[str]) -> list[tuple[str, int]]:
    """The notebooks whose conversations hold a turn of one of these cells: each notebook key
    with its newest conversation holding one, newest first. Imported conversations are left
    out: a file imported elsewhere says nothing of where a notebook went. Uses the
    ``turns_by_cell`` index: one indexed look-up per cell id."""
    ids = list(dict.fromkeys(cell_ids))
    newest: dict[str, int] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        rows = db.execute(
            "SELECT c.notebook_key, MAX(c.id) FROM turns t"  # noqa: S608 - placeholders only
            " JOIN conversations c ON c.id = t.conversation_id"
            f" WHERE t.cell_id IN ({marks}) AND c.origin IS NOT 'import'"
            " GROUP BY c.notebook_key",
            chunk,
        ).fetchall()
        for key, conversation_id in rows:
            newest[key] = max(newest.get(key, 0), int(conversation_id))
    return sorted(newest.items(), key=lambda item: -item[1])


def read_conversation(db: sqlite3.Connection, conversation_id: int) -> Conversation | None:
    """The conversation with its turns, or None when there is no such id."""
    row = db.execute(
        "SELECT id, notebook_key, created, system FROM conversations WHERE id = ?",
        (conversation_id,),
    ).fetchone()
    if row is None:
        return None
    found, key, created, system = row
    return Conversation(found, key, created, system, read_turns(db, found))


def rekey(db: sqlite3.Connection, old_key: str, new_key: str) -> int:
    """Move every conversation of ``old_key`` to ``new_key`` (a renamed or moved notebook);
    returns how many moved."""
    cursor = db.execute(
        "UPDATE conversations SET notebook_key = ? WHERE notebook_key = ?", (new_key, old_key)
    )
    return cursor.rowcount


def copy_conversation(
    db: sqlite3.Connection, source_id: int, notebook_key: str, *, origin: Origin
) -> Conversation:
    """A new conversation of ``notebook_key`` holding a copy of ``source_id``'s turns and
    system prompt, its parent recorded; the source is left as it was."""
    cursor = db.execute(
        "INSERT INTO conversations (notebook_key, created, system, parent, origin)"
        " SELECT ?, ?, system, id, ? FROM conversations WHERE id = ?",
        (notebook_key, time.time(), origin, source_id),
    )
    new_id = cast(int, cursor.lastrowid)
    db.execute(
        "INSERT INTO turns (conversation_id, position, cell_id, prompt, reply, status, model,"
        " usage, created, attachments, details)"
        " SELECT ?, position, cell_id, prompt, reply, status, model, usage, created,"
        " attachments, details FROM turns WHERE conversation_id = ?",
        (new_id, source_id),
    )
    copied = read_conversation(db, new_id)
    assert copied is not None  # made just now, in this transaction
    return copied


def create_conversation(
    db: sqlite3.Connection,
    notebook_key: str,
    *,
    system: str | None,
    turns: Sequence[Turn],
    origin: Origin,
) -> tuple[Conversation, int]:
    """A new conversation of ``notebook_key`` with these turns, in order; returns it with the
    number of turns left out because a text of theirs cannot be stored (a lone surrogate)."""
    try:
        (system or "").encode("utf-8")
    except UnicodeEncodeError:
        system = None  # as History does with a system prompt that cannot be stored
    cursor = db.execute(
        "INSERT INTO conversations (notebook_key, created, system, origin) VALUES (?, ?, ?, ?)",
        (notebook_key, time.time(), system, origin),
    )
    new_id = cast(int, cursor.lastrowid)
    skipped = 0
    for turn in turns:
        try:
            put_turn(db, new_id, turn)
        except UnicodeEncodeError:
            skipped += 1
    made = read_conversation(db, new_id)
    assert made is not None  # made just now, in this transaction
    return made, skipped


def reopen(db: sqlite3.Connection, conversation_id: int) -> None:
    """Make the conversation its notebook's current one (the most recent), as of now."""
    db.execute("UPDATE conversations SET opened = ? WHERE id = ?", (time.time(), conversation_id))
