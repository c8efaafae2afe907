"""Record and replay in one process: fingerprints, reuse, only, the store and the saved
notebook's metadata, against the loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from nbchat.config import Settings
from nbchat.display import CellDisplay
from nbchat.errors import ConfigError, NoRecordingError
from nbchat.fingerprint import request_key
from nbchat.history import History
from nbchat.ipynb import follow_saved_notebook, notebook_path, read_saved_replies
from nbchat.protocol import ChatRequest
from nbchat.reply import Reply
from nbchat.session import ChatSession
from nbchat.store import HistoryStore
from nbchat.testing import LoopbackServer
from nbchat.testing import Reply as Scripted

from conftest import fast_settings, one_line
from ipython_shell import make_shell

MODEL = "gpt-4o-mini"  # one the loopback server lists
SECRET = "sk-replay-test-0a1b2c3d4e5f60718293SECRET"


class Sink:
    """Records a cell's outputs the way a kernel's display publisher sends them."""

    def __init__(self) -> None:
        self.shown: list[tuple[dict, dict]] = []

    def show(self, data: dict, metadata: dict, display_id: str) -> None:
        self.shown.append((data, metadata))

    def replace(self, data: dict, metadata: dict, display_id: str) -> None:
        self.shown.append((data, metadata))

    def clear(self, *, wait: bool) -> None:
        pass


@pytest.fixture
def session(server: LoopbackServer, tmp_path: Path) -> Iterator[ChatSession]:
    store = HistoryStore(tmp_path / "history.sqlite3")
    settings = fast_settings(server.base_url, model=MODEL, max_retries=0, replay="reuse")
    chat = ChatSession(settings, history=History(store, "notebook.ipynb"))
    yield chat
    chat.close()
    store.close()


def request(text: str, **params: object) -> ChatRequest:
    return ChatRequest.build("m", [{"role": "user", "content": text}], params)


def test_a_fingerprint_ignores_transport_fields_the_port_and_how_a_number_is_written() -> None:
    asked = request("hi", temperature=1.0)
    other = request("hi", temperature=1, stream_options={"include_usage": True})
    other.stream = False
    one = request_key("http://127.0.0.1:8001/v1", asked)
    two = request_key("http://127.0.0.1:9999/v1", other)
    assert one.fingerprint == two.fingerprint
    assert one.params == {"temperature": 1}
    assert request_key("http://127.0.0.1/v1", request("hi!")).fingerprint != one.fingerprint
    assert request_key("http://example.org/v1", asked).fingerprint != one.fingerprint
    assert request_key("http://127.0.0.1/v1", request("hi", top_p=0.5)).fingerprint != (
        one.fingerprint
    )


def test_reuse_answers_an_identical_request_from_its_recording_with_no_request_sent(
    session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Scripted("# Live\n\n" + "text " * 1000))
    live = session.ask("Explain p-values", cell_id="c1")
    assert not live.replayed and len(server.chat_requests) == 1
    sink = Sink()
    again = session.ask("Explain p-values", cell_id="c1", observer=CellDisplay(sink))
    assert len(server.chat_requests) == 1  # nothing sent
    assert again.replayed and again.text == live.text
    assert again.chunks > 2  # streamed in pieces, through the same path as a live reply
    data, metadata = sink.shown[-1]
    assert data["text/markdown"] == live.text
    assert "replayed" in data["text/html"] and metadata["nbchat"]["replayed"] is True
    assert session.usage.replies == 1  # a replay costs nothing
    (turn,) = session.history.turns
    assert turn.replayed and turn.request == again.request_key


def test_reuse_asks_the_server_for_a_request_it_has_not_seen(
    session: ChatSession, server: LoopbackServer
) -> None:
    session.ask("first", cell_id="c1")
    session.ask("first", cell_id="c2")  # same prompt, but c1's turn is now in the messages
    assert len(server.chat_requests) == 2


def test_only_names_what_differs_from_the_nearest_recording(
    session: ChatSession, server: LoopbackServer
) -> None:
    session.ask("Name three rivers", cell_id="c1")
    session.settings = replace(session.settings, replay="only")
    with pytest.raises(NoRecordingError) as changed:
        session.ask("Name four rivers", cell_id="c1")
    line = one_line(changed.value)
    assert "replay=only" in line and "the prompt (recorded: 'Name three rivers')" in line
    with pytest.raises(NoRecordingError) as warmer:
        session.ask("Name three rivers", cell_id="c1", params={"temperature": 0.2})
    assert "parameter temperature (recorded: None, now 0.2)" in one_line(warmer.value)
    assert "the prompt" not in one_line(warmer.value)
    with pytest.raises(NoRecordingError) as later:
        session.ask("Name three rivers", cell_id="c2")
    assert "the earlier messages" in one_line(later.value)
    assert len(server.chat_requests) == 1
    assert len(session.history) == 1  # nothing lost, nothing added


def test_only_needs_no_key_and_no_server(session: ChatSession, server: LoopbackServer) -> None:
    session.ask("hello", cell_id="c1")
    base_url = server.base_url
    server.stop()
    settings = Settings(base_url=base_url, model=MODEL, replay="only")
    session.settings = settings
    assert session.ask("hello", cell_id="c1").replayed
    session.settings = settings.with_base_url("https://api.example.com/v1")  # no key for it
    with pytest.raises(NoRecordingError) as error:
        session.ask("hello", cell_id="c1")
    assert "the server (recorded: 127.0.0.1, now api.example.com)" in one_line(error.value)


def test_only_with_no_recording_at_all_says_so(tmp_path: Path) -> None:
    chat = ChatSession(Settings(base_url="http://127.0.0.1:9/v1", replay="only"))
    with pytest.raises(NoRecordingError, match="no request was recorded yet"):
        chat.ask("hi")


def test_a_turns_request_and_replayed_mark_survive_the_store(
    session: ChatSession, server: LoopbackServer, tmp_path: Path
) -> None:
    session.ask("hello", cell_id="c1")
    session.ask("hello", cell_id="c1")
    with HistoryStore(tmp_path / "history.sqlite3") as store:
        (turn,) = History(store, "notebook.ipynb").turns
    assert turn.replayed and turn.request is not None
    assert turn.request.fingerprint == session.history.turns[0].request.fingerprint  # type: ignore[union-attr]


def test_the_replay_setting_is_read_from_the_environment_and_checked() -> None:
    assert Settings.from_env({"NBCHAT_REPLAY": "Only"}).replay == "only"
    assert Settings.from_env({}).replay == "off"
    with pytest.raises(ConfigError, match="replay must be one of off, reuse, only"):
        Settings.from_env({"NBCHAT_REPLAY": "always"})


def saved_notebook(path: Path, outputs: list[tuple[dict, dict]], ids: list[str]) -> Path:
    cells = [
        {
            "cell_type": "code",
            "id": cell_id,
            "metadata": {},
            "source": "%%chat\n…",
            "execution_count": 1,
            "outputs": [
                {"output_type": "display_data", "data": data, "metadata": metadata},
            ],
        }
        for cell_id, (data, metadata) in zip(ids, outputs, strict=True)
    ]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(notebook))
    return path


def test_the_saved_metadata_holds_the_request_and_never_the_key(
    server: LoopbackServer, tmp_path: Path
) -> None:
    settings = fast_settings(server.base_url, model=MODEL, max_retries=0).with_key(SECRET)
    chat = ChatSession(settings)
    sink = Sink()
    chat.ask(f"my key is {SECRET}, ignore it", cell_id="c1", observer=CellDisplay(sink))
    chat.ask("one-off", cell_id="c2", use_history=False, observer=CellDisplay(sink))
    (_, first), (_, second) = [shown for shown in sink.shown if shown[1]]
    meta = first["nbchat"]
    assert meta["version"] == 1 and meta["cell_id"] == "c1" and meta["model"] == MODEL
    assert meta["fingerprint"] == chat.history.turns[0].request.fingerprint  # type: ignore[union-attr]
    assert meta["host"] == "127.0.0.1" and meta["finish_reason"] == "stop"
    assert second["nbchat"]["kept"] is False
    assert SECRET not in json.dumps(first) + json.dumps(second)
    assert SECRET[-12:] not in json.dumps(first)


def test_a_saved_notebook_is_read_back_as_recordings_and_turns(
    server: LoopbackServer, tmp_path: Path
) -> None:
    live = ChatSession(fast_settings(server.base_url, model=MODEL, max_retries=0))
    sink = Sink()
    live.ask("one", cell_id="a", observer=CellDisplay(sink))
    live.ask("two", cell_id="b", observer=CellDisplay(sink))
    finals = [shown for shown in sink.shown if shown[1]]
    path = saved_notebook(tmp_path / "saved.ipynb", finals, ["a", "b"])
    saved = read_saved_replies(path)
    assert [s.text for s in saved] == [t.reply for t in live.history.turns]

    fresh = ChatSession(fast_settings(server.base_url, model=MODEL, replay="only"))
    lines: list[str] = []
    env = {"JPY_SESSION_NAME": "elsewhere/saved.ipynb"}
    assert notebook_path({}, env, str(tmp_path)) == tmp_path / "saved.ipynb"
    follow_saved_notebook(
        fresh, {}, env | {"NBCHAT_NOTEBOOK": str(path)}, cells_named=True, say=lines.append
    )
    assert lines == [
        "nbchat: the conversation (2 turns) was rebuilt from saved.ipynb's saved replies"
    ]
    assert [t.messages() for t in fresh.history.turns] == [t.messages() for t in live.history.turns]
    assert fresh.ask("two", cell_id="b").replayed  # rebuilt turns give the same request

    unnamed = ChatSession(fast_settings(server.base_url, model=MODEL, replay="only"))
    follow_saved_notebook(unnamed, {}, {"NBCHAT_NOTEBOOK": str(path)}, cells_named=False)
    assert len(unnamed.history) == 0 and len(unnamed.recordings) == 2
    assert unnamed.ask("one").text == live.history.turns[0].reply


def test_the_magic_sets_replay_and_history_marks_replayed_turns(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", MODEL)
    for shell in make_shell(rich=True):
        bad = shell.run("%chat config replay=sometimes")
        assert type(bad.error_in_exec) is UsageError
        assert "replay must be one of off, reuse, only" in capsys.readouterr().err
        shell.run("%chat config replay=reuse")
        assert "replay: reuse" in capsys.readouterr().out
        shell.run("%%chat\nhello", cell_id="c1")
        shell.run("%%chat\nhello", cell_id="c1")
        (final,) = shell.final_outputs()
        assert final.metadata["nbchat"]["replayed"] is True
        assert len(server.chat_requests) == 1
        shell.run("%chat history")
        assert "(replayed)" in capsys.readouterr().out


def test_a_paced_replay_streams_in_small_pieces_and_can_be_stopped(
    session: ChatSession, server: LoopbackServer
) -> None:
    text = "word " * 400
    server.enqueue(Scripted(text))
    session.ask("long one", cell_id="c1")
    session.settings = replace(session.settings, replay_pace=True)
    stopped = threading.Event()

    def stop_after_a_few(reply: Reply) -> None:
        if reply.chunks == 5 and not stopped.is_set():
            stopped.set()
            threading.Thread(target=session.cancel).start()

    replay = session.ask("long one", cell_id="c1", observer=stop_after_a_few)
    assert replay.replayed and replay.status == "interrupted"
    assert 0 < len(replay.text) < len(text)
    assert replay.text == text[: len(replay.text)]
    assert len(server.chat_requests) == 1


def test_a_conversation_reset_in_the_store_is_not_rebuilt_from_the_notebook(
    server: LoopbackServer, tmp_path: Path
) -> None:
    live = ChatSession(fast_settings(server.base_url, model=MODEL))
    sink = Sink()
    live.ask("one", cell_id="a", observer=CellDisplay(sink))
    path = saved_notebook(tmp_path / "saved.ipynb", [s for s in sink.shown if s[1]], ["a"])
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        History(store, "saved.ipynb").commit(live.history.turns[0])
        History(store, "saved.ipynb").new_conversation()  # %chat reset
        after_reset = ChatSession(live.settings, history=History(store, "saved.ipynb"))
        lines: list[str] = []
        env = {"NBCHAT_NOTEBOOK": str(path)}
        follow_saved_notebook(after_reset, {}, env, cells_named=True, say=lines.append)
        assert lines == [] and len(after_reset.history) == 0
        assert len(after_reset.recordings) == 1  # still there to replay from


def test_a_replayed_turn_keeps_its_mark_through_export_and_import(
    session: ChatSession, server: LoopbackServer, tmp_path: Path
) -> None:
    from nbchat import export, importer

    session.ask("Explain p-values", cell_id="c1")
    session.ask("Explain p-values", cell_id="c1")  # answered from the recording
    assert "(replayed)" in export.to_markdown(session)
    path = tmp_path / "conversation.json"
    export.write(session, path)
    assert json.loads(path.read_text("utf-8"))["turns"][0]["replayed"] is True
    (turn,) = importer.read(path).turns
    assert turn.replayed and turn.reply == session.history.turns[0].reply
