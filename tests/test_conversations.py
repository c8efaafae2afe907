"""Conversations as a collection: the cell-id index and migration, the rename/copy rule on real
files, stale marks in the store, the import's checks, and what reset and the panel say."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from nbchat import identity
from nbchat.catalog import holders
from nbchat.errors import ConversationError
from nbchat.history import History
from nbchat.importer import read
from nbchat.panel import ChatPanel
from nbchat.session import ChatSession
from nbchat.store import HistoryStore
from nbchat.testing import LoopbackServer, Reply
from nbchat.turn import Turn

from conftest import fast_settings, one_line
from ipython_shell import Shell, make_shell

SECRET = "sk-import-test-0123456789abcdefSECRET"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(tmp_path / "history.sqlite3") as opened:
        yield opened


def save_notebook(path: Path, cell_ids: list[str]) -> None:
    cells = [
        {"cell_type": "code", "id": i, "metadata": {}, "source": "", "outputs": []}
        for i in cell_ids
    ]
    path.write_text(json.dumps({"cells": cells, "nbformat": 4, "nbformat_minor": 5}), "utf-8")


# -- the store ----------------------------------------------------------------------------------


def test_a_version_2_file_gains_the_cell_index_and_keeps_its_turns(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    raw = sqlite3.connect(path)
    raw.executescript(
        """
        CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT,
            notebook_key TEXT NOT NULL, created REAL NOT NULL, system TEXT);
        CREATE TABLE turns (conversation_id INTEGER NOT NULL, position INTEGER NOT NULL,
            cell_id TEXT, prompt TEXT NOT NULL, reply TEXT NOT NULL, status TEXT NOT NULL,
            model TEXT NOT NULL, usage TEXT, created REAL NOT NULL, attachments TEXT,
            details TEXT, PRIMARY KEY (conversation_id, position));
        INSERT INTO conversations VALUES (1, 'nb.ipynb', 1.0, NULL);
        INSERT INTO turns VALUES (1, 0, 'c1', 'q', 'a', 'complete', 'm', NULL, 2.0, NULL, NULL);
        PRAGMA user_version = 2;
        """
    )
    raw.close()
    with HistoryStore(path) as store:
        assert [t.prompt for t in History(store, "nb.ipynb").turns] == ["q"]
        with store.transaction(write=False) as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == 3
            plan = db.execute(
                "EXPLAIN QUERY PLAN SELECT conversation_id FROM turns WHERE cell_id IN ('c1')"
            ).fetchall()
            assert "turns_by_cell" in " ".join(str(row) for row in plan)
            assert holders(db, ["c1", "nowhere"]) == [("nb.ipynb", 1)]


def test_stale_marks_are_stored_and_a_rerun_clears_them(store: HistoryStore) -> None:
    history = History(store, "nb.ipynb")
    for cell in "abc":
        history.commit(Turn(f"question {cell}", f"answer {cell}", cell_id=cell))
    history.commit(Turn("question a, edited", "answer a2", cell_id="a"))
    assert [t.stale for t in history.turns] == [False, True, True]
    history.commit(Turn("question a, edited", "answer a3", cell_id="a"))  # same text: no change
    history.commit(Turn("question b", "answer b2", cell_id="b"))
    reloaded = History(store, "nb.ipynb")
    assert [(t.prompt, t.stale) for t in reloaded.turns] == [
        ("question a, edited", False),
        ("question b", False),
        ("question c", True),
    ]


def test_turns_without_a_cell_id_are_never_marked(store: HistoryStore) -> None:
    history = History(store, "nb.ipynb")
    history.commit(Turn("first", "1", cell_id="a"))
    history.commit(Turn("typed in a terminal", "2"))
    history.commit(Turn("first, edited", "3", cell_id="a"))
    assert [t.stale for t in History(store, "nb.ipynb").turns] == [False, False]


# -- the rename and copy rule -------------------------------------------------------------------


def test_a_relative_session_path_is_resolved_from_the_kernels_folder(tmp_path: Path) -> None:
    folder = tmp_path / "root" / "work"
    assert identity.notebook_file("work/old.ipynb", "work/new.ipynb", str(folder)) == (
        tmp_path / "root" / "work" / "old.ipynb"
    )
    assert identity.notebook_file("old.ipynb", "new.ipynb", str(folder)) == folder / "old.ipynb"
    assert identity.notebook_file("a/old.ipynb", "b/new.ipynb", str(folder)) is None
    assert identity.notebook_file("old.ipynb", str(folder / "new.ipynb")) is None


def test_a_file_reused_for_another_notebook_counts_as_a_rename(
    store: HistoryStore, tmp_path: Path
) -> None:
    old, new = tmp_path / "Untitled.ipynb", tmp_path / "analysis.ipynb"
    History(store, str(old)).commit(Turn("q", "a", cell_id="a"))
    save_notebook(old, ["other"])  # a new Untitled.ipynb took the old name
    save_notebook(new, ["a"])
    followed = identity.follow(store, str(new), ["a"])
    assert followed is not None and not followed.copied
    assert store.latest(str(old)) is None
    assert [t.prompt for t in History(store, str(new)).turns] == ["q"]


def test_an_unreadable_original_is_treated_as_a_copy(store: HistoryStore, tmp_path: Path) -> None:
    old, new = tmp_path / "report.ipynb", tmp_path / "copy.ipynb"
    History(store, str(old)).commit(Turn("q", "a", cell_id="a"))
    old.write_text("{ not json", "utf-8")
    followed = identity.follow(store, str(new), ["a"])
    assert followed is not None and followed.copied
    assert [t.prompt for t in History(store, str(old)).turns] == ["q"]  # the original kept


def test_kernel_keys_neither_give_nor_take_a_conversation(store: HistoryStore) -> None:
    History(store, "kernel:1234").commit(Turn("q", "a", cell_id="a"))
    assert identity.follow(store, "/tmp/nb.ipynb", ["a"]) is None
    assert identity.follow(store, "kernel:5678", ["a"]) is None
    assert not History(store, "kernel:5678").unclaimed


# -- import ------------------------------------------------------------------------------------


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), "utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("[1, 2]", "it is not a JSON object"),
        ("{nope", "it is not JSON"),
        ('{"turns": []}', "it has no format field"),
        ('{"format": "nbchat.conversation", "version": 9, "turns": []}', "newer nbchat"),
        ('{"format": "nbchat.conversation", "turns": [{"prompt": "q"}]}', "turn 1 has no reply"),
        (
            '{"format": "nbchat.conversation", "turns": [{"prompt": "q", "reply": "a",'
            ' "stale": "yes"}]}',
            "turn 1 has a stale mark that is not true or false",
        ),
        (
            '{"format": "nbchat.conversation", "turns": [{"prompt": "q", "reply": "a",'
            ' "attachments": [{"start": 5, "end": 1}]}]}',
            "turn 1 ",
        ),
    ],
)
def test_a_file_that_is_no_export_is_one_line(tmp_path: Path, content: str, why: str) -> None:
    path = tmp_path / "file.json"
    path.write_text(content, "utf-8")
    with pytest.raises(ConversationError) as caught:
        read(path)
    message = one_line(caught.value)
    assert message.startswith("%chat import: file.json is not an nbchat export: "), message
    assert why in message and message.endswith("(nothing changed)")


def test_an_export_older_than_formats_and_a_replayed_mark_are_read(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "old.json",
        {
            "exported": "2026-11-01T10:00:00+0000",
            "system": None,
            "messages": [],
            "turns": [{"prompt": "q", "reply": "a", "replayed": True, "cell_id": "c"}],
        },
    )
    (turn,) = read(path).turns
    assert (turn.prompt, turn.reply, turn.cell_id, turn.stale) == ("q", "a", "c", False)


@pytest.fixture
def shell(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    monkeypatch.setenv("NBCHAT_API_KEY", SECRET)
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/import-test.ipynb")
    yield from make_shell(rich=False)


def test_a_bad_import_leaves_the_conversation_and_a_key_in_the_file_is_scrubbed(
    shell: Shell, server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Reply("kept"))
    assert shell.run("%%chat\nkeep me", cell_id="k").error_in_exec is None
    missing = shell.run(f"%chat import {tmp_path / 'missing.json'}")
    assert type(missing.error_in_exec) is UsageError
    assert "there is no file" in one_line(missing.error_in_exec)
    shell.run("import nbchat; print([t.prompt for t in nbchat.get_session().history])")
    assert "['keep me']" in capsys.readouterr().out
    exported = write_json(
        tmp_path / "leaky.json",
        {
            "format": "nbchat.conversation",
            "version": 1,
            "system": f"key {SECRET}",
            "turns": [{"prompt": f"my key is {SECRET}", "reply": "ok"}],
        },
    )
    assert shell.run(f"%chat import {exported}").error_in_exec is None
    out = capsys.readouterr().out
    assert (
        "Imported 1 turn from leaky.json as conversation 2; `%chat open 1` brings it back." in out
    )
    assert shell.run("%chat history --sent").error_in_exec is None
    preview = capsys.readouterr().out
    assert "── 2. user\nmy key is " in preview and SECRET not in preview
    db = sqlite3.connect(HistoryStore.default_path())
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert SECRET not in dump and "keep me" in dump


# -- what reset and the panel say --------------------------------------------------------------


def test_the_panels_new_conversation_says_how_to_bring_it_back(
    server: LoopbackServer, tmp_path: Path
) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        session = ChatSession(
            fast_settings(server.base_url, max_retries=0), history=History(store, "nb.ipynb")
        )
        server.enqueue(Reply("hello"))
        session.ask("hi", cell_id="a")
        left = session.history.conversation_id
        panel = ChatPanel(session, namespace={}, load_models=False)
        try:
            panel.new_conversation()
            assert f"%chat open {left} brings them back" in panel.status.value
        finally:
            panel.close()
            session.close()


def test_the_panel_marks_stale_turns_and_follows_an_opened_conversation(
    server: LoopbackServer, tmp_path: Path
) -> None:
    from nbchat.conversations import open_conversation

    def turn_views(panel: ChatPanel) -> list:
        children = reversed(panel.transcript.children)
        return [view for view in children if "nbchat-turn" in view._dom_classes]

    with HistoryStore(tmp_path / "h.sqlite3") as store:
        session = ChatSession(
            fast_settings(server.base_url, max_retries=0), history=History(store, "nb.ipynb")
        )
        server.enqueue(*(Reply(text) for text in ("A1", "B1", "A2", "C1")))
        session.ask("question A", cell_id="a")
        session.ask("question B", cell_id="b")
        session.ask("question A, edited", cell_id="a")
        first = session.history.conversation_id
        assert first is not None
        panel = ChatPanel(session, namespace={}, load_models=False)
        try:
            stale = ["nbchat-stale" in view._dom_classes for view in turn_views(panel)]
            assert stale == [False, True]
            session.new_conversation()
            session.ask("question C", cell_id="c")
            assert len(turn_views(panel)) == 1
            open_conversation(session, first)
            stale = ["nbchat-stale" in view._dom_classes for view in turn_views(panel)]
            assert stale == [False, True]
        finally:
            panel.close()
            session.close()
