"""Every capture of the shared SSE corpus, played byte-exact over a real socket (split into
small network reads) through the client, must assemble to what expected.json says, or fail
with the error the capture carries."""

from __future__ import annotations

from typing import Any

import pytest

from nbchat.client import ChatClient
from nbchat.errors import IncompleteStreamError, InStreamError, StreamError
from nbchat.protocol import ChatRequest, ChatResult
from nbchat.testing import LoopbackServer, RawSSE

from conftest import fast_settings
from corpus import capture, capture_names, expected

CAPTURES = capture_names()

# Captures that end in an error rather than a reply: the error class and words to expect.
FAILING = {
    "10_openrouter_processing_comments_truncated.sse": (IncompleteStreamError, "ended before"),
    "12_llamacpp_legacy_error_field.sse": (InStreamError, "too long for the model's context"),
    "13_guardrails_empty_data_event_no_done.sse": (IncompleteStreamError, "Unsuitable input"),
    "14_openrouter_midstream_error_finish_error.sse": (InStreamError, "Provider disconnected"),
    "25_openai_error_first_chunk.sse": (InStreamError, "The server had an error processing"),
    "26_openai_error_after_output.sse": (InStreamError, "stream failed after output"),
}


def _assembled(result: ChatResult) -> dict[str, Any]:
    choices: dict[str, Any] = {}
    for choice in result.choices:
        entry: dict[str, Any] = {"content": choice.text, "finish_reason": choice.finish_reason}
        if choice.reasoning:
            entry["reasoning"] = choice.reasoning
        if choice.refusal:
            entry["refusal"] = choice.refusal
        if choice.tool_calls:
            entry["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in choice.tool_calls
            ]
        choices[str(choice.index)] = entry
    return choices


@pytest.fixture(scope="module")
def corpus_server() -> Any:
    with LoopbackServer() as running:
        yield running


@pytest.mark.parametrize("piece_size", [None, 3])
@pytest.mark.parametrize("name", CAPTURES)
def test_capture_assembles_over_a_socket(
    name: str, piece_size: int | None, corpus_server: LoopbackServer
) -> None:
    corpus_server.enqueue(RawSSE(capture(name), piece_size=piece_size))
    client = ChatClient(fast_settings(corpus_server.base_url))
    request = ChatRequest.build("test-model", [{"role": "user", "content": "hi"}])
    want = expected(name)
    stream = client.stream(request)
    if name in FAILING:
        error_class, words = FAILING[name]
        with pytest.raises(error_class) as caught:
            list(stream)
        assert words in str(caught.value)
        assert "\n" not in str(caught.value)
        partial = caught.value.partial
        assert isinstance(caught.value, StreamError) and isinstance(partial, ChatResult)
        assert {k: v["content"] for k, v in _assembled(partial).items()} == {
            k: v["content"] for k, v in want["choices"].items()
        }
        return
    try:
        list(stream)
    finally:
        client.close()
    assert stream.result is not None
    assert _assembled(stream.result) == want["choices"]
    usage = stream.result.usage.raw if stream.result.usage else None
    assert usage == want["usage"]
