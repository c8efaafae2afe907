"""The HTTP client against a real loopback server over real sockets: streaming, payloads,
retries, every fault kind, and the one-line errors that come out of them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError, NewConnectionError

from nbchat.client import ChatClient
from nbchat.errors import (
    APIError,
    AuthenticationError,
    ConfigError,
    ConnectError,
    IncompleteStreamError,
    InStreamError,
    MalformedChunkError,
    NotFoundError,
    RateLimitError,
    RequestValidationError,
    ServerError,
    TransportTimeoutError,
)
from nbchat.http_errors import Failure, classify
from nbchat.protocol import ChatRequest, ChatResult
from nbchat.secrets import REDACTED, KeyScrubber
from nbchat.testing import LoopbackServer, RawSSE, Reply, Status

from conftest import fast_settings

CHINESE = "你好，世界！这是一个流式回复的测试。🙂👍🏽 emoji 和 中文 混合。"


def ask(text: str = "Hi", **params: Any) -> ChatRequest:
    return ChatRequest.build("test-model", [{"role": "user", "content": text}], params)


def run(client: ChatClient, request: ChatRequest | None = None) -> ChatResult:
    with client.stream(request or ask()) as stream:
        for _ in stream:
            pass
    assert stream.result is not None
    return stream.result


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


class WireTap:
    """A TCP relay in front of the loopback server, to see what the client does on the wire:
    how many connections it opens, the bytes the server sends back, when the client hangs up."""

    def __init__(self, upstream_port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.upstream_port = upstream_port
        self.connections = 0
        self.from_server = bytearray()
        self.client_hung_up = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # the listener was shut
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            for source, sink, from_client in ((client, upstream, True), (upstream, client, False)):
                pump = threading.Thread(target=self._pump, args=(source, sink, from_client))
                pump.daemon = True
                pump.start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not from_client:
                    with self._lock:
                        self.from_server += data
                sink.sendall(data)
        if from_client:
            self.client_hung_up.set()
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def response_head(self) -> list[bytes]:
        """The status line and headers of the first answer the server sent."""
        with self._lock:
            return bytes(self.from_server).split(b"\r\n\r\n")[0].split(b"\r\n")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def tap(server: LoopbackServer) -> Iterator[WireTap]:
    relay = WireTap(server.port)
    yield relay
    relay.close()


@pytest.fixture
def tapped(tap: WireTap) -> Iterator[ChatClient]:
    """A client whose connections pass through ``tap``."""
    chat_client = ChatClient(fast_settings(tap.base_url))
    yield chat_client
    chat_client.close()


# -- streaming -------------------------------------------------------------------------------


def test_stream_assembles_the_scripted_text(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="Hello **world**, here is `code`.", chunk_size=3))
    result = run(client)
    assert result.text == "Hello **world**, here is `code`."
    assert result.finish_reason == "stop"
    assert result.complete
    assert result.model == "test-model"
    assert result.id and result.created and result.system_fingerprint == "fp_loopback"


def test_chunks_are_yielded_as_they_arrive_not_at_the_end(
    server: LoopbackServer, client: ChatClient
) -> None:
    # The server goes silent after 4 events; a client that buffered the body would see nothing.
    server.enqueue(Reply(text="abcdefghij", chunk_size=1, stall_after=4, stall_seconds=30))
    stream = client.stream(ask())
    seen = []
    for chunk in stream:
        seen.append(chunk)
        if len(seen) == 4:
            stream.cancel()
    assert len(seen) == 4
    assert stream.accumulator.text() == "abc"
    assert stream.cancelled


def test_chinese_and_emoji_survive_any_network_split(
    server: LoopbackServer, client: ChatClient
) -> None:
    body = (
        "".join(
            "data: "
            + json.dumps(
                {"choices": [{"index": 0, "delta": {"content": piece}}]}, ensure_ascii=False
            )
            + "\n\n"
            for piece in (CHINESE[:7], CHINESE[7:20], CHINESE[20:])
        )
        + 'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    for piece_size in (1, 2, 3, 5):
        server.enqueue(RawSSE(body.encode("utf-8"), piece_size=piece_size))
        assert run(client).text == CHINESE


def test_server_without_charset_is_still_read_as_utf8(
    server: LoopbackServer, tap: WireTap, tapped: ChatClient
) -> None:
    server.enqueue(Reply(text=CHINESE, chunk_size=2))
    assert run(tapped).text == CHINESE
    assert b"Content-Type: text/event-stream" in tap.response_head()  # no "; charset=utf-8"


def test_reasoning_is_kept_apart_from_the_answer(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Reply(text="42.", reasoning="Let me think step by step."))
    result = run(client)
    assert result.text == "42."
    assert result.reasoning == "Let me think step by step."


def test_n_choices_are_assembled_separately(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(choices=["first answer", "second one", "third"], chunk_size=2))
    result = run(client, ask(n=3))
    assert [c.text for c in result.choices] == ["first answer", "second one", "third"]
    assert [c.index for c in result.choices] == [0, 1, 2]


def test_usage_is_requested_and_read(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="counted"))
    result = run(client)
    assert server.last_request.json["stream_options"] == {"include_usage": True}
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert "cached_tokens" in result.usage.prompt_tokens_details


def test_usage_request_can_be_switched_off(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url, include_usage=False))
    server.enqueue(Reply(text="x"))
    run(client)
    assert "stream_options" not in server.last_request.json


def test_callers_own_stream_options_are_kept(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="x"))
    run(client, ask(stream_options={"include_usage": False}))
    assert server.last_request.json["stream_options"] == {"include_usage": False}


def test_server_refusing_stream_options_is_asked_again_and_remembered(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.reject_fields = {"stream_options"}
    server.enqueue(Reply(text="first"), Reply(text="second"))
    assert run(client).text == "first"
    sent = [r.json for r in server.chat_requests]
    assert len(sent) == 2
    assert "stream_options" in sent[0]
    assert "stream_options" not in sent[1]
    assert run(client).text == "second"
    assert len(server.chat_requests) == 3
    assert "stream_options" not in server.chat_requests[-1].json


def test_every_request_field_reaches_the_server(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="ok"))
    request = ChatRequest.build(
        "test-model",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        {
            "temperature": 0.7,
            "top_p": 0.9,
            "n": 1,
            "stop": ["\n\n", "END"],
            "max_tokens": 64,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "logit_bias": {50256: -100, "1234": 5},
            "user": "analyst-7",
            "seed": 11,
            "response_format": {"type": "text"},
            "reasoning_effort": "low",
        },
    )
    run(client, request)
    sent = server.last_request.json
    assert sent["model"] == "test-model"
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["stream"] is True
    expected = {
        "temperature": 0.7,
        "top_p": 0.9,
        "n": 1,
        "stop": ["\n\n", "END"],
        "max_tokens": 64,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "logit_bias": {"50256": -100, "1234": 5},
        "user": "analyst-7",
        "seed": 11,
        "response_format": {"type": "text"},
        "reasoning_effort": "low",
    }
    assert {k: sent[k] for k in expected} == expected
    headers = server.last_request.headers
    assert headers["content-type"] == "application/json"
    assert headers["accept-encoding"] == "identity"  # no proxy may buffer a compressed stream
    assert headers["user-agent"].startswith("nbchat/")


def test_out_of_range_values_are_refused_before_sending(
    server: LoopbackServer, client: ChatClient
) -> None:
    request = ask()
    request.temperature = 3.5
    with pytest.raises(RequestValidationError, match=r"temperature: must be from 0 to 2"):
        client.stream(request)
    assert server.requests == []


def test_complete_returns_a_whole_reply(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="Whole reply.", reasoning="hmm"))
    result = client.complete(ask())
    assert server.last_request.json["stream"] is False
    assert "stream_options" not in server.last_request.json
    assert (result.text, result.reasoning, result.finish_reason) == ("Whole reply.", "hmm", "stop")
    assert result.usage is not None and result.usage.total_tokens


def test_server_that_ignores_stream_true_is_read_whole(
    server: LoopbackServer, client: ChatClient
) -> None:
    body = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "not streamed"},
                "finish_reason": "stop",
            }
        ],
    }
    server.enqueue(Status(200, body=body))
    assert run(client).text == "not streamed"


def test_connections_are_pooled(server: LoopbackServer, tap: WireTap, tapped: ChatClient) -> None:
    server.enqueue(Reply(text="one"), Reply(text="two"))
    assert run(tapped).text == "one"
    assert run(tapped).text == "two"
    assert len(server.chat_requests) == 2
    assert tap.connections == 1  # the second request went over the first one's connection
    assert not tap.client_hung_up.is_set()


# -- models ----------------------------------------------------------------------------------


def test_list_models(server: LoopbackServer, client: ChatClient) -> None:
    server.models = ["zeta", "alpha", "mid"]
    assert client.list_models() == ["alpha", "mid", "zeta"]
    assert server.last_request.path == "/v1/models"


def test_models_404_points_at_the_base_url(server: LoopbackServer, client: ChatClient) -> None:
    server.models = None
    with pytest.raises(NotFoundError) as caught:
        client.list_models()
    assert caught.value.status == 404
    assert server.base_url in one_line(caught.value)


# -- retries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(
    server: LoopbackServer, client: ChatClient, status: int
) -> None:
    server.enqueue(Status(status, headers={"Retry-After": "0"}), Reply(text="after retry"))
    assert run(client).text == "after retry"
    assert len(server.chat_requests) == 2


def test_retry_after_is_honoured(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Status(429, headers={"Retry-After": "1"}), Reply(text="patient"))
    assert run(client).text == "patient"
    first, second = server.chat_requests
    assert second.received_at - first.received_at >= 0.9


def test_retry_after_beyond_the_budget_fails_at_once(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Status(429, headers={"Retry-After": "600"}), Reply(text="never"))
    with pytest.raises(RateLimitError) as caught:
        run(client)
    assert len(server.chat_requests) == 1
    message = one_line(caught.value)
    assert "Rate limited" in message and "600" in message
    assert caught.value.status == 429


def test_retries_are_bounded_in_count(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url, backoff_factor=0.01))
    server.enqueue(*[Status(503, body={"error": {"message": "overloaded, try later"}})] * 5)
    with pytest.raises(ServerError) as caught:
        run(client)
    assert len(server.chat_requests) == 3  # one try and max_retries=2 retries
    message = one_line(caught.value)
    assert (
        "HTTP 503" in message and "overloaded, try later" in message and "tried 3 times" in message
    )


def test_client_errors_are_not_retried(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Status(400, body={"error": {"message": "messages: too long"}}))
    with pytest.raises(APIError) as caught:
        run(client)
    assert len(server.chat_requests) == 1
    assert caught.value.status == 400
    assert caught.value.server_message == "messages: too long"
    assert "messages: too long" in one_line(caught.value)


def test_a_slow_server_is_not_asked_twice(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url, read_timeout=0.3))
    server.enqueue(Status(200, body={"choices": []}, delay=2.0))
    with pytest.raises(TransportTimeoutError, match="sent nothing for 0.3 s"):
        run(client)
    assert len(server.chat_requests) == 1


def test_changed_retry_settings_take_effect(server: LoopbackServer, client: ChatClient) -> None:
    client.settings = fast_settings(server.base_url, max_retries=0)
    server.enqueue(Status(503), Reply(text="not reached"))
    with pytest.raises(ServerError, match="not retried"):
        run(client)
    assert len(server.chat_requests) == 1


def test_a_broken_stream_is_not_retried(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Reply(text="partial text here", chunk_size=4, drop_after=3))
    with pytest.raises(IncompleteStreamError):
        run(client)
    assert len(server.chat_requests) == 1


# -- error statuses --------------------------------------------------------------------------


def test_401_names_the_variable_the_key_came_from(server: LoopbackServer) -> None:
    server.require_key = "sk-the-right-key-000000000000"
    settings = fast_settings(server.base_url).with_key(
        "sk-wrong-key-1111111111111", source="NBCHAT_API_KEY"
    )
    with pytest.raises(AuthenticationError) as caught:
        run(ChatClient(settings))
    message = one_line(caught.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message
    assert "NBCHAT_API_KEY" in message
    assert "sk-wrong-key" not in message


def test_401_without_a_key_says_none_was_sent(server: LoopbackServer, client: ChatClient) -> None:
    server.require_key = "sk-needed-0000000000000000"
    with pytest.raises(AuthenticationError, match="no key was sent"):
        run(client)


def test_unknown_model_404_names_the_model(server: LoopbackServer, client: ChatClient) -> None:
    server.known_models = {"gpt-4o-mini"}
    with pytest.raises(NotFoundError) as caught:
        run(client, ChatRequest.build("gpt-5-ultra", [{"role": "user", "content": "hi"}]))
    message = one_line(caught.value)
    assert "'gpt-5-ultra'" in message and "does not exist" in message


def test_echoed_keys_are_cut_by_the_scrubber_the_client_was_given(server: LoopbackServer) -> None:
    old_key, new_key = "sk-old-echo-0000000000000000", "sk-new-echo-1111111111111111"
    scrubber = KeyScrubber()
    client = ChatClient(fast_settings(server.base_url).with_key(old_key), scrubber=scrubber)
    client.settings = fast_settings(server.base_url).with_key(new_key)
    server.enqueue(
        Status(400, body={"error": {"message": f"bad keys {old_key} {new_key}"}}),
        Reply(text="partial", error_after=2, error_message=f"upstream rejected {new_key}"),
    )
    with pytest.raises(APIError) as refused:
        run(client)
    assert refused.value.server_message == f"bad keys {REDACTED} {REDACTED}"
    with pytest.raises(InStreamError) as broke:
        run(client)
    assert f"upstream rejected {REDACTED}" in one_line(broke.value)
    assert new_key not in json.dumps(broke.value.error)
    assert scrubber.scrub(old_key) == REDACTED  # the caller's scrubber learned both keys


def test_redirects_are_not_followed(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Status(307, headers={"Location": "http://127.0.0.1:9/v1/chat/completions"}))
    with pytest.raises(APIError, match="redirects to http://127.0.0.1:9/v1"):
        run(client)
    assert len(server.requests) == 1


def test_non_json_error_body_is_quoted(server: LoopbackServer, client: ChatClient) -> None:
    server.enqueue(Status(418, body="I'm a teapot\nreally"))
    with pytest.raises(APIError) as caught:
        run(client)
    assert (
        one_line(caught.value)
        == "HTTP 418 from " + server.base_url.split("/")[2] + ": I'm a teapot really"
    )


# -- faults inside the stream ----------------------------------------------------------------


def test_dropped_connection_keeps_the_partial_text(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Reply(text="The first part arrives, the rest never", chunk_size=5, drop_after=4))
    with pytest.raises(IncompleteStreamError) as caught:
        run(client)
    assert "broke in the middle of the reply" in one_line(caught.value)
    partial = caught.value.partial
    assert isinstance(partial, ChatResult)
    assert partial.text == "The first part "  # the role chunk and three 5-character deltas
    assert not partial.complete


def test_stalled_stream_times_out_with_the_partial_text(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url, read_timeout=0.5))
    server.enqueue(Reply(text="slow and then silent", chunk_size=5, stall_after=2))
    with pytest.raises(IncompleteStreamError) as caught:
        run(client)
    assert "sent nothing for 0.5 s" in one_line(caught.value)
    assert "NBCHAT_READ_TIMEOUT" in str(caught.value)
    assert caught.value.partial.text == "slow "


def test_malformed_chunk_is_reported_with_the_partial_text(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Reply(text="good text", chunk_size=4, malformed_after=2))
    with pytest.raises(MalformedChunkError) as caught:
        run(client)
    assert "not a completion chunk" in one_line(caught.value)
    assert caught.value.partial.text == "good"


def test_in_stream_error_carries_the_server_message(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(
        Reply(
            text="Hello there",
            chunk_size=6,
            error_after=2,
            error_message="upstream provider failed",
        )
    )
    with pytest.raises(InStreamError) as caught:
        run(client)
    message = one_line(caught.value)
    assert "upstream provider failed" in message and "server_error" in message
    assert caught.value.partial.text == "Hello "


def test_stream_without_done_but_finished_is_complete(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Reply(text="finished anyway", no_done=True))
    result = run(client)
    assert result.text == "finished anyway"
    assert result.complete


def test_stream_cut_before_any_finish_is_flagged_incomplete(
    server: LoopbackServer, client: ChatClient
) -> None:
    body = 'data: {"choices":[{"index":0,"delta":{"content":"half"}}]}\n\n'
    server.enqueue(RawSSE(body.encode()))
    with pytest.raises(
        IncompleteStreamError, match="ended before the reply was complete"
    ) as caught:
        run(client)
    assert caught.value.partial.text == "half"
    assert not caught.value.partial.complete


def test_cancel_from_another_thread_stops_a_stalled_stream(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Reply(text="abcdefgh", chunk_size=2, stall_after=2, stall_seconds=60))
    stream = client.stream(ask())
    timer = threading.Timer(0.3, stream.cancel)
    timer.start()
    chunks = list(stream)  # returns quietly once cancelled
    timer.join()
    assert stream.cancelled
    assert len(chunks) == 2
    assert stream.snapshot().text == "ab"
    server.enqueue(Reply(text="next one works"))
    assert run(client).text == "next one works"


# -- no answer at all ------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_connection_refused_names_the_host() -> None:
    port = _closed_port()
    client = ChatClient(fast_settings(f"http://127.0.0.1:{port}/v1", backoff_factor=0.01))
    with pytest.raises(ConnectError) as caught:
        run(client)
    message = one_line(caught.value)
    assert f"Connection to 127.0.0.1:{port} was refused" in message
    assert "tried 3 times" in message


def test_unknown_host_is_named() -> None:
    # .invalid is reserved (RFC 2606): no resolver anywhere answers for it.
    settings = fast_settings("https://nbchat-test.invalid/v1", backoff_factor=0.01)
    client = ChatClient(settings.with_key("sk-dns-test-000000000000"))
    with pytest.raises(ConnectError) as caught:
        run(client)
    message = one_line(caught.value)
    assert "Cannot resolve host nbchat-test.invalid" in message
    assert "check the spelling of the base URL" in message


def test_tls_to_a_plain_http_server_is_named(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url.replace("http://", "https://")))
    with pytest.raises(ConnectError) as caught:
        run(client)
    message = one_line(caught.value)
    assert f"TLS handshake with 127.0.0.1:{server.port} failed" in message
    assert "http vs https" in message
    assert server.chat_requests == []


NO_CONNECTION: Any = None  # urllib3 keeps the connection in the error; the test has none


@pytest.mark.parametrize(
    ("cause", "failure"),
    [
        (NewConnectionError(NO_CONNECTION, "Verbindung abgelehnt"), Failure.REFUSED),
        (NameResolutionError("h", NO_CONNECTION, socket.gaierror("Hôte inconnu")), Failure.DNS),
        (ConnectionRefusedError("?"), Failure.REFUSED),
        (ValueError("Connection refused"), None),
    ],
)
def test_transport_failures_are_known_by_type_not_by_their_words(
    cause: Exception, failure: Failure | None
) -> None:
    # Wrapped as requests raises them: its own error around urllib3's MaxRetryError.
    wrapped = requests.ConnectionError(MaxRetryError(NO_CONNECTION, "/v1/chat/completions", cause))
    assert classify(wrapped) is failure


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection attempt hangs (no SYN-ACK)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


def test_connect_timeout_is_reported(unaccepting_port: int) -> None:
    client = ChatClient(
        fast_settings(f"http://127.0.0.1:{unaccepting_port}/v1", connect_timeout=0.3, max_retries=0)
    )
    with pytest.raises(TransportTimeoutError, match="took longer than 0.3 s"):
        run(client)


def test_missing_key_for_a_remote_url_fails_before_any_connection() -> None:
    client = ChatClient(fast_settings("https://api.302.ai/v1"))
    with pytest.raises(ConfigError, match="No API key for https://api.302.ai/v1"):
        client.stream(ask())


# -- bodies that are not well-behaved chunked streams -------------------------------------------


class OneShotServer:
    """A bare socket server for one request, for framings the loopback server does not speak:
    a close-delimited HTTP/1.0-style body, or a chunked body that never ends."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.release = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def serve(self, before: bytes, after: bytes, *, close: bool) -> None:
        """Answer with ``before``, wait for ``release``, send ``after``, then close or hang."""

        def run() -> None:
            connection, _ = self.listener.accept()
            with connection:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += connection.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(body) < length:
                    body += connection.recv(65536)
                connection.sendall(before)
                self.release.wait(10)
                connection.sendall(after)
                if not close:
                    self.release.clear()
                    self.release.wait(10)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        if self.thread is not None:
            self.thread.join(5)
        self.listener.close()


@pytest.fixture
def one_shot() -> Iterator[OneShotServer]:
    bare = OneShotServer()
    yield bare
    bare.stop()


def _event(content: str | None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_close_delimited_body_is_streamed_as_it_arrives(one_shot: OneShotServer) -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    one_shot.serve(
        head + _event("first "), _event("second", "stop") + b"data: [DONE]\n\n", close=True
    )
    client = ChatClient(fast_settings(one_shot.base_url))
    with client.stream(ask()) as stream:
        chunks = iter(stream)
        next(chunks)  # arrives while the server still holds back the rest
        assert stream.accumulator.text() == "first "
        one_shot.release.set()
        rest = list(chunks)
    assert len(rest) == 1
    assert stream.result is not None
    assert stream.result.text == "first second"


def test_a_body_left_open_after_done_does_not_hold_the_reply(one_shot: OneShotServer) -> None:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    payload = _event("all of it", "stop") + b"data: [DONE]\n\n"
    framed = f"{len(payload):X}\r\n".encode() + payload + b"\r\n"  # and never the final 0-chunk
    one_shot.serve(head + framed, b"", close=False)
    client = ChatClient(fast_settings(one_shot.base_url, read_timeout=30))
    one_shot.release.set()
    result = run(client)
    assert result.text == "all of it"
    assert result.complete


def test_ctrl_c_mid_stream_closes_the_connection_and_the_client_goes_on(
    server: LoopbackServer, tap: WireTap, tapped: ChatClient
) -> None:
    server.enqueue(Reply(text="abcdefgh", chunk_size=2, stall_after=2, stall_seconds=60))
    stream = tapped.stream(ask())
    interrupter = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in stream:
            pass
    interrupter.join()
    assert stream.accumulator.text() == "ab"  # what arrived before Ctrl-C is still there
    assert tap.client_hung_up.wait(5)  # the connection was closed, not left in the pool
    server.enqueue(Reply(text="after the interrupt"))
    assert run(tapped).text == "after the interrupt"
    assert tap.connections == 2
