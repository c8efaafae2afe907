"""What a reply shows besides its text: refusals, tool calls, a cut reply, missing choices.

Real captures from the SSE corpus are played by the loopback server to a real IPython shell,
and the next request is checked on the wire: the conversation must stay valid for a server
that follows the OpenAI schema (every ``tool_calls`` answered by ``tool`` messages).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import pytest

import nbchat
from nbchat.testing import LoopbackServer, RawSSE, Reply
from nbchat.turn import TOOLS_NOT_RUN

from corpus import capture
from ipython_shell import Shell, make_shell


@pytest.fixture
def shell(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    yield from make_shell(rich=True)


def ask(shell: Shell, body: str, options: str = "") -> tuple[str, str]:
    """Run a ``%%chat`` cell; its final output as visible text, and as Markdown."""
    result = shell.run(f"%%chat {options}\n{body}")
    assert result.success, result.error_in_exec
    (output,) = shell.final_outputs()
    visible = html.unescape(re.sub(r"<[^>]+>", " ", output.data["text/html"]))
    return " ".join(visible.split()), output.data["text/markdown"]


def test_a_refusal_shows_as_the_models_refusal_marked_as_one(
    shell: Shell, server: LoopbackServer
) -> None:
    server.enqueue(RawSSE(capture("05_openai_refusal_deltas.sse")), Reply("Fine."))
    visible, markdown = ask(shell, "Do something bad")
    assert "The model refused" in visible
    assert "I'm sorry, I can't assist with that request." in visible
    assert "The model refused" in markdown  # a saved notebook shows it too
    (turn,) = nbchat.get_session().history
    assert turn.refusal == "I'm sorry, I can't assist with that request."
    ask(shell, "Then something good")
    replayed = server.chat_requests[-1].json["messages"]
    assert replayed[1] == {
        "role": "assistant",
        "content": "I'm sorry, I can't assist with that request.",
    }


@pytest.mark.parametrize(
    ("name", "calls"),
    [
        ("03_openai_tool_call_streamed_args.sse", [("get_weather", {"city": "New York City"})]),
        (
            "04_openai_parallel_tool_calls.sse",
            [
                ("GetWeatherArgs", {"city": "Edinburgh", "country": "GB", "units": "c"}),
                ("get_stock_price", {"ticker": "AAPL", "exchange": "NASDAQ"}),
            ],
        ),
        ("18_groq_x_groq_tool_call_one_chunk.sse", [("weather", {})]),
        ("20_mistral_tool_call_no_index.sse", [("weather", {"location": "San Francisco"})]),
    ],
)
def test_tool_calls_show_and_keep_the_next_request_valid(
    shell: Shell, server: LoopbackServer, name: str, calls: list[tuple[str, dict[str, object]]]
) -> None:
    server.enqueue(RawSSE(capture(name)), Reply("Understood."))
    visible, markdown = ask(shell, "What is the weather?")
    for function, arguments in calls:
        assert f"Tool call: {function}" in visible
        for key, value in arguments.items():
            assert f'"{key}": {json.dumps(value)}' in visible  # pretty-printed, one per line
        assert f"Tool call: {function}" in markdown
    assert "does not run tools" in visible
    ask(shell, "And now?")
    messages = server.chat_requests[-1].json["messages"]
    assistant = messages[1]
    assert assistant["role"] == "assistant"
    sent = [
        (c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in assistant["tool_calls"]
    ]
    assert sent == calls
    ids = [c["id"] for c in assistant["tool_calls"]]
    assert len(set(ids)) == len(ids) and all(ids)
    answers = messages[2 : 2 + len(calls)]
    assert [(m["role"], m["tool_call_id"], m["content"]) for m in answers] == [
        ("tool", i, TOOLS_NOT_RUN) for i in ids
    ]
    assert messages[-1] == {"role": "user", "content": "And now?"}


def tool_call_stream(arguments: str) -> RawSSE:
    call = {"index": 0, "id": "call_1", "function": {"name": "store", "arguments": arguments}}
    chunk = {
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]
    }
    return RawSSE(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())


def test_long_arguments_are_folded_short_ones_open(shell: Shell, server: LoopbackServer) -> None:
    long = json.dumps({"rows": [{"id": i, "name": f"row {i}"} for i in range(40)]})
    server.enqueue(tool_call_stream(long), tool_call_stream('{"a": 1}'))
    shell.run("%%chat\nStore them")
    (output,) = shell.final_outputs()
    assert '<details class="nbchat-tool-call">' in output.data["text/html"]  # folded
    shell.run("%%chat\nAgain")
    (output,) = shell.final_outputs()
    assert '<details class="nbchat-tool-call" open>' in output.data["text/html"]


def test_a_reply_cut_by_max_tokens_says_so(shell: Shell, server: LoopbackServer) -> None:
    server.enqueue(RawSSE(capture("06_openai_finish_length.sse")))
    visible, _ = ask(shell, "Give me JSON", "--max-tokens 1")
    assert "cut at the token limit (max_tokens)" in visible
    shell.run("%chat history")
    (turn,) = nbchat.get_session().history
    assert turn.finish_reason == "length"


def test_fewer_choices_than_asked_are_named(shell: Shell, server: LoopbackServer) -> None:
    server.enqueue(Reply("only one"))  # a server that drops n, as llama-cpp-python does
    visible, _ = ask(shell, "Two answers please", "-n 2")
    assert "1 of 2 choices came back" in visible
    server.enqueue(Reply(choices=["a", "b"]))
    visible, _ = ask(shell, "Two again", "-n 2")
    assert "choices came back" not in visible
