"""The on-disk format of the history: tables, versions, and a turn as a row.

Kept apart from :mod:`nbchat.store` (where the file lives, who may read it, how it is opened
and locked) so that a change of format is one module: its DDL, its migration and the code that
reads and writes the rows.

Schema, ``PRAGMA user_version = 3`` (a later version migrates from the number it finds)::

    conversations   id INTEGER PRIMARY KEY AUTOINCREMENT  -- larger id = newer conversation
                    notebook_key TEXT, created REAL, system TEXT NULL,
                    parent INTEGER NULL (the conversation this one was copied from; since 3),
                    origin TEXT NULL ('copy' of a copied notebook, 'open' of another
                    notebook's, 'import' from a file; NULL: started here; since 3),
                    opened REAL NULL (when ``%chat open`` last made it current; since 3)
    turns           conversation_id → conversations.id, position INTEGER (0, 1, …),
                    cell_id TEXT NULL, prompt TEXT, reply TEXT, status TEXT, model TEXT,
                    usage TEXT NULL (a JSON object), created REAL,
                    attachments TEXT NULL (a JSON list of Attachment.to_json(); since 2)
                    details TEXT NULL (a JSON object: refusal, tool_calls [{id, name,
                    arguments}], finish_reason, stale, request {fingerprint, host, model,
                    params, context}, replayed, images [ImagePart.to_json()] — each only when
                    there is one; since 2)
                    PRIMARY KEY (conversation_id, position)
                    INDEX turns_by_cell (cell_id): which conversations hold a cell (since 3)

A notebook's current conversation is its most recent one: the newest by ``created`` or
``opened`` (:func:`recency`), the larger id on a tie.

Nothing else is stored: no settings, no key. What is malformed in an optional column (usage,
attachments, details) reads back as absent, and a row that cannot be a turn at all is left out,
rather than failing the whole conversation.

Several kernels may write one conversation (two tabs on one notebook), so a write never takes a
position from the writer's memory: a new turn goes at ``MAX(position) + 1`` read inside the
write transaction, and a cell's turn is replaced only in the row holding that cell id. The
stored order is therefore the order in which the turns were committed, whoever committed them;
positions are never reused and no row is ever replaced by another cell's turn.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Mapping

from .fingerprint import RequestKey
from .images import ImagePart
from .prompt import Attachment
from .protocol import ToolCall
from .turn import Turn, spans_fit

__all__ = [
    "SCHEMA_VERSION",
    "latest_conversation",
    "migrate",
    "put_turn",
    "read_turns",
    "recency",
    "transaction",
]

SCHEMA_VERSION = 3
"""The schema this module writes; a file with a larger ``user_version`` is left alone."""


# Statements that bring a file from the version in the key to the next one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """
        CREATE TABLE IF NOT EXISTS conversations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            notebook_key TEXT NOT NULL,
            created REAL NOT NULL,
            system TEXT
        )
        """,
        """
        CREATE INDEX IF NOT EXISTS conversations_by_notebook
            ON conversations (notebook_key, id)
        """,
        """
        CREATE TABLE IF NOT EXISTS turns (
            conversation_id INTEGER NOT NULL REFERENCES conversations (id),
            position INTEGER NOT NULL CHECK (position >= 0),
            cell_id TEXT,
            prompt TEXT NOT NULL,
            reply TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('complete', 'interrupted')),
            model TEXT NOT NULL,
            usage TEXT,
            created REAL NOT NULL,
            PRIMARY KEY (conversation_id, position)
        )
        """,
    ),
    1: (
        "ALTER TABLE turns ADD COLUMN attachments TEXT",
        "ALTER TABLE turns ADD COLUMN details TEXT",
    ),
    2: (
        "ALTER TABLE conversations ADD COLUMN parent INTEGER",
        "ALTER TABLE conversations ADD COLUMN origin TEXT",
        "ALTER TABLE conversations ADD COLUMN opened REAL",
        "CREATE INDEX IF NOT EXISTS turns_by_cell ON turns (cell_id)",
    ),
}


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction: committed if the block ends normally, rolled back otherwise.

    A write takes the write lock up front (``IMMEDIATE``) so that waiting for another kernel
    falls under the busy timeout instead of failing half-way. A transaction left open (a second
    interrupt landed in the rollback) is rolled back first, so one interrupt cannot leave the
    connection unusable for every later write.
    """
    if db.in_transaction:
        db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def _user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def recency(db: sqlite3.Connection, alias: str = "") -> str:
    """How a notebook's conversations are ordered, most recent first: an ``ORDER BY`` clause
    of the ``conversations`` table (named ``alias`` in the query, if given), where a
    conversation reopened with ``%chat open`` is current again. A file older than version 3
    (one opened read-only is never migrated) has no ``opened`` column: there the newest id
    comes first."""
    c = f"{alias}." if alias else ""
    if _user_version(db) < 3:
        return f"{c}id DESC"
    return f"MAX({c}created, COALESCE({c}opened, {c}created)) DESC, {c}id DESC"


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`; refuse one written by a newer nbchat.

    All steps run in one transaction (SQLite's DDL is transactional), so a file is never left
    half-way between two versions.
    """
    if _user_version(db) == SCHEMA_VERSION:
        return
    with transaction(db, write=True):
        version = _user_version(db)  # read again: another kernel may have migrated meanwhile
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"schema version {version} is newer than this nbchat knows ({SCHEMA_VERSION})"
            )
        while version < SCHEMA_VERSION:
            for statement in _MIGRATIONS[version]:
                db.execute(statement)
            version += 1
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")


def latest_conversation(db: sqlite3.Connection, notebook_key: str) -> int | None:
    """The id of the notebook's most recent conversation (:func:`recency`), or None."""
    row = db.execute(
        f"SELECT id FROM conversations WHERE notebook_key = ? ORDER BY {recency(db)} LIMIT 1",  # noqa: S608
        (notebook_key,),
    ).fetchone()
    return None if row is None else int(row[0])


def put_turn(db: sqlite3.Connection, conversation_id: int, turn: Turn) -> int:
    """Store ``turn`` and return its position: in place of its cell's stored turn, if the cell
    has one, else after every stored turn. Run inside a write transaction, so that what is read
    here is still true when the row is written.

    Raises ``UnicodeEncodeError`` before touching the file when a text cannot be UTF-8 (a lone
    surrogate), so that the caller can skip this turn and go on with the transaction.
    """
    values = _row(turn)
    if turn.cell_id is not None:
        row = db.execute(
            "SELECT MIN(position) FROM turns WHERE conversation_id = ? AND cell_id = ?",
            (conversation_id, turn.cell_id),
        ).fetchone()
        if row is not None and row[0] is not None:
            position = int(row[0])
            db.execute(
                "UPDATE turns SET (cell_id, prompt, reply, status, model, usage, created,"
                " attachments, details) = (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " WHERE conversation_id = ? AND position = ?",
                (*values, conversation_id, position),
            )
            return position
    (position,) = db.execute(
        "SELECT COALESCE(MAX(position) + 1, 0) FROM turns WHERE conversation_id = ?",
        (conversation_id,),
    ).fetchone()
    # A plain INSERT: should the position be taken after all, this fails instead of replacing.
    db.execute(
        "INSERT INTO turns (conversation_id, position, cell_id, prompt, reply, status, model,"
        " usage, created, attachments, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (conversation_id, position, *values),
    )
    return int(position)


def _row(turn: Turn) -> tuple[object, ...]:
    """The turn's columns after ``position``, every text checked to be storable."""
    usage = None if turn.usage is None else json.dumps(dict(turn.usage), sort_keys=True)
    attachments = (
        json.dumps([a.to_json() for a in turn.attachments], ensure_ascii=False)
        if turn.attachments
        else None
    )
    values = (
        turn.cell_id,
        turn.prompt,
        turn.reply,
        turn.status,
        turn.model,
        usage,
        turn.created,
        attachments,
        _details_json(turn),
    )
    for value in values:
        if isinstance(value, str):
            value.encode("utf-8")  # raises on a lone surrogate, as binding it would
    return values


def _details_json(turn: Turn) -> str | None:
    details: dict[str, object] = {}
    if turn.refusal:
        details["refusal"] = turn.refusal
    if turn.tool_calls:
        details["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls
        ]
    if turn.finish_reason is not None:
        details["finish_reason"] = turn.finish_reason
    if turn.stale:
        details["stale"] = True
    if turn.request is not None:
        details["request"] = turn.request.to_json()
    if turn.replayed:
        details["replayed"] = True
    if turn.images:
        details["images"] = [image.to_json() for image in turn.images]
    return json.dumps(details, ensure_ascii=False, sort_keys=True) if details else None


def _read_details(text: str | None, prompt: str) -> dict[str, object]:
    """Turn fields from the details column; whatever is malformed is left out."""
    raw = _loads(text)
    if not isinstance(raw, dict):
        return {}
    details: dict[str, object] = {}
    request = RequestKey.from_json(raw.get("request"), prompt=prompt)
    if request is not None:
        details["request"] = request
    if raw.get("replayed") is True:
        details["replayed"] = True
    if isinstance(raw.get("refusal"), str):
        details["refusal"] = raw["refusal"]
    if isinstance(raw.get("finish_reason"), str):
        details["finish_reason"] = raw["finish_reason"]
    if raw.get("stale") is True:
        details["stale"] = True
    calls = raw.get("tool_calls")
    if isinstance(calls, list) and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) for c in calls
    ):
        details["tool_calls"] = tuple(
            ToolCall(
                c["id"] if isinstance(c.get("id"), str) else None,
                c["name"],
                c["arguments"] if isinstance(c.get("arguments"), str) else "",
            )
            for c in calls
        )
    images = _read_images(raw.get("images"))
    if images:
        details["images"] = images
    return details


def _read_images(raw: object) -> tuple[ImagePart, ...]:
    """The stored images that are whole; one that is not is left out (its marker stays)."""
    if not isinstance(raw, list):
        return ()
    images = []
    for item in raw:
        try:
            images.append(ImagePart.from_json(item))
        except (ValueError, TypeError, AttributeError):
            continue
    return tuple(images)


def read_turns(db: sqlite3.Connection, conversation_id: int) -> tuple[Turn, ...]:
    """The conversation's turns by position."""
    rows = db.execute(
        "SELECT cell_id, prompt, reply, status, model, usage, created, attachments, details"
        " FROM turns WHERE conversation_id = ? ORDER BY position",
        (conversation_id,),
    )
    turns: list[Turn] = []
    for cell_id, prompt, reply, status, model, usage, created, attachments, details in rows:
        if not (isinstance(prompt, str) and isinstance(reply, str)):
            continue  # a row no nbchat wrote: leave it out, keep the others
        try:
            turns.append(
                Turn(
                    prompt=prompt,
                    reply=reply,
                    cell_id=cell_id if isinstance(cell_id, str) else None,
                    status=status,
                    model=model if isinstance(model, str) else "",
                    usage=_read_usage(usage),
                    created=float(created),
                    attachments=_read_attachments(attachments, prompt),
                    **_read_details(details, prompt),  # type: ignore[arg-type]
                )
            )
        except (ValueError, TypeError):
            continue
    return tuple(turns)


def _read_usage(text: str | None) -> Mapping[str, int] | None:
    counts = _loads(text)
    return counts if isinstance(counts, dict) else None


def _read_attachments(text: str | None, prompt: str) -> tuple[Attachment, ...]:
    """The stored spans, or none at all when any of them is malformed or misses the prompt:
    a transcript without folds is better than one that folds the wrong text."""
    raw = _loads(text)
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        return ()
    try:
        attachments = tuple(Attachment.from_json(item) for item in raw)
    except ValueError:
        return ()
    return attachments if spans_fit(prompt, attachments) else ()


def _loads(text: str | None) -> object:
    """The JSON value of an optional column; None when there is none or it does not parse."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return None
