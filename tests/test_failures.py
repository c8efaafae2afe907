"""What the user is told when a reply brings no text, is interrupted before its first byte, or
meets a server that is busy: at the real boundaries (the loopback server over sockets, a real
IPython shell, a real kernel), one line that says what happened, and nothing lost or invented.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from nbchat.client import ChatClient
from nbchat.errors import APIError, IncompleteStreamError, RateLimitError, ServerError
from nbchat.protocol import ChatRequest
from nbchat.testing import LoopbackServer, RawSSE, Reply, ScriptItem, Status

from conftest import fast_settings
from ipython_shell import Shell, make_shell
from kernel import Execution, KernelDriver, nbchat_kernel

TOO_LONG = (
    "the prompt is likely longer than the model's context: send fewer turns (%chat reset) "
    "or smaller summaries (a smaller --df-tokens)"
)
NO_CHOICE = (
    "nothing was kept; if asking again fails the same way, the prompt may be too long for the "
    "model's context: send fewer turns (%chat reset) or smaller summaries (a smaller --df-tokens)"
)
INTERRUPTED = "UsageError: Interrupted before the reply began; the conversation is unchanged"

ROLE = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
HALF = b'data: {"choices":[{"index":0,"delta":{"content":"Half an ans"}}]}\n\n'
USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":0}}\n\n'
DONE = b"data: [DONE]\n\n"


def host(server: LoopbackServer) -> str:
    return server.base_url.split("/")[2]


def question() -> ChatRequest:
    return ChatRequest.build("test-model", [{"role": "user", "content": "hi"}])


# -- a stream that brings no text, in a real IPython shell ------------------------------------


@pytest.fixture
def shell(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "5")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    yield from make_shell(rich=True)


ENDINGS = [
    pytest.param(
        RawSSE(b""),
        "{host} answered HTTP 200 but sent no data: no text arrived",
        TOO_LONG,
        "",
        id="an-empty-body",
    ),
    pytest.param(
        RawSSE(b": keep-alive\n\n"),
        "{host} answered HTTP 200 but sent no data: no text arrived",
        TOO_LONG,
        "",
        id="only-a-comment",
    ),
    pytest.param(
        RawSSE(USAGE + DONE),
        "The stream from {host} ended without any reply: no text arrived",
        NO_CHOICE,
        "",
        id="only-usage-and-done",
    ),
    pytest.param(
        RawSSE(
            b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
            + USAGE
            + DONE
        ),
        "The stream from {host} ended without any reply: no text arrived",
        NO_CHOICE,
        "",
        id="a-finished-choice-with-nothing-in-it",  # how LiteLLM passes on an empty answer
    ),
    pytest.param(
        RawSSE(ROLE),
        "The stream from {host} ended before any text arrived",
        "nothing was kept; ask again",
        "",
        id="a-role-chunk-then-nothing",
    ),
    pytest.param(
        RawSSE(ROLE + HALF),
        "The stream from {host} ended before the reply was complete",
        "the text so far is kept; ask again to get the rest",
        "Half an ans",
        id="some-text-then-nothing",
    ),
]


@pytest.mark.parametrize(("body", "message", "hint", "shown"), ENDINGS)
def test_a_stream_that_ends_early_says_what_arrived(
    shell: Shell,
    server: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    body: RawSSE,
    message: str,
    hint: str,
    shown: str,
) -> None:
    server.enqueue(body)
    result = shell.run("%%chat\na question far too long for the model")
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err
    expected = message.format(host=host(server)) + f" ({hint})"
    assert err == f"UsageError: {expected}\n"
    outputs = shell.final_outputs()
    if shown:
        assert len(outputs) == 1 and outputs[0].data["text/plain"] == shown
        assert outputs[0].metadata["nbchat"]["status"] == "failed"
    else:
        assert outputs == [], "a reply with no text leaves nothing in the cell"
    assert shell.run("import nbchat; n = len(nbchat.get_session().history)").success
    assert shell.ip.user_ns["n"] == 0


def test_a_whole_body_without_choices_is_no_reply(server: LoopbackServer) -> None:
    server.enqueue(Status(200, body={"id": "x", "choices": [], "usage": {"prompt_tokens": 3}}))
    client = ChatClient(fast_settings(server.base_url))
    with pytest.raises(IncompleteStreamError) as caught, client.stream(question()) as stream:
        list(stream)
    assert (
        str(caught.value)
        == f"{host(server)} answered without any reply: no text arrived ({NO_CHOICE})"
    )
    server.enqueue(Status(200, body={"id": "x", "choices": [], "usage": {"prompt_tokens": 3}}))
    with pytest.raises(IncompleteStreamError, match="answered without any reply"):
        client.complete(question())  # --no-stream: the same rule


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(
            Reply("late", delay=2.0),
            "{host} sent nothing for 0.3 s after it began to answer "
            "(nothing was kept; raise NBCHAT_READ_TIMEOUT for slow models)",
            id="silent",
        ),
        pytest.param(
            Reply("never", drop_after=0),
            "The connection to {host} broke before any data arrived (nothing was kept; ask again)",
            id="cut",
        ),
    ],
)
def test_a_stream_broken_before_any_data_keeps_nothing(
    server: LoopbackServer, item: ScriptItem, expected: str
) -> None:
    server.enqueue(item)
    client = ChatClient(fast_settings(server.base_url, read_timeout=0.3))
    with pytest.raises(IncompleteStreamError) as caught, client.stream(question()) as stream:
        list(stream)
    assert str(caught.value) == expected.format(host=host(server))
    assert len(server.chat_requests) == 1  # a body had begun: never asked again


# -- busy servers: every 5xx, 408, 409 and 429 is asked again -----------------------------------


@pytest.mark.parametrize("status", [529, 501, 520, 408, 409])
def test_a_busy_answer_is_asked_again(server: LoopbackServer, status: int) -> None:
    server.enqueue(Status(status), Reply("second time lucky"))
    client = ChatClient(fast_settings(server.base_url, max_retries=2))
    with client.stream(question()) as stream:
        list(stream)
    assert stream.result is not None and stream.result.text == "second time lucky"
    assert len(server.chat_requests) == 2


def test_retrying_a_529_is_bounded(server: LoopbackServer) -> None:
    server.enqueue(*(Status(529) for _ in range(4)), Reply("not reached"))
    client = ChatClient(fast_settings(server.base_url, max_retries=2))
    with pytest.raises(ServerError) as caught:
        client.stream(question())
    assert str(caught.value).startswith(f"HTTP 529 from {host(server)}: Scripted status 529")
    assert "tried 3 times" in str(caught.value)
    assert len(server.chat_requests) == 3


@pytest.mark.parametrize("header", ["Retry-After", "llm_provider-retry-after"])
def test_a_wait_beyond_the_budget_fails_at_once(server: LoopbackServer, header: str) -> None:
    """LiteLLM's proxy passes an upstream's Retry-After on under its own name."""
    server.enqueue(Status(429, headers={header: "600"}), Reply("not reached"))
    client = ChatClient(fast_settings(server.base_url, max_retries=2))
    with pytest.raises(RateLimitError) as caught:
        client.stream(question())
    assert "the server asks to wait 600 s" in str(caught.value)
    assert len(server.chat_requests) == 1


def test_a_409_that_stays_busy_says_it_was_asked_again(server: LoopbackServer) -> None:
    server.enqueue(*(Status(409) for _ in range(3)))
    client = ChatClient(fast_settings(server.base_url, max_retries=2))
    with pytest.raises(APIError) as caught:
        client.stream(question())
    assert str(caught.value) == (
        f"HTTP 409 from {host(server)}: Scripted status 409 "
        "(the server could not take the request now; tried 3 times. Try again later)"
    )
    assert len(server.chat_requests) == 3


def test_a_request_the_server_refuses_is_not_asked_again(server: LoopbackServer) -> None:
    server.enqueue(Status(422), Reply("not reached"))
    client = ChatClient(fast_settings(server.base_url, max_retries=2))
    with pytest.raises(APIError, match="HTTP 422"):
        client.stream(question())
    assert len(server.chat_requests) == 1


# -- interrupting before the first byte, and a reply of no choices, in a real kernel -------------


@pytest.fixture
def kernel(server: LoopbackServer, tmp_path: Path) -> Iterator[KernelDriver]:
    with nbchat_kernel(server.base_url, tmp_path) as driver:
        yield driver


def turns(kernel: KernelDriver) -> int:
    return int(kernel.execute("import nbchat; print(len(nbchat.get_session().history))").stdout)


def only_the_line(run: Execution) -> str:
    """The one stderr line the cell ends with; anything else left in the cell fails."""
    assert run.reply_status == "error", run.describe()
    outputs = run.final_outputs()
    assert [o["output_type"] for o in outputs] == ["stream"], run.describe()
    assert outputs[0]["name"] == "stderr"
    text = outputs[0]["text"]
    assert text.count("\n") == 1 and text.endswith("\n"), text
    assert "Traceback" not in text and not run.outputs_of_type("error")
    return text.rstrip("\n")


@pytest.mark.parametrize(
    "slow",
    [
        pytest.param(Status(200, body={"choices": []}, delay=30), id="before-the-headers"),
        pytest.param(Reply("late", delay=30), id="before-the-first-event"),
    ],
)
def test_interrupt_before_the_first_byte_leaves_one_line(
    kernel: KernelDriver, server: LoopbackServer, slow: ScriptItem
) -> None:
    server.enqueue(slow)
    running = kernel.start_execution("%%chat\nA question for a slow model", cell_id="slow")
    deadline = time.monotonic() + 20
    while not server.chat_requests:
        assert time.monotonic() < deadline, "the request never reached the server"
        running.pump(0.05)
    running.pump(0.2)
    kernel.interrupt()
    run = running.result(timeout=20)
    assert only_the_line(run) == INTERRUPTED
    shown = [m.content for m in run.messages if m.msg_type == "display_data"]
    assert any("asking test-model" in c["data"]["text/html"] for c in shown), run.describe()
    assert turns(kernel) == 0
    server.enqueue(Reply("still works"))
    after = kernel.execute("%%chat\nnext", cell_id="after")
    assert after.reply_status == "ok", after.describe()
    assert after.final_outputs()[0]["data"]["text/plain"] == "still works"


def test_a_reply_of_no_choices_leaves_one_line_in_the_kernel(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    server.enqueue(RawSSE(USAGE + DONE))
    run = kernel.execute("%%chat\nhello", cell_id="empty")
    expected = f"The stream from {host(server)} ended without any reply: no text arrived"
    assert only_the_line(run) == f"UsageError: {expected} ({NO_CHOICE})"
    assert turns(kernel) == 0


_CHOICE = b'{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}'


@pytest.mark.parametrize(
    "chunk",
    [
        b'{"choices": true}',
        b"[]",
        b"null",
        b'{"choices": [' + _CHOICE + b'], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
    ids=["choices-not-a-list", "a-list", "null", "nested-5000-deep"],
)
def test_json_of_the_wrong_shape_is_one_line_naming_the_server(
    shell: Shell, server: LoopbackServer, capsys: pytest.CaptureFixture[str], chunk: bytes
) -> None:
    server.enqueue(RawSSE(b"data: " + chunk + b"\n\n" + DONE), Reply("fine again"))
    result = shell.run("%%chat\nhello")
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err
    assert err.startswith(
        f"UsageError: {host(server)} sent a stream chunk that is not a completion"
    )
    assert err.count("\n") == 1 and "nothing was kept" in err
    assert shell.final_outputs() == []  # no placeholder left
    assert shell.run("%%chat\nhello again").success  # and the next question works, and is kept
    assert shell.run("import nbchat; n = len(nbchat.get_session().history)").success
    assert shell.ip.user_ns["n"] == 1


def test_fields_of_the_wrong_type_do_not_reach_the_reply_or_the_history(
    shell: Shell, server: LoopbackServer
) -> None:
    server.enqueue(
        RawSSE(b'data: {"model": ["a"], "usage": [1], "choices": [' + _CHOICE + b"]}\n\n" + DONE)
    )
    assert shell.run("%%chat\nhello").success
    assert shell.run("import nbchat; t = nbchat.get_session().history.last()").success
    turn = shell.ip.user_ns["t"]
    assert turn.model == "test-model" and turn.reply == "hi" and turn.usage is None
