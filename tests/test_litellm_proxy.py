"""nbchat against an OpenAI-compatible server nobody here wrote: LiteLLM's proxy.

One proxy serves the whole module (it takes 10 to 30 s to start here), configured with:

- ``mock-plain`` and ``mock-markdown``, answered inside the proxy by LiteLLM's ``mock_response``
  (streamed as 3-character deltas, then a usage chunk, then ``[DONE]``);
- ``mock-rate-limited``, whose mock is LiteLLM's own 429;
- ``upstream``, which makes the proxy a gateway in front of nbchat's LoopbackServer, scripted
  by each test (``Upstream.play``). LiteLLM's own retries and cooldowns are off, so every attempt
  nbchat makes reaches the upstream exactly once and is counted there, and in the proxy's
  access log.

Everything runs on loopback: the proxy's network is refused beyond it (tests/real_servers.py),
and ``test_the_proxy_started_offline`` checks it never tried.
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from IPython.core.error import UsageError

import nbchat
from nbchat.client import ChatClient
from nbchat.config import Settings
from nbchat.errors import RateLimitError, ServerError
from nbchat.protocol import ChatRequest
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer, RawSSE, Reply, ScriptItem, Status

from conftest import follow
from ipython_shell import Shell, make_shell
from real_servers import LiteLLMProxy, require_litellm

pytestmark = pytest.mark.timeout(240)  # the first test also waits for the proxy to start

KEY = "sk-nbchat-litellm-0123456789abcdefKEYZ"
"""The proxy's master key: what nbchat sends, and what must never show."""
UPSTREAM_KEY = "sk-upstream-only-0123456789abcdef"
"""What the proxy sends to the loopback upstream; nbchat never holds it."""

PLAIN = "Hello from the LiteLLM mock: nbchat reached a real proxy."
MARKDOWN = (
    "## Checking a dataset before modelling\n\n"
    "Start with the **shape** and the *types* of every column, then look for gaps.\n\n"
    "1. Count the nulls per column.\n"
    "2. Look at the distinct values of each category.\n"
    "3. Plot the distribution of every numeric column.\n\n"
    "| column | dtype | nulls |\n"
    "|---|---|---|\n"
    "| date | datetime64 | 0 |\n"
    "| region | category | 12 |\n"
    "| units | int64 | 0 |\n\n"
    "```python\n"
    "import pandas as pd\n\n"
    'df = pd.read_csv("sales.csv", parse_dates=["date"])\n'
    "print(df.isna().sum())\n"
    "```\n\n"
    + "".join(
        f"### Step {step}\n\nLook at column {step} again, and write down what changed: "
        f"prices in € stay in €, and names such as Zoë or 张伟 stay as they are.\n\n"
        for step in range(1, 13)
    )
    + "> A p-value says how surprising the data would be if nothing were going on.\n"
)
MODEL_NAMES = ["mock-markdown", "mock-plain", "mock-rate-limited", "upstream"]


def _deployments(upstream_url: str) -> list[dict[str, Any]]:
    def mock(name: str, answer: str) -> dict[str, Any]:
        return {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_key": UPSTREAM_KEY,
                "mock_response": answer,
            },
        }

    return [
        mock("mock-plain", PLAIN),
        mock("mock-markdown", MARKDOWN),
        mock("mock-rate-limited", "litellm.RateLimitError"),
        {
            "model_name": "upstream",
            "litellm_params": {
                "model": "openai/upstream-model",
                "api_base": upstream_url,
                "api_key": UPSTREAM_KEY,
                "max_retries": 0,  # the SDK inside LiteLLM would retry twice
            },
        },
    ]


class Upstream:
    """The loopback server behind the proxy, with a script of this test's own: each chat
    request the proxy forwards takes the next item; one nobody scripted gets a 418."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.script: deque[ScriptItem] = deque()
        self._seen = len(server.chat_requests)

    def play(self, *items: ScriptItem) -> None:
        self.script.extend(items)

    def __call__(self, request: Any) -> ScriptItem:
        if self.script:
            return self.script.popleft()
        return Status(418, {"error": {"message": "unscripted request", "type": "test"}})

    @property
    def requests(self) -> list[Any]:
        """The chat requests that reached the upstream during this test."""
        return self.server.chat_requests[self._seen :]


@pytest.fixture(scope="module")
def loopback() -> Iterator[LoopbackServer]:
    with LoopbackServer(models=["upstream-model"], check_canned=False) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(loopback: LoopbackServer) -> Iterator[LiteLLMProxy]:
    require_litellm()
    running = LiteLLMProxy(
        _deployments(loopback.base_url),
        master_key=KEY,
        litellm_settings={"num_retries": 0, "request_timeout": 60},
        router_settings={"num_retries": 0, "disable_cooldowns": True},
    )
    with running:
        yield running
        assert running.network_attempts() == [], "the proxy tried to reach beyond loopback"


@pytest.fixture
def upstream(loopback: LoopbackServer, proxy: LiteLLMProxy) -> Iterator[Upstream]:
    script = Upstream(loopback)
    loopback.default_reply = script
    yield script
    loopback.default_reply = Status(418, {"error": {"message": "no test is running"}})
    assert not script.script, f"scripted answers nobody asked for: {list(script.script)}"


class Posts:
    """Counts the chat requests the proxy answered from now on, from its access log."""

    def __init__(self, proxy: LiteLLMProxy) -> None:
        self.proxy = proxy
        self._seen = len(self._all())

    def _all(self) -> list[int]:
        return [
            status
            for method, path, status in self.proxy.access_log()
            if method == "POST" and path == "/v1/chat/completions"
        ]

    def statuses(self) -> list[int]:
        return self._all()[self._seen :]


def settings_for(proxy: LiteLLMProxy, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": proxy.base_url,
        "model": "mock-plain",
        "connect_timeout": 5.0,
        "read_timeout": 30.0,
        "max_retries": 2,
        "retry_budget": 10.0,
        "backoff_factor": 0.01,
    }
    values.update(overrides)
    return Settings(**values).with_key(KEY, source="NBCHAT_API_KEY")


@pytest.fixture
def client(proxy: LiteLLMProxy) -> Iterator[ChatClient]:
    chat_client = ChatClient(settings_for(proxy))
    yield chat_client
    chat_client.close()


@pytest.fixture
def shell(proxy: LiteLLMProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", proxy.base_url)
    monkeypatch.setenv("NBCHAT_API_KEY", KEY)
    monkeypatch.setenv("NBCHAT_MODEL", "mock-plain")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "2")
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "30")
    for running in make_shell(rich=True):
        session = nbchat.get_session()
        session.settings = replace(session.settings, backoff_factor=0.01)  # quick retries
        yield running


def ask(text: str, model: str = "mock-plain", **params: Any) -> ChatRequest:
    return ChatRequest.build(model, [{"role": "user", "content": text}], params)


def one_line_usage_error(result: Any, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: "), err
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


# -- the proxy itself ------------------------------------------------------------------------


def test_the_proxy_started_offline(proxy: LiteLLMProxy) -> None:
    assert proxy.started_in is not None
    assert proxy.network_attempts() == []
    log = proxy.log_text()
    for name in MODEL_NAMES:
        assert name in log  # LiteLLM lists the models it loaded from the config


# -- replies ---------------------------------------------------------------------------------


def test_a_streamed_reply_assembles_to_the_mock_text(
    client: ChatClient, proxy: LiteLLMProxy
) -> None:
    posts = Posts(proxy)
    deltas: list[str] = []
    with client.stream(ask("hello")) as stream:
        for chunk in stream:
            for choice in chunk.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    deltas.append(content)
    result = stream.result
    assert result is not None and result.complete
    assert result.text == PLAIN
    assert "".join(deltas) == PLAIN
    assert len(deltas) == -(-len(PLAIN) // 3)  # LiteLLM's mock streams 3 characters at a time
    assert result.finish_reason == "stop"
    assert result.usage is not None and result.usage.total_tokens
    assert posts.statuses() == [200]


def test_a_whole_reply_without_streaming_is_the_mock_text(client: ChatClient) -> None:
    result = client.complete(ask("hello"))
    assert result.text == PLAIN
    assert result.finish_reason == "stop"


def test_a_long_markdown_reply_fills_a_chat_cell(shell: Shell) -> None:
    result = shell.run("%%chat -m mock-markdown\nHow do I check a dataset?", cell_id="md")
    assert result.success, result.error_in_exec
    (final,) = shell.final_outputs()
    assert final.data["text/plain"] == MARKDOWN
    assert final.data["text/markdown"] == MARKDOWN
    html = final.data["text/html"]
    assert "<h2>Checking a dataset before modelling</h2>" in html
    assert "<table" in html and "<td>category</td>" in html
    assert "<ol>" in html and html.count("<h3>") == 12
    assert 'class="language-python"' in html
    assert "Zoë or 张伟" in html
    assert final.metadata["nbchat"]["model"] == "mock-markdown"
    (turn,) = nbchat.get_session().history
    assert turn.reply == MARKDOWN and turn.status == "complete"


# -- models ----------------------------------------------------------------------------------


def test_models_lists_the_configured_models(client: ChatClient) -> None:
    assert client.list_models() == MODEL_NAMES


def test_chat_model_accepts_a_listed_model_and_refuses_an_unknown_one(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run("%chat models").success
    listed = capsys.readouterr().out.splitlines()
    assert [line[2:] for line in listed] == MODEL_NAMES
    assert "* mock-plain" in listed
    assert shell.run("%chat model mock-markdown").success
    assert nbchat.get_session().settings.model == "mock-markdown"
    capsys.readouterr()
    refused = shell.run("%chat model no-such-model")
    one_line_usage_error(refused, capsys, "has no model 'no-such-model'")
    assert nbchat.get_session().settings.model == "mock-markdown"


# -- n = 2 -----------------------------------------------------------------------------------


def test_two_choices_from_the_mock_are_both_kept(client: ChatClient) -> None:
    # LiteLLM's mock sends each delta to both choices but a finish reason to choice 0 only.
    with client.stream(ask("twice", n=2)) as stream:
        for _ in stream:
            pass
    result = stream.result
    assert result is not None and result.complete
    assert [choice.text for choice in result.choices] == [PLAIN, PLAIN]
    assert result.choices[0].finish_reason == "stop"


def test_two_choices_through_the_gateway_each_keep_their_own_text(
    shell: Shell, upstream: Upstream
) -> None:
    first = "The first answer, about means."
    second = "The second answer, about medians."
    upstream.play(Reply(choices=[first, second], chunk_size=4))
    result = shell.run("%%chat -m upstream -n 2\nTwo answers, please.", cell_id="n2")
    assert result.success, result.error_in_exec
    (sent,) = upstream.requests
    assert sent.json["n"] == 2
    (final,) = shell.final_outputs()
    assert final.data["text/plain"] == f"#### Choice 1\n\n{first}\n\n#### Choice 2\n\n{second}"
    html = final.data["text/html"]
    assert html.index("Choice 1") < html.index(first) < html.index("Choice 2") < html.index(second)
    assert "choices came back" not in html  # both came, though only one was said to finish
    reply = nbchat.get_session().last_reply
    assert reply is not None and reply.status == "done"
    assert reply.texts() == [first, second]


# -- errors ----------------------------------------------------------------------------------


def test_an_unknown_model_is_one_line_with_the_status_and_the_proxys_words(
    shell: Shell, proxy: LiteLLMProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    posts = Posts(proxy)
    result = shell.run("%%chat -m no-such-model\nhello", cell_id="x")
    one_line_usage_error(
        result, capsys, "HTTP 400", "Invalid model name passed in model=no-such-model"
    )
    assert posts.statuses() == [400]  # a 400 is not asked again
    assert shell.final_outputs() == []
    assert len(nbchat.get_session().history) == 0


def test_an_overloaded_upstream_is_retried_then_one_line(
    shell: Shell, proxy: LiteLLMProxy, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    posts = Posts(proxy)
    upstream.play(Status(529), Status(529), Status(529))
    result = shell.run("%%chat -m upstream\nhello", cell_id="o")
    one_line_usage_error(result, capsys, "HTTP 529", "Scripted status 529", "tried 3 times")
    assert len(upstream.requests) == 3  # max_retries=2: three attempts, no more
    assert posts.statuses() == [529, 529, 529]  # LiteLLM passes the upstream's 529 on
    assert len(nbchat.get_session().history) == 0


def test_a_529_then_a_reply_recovers(
    client: ChatClient, proxy: LiteLLMProxy, upstream: Upstream
) -> None:
    posts = Posts(proxy)
    upstream.play(Status(529), Reply("Recovered after one 529."))
    with client.stream(ask("hello", model="upstream")) as stream:
        for _ in stream:
            pass
    assert stream.result is not None and stream.result.text == "Recovered after one 529."
    assert len(upstream.requests) == 2
    assert posts.statuses() == [529, 200]


@pytest.mark.parametrize("retries", [0, 2])
def test_a_rate_limit_is_asked_again_a_bounded_number_of_times(
    proxy: LiteLLMProxy, retries: int
) -> None:
    posts = Posts(proxy)
    client = ChatClient(settings_for(proxy, model="mock-rate-limited", max_retries=retries))
    try:
        with pytest.raises(RateLimitError) as caught:
            client.stream(ask("hello", model="mock-rate-limited"))
    finally:
        client.close()
    error = caught.value
    assert error.status == 429
    assert error.server_message and "this is a mock rate limit error" in error.server_message
    assert "\n" not in str(error)
    assert posts.statuses() == [429] * (retries + 1)
    assert ("not retried" if retries == 0 else f"tried {retries + 1} times") in str(error)


def test_an_upstream_retry_after_beyond_the_budget_fails_at_once(
    client: ChatClient, upstream: Upstream
) -> None:
    upstream.play(*[Status(429, headers={"Retry-After": "600"})] * 3)
    try:
        with pytest.raises(RateLimitError) as caught:
            client.stream(ask("hello", model="upstream"))
    finally:
        upstream.script.clear()  # what nbchat did not ask for, when it stops at once
    assert "the server asks to wait 600 s" in str(caught.value)
    assert len(upstream.requests) == 1  # as it is without the proxy (test_client.py)


def test_a_failing_upstream_is_a_server_error_with_the_proxys_words(
    client: ChatClient, upstream: Upstream
) -> None:
    upstream.play(*[Status(503, {"error": {"message": "upstream is restarting"}})] * 3)
    with pytest.raises(ServerError) as caught:
        client.stream(ask("hello", model="upstream"))
    assert caught.value.status == 503
    assert "upstream is restarting" in str(caught.value)
    assert len(upstream.requests) == 3


def test_a_stream_cut_upstream_is_one_line_and_keeps_the_text_so_far(
    shell: Shell, proxy: LiteLLMProxy, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    posts = Posts(proxy)
    text = "A reply that the upstream cuts off halfway through its second sentence."
    # The role chunk, then 16 characters, then the cut. Paced: when the chunks and the cut reach
    # LiteLLM in one read it now and then sends the error alone, dropping the chunks it had.
    upstream.play(Reply(text, chunk_size=4, drop_after=5, delay=0.05))
    result = shell.run("%%chat -m upstream\nhello", cell_id="cut")
    # LiteLLM ends the stream with an error event and no [DONE].
    one_line_usage_error(result, capsys, "mid-stream", "Connection error")
    assert len(upstream.requests) == 1  # a reply that began is never asked again
    assert posts.statuses() == [200]
    reply = nbchat.get_session().last_reply
    assert reply is not None and reply.status == "failed"
    assert reply.text == text[:16]
    (final,) = shell.final_outputs()
    assert final.data["text/plain"] == text[:16]
    assert len(nbchat.get_session().history) == 0  # a failed reply is not kept


def test_an_empty_upstream_answer_is_one_line_and_keeps_nothing(
    shell: Shell, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    upstream.play(RawSSE(b""))
    result = shell.run("%%chat -m upstream\nhello", cell_id="empty")
    assert len(upstream.requests) == 1
    assert len(nbchat.get_session().history) == 0
    one_line_usage_error(result, capsys, "no text arrived")


# -- the key ---------------------------------------------------------------------------------


def test_the_key_never_shows_in_any_output(
    shell: Shell,
    proxy: LiteLLMProxy,
    upstream: Upstream,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    echo = f"upstream overloaded; you sent {KEY}"
    upstream.play(
        *[Reply("Some words first.", chunk_size=4, error_after=3, error_message=echo)] * 2
    )
    # First, without nbchat: LiteLLM redacts keys in error answers, but passes the message of
    # an error inside a stream on as it is, so the key does reach the client here.
    raw = requests.post(
        f"{proxy.base_url}/chat/completions",
        json={"model": "upstream", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )
    assert KEY in raw.text

    seen: list[str] = []
    cells = [
        ("%%chat\nhello", True),
        ("%%chat -m upstream\nhello again", False),  # the in-stream error echoing the key
        ("%%chat -m no-such-model\nhello", False),
        ("%%chat -m mock-rate-limited\nhello", False),
        ("%chat config", True),
        ("%chat history", True),
        ("%chat usage", True),
        (f"%chat export {tmp_path / 'chat.md'}", True),
        (f"%chat export {tmp_path / 'chat.json'}", True),
        ("%chat models", True),
    ]
    for number, (source, succeeds) in enumerate(cells):
        result = shell.run(source, cell_id=f"k{number}")
        assert result.success is succeeds, (source, result.error_in_exec)
        captured = capsys.readouterr()
        seen += [captured.out, captured.err, repr(result.result), str(result.error_in_exec)]
        seen += [json.dumps(message.data) for message in shell.publisher.messages]
    session = nbchat.get_session()
    seen += [repr(session), repr(session.settings), repr(session.client), str(session.history)]
    seen += [path.read_text() for path in tmp_path.glob("chat.*")]
    assert any("upstream overloaded; you sent" in text for text in seen)  # the echo was shown
    assert [text for text in seen if KEY in text] == []
    stored = [path for path in Path(os.environ["NBCHAT_HOME"]).rglob("*") if path.is_file()]
    assert stored  # the history file, with the turns above in it
    assert [path for path in stored if KEY.encode() in path.read_bytes()] == []


# -- interrupting ----------------------------------------------------------------------------


def test_cancelling_mid_stream_keeps_the_partial_reply(
    proxy: LiteLLMProxy, upstream: Upstream
) -> None:
    text = "word " * 200
    upstream.play(Reply(text, chunk_size=5, stall_after=6, stall_seconds=30))
    session = ChatSession(settings_for(proxy, model="upstream"))
    arrived = threading.Event()
    follow(session, lambda reply: arrived.set() if reply.chunks >= 3 else None)
    stopper = threading.Thread(target=lambda: arrived.wait(30) and session.cancel())
    stopper.start()
    try:
        reply = session.ask("A long answer, please.")
    finally:
        stopper.join()
        session.close()
    assert reply.status == "interrupted"
    assert reply.text and text.startswith(reply.text)
    assert len(reply.text) < len(text)
    (turn,) = session.history
    assert turn.status == "interrupted" and turn.reply == reply.text
    assert not session.busy
    assert len(upstream.requests) == 1
