"""History under faults: interrupts mid-write, text SQLite cannot take, two kernels on one
notebook, a lock held too long, a bad row, a read-only home, ``kill -9`` mid-write.

Every test writes a real SQLite file; other kernels are real processes (``subprocess``) running
their own ``History`` on the same file, and a "restart" is a fresh store and ``History``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from nbchat.accumulator import StreamAccumulator
from nbchat.history import History
from nbchat.session import ChatSession
from nbchat.store import HistoryStore
from nbchat.testing import LoopbackServer, RawSSE
from nbchat.turn import Turn

from conftest import fast_settings

NOTEBOOK = "/home/user/analysis.ipynb"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nbchat" / "history.sqlite3"


def turn(prompt: str, cell_id: str | None = None) -> Turn:
    return Turn(prompt=prompt, reply=f"answer to {prompt}", cell_id=cell_id)


def prompts(turns: object) -> list[str]:
    return [t.prompt for t in cast("Iterator[Turn]", turns)]


def restart(db_path: Path, key: str = NOTEBOOK) -> History:
    with HistoryStore(db_path) as fresh:
        return History(fresh, key)


def rows(db_path: Path) -> list[tuple[Any, ...]]:
    """Every stored turn as (conversation, position, cell, prompt), read outside nbchat."""
    raw = sqlite3.connect(db_path)
    try:
        return raw.execute(
            "SELECT conversation_id, position, cell_id, prompt FROM turns ORDER BY 1, 2"
        ).fetchall()
    finally:
        raw.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "nbchat" and r.levelno == logging.WARNING
    ]


# --- Kernel → Interrupt during the write ----------------------------------------------------


class _Interrupting:
    """A connection that raises KeyboardInterrupt right after one statement ran, as a SIGINT
    handled when SQLite hands control back to Python would."""

    def __init__(self, real: sqlite3.Connection, owner: InterruptingStore) -> None:
        self._real, self._owner = real, owner

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._real.execute(sql, *args)
        if self._owner.interrupt_at is not None and self._owner.interrupt_at in sql:
            self._owner.interrupt_at = None
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class InterruptingStore(HistoryStore):
    interrupt_at: str | None = None

    def _connect(self) -> sqlite3.Connection:
        return cast(sqlite3.Connection, _Interrupting(super()._connect(), self))


def test_an_interrupt_in_the_turn_write_changes_neither_memory_nor_file(db_path: Path) -> None:
    store = InterruptingStore(db_path)
    with store:
        history = History(store, NOTEBOOK)
        history.commit(turn("a", "c1"))
        store.interrupt_at = "INTO turns"
        with pytest.raises(KeyboardInterrupt):
            history.commit(turn("b", "c2"))
        assert prompts(history) == ["a"]  # the turn went with its rolled-back write
        history.commit(turn("c", "c3"))
        assert prompts(history) == ["a", "c"]
    assert [r[1:] for r in rows(db_path)] == [(0, "c1", "a"), (1, "c3", "c")]  # no hole

    reloaded = restart(db_path)
    with HistoryStore(db_path) as after_restart:
        History(after_restart, NOTEBOOK).commit(turn("d", "c4"))
    assert prompts(reloaded) == ["a", "c"]
    assert prompts(restart(db_path)) == ["a", "c", "d"]  # nothing saved was overwritten


def test_an_interrupt_in_the_first_write_of_a_notebook_leaves_no_conversation(
    db_path: Path,
) -> None:
    store = InterruptingStore(db_path)
    with store:
        history = History(store, NOTEBOOK)
        store.interrupt_at = "INTO turns"
        with pytest.raises(KeyboardInterrupt):
            history.commit(turn("a", "c1"))
        assert len(history) == 0
        history.commit(turn("b", "c2"))
        assert store.conversations(NOTEBOOK)[0].turns == history.turns
        assert len(store.conversations(NOTEBOOK)) == 1


# --- text SQLite cannot take ----------------------------------------------------------------


def chunk(content: str) -> bytes:
    """One SSE event whose JSON spells every non-ASCII character as \\u escapes."""
    body = {"choices": [{"index": 0, "delta": {"content": content}}]}
    return f"data: {json.dumps(body, ensure_ascii=True)}\n\n".encode()


def test_a_surrogate_pair_split_across_chunks_arrives_and_is_saved_as_one_character(
    server: LoopbackServer, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    split = b'data: {"choices":[{"index":0,"delta":{"content":"smile \\ud83d"}}]}\n\n'
    rest = b'data: {"choices":[{"index":0,"delta":{"content":"\\ude00!"}}]}\n\n'
    server.enqueue(RawSSE(split + rest + b"data: [DONE]\n\n"))
    server.enqueue(RawSSE(chunk("second answer") + b"data: [DONE]\n\n"))
    with HistoryStore(db_path) as store:
        chat = ChatSession(fast_settings(server.base_url), history=History(store, NOTEBOOK))
        try:
            assert chat.ask("first", cell_id="c1").result.text == "smile \U0001f600!"
            chat.ask("second", cell_id="c2")
        finally:
            chat.close()
    assert warnings_of(caplog) == []
    assert [t.reply for t in restart(db_path)] == ["smile \U0001f600!", "second answer"]


def test_a_lone_surrogate_in_a_stream_becomes_a_replacement_character() -> None:
    accumulator = StreamAccumulator()
    for piece in ("a\ud83d", "b\ude00", "\ud83d", "\ude00", "end \ud83d"):
        accumulator.add({"choices": [{"index": 0, "delta": {"content": piece}}]})
    assert accumulator.text() == "a\ufffdb\ufffd\U0001f600end \ufffd"
    assert all(p.encode("utf-8") for p in accumulator.text_pieces())


def test_a_turn_that_cannot_be_stored_is_skipped_once_and_the_next_is_saved(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with HistoryStore(db_path) as store:
        history = History(store, NOTEBOOK)
        history.commit(turn("before", "c1"))
        history.commit(turn("lone \ud83d", "c2"))
        history.commit(turn("after", "c3"))
        history.commit(turn("after again", "c3"))
    assert prompts(history) == ["before", "lone \ud83d", "after again"]
    assert prompts(restart(db_path)) == ["before", "after again"]
    (warning,) = warnings_of(caplog)
    assert "c2" in warning and "later turns are saved" in warning


# --- two kernels on one notebook ------------------------------------------------------------


def test_two_histories_on_one_notebook_keep_both_kernels_turns_in_commit_order(
    db_path: Path,
) -> None:
    with HistoryStore(db_path) as seed:
        History(seed, NOTEBOOK).commit(turn("seed", "s"))
    with HistoryStore(db_path) as one_store, HistoryStore(db_path) as two_store:
        one, two = History(one_store, NOTEBOOK), History(two_store, NOTEBOOK)
        one.commit(turn("one a", "1a"))
        two.commit(turn("two a", "2a"))
        one.commit(turn("one b", "1b"))
        two.commit(turn("two a again", "2a"))  # a re-run replaces only that cell's row
        one.commit(turn("seed again", "s"))
    assert prompts(restart(db_path)) == ["seed again", "one a", "two a again", "one b"]
    assert [r[1] for r in rows(db_path)] == [0, 1, 2, 3]


WRITER = """
import sys, time
from pathlib import Path
from nbchat.history import History
from nbchat.store import HistoryStore
from nbchat.turn import Turn

path, key, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
history = History(HistoryStore(path), key)
go = Path(path).with_name("go")
while not go.exists():
    time.sleep(0.001)
for n in range(count):
    history.commit(Turn(f"{name}-{n}", "r", cell_id=f"{name}-{n}"))
history.commit(Turn(f"{name}-0 again", "r", cell_id=f"{name}-0"))
"""


@pytest.mark.parametrize("seeded", [True, False], ids=["seeded", "fresh-notebook"])
def test_two_processes_writing_one_notebook_at_once_lose_no_turn(
    db_path: Path, seeded: bool
) -> None:
    count = 40
    if seeded:
        with HistoryStore(db_path) as seed:
            History(seed, NOTEBOOK).commit(turn("seed", "s"))
    else:
        db_path.parent.mkdir(parents=True)
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db_path), NOTEBOOK, name, str(count)])
        for name in ("one", "two")
    ]
    time.sleep(0.5)  # both have opened the file and read the conversation
    db_path.with_name("go").touch()
    assert [w.wait(timeout=60) for w in writers] == [0, 0]

    stored = prompts(restart(db_path))
    assert len(stored) == 2 * count + seeded
    for name in ("one", "two"):
        mine = [p for p in stored if p.startswith(name)]
        assert mine == [f"{name}-0 again", *(f"{name}-{n}" for n in range(1, count))]
    conversations = {r[0] for r in rows(db_path)}
    assert len(conversations) == 1


# --- saving recovers ------------------------------------------------------------------------


def test_a_lock_held_past_the_timeout_costs_nothing_once_it_is_released(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with HistoryStore(db_path, busy_timeout=0.2) as store:
        history = History(store, NOTEBOOK)
        history.commit(turn("first", "c1"))
        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another kernel stuck in a write
        history.commit(turn("while locked", "c2"))
        history.commit(turn("still locked", "c3"))
        other.execute("COMMIT")
        other.close()
        history.commit(turn("after", "c4"))
    assert prompts(restart(db_path)) == ["first", "while locked", "still locked", "after"]
    failed, recovered = warnings_of(caplog)
    assert "locked" in failed and "again" in recovered


def test_a_row_of_broken_text_reads_and_does_not_stop_saving(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with HistoryStore(db_path) as store:
        History(store, NOTEBOOK).commit(turn("good", "c1"))
    raw = sqlite3.connect(db_path)
    with raw:
        raw.execute("UPDATE turns SET reply = CAST(x'6f6bff' AS TEXT)")  # not UTF-8
    raw.close()
    with HistoryStore(db_path) as store:
        history = History(store, NOTEBOOK)
        assert [t.reply for t in history] == ["ok\ufffd"]
        history.commit(turn("next", "c2"))
    assert prompts(restart(db_path)) == ["good", "next"]
    assert warnings_of(caplog) == []


READER = """
import json, logging, os, sys
from nbchat.history import History
from nbchat.store import HistoryStore
from nbchat.turn import Turn

if len(sys.argv) > 3:
    os.setgid(int(sys.argv[3]))
    os.setuid(int(sys.argv[3]))  # everything is imported: from here on, a user who may not write
messages = []
logging.getLogger("nbchat").addHandler(logging.Handler())
logging.getLogger("nbchat").handlers[-1].emit = lambda r: messages.append(r.getMessage())
history = History(HistoryStore(sys.argv[1]), sys.argv[2])
history.commit(Turn("new", "r", cell_id="c2"))
print(json.dumps({"prompts": [t.prompt for t in history], "messages": messages}))
"""


@pytest.fixture
def shared_home() -> Iterator[Path]:
    """A home outside the root-only pytest directory, so another user can reach it."""
    home = Path(tempfile.mkdtemp(prefix="nbchat-ro-"))
    home.chmod(0o755)
    yield home
    home.chmod(0o755)
    shutil.rmtree(home)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_a_read_only_home_reads_the_conversation_and_says_once_that_new_turns_are_lost(
    shared_home: Path,
) -> None:
    path = shared_home / "history.sqlite3"
    with HistoryStore(path) as store:
        History(store, NOTEBOOK).commit(turn("kept", "c1"))
    command = [sys.executable, "-c", READER, str(path), NOTEBOOK]
    if os.geteuid() == 0:  # root may write anywhere: run as nobody, who owns only the file
        nobody = 65534
        os.chown(path, nobody, nobody)
        command.append(str(nobody))
    path.chmod(0o400)
    shared_home.chmod(0o555)

    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)

    seen = json.loads(done.stdout)
    assert seen["prompts"] == ["kept", "new"]
    (message,) = seen["messages"]
    assert "read-only" in message and "new turns will not be kept" in message


# --- kill -9 mid-write ----------------------------------------------------------------------

KILLED = """
import itertools, sys
from nbchat.history import History
from nbchat.store import HistoryStore
from nbchat.turn import Turn

history = History(HistoryStore(sys.argv[1]), sys.argv[2])
print("ready", flush=True)
for n in itertools.count():
    history.commit(Turn(f"{sys.argv[3]}-{n}", "r" * 2000, cell_id=f"{sys.argv[3]}-{n}"))
    print(f"{sys.argv[3]}-{n}", flush=True)
"""


def test_kill_9_mid_write_keeps_every_committed_turn_once_and_in_order(db_path: Path) -> None:
    runs, chance = 30, random.Random(9)
    committed: list[str] = []
    with HistoryStore(db_path) as seed:
        History(seed, NOTEBOOK).commit(turn("seed"))
    for run in range(runs):
        worker = subprocess.Popen(
            [sys.executable, "-c", KILLED, str(db_path), NOTEBOOK, f"run{run}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline() == "ready\n"
        timer = threading.Timer(chance.uniform(0.0, 0.15), worker.kill)  # SIGKILL
        timer.start()
        out = worker.stdout.read()
        worker.wait()
        timer.join()
        committed += out.split()

    stored = prompts(restart(db_path))
    assert len(stored) == len(set(stored))
    assert set(committed) <= set(stored)
    assert [p for p in stored if p in set(committed)] == committed  # commit order
    assert stored[0] == "seed" and len(committed) > runs
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()
