"""Replies too big to handle as they come, over real sockets: a stream that never ends an
event or the reply, a code block too long to highlight, a conversation too long for the model.

The limits are lowered through ``ChatStream``'s attributes, so that going past them takes a
fraction of a second; the tests check what the user is told and what is kept, never the time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbchat.client import ChatClient
from nbchat.errors import APIError, IncompleteStreamError, InStreamError
from nbchat.highlight import MAX_HIGHLIGHT
from nbchat.protocol import ChatRequest
from nbchat.render import render_markdown
from nbchat.stream import ChatStream
from nbchat.testing import LoopbackServer, RawSSE, Status

from conftest import fast_settings, one_line, stream_to_end
from corpus import capture
from holding_server import HoldingServer

LIMIT = 64 * 1024


def event(content: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # raising=False: on a stream without the limits the test fails on what it sees, not here
    monkeypatch.setattr(ChatStream, "max_event_size", LIMIT, raising=False)
    monkeypatch.setattr(ChatStream, "max_reply_size", 4 * LIMIT, raising=False)


# --- a stream that does not end ----------------------------------------------------------------

ENDLESS = {
    "data-lines-no-blank-line": b"data: " + b"x" * 100 + b"\n",
    "a-line-that-never-ends": b"y" * 100,
}


@pytest.mark.usefixtures("small_limits")
@pytest.mark.parametrize("piece", ENDLESS.values(), ids=ENDLESS.keys())
def test_an_event_past_the_limit_ends_the_reply_and_keeps_its_text(
    server: LoopbackServer, client: ChatClient, piece: bytes
) -> None:
    body = event("Hello, ") + event("world") + piece * (2 * LIMIT // len(piece))
    server.enqueue(RawSSE(body, piece_size=1024))
    with pytest.raises(IncompleteStreamError) as caught:
        stream_to_end(client)
    message = one_line(caught.value)
    assert "sent an event of more than 0.0625 MiB without ending the reply" in message
    assert "the text so far is kept" in message
    assert caught.value.partial.text == "Hello, world"


@pytest.mark.usefixtures("small_limits")
def test_endless_unknown_fields_end_the_reply_past_its_limit(
    server: LoopbackServer, client: ChatClient
) -> None:
    # Each block is small and closed, so only the reply's limit stops them.
    body = event("Hello") + b"x-progress: 1\n\n" * (8 * LIMIT // 15)
    server.enqueue(RawSSE(body, piece_size=4096))
    with pytest.raises(IncompleteStreamError) as caught:
        stream_to_end(client)
    assert "sent more than 0.25 MiB of body without ending the reply" in one_line(caught.value)
    assert caught.value.partial.text == "Hello"


# --- a code block too long to highlight --------------------------------------------------------


def test_a_huge_code_block_is_shown_plain_and_a_small_one_in_colour() -> None:
    line = "if a < b and c > 0: total += f(a, 'x')  # sum\n"
    huge = line * (MAX_HIGHLIGHT // len(line) + 100)
    html = render_markdown(f"```python\n{huge}```\n\n```python\n{line}```\n")
    big_block, small_block = html.split("</pre>")[:2]
    assert "<span" not in big_block
    assert big_block.count("if a &lt; b and c &gt; 0: total += f(a, 'x')  # sum\n") == huge.count(
        "\n"
    )
    assert "<span" in small_block


# --- a conversation too long for the model -----------------------------------------------------

CONTEXT_ERRORS: dict[str, Any] = {
    "openai": {
        "error": {
            "message": "This model's maximum context length is 128000 tokens. However, your "
            "messages resulted in 130412 tokens. Please reduce the length of the messages.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        }
    },
    "vllm": {
        "object": "error",
        "message": "This model's maximum context length is 4096 tokens. However, you requested "
        "5120 tokens (4096 in the messages, 1024 in the completion). Please reduce the length "
        "of the messages or completion.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    },
    "llama.cpp": {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size. try increasing the "
            "context size or enable context shift",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 14429,
            "n_ctx": 8192,
        }
    },
    "litellm": {
        "error": {
            "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: "
            "ContextWindowExceededError: AnthropicException - prompt is too long: 209303 tokens "
            "> 200000 maximum. Received Model Group=claude\nAvailable Model Group Fallbacks=None",
            "type": None,
            "param": None,
            "code": "400",
        }
    },
}


@pytest.mark.parametrize("body", CONTEXT_ERRORS.values(), ids=CONTEXT_ERRORS.keys())
def test_a_conversation_too_long_for_the_model_says_so_and_what_to_do(
    server: LoopbackServer, client: ChatClient, body: Any
) -> None:
    server.enqueue(Status(400, body=body))
    with pytest.raises(APIError) as caught:
        stream_to_end(client)
    message = one_line(caught.value)
    assert message.startswith("The conversation is too long for the model's context (HTTP 400")
    for way_out in ("%%chat --new", "--no-history", "%chat reset"):
        assert way_out in message
    assert caught.value.status == 400
    assert len(server.chat_requests) == 1


def _assert_too_long(error: BaseException) -> None:
    message = one_line(error)
    assert message.startswith("The conversation is too long for the model's context (")
    for way_out in ("%%chat --new", "--no-history", "%chat reset"):
        assert way_out in message


IN_STREAM_CONTEXT_ERRORS = {
    # llama.cpp before PR #16109: a non-standard `error:` field at HTTP 200 (corpus capture 12)
    "llama.cpp-error-field": capture("12_llamacpp_legacy_error_field.sse"),
    "openai-shaped-data-line": b'data: {"error": {"message": "This model\'s maximum context '
    b'length is 8192 tokens.", "type": "invalid_request_error", "code": '
    b'"context_length_exceeded"}}\n\ndata: [DONE]\n\n',
}


@pytest.mark.parametrize(
    "body", IN_STREAM_CONTEXT_ERRORS.values(), ids=IN_STREAM_CONTEXT_ERRORS.keys()
)
def test_a_context_error_inside_the_stream_reads_like_the_400(
    server: LoopbackServer, client: ChatClient, body: bytes
) -> None:
    server.enqueue(RawSSE(body, piece_size=7))
    with pytest.raises(InStreamError) as caught:
        stream_to_end(client)
    _assert_too_long(caught.value)
    assert "said inside the stream from 127.0.0.1" in str(caught.value)


def test_a_context_error_in_a_whole_answer_reads_like_the_400(
    server: LoopbackServer, client: ChatClient
) -> None:
    server.enqueue(Status(200, body=CONTEXT_ERRORS["llama.cpp"]))
    with pytest.raises(InStreamError) as caught:
        client.complete(ChatRequest.build("test-model", [{"role": "user", "content": "hi"}]))
    _assert_too_long(caught.value)


@pytest.mark.usefixtures("small_limits")
def test_a_whole_answer_past_the_limit_is_one_line_and_the_connection_is_closed() -> None:
    body = b'{"choices": [{"message": {"content": "' + b"x" * (16 * LIMIT) + b'"}}]}'
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(
        body
    )
    holding = HoldingServer(head + body, hold=30.0)
    client = ChatClient(fast_settings(holding.base_url))
    try:
        with pytest.raises(APIError) as caught:
            client.complete(ChatRequest.build("test-model", [{"role": "user", "content": "hi"}]))
        message = one_line(caught.value)
        assert "sent more than 0.25 MiB of body for one answer; stopped reading" in message
        assert holding.hung_up.wait(5), "the connection was read to its end or kept open"
    finally:
        client.close()
        holding.close()
