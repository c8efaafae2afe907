"""The SQLite file that keeps every notebook's conversations across kernel restarts.

One file serves all notebooks of a user (:meth:`HistoryStore.default_path`); a notebook's
conversations are found by :func:`notebook_key`. Each change is one transaction, and other
kernels share the file through WAL and a busy timeout. This module knows the file: where it
lives, who may read it, how it is opened, locked and brought to the current schema; the tables
and rows themselves are :mod:`nbchat.schema` (its docstring draws them). Which turn goes where
is :class:`~nbchat.history.History`'s business.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from .schema import (
    SCHEMA_VERSION,
    latest_conversation,
    migrate,
    put_turn,
    read_turns,
    recency,
    transaction,
)
from .turn import Turn

__all__ = ["SCHEMA_VERSION", "Change", "Conversation", "HistoryStore", "Written", "notebook_key"]

_BUSY_TIMEOUT = 5.0  # seconds to wait for another kernel's write before giving up
_FILE_NAME = "history.sqlite3"
_PROCESS_STARTED = time.time()  # with the pid, names this process for notebook_key()


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


@dataclass(frozen=True, slots=True)
class Change:
    """What one write of a :class:`~nbchat.history.History` asks of the file, done in one
    transaction so that it lands whole or not at all."""

    conversation_id: int | None
    """The conversation to write to; None: the notebook's newest one (another kernel may have
    started it meanwhile), or a new one if it has none."""
    new: bool = False
    """Start a new conversation, even if the notebook has one."""
    system: str | None = None
    """The system prompt, written when ``set_system`` (and always into a new conversation)."""
    set_system: bool = False
    """The system prompt changed and goes into an existing conversation too."""
    turns: tuple[Turn, ...] = ()
    """Turns to store, in order (see :func:`nbchat.schema.put_turn` for where each goes)."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a :class:`Change` did."""

    conversation_id: int
    skipped: tuple[Turn, ...] = ()
    """Turns left out because a text of theirs cannot be stored (a lone surrogate)."""
    system_skipped: bool = False
    """The system prompt was left out for the same reason."""


class HistoryStore:
    """SQLite file shared by all notebooks of a user; WAL; one transaction per write.

    The file is opened on first use, so making a store never fails; the methods raise
    ``sqlite3.Error`` or ``OSError`` when the file cannot be used, and the history turns those
    into a warning. One connection serves every thread (the chat panel commits from a worker
    thread) behind a lock; other kernels share the file through WAL and a busy timeout
    (``busy_timeout`` seconds). Missing directories are made private (0o700) and the file
    readable by its owner only (0o600): it holds conversations. An existing file in a place
    this process may not write is opened read-only (:attr:`read_only`): what it holds can still
    be read.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = _BUSY_TIMEOUT
    ) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self.read_only = False
        """Whether the file was opened read-only (known once it is opened); writes then fail."""

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

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def latest(self, notebook_key: str) -> Conversation | None:
        """The notebook's most recent conversation with its turns, or None if it never had
        one."""
        newest = self._read(notebook_key, limit=1)
        return newest[0] if newest else None

    def conversations(self, notebook_key: str) -> list[Conversation]:
        """Every conversation of the notebook with its turns, most recent first."""
        return self._read(notebook_key, limit=-1)  # SQLite: a negative limit is no limit

    def write(self, notebook_key: str, change: Change) -> Written:
        """Do ``change`` in one transaction. A turn (or system prompt) whose text cannot be
        stored is left out and named in the answer; the rest is still written."""
        with self._transaction(write=True) as db:
            conversation_id = change.conversation_id
            if conversation_id is None and not change.new:
                conversation_id = latest_conversation(db, notebook_key)
            writes_system = conversation_id is None or change.set_system
            system_skipped = writes_system and not _storable(change.system)
            system = None if system_skipped else change.system
            if conversation_id is None:
                cursor = db.execute(
                    "INSERT INTO conversations (notebook_key, created, system) VALUES (?, ?, ?)",
                    (notebook_key, time.time(), system),
                )
                conversation_id = cast(int, cursor.lastrowid)
            elif change.set_system and not system_skipped:
                db.execute(
                    "UPDATE conversations SET system = ? WHERE id = ?", (system, conversation_id)
                )
            skipped: list[Turn] = []
            for turn in change.turns:
                try:
                    put_turn(db, conversation_id, turn)
                except UnicodeEncodeError:
                    skipped.append(turn)
            return Written(conversation_id, tuple(skipped), system_skipped)

    def _read(self, notebook_key: str, *, limit: int) -> list[Conversation]:
        """The notebook's newest ``limit`` conversations, newest first, in one transaction."""
        with self._transaction(write=False) as db:
            rows = db.execute(
                "SELECT id, notebook_key, created, system FROM conversations"  # noqa: S608
                f" WHERE notebook_key = ? ORDER BY {recency(db)} LIMIT ?",
                (notebook_key, limit),
            ).fetchall()
            return [
                Conversation(conversation_id, key, created, system, read_turns(db, conversation_id))
                for conversation_id, key, created, system in rows
            ]

    def transaction(self, *, write: bool) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One transaction on the file, under this store's lock, for the queries of
        :mod:`nbchat.catalog` (conversations as a collection rather than one at a time)."""
        return self._transaction(write=write)

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock, transaction(self._connect(), write=write) as db:
            yield db

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise sqlite3.ProgrammingError(f"the history store {self.path} is closed")
        if self._connection is None:
            read_only = _not_writable(self.path)
            if read_only:
                connection = self._open_read_only()
            else:
                _make_private_dirs(self.path.parent)
                _create_private_file(self.path)
                connection = sqlite3.connect(
                    self.path,
                    timeout=self._busy_timeout,
                    isolation_level=None,  # transactions are begun and ended here, explicitly
                    check_same_thread=False,  # the lock serialises threads
                )
            # A row with broken UTF-8 reads with U+FFFD instead of failing the conversation.
            connection.text_factory = _decode
            try:
                if not read_only:
                    connection.execute("PRAGMA journal_mode = WAL")
                    connection.execute("PRAGMA synchronous = NORMAL")
                    connection.execute("PRAGMA foreign_keys = ON")
                    migrate(connection)
            except BaseException:
                connection.close()
                raise
            self._connection, self.read_only = connection, read_only
        return self._connection

    def _open_read_only(self) -> sqlite3.Connection:
        """The file opened for reading only. A WAL file whose ``-shm`` is gone (the last kernel
        closed it) cannot be opened so in a directory we may not write; it is then read as
        immutable, which is what it is to this process."""
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            return self._open_uri(uri)
        except sqlite3.OperationalError:
            return self._open_uri(f"{uri}&immutable=1")

    def _open_uri(self, uri: str) -> sqlite3.Connection:
        connection = sqlite3.connect(
            uri, uri=True, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except BaseException:
            connection.close()
            raise
        return connection


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _storable(text: str | None) -> bool:
    """Whether SQLite can take ``text``: a lone surrogate cannot be UTF-8."""
    if text is None:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_writable(path: Path) -> bool:
    """An existing file this process may read but not write, or in a directory it may not
    write (SQLite needs the directory for its ``-wal`` and ``-shm`` files)."""
    return (
        path.is_file()
        and os.access(path, os.R_OK)
        and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    )


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
