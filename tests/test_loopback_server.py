"""The loopback server over real sockets, read with http.client or a raw socket so that the
wire format itself (headers, chunk framing, where a connection ends) is what gets checked."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from nbchat.client import ChatClient
from nbchat.errors import NotFoundError
from nbchat.protocol import ChatRequest
from nbchat.testing import LONG_KEYWORD, LoopbackServer, RawSSE, Reply, Status
from nbchat.testing.server import DEFAULT_MODELS, main

from conftest import fast_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "Say hello"}]


# ---- helpers --------------------------------------------------------------------------------


def chat_payload(stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": HELLO, "stream": stream, **extra}


def post(
    server: LoopbackServer, payload: Any, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    conn.request(
        "POST", CHAT, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def get(
    server: LoopbackServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def data_lines(body: bytes) -> list[str]:
    """The payload of each ``data:`` event, in order."""
    events = body.decode("utf-8").split("\n\n")
    return [event.removeprefix("data: ") for event in events if event]


def chunks_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data_lines(body) if line != "[DONE]"]


def content_of(chunks: list[dict[str, Any]], key: str = "content", index: int = 0) -> str:
    return "".join(
        choice["delta"].get(key) or ""
        for chunk in chunks
        for choice in chunk["choices"]
        if choice["index"] == index
    )


@dataclass
class Raw:
    """A response read off a raw socket, chunk framing kept visible."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    terminated: bool  # the terminating 0-size chunk arrived
    file: BinaryIO
    sock: socket.socket

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    def at_eof(self) -> bool:
        return self.file.read(1) == b""


def open_raw(server: LoopbackServer, payload: dict[str, Any]) -> Raw:
    """Send a chat request on a raw socket and read the status line and headers."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    body = json.dumps(payload).encode()
    sock.sendall(
        f"POST {CHAT} HTTP/1.1\r\nHost: loopback\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    file = sock.makefile("rb")
    status = int(file.readline().split()[1])
    headers = {}
    while (line := file.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Raw(status, headers, [], False, file, sock)


def read_chunk(file: BinaryIO) -> bytes:
    """One chunk's data; b"" for the terminating chunk; EOFError if the connection ended."""
    size_line = file.readline()
    if not size_line.endswith(b"\r\n"):
        raise EOFError
    size = int(size_line, 16)
    data = file.read(size + 2)
    if len(data) < size + 2 or not data.endswith(b"\r\n"):
        raise EOFError
    return data[:-2]


def read_all(raw: Raw) -> Raw:
    try:
        while chunk := read_chunk(raw.file):
            raw.chunks.append(chunk)
        raw.terminated = True
    except EOFError:
        pass
    return raw


def raw_post(server: LoopbackServer, payload: dict[str, Any]) -> Raw:
    return read_all(open_raw(server, payload))


# ---- streaming replies ----------------------------------------------------------------------


def test_stream_headers_and_one_event_per_chunk(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="Hello **world**"))
    raw = raw_post(server, chat_payload())
    assert raw.status == 200
    assert raw.headers["content-type"] == "text/event-stream"
    assert raw.headers["transfer-encoding"] == "chunked"
    assert raw.headers["cache-control"] == "no-cache"
    assert "content-length" not in raw.headers
    assert raw.terminated
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in raw.chunks)
    assert all(chunk.count(b"\n\n") == 1 for chunk in raw.chunks)
    assert raw.chunks[-1] == b"data: [DONE]\n\n"
    chunks = chunks_of(raw.body)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk["model"] for chunk in chunks} == {"gpt-4o-mini"}
    assert len({chunk["id"] for chunk in chunks}) == 1
    assert content_of(chunks) == "Hello **world**"
    raw.sock.close()


def test_stream_carries_chinese_and_emoji_as_raw_utf8(server: LoopbackServer) -> None:
    text = "你好\N{FULLWIDTH COMMA}世界\N{FULLWIDTH EXCLAMATION MARK}Hello 👋🏽 naïve ✅"
    server.enqueue(Reply(text=text, chunk_size=3, model="deepseek-chat"))
    response, body = post(server, chat_payload())
    assert response.getheader("Content-Type") == "text/event-stream"
    assert "世界".encode() in body
    assert b"\\u" not in body
    chunks = chunks_of(body)
    assert content_of(chunks) == text
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert all(len(delta) <= 3 for delta in deltas if delta)
    assert chunks[0]["model"] == "deepseek-chat"


def test_reasoning_streams_before_content(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="42", reasoning="Think step by step.", chunk_size=5))
    _, body = post(server, chat_payload(model="deepseek-reasoner"))
    chunks = chunks_of(body)
    kinds = [next(iter(c["choices"][0]["delta"]), None) for c in chunks]
    assert kinds == ["role"] + ["reasoning_content"] * 4 + ["content", None]
    assert content_of(chunks, "reasoning_content") == "Think step by step."
    assert content_of(chunks) == "42"


def test_several_choices_are_interleaved_by_index(server: LoopbackServer) -> None:
    texts = ["first answer", "second", "the third one"]
    server.enqueue(Reply(choices=texts, chunk_size=4))
    _, body = post(server, chat_payload(n=3))
    chunks = chunks_of(body)
    assert all(len(chunk["choices"]) == 1 for chunk in chunks)
    indexes = [chunk["choices"][0]["index"] for chunk in chunks]
    assert indexes[:6] == [0, 1, 2, 0, 1, 2]
    assert [content_of(chunks, index=i) for i in range(3)] == texts
    finishes = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert sorted(finishes) == [0, 1, 2]


@pytest.mark.parametrize(
    ("options", "reply_flag", "expected"),
    [
        ({"stream_options": {"include_usage": True}}, None, True),
        ({"stream_options": {"include_usage": False}}, None, False),
        ({}, None, False),
        ({}, True, True),
        ({"stream_options": {"include_usage": True}}, False, False),
    ],
)
def test_usage_chunk_only_when_asked(
    server: LoopbackServer, options: dict[str, Any], reply_flag: bool | None, expected: bool
) -> None:
    server.enqueue(Reply(text="abcdefgh", reasoning="hmm", include_usage_chunk=reply_flag))
    _, body = post(server, chat_payload(**options))
    lines = data_lines(body)
    assert lines[-1] == "[DONE]"
    last = json.loads(lines[-2])
    assert ("usage" in last) is expected
    if expected:
        assert last["choices"] == []
        usage = last["usage"]
        assert usage["prompt_tokens"] == 2
        assert usage["completion_tokens"] == 3
        assert usage["total_tokens"] == 5
        assert usage["completion_tokens_details"] == {"reasoning_tokens": 1}
        assert usage["prompt_tokens_details"] == {"cached_tokens": 0}


# ---- faults ---------------------------------------------------------------------------------


def test_drop_cuts_the_connection_without_terminating_chunk(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abcdefghijkl", drop_after=2))
    raw = raw_post(server, chat_payload())
    assert raw.status == 200
    assert not raw.terminated
    assert len(raw.chunks) == 2
    assert b"[DONE]" not in raw.body
    assert raw.at_eof()
    raw.sock.close()


def test_stall_goes_silent_and_stop_still_returns_promptly() -> None:
    server = LoopbackServer().start()
    try:
        server.enqueue(Reply(text="abcdefgh", stall_after=1, stall_seconds=30))
        raw = open_raw(server, chat_payload())
        assert json.loads(read_chunk(raw.file)[6:])["choices"][0]["delta"]["role"] == "assistant"
        raw.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            read_chunk(raw.file)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
    finally:
        server.stop()
    raw.sock.close()


def test_stall_ends_without_done_once_its_time_is_up(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abcd", stall_after=1, stall_seconds=0.05))
    raw = raw_post(server, chat_payload())
    assert len(raw.chunks) == 1
    assert not raw.terminated
    raw.sock.close()


def test_malformed_chunk_then_done(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abcdefgh", malformed_after=2))
    raw = raw_post(server, chat_payload())
    assert raw.terminated
    assert raw.chunks[2] == b'data: {"choices": [{"delta": {"content": "oops"\n\n'
    assert raw.chunks[3:] == [b"data: [DONE]\n\n"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.chunks[2][6:])
    raw.sock.close()


def test_in_stream_error_then_done(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abcdefgh", error_after=3, error_message="Overloaded"))
    _, body = post(server, chat_payload())
    lines = data_lines(body)
    assert len(lines) == 5
    assert json.loads(lines[3]) == {
        "error": {"message": "Overloaded", "type": "server_error", "param": None, "code": None}
    }
    assert lines[4] == "[DONE]"
    assert content_of([json.loads(line) for line in lines[:3]]) == "abcdefgh"


def test_no_done_ends_cleanly_without_done(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abc", no_done=True))
    raw = raw_post(server, chat_payload())
    assert raw.terminated
    assert b"[DONE]" not in raw.body
    assert json.loads(raw.chunks[-1][6:])["choices"][0]["finish_reason"] == "stop"
    raw.sock.close()


def test_reply_refuses_two_faults_and_empty_chunks() -> None:
    with pytest.raises(ValueError, match="at most one fault"):
        Reply(drop_after=1, error_after=2)
    with pytest.raises(ValueError, match="chunk_size"):
        Reply(chunk_size=0)
    with pytest.raises(ValueError, match="choices"):
        Reply(choices=[])


def test_faults_of_a_non_streaming_request(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="abc", error_after=0), Reply(text="abc", drop_after=1))
    response, body = post(server, chat_payload(stream=False))
    assert response.status == 500
    assert json.loads(body)["error"]["type"] == "server_error"
    with pytest.raises(http.client.RemoteDisconnected):
        post(server, chat_payload(stream=False))


def test_client_hanging_up_mid_stream_is_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer() as server:
        server.enqueue(Reply(text="x" * 200, chunk_size=1, delay=0.005))
        raw = open_raw(server, chat_payload())
        read_chunk(raw.file)
        raw.sock.close()
        raw.file.close()
        time.sleep(0.05)  # let the server write into the closed connection a few times
        server.stop()  # waits for the handler to finish, so anything it printed is captured
    assert "Traceback" not in capsys.readouterr().err


# ---- other script items ---------------------------------------------------------------------


def test_status_with_retry_after_and_json_error(server: LoopbackServer) -> None:
    server.enqueue(Status(429, headers={"Retry-After": "0"}), Reply(text="after the retry"))
    response, body = post(server, chat_payload())
    assert response.status == 429
    assert response.getheader("Retry-After") == "0"
    assert response.getheader("Content-Type") == "application/json"
    error = json.loads(body)["error"]
    assert error["message"] == "Scripted status 429"
    assert error["code"] == "rate_limit_exceeded"
    _, body = post(server, chat_payload())
    assert content_of(chunks_of(body)) == "after the retry"


def test_status_bodies_as_given(server: LoopbackServer) -> None:
    server.enqueue(
        Status(503, body="upstream unavailable"),
        Status(400, body={"error": {"message": "bad", "type": "invalid_request_error"}}),
        Status(502, body="<html>Bad gateway</html>", headers={"Content-Type": "text/html"}),
    )
    response, body = post(server, chat_payload())
    assert (response.status, body) == (503, b"upstream unavailable")
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    response, body = post(server, chat_payload())
    assert response.status == 400
    assert json.loads(body)["error"]["message"] == "bad"
    response, body = post(server, chat_payload())
    assert response.getheader("Content-Type") == "text/html"
    assert body == b"<html>Bad gateway</html>"


def test_raw_sse_byte_for_byte_one_byte_per_chunk(server: LoopbackServer) -> None:
    capture = (
        'data: {"choices":[{"index":0,"delta":{"content":"你好"}}]}\r\n\r\n'
        ": keep-alive comment\r\n\r\n"
        "data: [DONE]\r\n\r\n"
    ).encode()
    server.enqueue(RawSSE(capture, piece_size=1))
    raw = raw_post(server, chat_payload())
    assert raw.terminated
    assert raw.headers["content-type"] == "text/event-stream"
    assert all(len(chunk) == 1 for chunk in raw.chunks)
    assert raw.body == capture
    raw.sock.close()


def test_raw_sse_one_chunk_per_event(server: LoopbackServer) -> None:
    capture = b'data: {"a": 1}\n\ndata: {"a": 2}\n\ndata: [DONE]\n\n'
    server.enqueue(RawSSE(capture, content_type="text/event-stream; charset=utf-8"))
    raw = raw_post(server, chat_payload())
    assert raw.chunks == [b'data: {"a": 1}\n\n', b'data: {"a": 2}\n\n', b"data: [DONE]\n\n"]
    assert raw.headers["content-type"] == "text/event-stream; charset=utf-8"
    raw.sock.close()


def test_non_streaming_request_gets_a_chat_completion(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="Plain 答案", reasoning="why", finish_reason="length"))
    response, body = post(server, chat_payload(stream=False))
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert response.getheader("Content-Length") == str(len(body))
    completion = json.loads(body)
    assert completion["object"] == "chat.completion"
    assert completion["id"].startswith("chatcmpl-loop-")
    assert completion["model"] == "gpt-4o-mini"
    assert completion["system_fingerprint"] == "fp_loopback"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Plain 答案", "reasoning_content": "why"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    usage = completion["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (2, 3, 5)


def test_default_reply_is_canned_and_quotes_the_user(server: LoopbackServer) -> None:
    long_question = "What is the meaning of life? " + "x" * 300
    messages = [
        *HELLO,
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": long_question},
    ]
    _, body = post(server, chat_payload(messages=messages))
    text = content_of(chunks_of(body))
    assert "canned reply from the nbchat loopback server" in text
    assert "> What is the meaning of life?" in text
    assert "x" * 171 in text
    assert "x" * 172 not in text
    assert "|---|---|" in text
    assert "```python\n" in text


# ---- the canned reply: a small real server -------------------------------------------------


def not_found(model: str) -> dict[str, Any]:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }


def test_lists_a_few_models_and_refuses_others_with_404(server: LoopbackServer) -> None:
    status, listing = get(server, "/v1/models")
    assert status == 200
    listed = [model["id"] for model in listing["data"]]
    assert listed == list(DEFAULT_MODELS) and len(listed) >= 3
    for model in listed:
        response, body = post(server, chat_payload(model=model))
        assert response.status == 200
        assert f"`{model}`" in content_of(chunks_of(body))
    for stream in (True, False):
        response, body = post(server, chat_payload(stream=stream, model="gpt-5-ultra"))
        assert response.status == 404
        assert response.getheader("Content-Type") == "application/json"
        assert json.loads(body) == not_found("gpt-5-ultra")
    response, body = post(server, {"messages": HELLO, "stream": True})
    assert response.status == 400
    assert json.loads(body)["error"]["param"] == "model"


def test_a_refused_model_reaches_the_client_as_not_found(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url, max_retries=0))
    try:
        with pytest.raises(NotFoundError, match="404"):
            client.complete(ChatRequest.build("gpt-5-ultra", HELLO))
        assert client.complete(ChatRequest.build("gpt-4o", HELLO)).text.startswith("This is")
    finally:
        client.close()
    assert len(server.chat_requests) == 2


def test_scripted_items_skip_the_model_check_unless_asked(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="scripted"), Reply(text="refused"), Reply(text="second"))
    _, body = post(server, chat_payload(model="test-model", n=0))  # played as scripted
    assert content_of(chunks_of(body)) == "scripted"
    server.known_models = {"gpt-4o-mini"}  # asked: scripted items are checked too
    response, body = post(server, chat_payload(model="test-model"))
    assert (response.status, json.loads(body)) == (404, not_found("test-model"))
    server.known_models = None
    _, body = post(server, chat_payload(model="test-model"))
    assert content_of(chunks_of(body)) == "refused"  # the refusal used up no script item


def test_the_canned_model_check_follows_the_listed_models() -> None:
    with LoopbackServer(models=["my-model"]) as server:
        assert post(server, chat_payload(model="gpt-4o-mini"))[0].status == 404
        assert post(server, chat_payload(model="my-model"))[0].status == 200
        server.models = None  # a server that lists nothing checks nothing
        assert post(server, chat_payload(model="anything"))[0].status == 200
    with LoopbackServer(check_canned=False) as server:
        assert post(server, chat_payload(model="anything", n=0))[0].status == 200


@pytest.mark.parametrize("stream", [True, False])
def test_canned_reply_gives_n_choices_each_with_its_index(
    server: LoopbackServer, stream: bool
) -> None:
    _, body = post(server, chat_payload(stream=stream, n=3))
    if stream:
        chunks = chunks_of(body)
        indexes = [chunk["choices"][0]["index"] for chunk in chunks]
        assert indexes[:6] == [0, 1, 2, 0, 1, 2]
        texts = [content_of(chunks, index=i) for i in range(3)]
        finished = [c["choices"][0]["index"] for c in chunks if c["choices"][0]["finish_reason"]]
        assert sorted(finished) == [0, 1, 2]
    else:
        choices = json.loads(body)["choices"]
        assert [choice["index"] for choice in choices] == [0, 1, 2]
        texts = [choice["message"]["content"] for choice in choices]
    assert [text.split("\n")[0] for text in texts] == [
        "**Choice 1 of 3.**",
        "**Choice 2 of 3.**",
        "**Choice 3 of 3.**",
    ]
    assert all("canned reply from the nbchat loopback server" in text for text in texts)
    _, body = post(server, chat_payload(stream=False, n=1))
    (only,) = json.loads(body)["choices"]
    assert only["message"]["content"].startswith("This is a **canned reply")


@pytest.mark.parametrize(("n", "code"), [(0, "integer_out_of_range"), (129, None), ("2", None)])
def test_canned_reply_refuses_n_out_of_range(
    server: LoopbackServer, n: object, code: str | None
) -> None:
    response, body = post(server, chat_payload(n=n))
    assert response.status == 400
    error = json.loads(body)["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "n")
    assert code is None or error["code"] == code
    assert post(server, chat_payload(n=128))[0].status == 200


def test_reasoner_model_thinks_before_its_canned_answer(server: LoopbackServer) -> None:
    _, body = post(server, chat_payload(model="deepseek-reasoner"))
    chunks = chunks_of(body)
    kinds = [next(iter(c["choices"][0]["delta"]), None) for c in chunks]
    first_content = kinds.index("content")
    assert set(kinds[1:first_content]) == {"reasoning_content"}
    assert "canned reasoning" in content_of(chunks, "reasoning_content")
    _, body = post(server, chat_payload(model="gpt-4o-mini"))
    assert content_of(chunks_of(body), "reasoning_content") == ""


def long_features(text: str) -> list[str]:
    """Which kinds of Markdown a reply has, of those the long canned reply should show."""
    checks = {
        "heading": "\n## " in text,
        "list": "\n- " in text and "\n1. " in text,
        "table": "|:------|:------:|" in text,
        "python": "```python\n" in text,
        "sql": "```sql\n" in text,
        "json": "```json\n" in text,
        "math": "\n$$\n" in text and "$e^{i\\pi} + 1 = 0$" in text,
        "quote": "\n> " in text,
        "rule": "\n---\n" in text,
        "unsafe html": "<script>" in text,
    }
    return sorted(name for name, present in checks.items() if present)


def test_long_keyword_gives_a_long_markdown_reply(server: LoopbackServer) -> None:
    asked = f"Show me everything {LONG_KEYWORD}"
    _, body = post(server, chat_payload(messages=[{"role": "user", "content": asked}]))
    chunks = chunks_of(body)
    text = content_of(chunks)
    assert len(text) > 5000
    assert len(long_features(text)) == 10
    assert f"> {asked}" in text and "canned reply" in text
    assert len(chunks) < len(text) / 8  # streamed in pieces of a few tokens, not characters
    for not_asked in ("How long is a p-value?", "see /longer", "/long-ago", "usr/long"):
        _, body = post(server, chat_payload(messages=[{"role": "user", "content": not_asked}]))
        assert len(content_of(chunks_of(body))) < 1000, not_asked
    _, body = post(server, chat_payload(messages=[{"role": "user", "content": "/LONG, please"}]))
    assert len(content_of(chunks_of(body))) > 5000


# ---- checks the server is configured to make ------------------------------------------------


def test_requests_are_recorded_with_headers_and_json(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="ok"))
    post(server, chat_payload(temperature=0.5), headers={"X-Trace": "abc"})
    get(server, "/v1/models")
    first, second = server.requests
    assert (first.method, first.path) == ("POST", CHAT)
    assert first.headers["x-trace"] == "abc"
    assert first.headers["content-type"] == "application/json"
    assert first.json["temperature"] == 0.5
    assert json.loads(first.body) == first.json
    assert first.received_at <= second.received_at
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert server.last_request is second
    assert server.chat_requests == [first]


def test_last_request_before_any_request() -> None:
    with LoopbackServer() as server, pytest.raises(LookupError):
        _ = server.last_request


def test_rejected_field_gets_400_and_keeps_the_script(server: LoopbackServer) -> None:
    server.reject_fields = {"stream_options"}
    server.enqueue(Reply(text="scripted"))
    response, body = post(server, chat_payload(stream_options={"include_usage": True}))
    assert response.status == 400
    assert json.loads(body)["error"] == {
        "message": "Unrecognized request argument supplied: stream_options",
        "type": "invalid_request_error",
        "param": "stream_options",
        "code": None,
    }
    _, body = post(server, chat_payload())
    assert content_of(chunks_of(body)) == "scripted"


def test_required_key(server: LoopbackServer) -> None:
    server.require_key = "sk-test-secret"
    for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
        response, body = post(server, chat_payload(), headers=headers)
        assert response.status == 401
        error = json.loads(body)["error"]
        assert error["message"] == "Incorrect API key provided."
        assert error["code"] == "invalid_api_key"
        assert b"sk-" not in body
    assert get(server, "/v1/models")[0] == 401
    response, _ = post(server, chat_payload(), headers={"Authorization": "Bearer sk-test-secret"})
    assert response.status == 200


def test_unknown_model_gets_404(server: LoopbackServer) -> None:
    server.known_models = {"gpt-4o-mini"}
    response, body = post(server, chat_payload(model="gpt-5-ultra"))
    assert response.status == 404
    error = json.loads(body)["error"]
    assert error["code"] == "model_not_found"
    assert (
        error["message"]
        == "The model `gpt-5-ultra` does not exist or you do not have access to it."
    )
    assert post(server, chat_payload())[0].status == 200


def test_models_endpoint(server: LoopbackServer) -> None:
    server.models = ["gpt-4o-mini", "deepseek-reasoner"]
    status, listing = get(server, "/v1/models")
    assert status == 200
    assert listing["object"] == "list"
    assert [model["id"] for model in listing["data"]] == ["gpt-4o-mini", "deepseek-reasoner"]
    server.models_status = 500
    status, body = get(server, "/v1/models")
    assert (status, body["error"]["type"]) == (500, "server_error")
    server.models_status = None
    server.models = None
    status, body = get(server, "/v1/models")
    assert (status, body["error"]["type"]) == (404, "invalid_request_error")


def test_paths_outside_the_api_get_404(server: LoopbackServer) -> None:
    for path in ("/chat/completions", "/v1/completions", "/v1/chat/completions/"):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("POST", path, body=b"{}")
        response = conn.getresponse()
        assert response.status == 404
        assert json.loads(response.read())["error"]["type"] == "invalid_request_error"
        conn.close()
    assert get(server, CHAT)[0] == 404


# ---- connections and lifecycle --------------------------------------------------------------


def test_keep_alive_serves_two_requests_on_one_connection(server: LoopbackServer) -> None:
    server.enqueue(Reply(text="one"), Status(500), Reply(text="two"))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    bodies = []
    sockets = []
    for stream in (True, True, False):
        conn.request("POST", CHAT, body=json.dumps(chat_payload(stream=stream)))
        response = conn.getresponse()
        bodies.append(response.read())
        assert not response.will_close
        sockets.append(conn.sock)
    conn.close()
    assert sockets[0] is not None
    assert sockets[0] is sockets[1] is sockets[2]
    assert content_of(chunks_of(bodies[0])) == "one"
    assert json.loads(bodies[2])["choices"][0]["message"]["content"] == "two"


def test_stop_closes_idle_kept_alive_connections() -> None:
    server = LoopbackServer().start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", "/v1/models")
    conn.getresponse().read()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert conn.sock is not None
    assert conn.sock.recv(1) == b""
    conn.close()
    server.stop()  # a second stop does nothing


def test_base_url_and_loopback_only() -> None:
    with LoopbackServer() as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1"
    with pytest.raises(ValueError, match="loopback"):
        LoopbackServer(host="0.0.0.0")


def test_cli_refuses_other_hosts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "192.168.1.10", "--port", "0"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err


def start_cli(*options: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """The server's command on a free port; returns it, the port and the lines it printed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "nbchat.testing.server", "--port", str(port), *options]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 10)
    assert ready, "the CLI printed nothing"
    lines = [process.stdout.readline().strip(), process.stdout.readline().strip()]
    return process, port, lines


def cli_chat(port: int, model: str = "gpt-4o-mini") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", CHAT, body=json.dumps(chat_payload(model=model)))
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, content_of(chunks_of(body)) if response.status == 200 else ""


def stop_cli(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            _, stderr = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
        assert process.returncode == 0
        assert stderr == ""


def test_cli_serves_canned_replies_until_interrupted() -> None:
    process, port, lines = start_cli("--delay", "0")
    try:
        url = f"http://127.0.0.1:{port}/v1"
        assert lines[0] == f"nbchat loopback server on {url} (canned replies, no key needed)"
        assert lines[1].startswith(f"models: {', '.join(DEFAULT_MODELS)}; ")
        assert LONG_KEYWORD in lines[1]
        status, text = cli_chat(port)
        assert status == 200
        assert "canned reply" in text and len(text) < 1000
        assert cli_chat(port, "gpt-5-ultra")[0] == 404
    finally:
        stop_cli(process)


def test_cli_long_replies_and_own_models() -> None:
    process, port, lines = start_cli("--delay", "0", "--long", "--model", "a", "--model", "b")
    try:
        assert lines[1].startswith("models: a, b; long replies")
        assert get_models(port) == ["a", "b"]
        status, text = cli_chat(port, "b")
        assert status == 200
        assert len(long_features(text)) == 10
        assert cli_chat(port, "gpt-4o-mini")[0] == 404
    finally:
        stop_cli(process)


def get_models(port: int) -> list[str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/v1/models")
    listing = json.loads(conn.getresponse().read())
    conn.close()
    return [model["id"] for model in listing["data"]]
