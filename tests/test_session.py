"""``ChatSession`` on its own: observers, one reply at a time, what reaches history."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

from nbchat.errors import BusyError, ConfigError, InStreamError, RequestValidationError
from nbchat.history import History
from nbchat.notebook import get_session, reset_session_for_tests
from nbchat.reply import Reply
from nbchat.session import ChatSession
from nbchat.store import HistoryStore
from nbchat.testing import LoopbackServer
from nbchat.testing import Reply as Scripted

from conftest import fast_settings, follow


@pytest.fixture
def session(server: LoopbackServer) -> Iterator[ChatSession]:
    chat = ChatSession(fast_settings(server.base_url, max_retries=0))
    yield chat
    chat.close()


class Recorder:
    """An observer noting each status it saw and the text at that moment."""

    def __init__(self, server: LoopbackServer | None = None) -> None:
        self.seen: list[tuple[str, str]] = []
        self.requests_at_pending: int | None = None
        self.server = server

    def __call__(self, reply: Reply) -> None:
        if reply.status == "pending" and self.server is not None:
            self.requests_at_pending = len(self.server.chat_requests)
        self.seen.append((reply.status, reply.text))


def test_observers_follow_a_reply_from_placeholder_to_end(
    session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Scripted("Hello there, notebook.", chunk_size=4))
    recorder = Recorder(server)
    reply = session.ask("hi", observer=recorder)
    statuses = [status for status, _ in recorder.seen]
    assert statuses[0] == "pending" and statuses[-1] == "done"
    assert set(statuses[1:-1]) == {"streaming"}
    assert recorder.requests_at_pending == 0  # told before the request was sent
    texts = [text for status, text in recorder.seen if status == "streaming"]
    assert texts == sorted(texts, key=len) and texts[-1] == "Hello there, notebook."
    assert reply.status == "done" and reply.text == "Hello there, notebook."
    assert session.last_reply is reply


def test_subscribers_see_every_reply_until_they_unsubscribe(
    session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Scripted("one"), Scripted("two"))
    recorder = Recorder()
    unsubscribe = follow(session, recorder)
    session.ask("first")
    unsubscribe()
    session.ask("second")
    assert ("done", "one") in recorder.seen
    assert all(text != "two" for _, text in recorder.seen)


def test_a_broken_observer_does_not_break_the_reply(
    session: ChatSession, server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.enqueue(Scripted("fine"))

    def broken(reply: Reply) -> None:
        raise RuntimeError("display exploded")

    with caplog.at_level(logging.ERROR, logger="nbchat"):
        reply = session.ask("hi", observer=broken)
    assert reply.text == "fine"
    assert "observer" in caplog.text


def test_one_reply_at_a_time(session: ChatSession, server: LoopbackServer) -> None:
    server.enqueue(Scripted("slow " * 20, chunk_size=5, delay=0.02))
    streaming = threading.Event()
    follow(session, lambda r: streaming.set() if r.status == "streaming" else None)
    worker = threading.Thread(target=session.ask, args=("first",))
    worker.start()
    assert streaming.wait(10)
    with pytest.raises(BusyError, match="already streaming"):
        session.ask("second")
    worker.join()
    assert len(server.chat_requests) == 1
    assert not session.busy


def test_cancel_keeps_the_partial_reply_as_interrupted(
    session: ChatSession, server: LoopbackServer
) -> None:
    assert session.cancel() is False  # nothing in flight
    server.enqueue(Scripted("abcdefgh" * 20, chunk_size=4, stall_after=5, stall_seconds=20))
    follow(session, lambda r: session.cancel() if r.chunks == 3 else None)
    reply = session.ask("go", cell_id="c1")
    assert reply.status == "interrupted"
    assert reply.text.startswith("abcd")
    (turn,) = session.history
    assert turn.status == "interrupted" and turn.reply == reply.text


def test_a_failed_reply_leaves_history_alone_and_keeps_its_partial_text(
    session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Scripted("kept"), Scripted("half a reply", chunk_size=3, error_after=2))
    session.ask("first")
    recorder = Recorder()
    with pytest.raises(InStreamError):
        session.ask("second", observer=recorder)
    assert recorder.seen[-1][0] == "failed"
    assert session.last_reply is not None and session.last_reply.text == "hal"
    assert isinstance(session.last_reply.error, InStreamError)
    assert [t.prompt for t in session.history] == ["first"]


def test_bad_requests_and_missing_keys_are_refused_before_anything_is_shown(
    server: LoopbackServer,
) -> None:
    chat = ChatSession(fast_settings(server.base_url))
    recorder = Recorder()
    with pytest.raises(RequestValidationError, match="temperature"):
        chat.ask("hi", params={"temperature": 5}, observer=recorder)
    remote = ChatSession(fast_settings("https://api.example.invalid/v1"))
    with pytest.raises(ConfigError, match="No API key"):
        remote.ask("hi", observer=recorder)
    assert recorder.seen == []
    assert server.chat_requests == []


def test_whole_replies_and_usage_totals(session: ChatSession, server: LoopbackServer) -> None:
    server.enqueue(
        Scripted("streamed", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
        Scripted("whole", usage={"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}),
    )
    session.ask("a")
    reply = session.ask("b", stream=False, model="other")
    assert reply.text == "whole" and server.last_request.json["stream"] is False
    totals = session.usage
    assert (totals.replies, totals.prompt_tokens, totals.completion_tokens) == (2, 7, 8)
    assert totals.total_tokens == 15
    assert totals.by_model == {"test-model": 5, "other": 10}


def test_the_request_carries_system_prompt_then_earlier_turns(
    session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Scripted("r1"), Scripted("r2"))
    session.system = "Be brief."
    session.ask("q1", cell_id="a")
    session.ask("q2", cell_id="b")
    request = session.build_request("q1 again", cell_id="a")
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1 again"},
    ]
    request = session.build_request("q3", cell_id="c", params={"seed": 1})
    assert [m["content"] for m in request.messages] == ["Be brief.", "q1", "r1", "q2", "r2", "q3"]
    assert request.extra == {"seed": 1}


def test_the_notebook_session_reloads_its_history_after_a_restart(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("JPY_SESSION_NAME", "work/analysis.ipynb")
    reset_session_for_tests()
    server.enqueue(Scripted("remembered"))
    first = get_session()
    assert get_session() is first
    first.ask("keep this", cell_id="x")
    reset_session_for_tests()  # what a kernel restart does to the process
    second = get_session()
    assert second is not first
    assert [(t.prompt, t.reply) for t in second.history] == [("keep this", "remembered")]
    reset_session_for_tests()


def test_the_key_is_scrubbed_from_what_history_stores(server: LoopbackServer, tmp_path) -> None:
    secret = "sk-scrub-me-0123456789abcdef"
    settings = fast_settings(server.base_url).with_key(secret)
    chat = ChatSession(settings)
    store = HistoryStore(tmp_path / "h.sqlite3")
    chat.history = History(store, "nb", scrub=chat.scrub)
    server.enqueue(Scripted("noted"))
    chat.ask(f"my key is {secret}")
    assert "[key removed]" in chat.history.turns[0].prompt
    store.close()
    assert secret.encode() not in (tmp_path / "h.sqlite3").read_bytes()
    assert secret not in repr(chat) and secret not in repr(chat.settings)
