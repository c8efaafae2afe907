"""Stop before the server's first byte: a server that holds its headers back, and a pause
between retries that a ``Retry-After`` asked for. Either way a stop from another thread ends
the reply at once as interrupted, keeps nothing, and closes the connection (seen at the
server). The time from the stop to the end is printed, never asserted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from nbchat.cancel import Cancellation, RequestCancelled
from nbchat.client import ChatClient
from nbchat.protocol import ChatRequest
from nbchat.session import ChatSession

from conftest import fast_settings
from holding_server import HoldingServer

HOLD = 30.0  # seconds the server would keep the client waiting
RATE_LIMITED = (
    b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


@pytest.fixture
def holding() -> Iterator[HoldingServer]:
    server = HoldingServer(hold=HOLD)
    yield server
    server.close()


@pytest.fixture
def rate_limiting() -> Iterator[HoldingServer]:
    server = HoldingServer(RATE_LIMITED, hold=HOLD)
    yield server
    server.close()


def patient_session(server: HoldingServer) -> ChatSession:
    """Timeouts and a retry budget longer than the server's hold: only a stop ends the wait."""
    return ChatSession(
        fast_settings(server.base_url, read_timeout=120.0, max_retries=3, retry_budget=120.0)
    )


def stop_after_request(session: ChatSession, server: HoldingServer, stopped: list[float]) -> None:
    """From another thread: once the request arrived (and a moment more, for the client to be
    waiting or pausing), stop, noting when."""

    def stop() -> None:
        server.request_arrived.wait(10)
        time.sleep(0.3)
        stopped.append(time.monotonic())
        session.cancel()

    threading.Thread(target=stop, daemon=True).start()


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_stop_while_the_server_holds_its_headers_ends_the_reply_at_once(
    holding: HoldingServer, stream: bool
) -> None:
    session = patient_session(holding)
    stopped: list[float] = []
    stop_after_request(session, holding, stopped)
    try:
        reply = session.ask("hi", stream=stream)
    finally:
        session.close()
    ended = time.monotonic()
    print(
        f"stop to end, headers held ({'streamed' if stream else 'whole'}): "
        f"{ended - stopped[0]:.3f} s"
    )
    assert reply.status == "interrupted" and reply.text == ""
    assert len(session.history) == 0
    assert holding.hung_up.wait(5), "the server never saw the connection close"
    assert holding.requests == 1  # a stop is not a reason to ask again


def test_stop_during_a_retry_after_pause_ends_the_reply_at_once(
    rate_limiting: HoldingServer,
) -> None:
    session = patient_session(rate_limiting)
    stopped: list[float] = []
    stop_after_request(session, rate_limiting, stopped)
    try:
        reply = session.ask("hi")
    finally:
        session.close()
    ended = time.monotonic()
    print(f"stop to end, Retry-After pause: {ended - stopped[0]:.3f} s")
    assert reply.status == "interrupted" and reply.text == ""
    assert len(session.history) == 0
    assert rate_limiting.hung_up.wait(5), "the kept-alive connection was left open"
    assert rate_limiting.requests == 1


def test_a_request_stopped_before_it_was_sent_never_reaches_the_server(
    holding: HoldingServer,
) -> None:
    client = ChatClient(fast_settings(holding.base_url))
    cancel = Cancellation()
    cancel.set()
    request = ChatRequest.build("test-model", [{"role": "user", "content": "hi"}])
    with pytest.raises(RequestCancelled):
        client.stream(request, cancel=cancel)
    client.close()
    assert holding.requests == 0


def test_the_session_streams_normally_after_a_stop(holding: HoldingServer) -> None:
    from nbchat.testing import LoopbackServer, Reply

    session = patient_session(holding)
    stopped: list[float] = []
    stop_after_request(session, holding, stopped)
    assert session.ask("hi").status == "interrupted"
    with LoopbackServer() as server:
        server.enqueue(Reply("Hello again"))
        session.settings = fast_settings(server.base_url)
        reply = session.ask("hi")
    session.close()
    assert reply.status == "done" and reply.text == "Hello again"
    assert len(session.history) == 1
