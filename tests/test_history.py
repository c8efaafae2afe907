"""History follows the notebook (re-run replaces in place) and survives a kernel restart.

Every test that stores uses a real SQLite file under ``tmp_path``; a "kernel restart" is a new
store and a new ``History`` on the same file and notebook key. Files of another schema version
are made here with raw ``sqlite3``, as that version's nbchat would have left them.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbchat.config import APIKey
from nbchat.history import History, scrub_prompt
from nbchat.prompt import Attachment
from nbchat.secrets import REDACTED, KeyScrubber
from nbchat.store import SCHEMA_VERSION, HistoryStore, notebook_key
from nbchat.turn import Turn

NOTEBOOK = "/home/user/analysis.ipynb"
FAKE_KEY = "sk-test-0123456789abcdefFAKEKEY"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "nbchat" / "history.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[HistoryStore]:
    with HistoryStore(db_path) as opened:
        yield opened


def restart(db_path: Path, key: str = NOTEBOOK) -> History:
    """What a restarted kernel does: a fresh store on the same file, a fresh History."""
    fresh = HistoryStore(db_path)
    try:
        return History(fresh, key)
    finally:
        fresh.close()  # History has read everything it needs by now


def turn(prompt: str, cell_id: str | None = None, **fields: object) -> Turn:
    return Turn(prompt=prompt, reply=f"answer to {prompt}", cell_id=cell_id, **fields)  # type: ignore[arg-type]


def prompts(turns: object) -> list[str]:
    return [t.prompt for t in turns]  # type: ignore[attr-defined]


def nbchat_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "nbchat" and r.levelno == logging.WARNING]


def with_summaries(*parts: str | tuple[str, str]) -> tuple[str, tuple[Attachment, ...]]:
    """A prompt made of typed text (a string) and summaries (``(name, summary)``), and the
    spans of its summaries, the way ``nbchat.prompt.compose`` lays them out."""
    text, spans = "", []
    for part in parts:
        if isinstance(part, tuple):
            name, summary = part
            spans.append(Attachment(name, f"{name} · summary", len(text), len(text) + len(summary)))
            part = summary
        text += part
    return text, tuple(spans)


def folded(made: Turn) -> list[str]:
    """The text each of the turn's attachments covers: what a transcript folds away."""
    return [made.prompt[a.start : a.end] for a in made.attachments]


SUMMARY = "sales: pandas DataFrame, 3 rows × 2 columns\n   month  total\n0  jan    10"
PROMPT, SPANS = with_summaries("Why do sales dip?\n\n", ("sales", SUMMARY))


# --- Turn -----------------------------------------------------------------------------------


def test_a_turn_replays_as_a_user_message_then_an_assistant_message() -> None:
    assert Turn("hi", "hello").messages() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
    ]


def test_a_turn_keeps_its_own_read_only_copy_of_the_whole_number_usage() -> None:
    usage: dict[str, object] = {"prompt_tokens": 3, "total_tokens": 5, "details": {"x": 1}}
    made = Turn("q", "a", usage=usage)  # type: ignore[arg-type]
    usage["prompt_tokens"] = 99
    assert made.usage == {"prompt_tokens": 3, "total_tokens": 5}
    with pytest.raises(TypeError):
        made.usage["total_tokens"] = 0  # type: ignore[index]
    assert hash(made) == hash(Turn("q", "a", created=made.created))


def test_a_turn_refuses_an_unknown_status() -> None:
    with pytest.raises(ValueError, match="status"):
        Turn("q", "a", status="failed")  # type: ignore[arg-type]


def test_a_turn_keeps_its_attachments_as_a_tuple() -> None:
    made = Turn(PROMPT, "a", attachments=list(SPANS))  # type: ignore[arg-type]
    assert made.attachments == SPANS
    assert folded(made) == [SUMMARY]
    assert Turn("q", "a").attachments == ()


@pytest.mark.parametrize(
    "spans",
    [[(0, 99)], [(3, 2)], [(0, 4), (2, 6)], [(4, 6), (0, 2)]],
    ids=["past-the-end", "backwards", "overlapping", "out-of-order"],
)
def test_a_turn_refuses_attachments_that_do_not_lie_in_order_inside_its_prompt(
    spans: list[tuple[int, int]],
) -> None:
    attachments = tuple(Attachment("x", "x", start, end) for start, end in spans)
    with pytest.raises(ValueError, match="attachments"):
        Turn("0123456789", "a", attachments=attachments)


# --- notebook semantics, in memory ----------------------------------------------------------


def test_turns_without_a_cell_id_append() -> None:
    history = History()
    history.commit(turn("one"))
    history.commit(turn("one"))
    assert prompts(history) == ["one", "one"]
    assert history.before(None) == history.turns
    assert history.last() == history.turns[-1]


def test_rerunning_a_cell_replaces_its_turn_and_before_gives_only_earlier_turns() -> None:
    history = History()
    history.commit(turn("first", "cell-a"))
    history.commit(turn("second", "cell-b"))
    assert prompts(history.before("cell-b")) == ["first"]
    history.commit(turn("second, reworded", "cell-b"))
    assert prompts(history) == ["first", "second, reworded"]
    assert len(history) == 2


def test_a_cell_run_again_after_later_cells_keeps_its_position() -> None:
    history = History()
    for cell in ("a", "b", "c"):
        history.commit(turn(f"ask {cell}", cell))
    assert prompts(history.before("b")) == ["ask a"]
    history.commit(turn("ask b again", "b"))
    assert prompts(history) == ["ask a", "ask b again", "ask c"]
    assert history.last() is not None and history.last().prompt == "ask c"  # type: ignore[union-attr]


def test_a_new_cell_gets_every_turn_so_far() -> None:
    history = History()
    history.commit(turn("a", "cell-a"))
    assert history.before("cell-new") == history.turns
    assert History().last() is None


# --- persistence ----------------------------------------------------------------------------


def test_a_new_history_on_the_same_file_and_key_restores_everything(
    store: HistoryStore, db_path: Path
) -> None:
    history = History(store, NOTEBOOK)
    history.system = "Answer in French."
    history.commit(turn("a", "cell-a"))
    history.commit(turn("b", "cell-b", status="interrupted"))
    history.commit(
        turn("a again", "cell-a", model="m1", usage={"prompt_tokens": 1, "total_tokens": 3})
    )

    reloaded = restart(db_path)

    assert reloaded.turns == history.turns
    assert [t.status for t in reloaded] == ["complete", "interrupted"]
    assert reloaded.turns[0].usage == {"prompt_tokens": 1, "total_tokens": 3}
    assert reloaded.turns[0].model == "m1"
    assert reloaded.system == "Answer in French."
    assert prompts(reloaded.before("cell-b")) == ["a again"]


def test_a_system_prompt_alone_survives_a_restart(store: HistoryStore, db_path: Path) -> None:
    History(store, NOTEBOOK).system = "Be brief."
    reloaded = restart(db_path)
    assert reloaded.system == "Be brief."
    assert reloaded.turns == ()


def test_a_reloaded_history_goes_on_in_the_same_conversation(
    store: HistoryStore, db_path: Path
) -> None:
    History(store, NOTEBOOK).commit(turn("before restart", "c1"))
    with HistoryStore(db_path) as second_store:
        History(second_store, NOTEBOOK).commit(turn("after restart", "c2"))
    assert prompts(restart(db_path)) == ["before restart", "after restart"]
    assert len(store.conversations(NOTEBOOK)) == 1


def test_new_conversation_empties_and_a_restart_finds_the_new_one(
    store: HistoryStore, db_path: Path
) -> None:
    history = History(store, NOTEBOOK)
    history.system = "Be brief."
    history.commit(turn("old", "c1"))
    history.new_conversation()
    assert history.turns == ()
    assert history.before("c1") == ()
    assert history.system == "Be brief."  # the system prompt carries over

    reloaded = restart(db_path)
    assert reloaded.turns == ()
    assert reloaded.system == "Be brief."

    history.commit(turn("new", "c1"))
    assert prompts(restart(db_path)) == ["new"]
    older = store.conversations(NOTEBOOK)
    assert [prompts(c.turns) for c in older] == [["new"], ["old"]]


def test_different_notebook_keys_do_not_see_each_others_turns(store: HistoryStore) -> None:
    one, other = History(store, "/nb/one.ipynb"), History(store, "/nb/other.ipynb")
    one.commit(turn("for one", "same-cell-id"))
    other.commit(turn("for other", "same-cell-id"))
    other.system = "other's system"
    assert prompts(History(store, "/nb/one.ipynb")) == ["for one"]
    assert prompts(History(store, "/nb/other.ipynb")) == ["for other"]
    assert History(store, "/nb/one.ipynb").system is None
    assert History(store, "/nb/never.ipynb").turns == ()


def test_two_connections_to_one_file_write_and_read_at_once(db_path: Path) -> None:
    with HistoryStore(db_path) as first_store, HistoryStore(db_path) as second_store:
        first, second = History(first_store, "/nb/a.ipynb"), History(second_store, "/nb/b.ipynb")
        for n in range(3):
            first.commit(turn(f"a{n}"))
            second.commit(turn(f"b{n}"))
        assert prompts(History(second_store, "/nb/a.ipynb")) == ["a0", "a1", "a2"]
        assert prompts(History(first_store, "/nb/b.ipynb")) == ["b0", "b1", "b2"]


def test_a_write_waits_for_another_process_holding_the_write_lock(
    store: HistoryStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = History(store, NOTEBOOK)
    history.commit(turn("first"))
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another kernel in the middle of a write
        assert prompts(restart(db_path)) == ["first"]  # WAL: reading is not blocked
        release = threading.Timer(0.2, other.execute, args=("COMMIT",))
        release.start()
        history.commit(turn("second"))  # blocks until the other write ends, then succeeds
        release.join()
    finally:
        other.close()
    assert nbchat_warnings(caplog) == []
    assert prompts(restart(db_path)) == ["first", "second"]


def test_commits_from_another_thread_are_stored(store: HistoryStore, db_path: Path) -> None:
    history = History(store, NOTEBOOK)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            history.commit(turn(f"from thread {n}", f"cell-{n}"))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(prompts(restart(db_path))) == sorted(f"from thread {n}" for n in range(8))
    assert restart(db_path).turns == history.turns


def test_the_file_uses_wal_and_carries_a_schema_version(store: HistoryStore, db_path: Path) -> None:
    History(store, NOTEBOOK).commit(turn("q"))
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        raw.close()
    assert {"conversations", "turns"} <= tables


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_directories_are_private_and_the_file_is_readable_by_its_owner_only(
    store: HistoryStore, db_path: Path, tmp_path: Path
) -> None:
    History(store, NOTEBOOK).commit(turn("q"))
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    wal = Path(f"{db_path}-wal")
    assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600
    for directory in (tmp_path / "data", tmp_path / "data" / "nbchat"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


# --- attachments and schema versions --------------------------------------------------------

# The schema of version 1, as nbchat wrote it before turns kept their attachments.
VERSION_1_SCHEMA = (
    "CREATE TABLE conversations (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " notebook_key TEXT NOT NULL, created REAL NOT NULL, system TEXT)",
    "CREATE INDEX conversations_by_notebook ON conversations (notebook_key, id)",
    "CREATE TABLE turns (conversation_id INTEGER NOT NULL REFERENCES conversations (id),"
    " position INTEGER NOT NULL CHECK (position >= 0), cell_id TEXT, prompt TEXT NOT NULL,"
    " reply TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('complete', 'interrupted')),"
    " model TEXT NOT NULL, usage TEXT, created REAL NOT NULL,"
    " PRIMARY KEY (conversation_id, position))",
)


def raw_query(db_path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run one statement on the file with plain sqlite3, outside nbchat, and commit it."""
    raw = sqlite3.connect(db_path)
    try:
        with raw:
            return raw.execute(sql, args).fetchall()
    finally:
        raw.close()


def test_attachments_survive_a_restart_and_fold_the_same_text(
    store: HistoryStore, db_path: Path
) -> None:
    history = History(store, NOTEBOOK)
    history.commit(Turn(PROMPT, "a dip in March", cell_id="c1", attachments=SPANS))
    history.commit(turn("no summaries here", "c2"))

    reloaded = restart(db_path)

    assert reloaded.turns == history.turns
    assert reloaded.turns[0].attachments == SPANS
    assert folded(reloaded.turns[0]) == [SUMMARY]
    assert reloaded.turns[1].attachments == ()
    stored = raw_query(db_path, "SELECT attachments FROM turns ORDER BY position")
    assert stored == [(json.dumps([a.to_json() for a in SPANS], ensure_ascii=False),), (None,)]


def test_a_version_1_file_is_migrated_in_place_and_its_turns_read_back(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    for statement in VERSION_1_SCHEMA:
        raw_query(db_path, statement)
    raw_query(
        db_path,
        "INSERT INTO conversations (notebook_key, created, system) VALUES (?, 1.0, 'Be brief.')",
        NOTEBOOK,
    )
    raw_query(
        db_path,
        "INSERT INTO turns VALUES (1, 0, 'c1', 'old question', 'old answer', 'complete', 'm0',"
        " '{\"total_tokens\": 7}', 2.0)",
    )
    raw_query(db_path, "PRAGMA user_version = 1")

    with HistoryStore(db_path) as store:
        history = History(store, NOTEBOOK)
        (old,) = history.turns
        assert (old.prompt, old.reply, old.cell_id, old.model) == (
            "old question",
            "old answer",
            "c1",
            "m0",
        )
        assert old.usage == {"total_tokens": 7}
        assert old.attachments == ()
        assert history.system == "Be brief."
        history.commit(Turn(PROMPT, "new answer", cell_id="c2", attachments=SPANS))

    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    columns = [row[1] for row in raw_query(db_path, "PRAGMA table_info(turns)")]
    assert columns[-2:] == ["attachments", "details"]
    reloaded = restart(db_path)
    assert prompts(reloaded) == ["old question", PROMPT]
    assert folded(reloaded.turns[1]) == [SUMMARY]


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        '{"start": 0, "end": 4}',
        "[1, 2]",
        '[{"name": "sales", "start": 5, "end": 2}]',
        '[{"name": "sales", "start": "0", "end": 4}]',
        '[{"name": "sales", "start": 0, "end": 100000}]',
        '[{"start": 0, "end": 8}, {"start": 4, "end": 12}]',
        b"\xff\x00",
    ],
    ids=["not-json", "object", "numbers", "backwards", "text-start", "past-end", "overlap", "blob"],
)
def test_malformed_stored_attachments_read_back_as_none_and_keep_the_turn(
    store: HistoryStore, db_path: Path, value: str | bytes
) -> None:
    History(store, NOTEBOOK).commit(Turn(PROMPT, "answer", cell_id="c1", attachments=SPANS))
    raw_query(db_path, "UPDATE turns SET attachments = ?", value)

    (reloaded,) = restart(db_path).turns

    assert reloaded.prompt == PROMPT
    assert reloaded.attachments == ()


# --- secrets --------------------------------------------------------------------------------


def test_scrub_keeps_a_pasted_key_out_of_the_file_and_out_of_memory(
    db_path: Path, store: HistoryStore
) -> None:
    def scrub(text: str) -> str:
        return text.replace(FAKE_KEY, "[key removed]")

    history = History(store, NOTEBOOK, scrub=scrub)
    history.system = f"my key is {FAKE_KEY}"
    history.commit(Turn(f"is {FAKE_KEY} valid?", f"{FAKE_KEY} looks like a key", cell_id="c"))
    history.commit(Turn(f"again: {FAKE_KEY}", "no", cell_id="c"))  # a re-run rewrites the row

    remembered = [*prompts(history), *(t.reply for t in history), history.system]
    assert all(FAKE_KEY not in text for text in remembered if text is not None)
    assert history.turns[0].prompt == "again: [key removed]"
    on_disk = b"".join(
        Path(f"{db_path}{suffix}").read_bytes()
        for suffix in ("", "-wal")
        if Path(f"{db_path}{suffix}").exists()
    )
    assert b"[key removed]" in on_disk  # the text did reach the file, scrubbed
    assert FAKE_KEY.encode() not in on_disk


KEY_SCRUBBER = KeyScrubber(APIKey(FAKE_KEY))


def test_scrubbing_a_key_out_of_the_prompt_moves_each_fold_to_its_scrubbed_summary(
    store: HistoryStore, db_path: Path
) -> None:
    config = f"base_url = https://example.org\napi_key = {FAKE_KEY}"
    prompt, spans = with_summaries(
        "Why does this fail?\n\n",
        ("config", config),
        f"\n\nmy key {FAKE_KEY} works elsewhere\n\n",
        ("sales", SUMMARY),
    )
    history = History(store, NOTEBOOK, scrub=KEY_SCRUBBER.scrub)

    kept = history.commit(Turn(prompt, "check the key", cell_id="c1", attachments=spans))

    assert kept == history.turns[0]
    assert kept.prompt == prompt.replace(FAKE_KEY, REDACTED)
    assert folded(kept) == [config.replace(FAKE_KEY, REDACTED), SUMMARY]
    assert [(a.name, a.label) for a in kept.attachments] == [(a.name, a.label) for a in spans]
    assert restart(db_path).turns == (kept,)


def test_a_key_across_the_edge_of_a_summary_is_scrubbed_and_the_folds_dropped() -> None:
    half = len(FAKE_KEY) // 2
    prompt, spans = with_summaries(
        f"typed {FAKE_KEY[:half]}", ("odd", f"{FAKE_KEY[half:]} then a summary")
    )
    assert FAKE_KEY in prompt

    text, attachments = scrub_prompt(KEY_SCRUBBER.scrub, prompt, spans)

    assert text == prompt.replace(FAKE_KEY, REDACTED)
    assert attachments == ()


def test_a_prompt_without_a_key_keeps_its_folds_as_they_were() -> None:
    assert scrub_prompt(KEY_SCRUBBER.scrub, PROMPT, SPANS) == (PROMPT, SPANS)
    assert scrub_prompt(KEY_SCRUBBER.scrub, f"{FAKE_KEY}?", ()) == (f"{REDACTED}?", ())


# --- storage failures -----------------------------------------------------------------------


def test_an_unwritable_store_warns_once_and_history_works_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where a directory should be")
    with HistoryStore(blocker / "history.sqlite3") as broken:
        history = History(broken, NOTEBOOK)
        history.system = "s"
        history.commit(turn("a", "c1"))
        history.commit(turn("b", "c2"))
        history.commit(turn("a again", "c1"))
        history.new_conversation()
        history.commit(turn("c", "c3"))
    assert prompts(history) == ["c"]
    assert history.system == "s"
    warnings = nbchat_warnings(caplog)
    assert len(warnings) == 1
    assert "in memory" in warnings[0].getMessage()
    assert str(blocker) in warnings[0].getMessage()


def test_a_store_that_fails_mid_session_warns_once_and_keeps_every_turn(
    store: HistoryStore, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history = History(store, NOTEBOOK)
    history.commit(turn("saved", "c1"))
    store.close()  # from here on every write fails
    history.commit(turn("kept in memory", "c2"))
    history.commit(turn("also in memory", "c3"))
    history.system = "s"
    assert prompts(history) == ["saved", "kept in memory", "also in memory"]
    assert len(nbchat_warnings(caplog)) == 1
    assert prompts(restart(db_path)) == ["saved"]


def test_a_corrupt_file_is_left_alone_and_history_works_in_memory(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    garbage = bytes(range(256)) * 16
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(garbage)
    with HistoryStore(db_path) as corrupt:
        history = History(corrupt, NOTEBOOK)
        history.commit(turn("q", "c1"))
        history.commit(turn("r", "c2"))
    assert prompts(history) == ["q", "r"]
    assert len(nbchat_warnings(caplog)) == 1
    assert db_path.read_bytes() == garbage


def test_a_file_from_a_newer_nbchat_is_not_touched(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db_path.parent.mkdir(parents=True)
    newer = sqlite3.connect(db_path)
    newer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    newer.close()
    with HistoryStore(db_path) as store:
        history = History(store, NOTEBOOK)
        history.commit(turn("q"))
    assert prompts(history) == ["q"]
    warnings = nbchat_warnings(caplog)
    assert len(warnings) == 1 and "newer" in warnings[0].getMessage()
    assert raw_query(db_path, "SELECT name FROM sqlite_master") == []
    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]


def test_without_a_store_history_is_in_memory_and_silent(caplog: pytest.LogCaptureFixture) -> None:
    history = History()
    history.system = "s"
    history.commit(turn("q"))
    history.new_conversation()
    assert len(history) == 0 and history.system == "s"
    assert nbchat_warnings(caplog) == []


def test_making_a_store_touches_nothing_until_it_is_used(tmp_path: Path) -> None:
    HistoryStore(tmp_path / "later" / "history.sqlite3").close()
    assert not (tmp_path / "later").exists()


# --- notebook_key ---------------------------------------------------------------------------

KERNEL_FILE = "/run/user/1000/jupyter/runtime/kernel-1f2e3d4c-aaaa.json"


def test_notebook_key_prefers_vscode_then_jupyter_server_then_kernel_then_process() -> None:
    vscode = {"__vsc_ipynb_file__": "/work/vs.ipynb"}
    server = {"JPY_SESSION_NAME": "/work/lab.ipynb"}
    assert notebook_key(vscode, server, connection_file=KERNEL_FILE) == "/work/vs.ipynb"
    assert notebook_key({}, server, connection_file=KERNEL_FILE) == "/work/lab.ipynb"
    assert notebook_key({}, {}, connection_file=KERNEL_FILE) == "kernel:1f2e3d4c-aaaa"
    process_key = notebook_key({}, {})
    assert process_key.startswith(f"process:{os.getpid()}:")
    assert notebook_key({}, {}) == process_key  # stable for the life of the process


def test_notebook_key_skips_empty_and_non_string_values() -> None:
    user_ns = {"__vsc_ipynb_file__": 42}
    assert notebook_key(user_ns, {"JPY_SESSION_NAME": "  "}, connection_file="") == (
        notebook_key({}, {})
    )
    assert notebook_key({"__vsc_ipynb_file__": ""}, {"JPY_SESSION_NAME": "/x.ipynb"}) == "/x.ipynb"


def test_notebook_key_normalises_paths_but_keeps_relative_session_names() -> None:
    home = os.path.expanduser("~")
    assert notebook_key({"__vsc_ipynb_file__": "~/nb.ipynb"}, {}) == os.path.join(home, "nb.ipynb")
    assert notebook_key({}, {"JPY_SESSION_NAME": "/work//sub/../nb.ipynb"}) == "/work/nb.ipynb"
    assert notebook_key({}, {"JPY_SESSION_NAME": "sub/nb.ipynb"}) == "sub/nb.ipynb"


def test_a_connection_file_with_another_name_still_names_the_kernel() -> None:
    assert notebook_key({}, {}, connection_file="/tmp/my-kernel.json") == "kernel:my-kernel"


# --- default_path ---------------------------------------------------------------------------


def test_nbchat_home_decides_where_history_lives() -> None:
    environ = {"NBCHAT_HOME": "/srv/nbchat", "JUPYTER_DATA_DIR": "/srv/jupyter", "HOME": "/h"}
    assert HistoryStore.default_path(environ) == Path("/srv/nbchat/history.sqlite3")


def test_otherwise_history_lives_in_the_jupyter_data_dir() -> None:
    environ = {"JUPYTER_DATA_DIR": "/srv/jupyter", "HOME": "/h", "XDG_DATA_HOME": "/x"}
    assert HistoryStore.default_path(environ) == Path("/srv/jupyter/nbchat/history.sqlite3")


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {"HOME": "/h", "XDG_DATA_HOME": "/x"}, "/x/jupyter"),
        ("linux", {"HOME": "/h"}, "/h/.local/share/jupyter"),
        ("freebsd14", {"HOME": "/h", "XDG_DATA_HOME": ""}, "/h/.local/share/jupyter"),
        ("darwin", {"HOME": "/Users/me", "XDG_DATA_HOME": "/x"}, "/Users/me/Library/Jupyter"),
        ("win32", {"APPDATA": "/appdata", "HOME": "/h"}, "/appdata/jupyter"),
        ("win32", {"USERPROFILE": "/profile"}, "/profile/.jupyter/data"),
    ],
)
def test_the_platform_default_jupyter_data_dir(
    platform: str, environ: dict[str, str], expected: str
) -> None:
    assert HistoryStore.default_path(environ, platform=platform) == (
        Path(expected) / "nbchat" / "history.sqlite3"
    )


def test_default_path_reads_the_process_environment() -> None:
    assert HistoryStore.default_path() == Path(os.environ["NBCHAT_HOME"]) / "history.sqlite3"
