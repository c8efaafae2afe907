"""Turns keyed by notebook cell, and the SQLite file that keeps them across kernel restarts.

A conversation is an ordered list of turns: a user message and the reply to it. In a notebook a
turn belongs to the cell that asked for it, so the conversation follows the notebook:

* running a new cell appends a turn;
* running a cell again replaces that cell's turn *in place*, and the request for it carries only
  the turns before it (:meth:`History.before`), as if the cells below had not run yet;
* without a cell id (terminal IPython) turns simply append.

Every change is written, in one transaction, to a SQLite file shared by all notebooks of a user
(:meth:`HistoryStore.default_path`) and keyed by :func:`notebook_key`, so that a restarted kernel
picks its conversation up again. Storage is a convenience, never a reason to fail a cell: when the
file cannot be opened or written, :class:`History` logs one warning on the ``nbchat`` logger and
carries on in memory.

Schema, ``PRAGMA user_version = 1`` (a later version migrates from the number it finds)::

    conversations   id INTEGER PRIMARY KEY AUTOINCREMENT  -- larger id = newer conversation
                    notebook_key TEXT, created REAL, system TEXT NULL
    turns           conversation_id → conversations.id, position INTEGER (0, 1, …),
                    cell_id TEXT NULL, prompt TEXT, reply TEXT, status TEXT, model TEXT,
                    usage TEXT NULL (a JSON object), created REAL
                    PRIMARY KEY (conversation_id, position)

Nothing else is stored: no settings, no key. ``scrub`` runs over every text before it is kept.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TypeVar, cast, get_args

__all__ = [
    "SCHEMA_VERSION",
    "Conversation",
    "History",
    "HistoryStore",
    "Turn",
    "TurnStatus",
    "notebook_key",
]

log = logging.getLogger("nbchat")

TurnStatus = Literal["complete", "interrupted"]
_STATUSES: frozenset[str] = frozenset(get_args(TurnStatus))

SCHEMA_VERSION = 1
"""The schema this module writes; a file with a larger ``user_version`` is left alone."""

_BUSY_TIMEOUT = 5.0  # seconds to wait for another kernel's write before giving up
_FILE_NAME = "history.sqlite3"
_PROCESS_STARTED = time.time()  # with the pid, names this process for notebook_key()

_T = TypeVar("_T")

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
}


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: what the user sent and what came back, tied to the cell that asked."""

    prompt: str
    """The user message exactly as sent, so that the next request repeats it word for word."""
    reply: str
    """The assistant's text (first choice); what had arrived, if the reply was interrupted."""
    cell_id: str | None = None
    """The notebook cell that asked; None in terminal IPython, where turns only append."""
    status: TurnStatus = "complete"
    """``interrupted`` when the reply was stopped: its partial text is kept, and marked."""
    model: str = ""
    """The model that answered, for the record."""
    usage: Mapping[str, int] | None = field(default=None, hash=False)
    """Token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) when known.

    Kept read-only, and only the whole-number entries: nested details are dropped.
    """
    created: float = field(default_factory=time.time)
    """When the turn was made, in seconds since the epoch."""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be 'complete' or 'interrupted', not {self.status!r}")
        if self.usage is not None:
            counts = {
                str(name): value
                for name, value in self.usage.items()
                if isinstance(value, int) and not isinstance(value, bool)
            }
            object.__setattr__(self, "usage", MappingProxyType(counts) if counts else None)

    def messages(self) -> list[dict[str, str]]:
        """The turn as chat messages, user then assistant, as a request replays it."""
        return [
            {"role": "user", "content": self.prompt},
            {"role": "assistant", "content": self.reply},
        ]


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation as stored: its turns in order and the system prompt that went with them."""

    id: int
    """Its row id; a newer conversation has a larger one."""
    notebook_key: str
    """The notebook it belongs to (see :func:`notebook_key`)."""
    created: float
    """When it was started, in seconds since the epoch."""
    system: str | None = None
    """The system prompt in force, if any."""
    turns: tuple[Turn, ...] = ()
    """Its turns by position."""


class HistoryStore:
    """SQLite file shared by all notebooks of a user; WAL; one transaction per write.

    The file is opened on first use, so making a store never fails; the methods raise
    ``sqlite3.Error`` or ``OSError`` when the file cannot be used, and :class:`History` turns
    those into a single warning. One connection serves every thread (the chat panel commits from
    a worker thread) behind a lock; other kernels share the file through WAL and a busy timeout.
    Missing directories are made private (0o700) and the file readable by its owner only
    (0o600): it holds conversations.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"HistoryStore({str(self.path)!r})"

    @staticmethod
    def default_path(
        environ: Mapping[str, str] | None = None, *, platform: str | None = None
    ) -> Path:
        """Where a user's history lives, found the way Jupyter finds its data directory.

        ``$NBCHAT_HOME/history.sqlite3`` when ``NBCHAT_HOME`` is set, otherwise
        ``<Jupyter data dir>/nbchat/history.sqlite3``, the data dir being ``$JUPYTER_DATA_DIR``
        or the platform's default (Linux ``$XDG_DATA_HOME/jupyter`` or
        ``~/.local/share/jupyter``; macOS ``~/Library/Jupyter``; Windows ``%APPDATA%\\jupyter``).
        Computed here rather than by importing jupyter_core, to keep ``%load_ext`` cheap;
        ``platform`` defaults to ``sys.platform``.
        """
        env = os.environ if environ is None else environ
        if env.get("NBCHAT_HOME"):
            return Path(os.path.expanduser(env["NBCHAT_HOME"])) / _FILE_NAME
        return _jupyter_data_dir(env, platform or sys.platform) / "nbchat" / _FILE_NAME

    def close(self) -> None:
        """Close the connection; later calls raise ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def latest(self, notebook_key: str) -> Conversation | None:
        """The notebook's newest conversation with its turns, or None if it never had one."""
        with self._transaction(write=False) as db:
            row = db.execute(
                "SELECT id, notebook_key, created, system FROM conversations"
                " WHERE notebook_key = ? ORDER BY id DESC LIMIT 1",
                (notebook_key,),
            ).fetchone()
            return None if row is None else _read_conversation(db, row)

    def conversations(self, notebook_key: str) -> list[Conversation]:
        """Every conversation of the notebook with its turns, newest first."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT id, notebook_key, created, system FROM conversations"
                " WHERE notebook_key = ? ORDER BY id DESC",
                (notebook_key,),
            ).fetchall()
            return [_read_conversation(db, row) for row in rows]

    def create_conversation(
        self, notebook_key: str, *, system: str | None = None, turns: Iterable[Turn] = ()
    ) -> int:
        """Start a conversation (with its first turns, if any) and return its id.

        One transaction, so the first commit of a notebook writes the conversation and its turn
        together or not at all.
        """
        with self._transaction(write=True) as db:
            cursor = db.execute(
                "INSERT INTO conversations (notebook_key, created, system) VALUES (?, ?, ?)",
                (notebook_key, time.time(), system),
            )
            conversation_id = cast(int, cursor.lastrowid)
            for position, turn in enumerate(turns):
                _write_turn(db, conversation_id, position, turn)
            return conversation_id

    def put_turn(self, conversation_id: int, position: int, turn: Turn) -> None:
        """Write ``turn`` at ``position`` (from 0), replacing what was there: a re-run cell
        keeps its place."""
        with self._transaction(write=True) as db:
            _write_turn(db, conversation_id, position, turn)

    def set_system(self, conversation_id: int, system: str | None) -> None:
        """Keep ``system`` as the conversation's system prompt (None: no system prompt)."""
        with self._transaction(write=True) as db:
            db.execute(
                "UPDATE conversations SET system = ? WHERE id = ?", (system, conversation_id)
            )

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock, _transaction(self._connect(), write=write) as db:
            yield db

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError(f"the history store {self.path} is closed")
        if self._connection is None:
            _make_private_dirs(self.path.parent)
            _create_private_file(self.path)
            connection = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT,
                isolation_level=None,  # transactions are begun and ended here, explicitly
                check_same_thread=False,  # the lock serialises threads
            )
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.execute("PRAGMA foreign_keys = ON")
                _migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection


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

    def commit(self, turn: Turn) -> None:
        """Put ``turn`` in place of its cell's turn, or at the end; and into the store.

        ``scrub`` runs over the prompt and the reply first, and what is kept in memory is the
        scrubbed turn too, so a pasted key is neither written nor sent again.
        """
        clean = replace(turn, prompt=self._scrub(turn.prompt), reply=self._scrub(turn.reply))
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


def notebook_key(
    user_ns: Mapping[str, object], environ: Mapping[str, str], *, connection_file: str | None = None
) -> str:
    """Which notebook this kernel serves, as the key of its conversations in the store.

    In order: the notebook path VS Code puts in the namespace (``__vsc_ipynb_file__``); the path
    Jupyter Server gives the kernel in ``JPY_SESSION_NAME``; ``kernel:<id>`` from the connection
    file ``kernel-<id>.json``, which Jupyter keeps across a kernel restart; otherwise
    ``process:<pid>:<start time>``, for terminal IPython, where no reload is expected.
    Paths get ``~`` expanded, and absolute ones are normalised; a relative ``JPY_SESSION_NAME``
    (relative to the server's root) is kept as it is, since the kernel's working directory is
    not that root.
    """
    vscode_path = user_ns.get("__vsc_ipynb_file__")
    if isinstance(vscode_path, str) and vscode_path.strip():
        return _normalise_path(vscode_path)
    session_path = environ.get("JPY_SESSION_NAME", "")
    if session_path.strip():
        return _normalise_path(session_path)
    if connection_file:
        name = os.path.basename(connection_file)
        kernel_id = name.removesuffix(".json").removeprefix("kernel-")
        if kernel_id:
            return f"kernel:{kernel_id}"
    return f"process:{os.getpid()}:{_PROCESS_STARTED:.0f}"


def _normalise_path(path: str) -> str:
    expanded = os.path.expanduser(path)
    return os.path.abspath(expanded) if os.path.isabs(expanded) else expanded


def _unchanged(text: str) -> str:
    return text


def _jupyter_data_dir(env: Mapping[str, str], platform: str) -> Path:
    """Jupyter's data directory, by the rules of ``jupyter_core.paths.jupyter_data_dir``."""
    if env.get("JUPYTER_DATA_DIR"):
        return Path(os.path.expanduser(env["JUPYTER_DATA_DIR"]))
    if platform == "win32":
        appdata = env.get("APPDATA")
        if appdata:
            return Path(appdata) / "jupyter"
        home = env.get("USERPROFILE") or env.get("HOME")
        return (Path(home) if home else Path.home()) / ".jupyter" / "data"
    home_path = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if platform == "darwin":
        return home_path / "Library" / "Jupyter"
    xdg_data_home = env.get("XDG_DATA_HOME")
    return (Path(xdg_data_home) if xdg_data_home else home_path / ".local" / "share") / "jupyter"


def _make_private_dirs(directory: Path) -> None:
    """Make the missing directories of ``directory``, each 0o700; leave existing ones alone."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            path.mkdir(mode=0o700)


def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite makes it 0o644.

    SQLite gives the ``-wal`` and ``-shm`` files the same permissions as the database.
    """
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, *, write: bool) -> Iterator[sqlite3.Connection]:
    """One transaction: committed if the block ends normally, rolled back otherwise.

    A write takes the write lock up front (``IMMEDIATE``) so that waiting for another kernel
    falls under the busy timeout instead of failing half-way.
    """
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


def _migrate(db: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`; refuse one written by a newer nbchat."""
    if _user_version(db) == SCHEMA_VERSION:
        return
    with _transaction(db, write=True):
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


def _write_turn(db: sqlite3.Connection, conversation_id: int, position: int, turn: Turn) -> None:
    usage = None if turn.usage is None else json.dumps(dict(turn.usage), sort_keys=True)
    db.execute(
        "INSERT OR REPLACE INTO turns (conversation_id, position, cell_id, prompt, reply,"
        " status, model, usage, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            conversation_id,
            position,
            turn.cell_id,
            turn.prompt,
            turn.reply,
            turn.status,
            turn.model,
            usage,
            turn.created,
        ),
    )


def _read_conversation(db: sqlite3.Connection, row: tuple[Any, ...]) -> Conversation:
    conversation_id, key, created, system = row
    turns = tuple(
        Turn(
            prompt=prompt,
            reply=reply,
            cell_id=cell_id,
            status=status,
            model=model,
            usage=_read_usage(usage),
            created=turn_created,
        )
        for cell_id, prompt, reply, status, model, usage, turn_created in db.execute(
            "SELECT cell_id, prompt, reply, status, model, usage, created FROM turns"
            " WHERE conversation_id = ? ORDER BY position",
            (conversation_id,),
        )
    )
    return Conversation(
        id=conversation_id, notebook_key=key, created=created, system=system, turns=turns
    )


def _read_usage(text: str | None) -> Mapping[str, int] | None:
    if text is None:
        return None
    try:
        counts = json.loads(text)
    except ValueError:
        return None
    return counts if isinstance(counts, dict) else None
