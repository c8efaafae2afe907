"""nbchat against llama.cpp's OpenAI-compatible servers: llama-cpp-python's and the C++ one.

Each server serves the whole module in turn (the ``llama`` fixture is parametrized over them):
tests/make_tiny_gguf.py's tiny random-weight llama model as ``tiny-llama``, with a context of
:data:`N_CTX` tokens, requiring :data:`KEY`. ``make llama`` builds both in ``.venv-llama``:

- ``python -m llama_cpp.server`` (llama-cpp-python);
- ``llama-server``, llama.cpp's own, compiled from the same sources.

The replies are gibberish that never ends by itself (the model cannot say ``</s>``), so every
reply ends at ``max_tokens`` or at the end of the context, with ``finish_reason: "length"``;
what is tested is the protocol as each server speaks it. Where they differ, :class:`Kind` says
how, as observed with llama-cpp-python 0.3.36 and the llama.cpp it vendors:

- llama-cpp-python's streams have no usage chunk, though nbchat asks for one (``stream_options``
  is ignored); llama-server sends it in a last chunk with no choices. Both put usage in a whole
  reply;
- a prompt longer than the context is a 400 from llama-server, streaming or not
  (``type: exceed_context_size_error``); from llama-cpp-python it is a 400 with
  ``code: context_length_exceeded`` without streaming but, when streaming, an empty HTTP 200
  (the error is raised after the status was sent, and only the server's log shows it);
- neither checks the ``model`` field: any name is answered by the one model; llama-cpp-python's
  chunks echo the name asked for, llama-server's name the alias;
- ``n`` above 1: llama-cpp-python ignores it and sends one choice; llama-server refuses it
  with a 400 (``Field 'n': Value must be between 1 <= value <= 1``).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from IPython.core.error import UsageError

import nbchat
from nbchat.config import Settings
from nbchat.errors import APIError, AuthenticationError, IncompleteStreamError
from nbchat.session import ChatSession
from nbchat.views import CUT, Footing

from conftest import follow
from ipython_shell import Shell, make_shell
from real_servers import (
    LlamaCppServer,
    LlamaServer,
    llama_cpp_python_version,
    make_tiny_model,
    require_llama,
    require_llama_server,
)

pytestmark = pytest.mark.timeout(120)

KEY = "sk-nbchat-llama-0123456789abcdefKEYZ"
"""The servers' API key: what nbchat sends, and what must never show."""
ALIAS = "tiny-llama"
N_CTX = 1024
TOO_LONG = "data " * 400  # about 2,000 tokens of the tiny vocabulary: twice the context


@dataclass(frozen=True)
class Kind:
    """One of the servers, and how it answers where the two differ."""

    name: str
    server: Callable[..., LlamaCppServer]
    require: Callable[[], None]
    usage_in_streams: bool
    too_long_stream_status: int
    """200 (and no body) or 400, for a streamed prompt longer than the context."""
    access_log: bool
    """Whether its log has a line for each request answered, with the status."""
    echoes_model: bool
    """Whether a reply names the model asked for (any name), rather than the one it served."""
    refuses_n: bool
    """Whether ``n`` above 1 is a 400, rather than ignored (one choice comes back)."""


KINDS = [
    Kind(
        "llama-cpp-python",
        LlamaCppServer,
        require_llama,
        usage_in_streams=False,
        too_long_stream_status=200,
        access_log=True,
        echoes_model=True,
        refuses_n=False,
    ),
    Kind(
        "llama-server",
        LlamaServer,
        require_llama_server,
        usage_in_streams=True,
        too_long_stream_status=400,
        access_log=False,
        echoes_model=False,
        refuses_n=True,
    ),
]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_llama()  # its virtualenv has the gguf writer
    return make_tiny_model(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="module", params=KINDS, ids=[kind.name for kind in KINDS])
def kind(request: pytest.FixtureRequest) -> Kind:
    chosen: Kind = request.param
    return chosen


@pytest.fixture(scope="module")
def llama(kind: Kind, model_file: Path) -> Iterator[LlamaCppServer]:
    kind.require()
    with kind.server(model_file, n_ctx=N_CTX, alias=ALIAS, api_key=KEY) as running:
        yield running
        assert running.network_attempts() == [], "the server tried to reach beyond loopback"


def settings_for(llama: LlamaCppServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": llama.base_url,
        "model": ALIAS,
        "connect_timeout": 5.0,
        "read_timeout": 30.0,
        "max_retries": 1,
        "retry_budget": 5.0,
        "backoff_factor": 0.01,
    }
    values.update(overrides)
    return Settings(**values).with_key(KEY, source="NBCHAT_API_KEY")


@pytest.fixture
def session(llama: LlamaCppServer) -> Iterator[ChatSession]:
    chat = ChatSession(settings_for(llama))
    yield chat
    chat.close()


@pytest.fixture
def shell(llama: LlamaCppServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", llama.base_url)
    monkeypatch.setenv("NBCHAT_API_KEY", KEY)
    monkeypatch.setenv("NBCHAT_MODEL", ALIAS)
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "1")
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "30")
    yield from make_shell(rich=True)


class Posts:
    """The statuses of the chat requests the server answered from now on, from its access
    log; ``check`` passes without looking for a server that logs none (llama-server)."""

    def __init__(self, llama: LlamaCppServer, kind: Kind) -> None:
        self.llama = llama
        self.kind = kind
        self._seen = len(self._all())

    def _all(self) -> list[int]:
        return [
            status
            for method, path, status in self.llama.access_log()
            if method == "POST" and path == "/v1/chat/completions"
        ]

    def check(self, expected: list[int]) -> None:
        if self.kind.access_log:
            assert self._all()[self._seen :] == expected


def one_line_usage_error(result: Any, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: "), err
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def raw_chat(llama: LlamaCppServer, content: str, **fields: Any) -> requests.Response:
    """One request as any client would send it, for what the server itself does."""
    body = {"model": ALIAS, "messages": [{"role": "user", "content": content}], **fields}
    return requests.post(
        f"{llama.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=30,
    )


def sse_chunks(answer: requests.Response) -> list[Any]:
    """The JSON of each ``data:`` event of a stream; checks it ends with ``[DONE]``."""
    events = [part[6:] for part in answer.text.split("\n\n") if part.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(event) for event in events[:-1]]


# -- the servers themselves ------------------------------------------------------------------


def test_the_server_started_offline_with_the_tiny_model(
    llama: LlamaCppServer, model_file: Path
) -> None:
    assert llama.started_in is not None
    assert llama_cpp_python_version().startswith("0.3.")
    assert str(model_file) in llama.log_text()  # llama.cpp names the file it loaded
    answer = requests.get(
        f"{llama.base_url}/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert [model["id"] for model in answer.json()["data"]] == [ALIAS]
    assert llama.network_attempts() == []


def test_the_server_streams_tokens_then_the_finish_reason(
    llama: LlamaCppServer, kind: Kind
) -> None:
    answer = raw_chat(
        llama, "hello", stream=True, max_tokens=4, stream_options={"include_usage": True}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(answer)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text
    usage = [c["usage"] for c in chunks if c.get("usage")]
    if kind.usage_in_streams:
        assert usage[-1]["completion_tokens"] == 4
    else:
        assert usage == []  # stream_options is ignored


def test_the_server_answers_a_too_long_streamed_prompt(llama: LlamaCppServer, kind: Kind) -> None:
    streamed = raw_chat(llama, TOO_LONG, stream=True)
    assert streamed.status_code == kind.too_long_stream_status
    if kind.too_long_stream_status == 200:
        assert streamed.text == ""
        said = f"exceed context window of {N_CTX}"  # its traceback, logged once the stream closed
        deadline = time.monotonic() + 10
        while said not in llama.log_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert said in llama.log_text()
    whole = raw_chat(llama, TOO_LONG)
    assert whole.status_code == 400


# -- replies ---------------------------------------------------------------------------------


def test_a_chat_cell_streams_a_reply_and_keeps_it(
    llama: LlamaCppServer, kind: Kind, shell: Shell
) -> None:
    posts = Posts(llama, kind)
    result = shell.run("%%chat --max-tokens 12\nHow do I check a dataset?", cell_id="c1")
    assert result.success, result.error_in_exec
    (final,) = shell.final_outputs()
    (turn,) = nbchat.get_session().history
    assert turn.reply and turn.status == "complete"
    assert final.data["text/plain"] == turn.reply
    assert final.metadata["nbchat"]["model"] == ALIAS
    assert turn.finish_reason == "length"
    assert CUT in final.data["text/html"]
    if kind.usage_in_streams:
        assert turn.usage is not None and turn.usage["completion_tokens"] == 12
        assert "→ 12 tokens" in final.data["text/html"]
    else:
        assert turn.usage is None  # the stream had no usage to keep
    posts.check([200])


def test_the_next_question_carries_the_conversation(shell: Shell) -> None:
    assert shell.run("%%chat --max-tokens 5\nFirst question", cell_id="a").success
    assert shell.run("%%chat --max-tokens 5\nSecond question", cell_id="b").success
    first, second = nbchat.get_session().history
    assert first.reply and second.reply
    assert second.prompt == "Second question"


def test_a_reply_without_streaming_keeps_its_usage(session: ChatSession) -> None:
    reply = session.ask("hello", params={"max_tokens": 6}, stream=False)
    assert reply.status == "done" and reply.text
    (turn,) = session.history
    assert turn.usage is not None
    assert turn.usage["completion_tokens"] == 6
    assert turn.usage["prompt_tokens"] > 0
    assert turn.usage["total_tokens"] == turn.usage["prompt_tokens"] + 6
    assert turn.finish_reason == "length"


def test_max_tokens_cuts_the_stream_and_the_footer_says_so(session: ChatSession) -> None:
    reply = session.ask("Tell me everything.", params={"max_tokens": 5})
    assert reply.status == "done" and reply.text
    assert [choice.finish_reason for choice in reply.result.choices] == ["length"]
    footing = Footing.of_reply(reply)
    assert footing.cut and CUT in footing.parts()
    (turn,) = session.history
    assert turn.finish_reason == "length" and Footing.of_turn(turn).cut


def test_two_choices_asked_of_a_server_with_one(
    kind: Kind, shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    result = shell.run("%%chat -n 2 --max-tokens 4\nTwo answers, please.", cell_id="n2")
    if kind.refuses_n:
        one_line_usage_error(result, capsys, "HTTP 400", "Field 'n'")
        assert len(nbchat.get_session().history) == 0
        return
    assert result.success, result.error_in_exec  # ignored: one choice, and the footer says so
    (final,) = shell.final_outputs()
    assert "1 of 2 choices came back" in final.data["text/html"]
    (turn,) = nbchat.get_session().history
    assert turn.reply == final.data["text/plain"]


# -- a prompt longer than the context --------------------------------------------------------


def test_a_too_long_prompt_in_a_cell_is_one_line_about_the_context(
    llama: LlamaCppServer, kind: Kind, shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    posts = Posts(llama, kind)
    result = shell.run(f"%%chat\n{TOO_LONG}", cell_id="long")
    if kind.too_long_stream_status == 200:
        words = ("answered HTTP 200 but sent no data", "likely longer than the model's context")
    else:
        words = ("The conversation is too long for the model's context (HTTP 400", "--new")
    one_line_usage_error(result, capsys, *words)
    posts.check([kind.too_long_stream_status])  # not asked again
    assert shell.final_outputs() == []
    assert len(nbchat.get_session().history) == 0


def test_a_too_long_prompt_streamed_by_a_session_keeps_nothing(
    kind: Kind, session: ChatSession
) -> None:
    expected = IncompleteStreamError if kind.too_long_stream_status == 200 else APIError
    with pytest.raises(expected) as caught:
        session.ask(TOO_LONG)
    assert "context" in str(caught.value)
    assert len(session.history) == 0


def test_a_too_long_prompt_without_streaming_is_the_context_message(
    llama: LlamaCppServer, kind: Kind, session: ChatSession
) -> None:
    posts = Posts(llama, kind)
    with pytest.raises(APIError) as caught:
        session.ask(TOO_LONG, stream=False)
    message = str(caught.value)
    assert "\n" not in message
    assert "The conversation is too long for the model's context (HTTP 400 from" in message
    assert "%%chat --new" in message
    posts.check([400])  # not asked again
    assert len(session.history) == 0


# -- interrupting ----------------------------------------------------------------------------


def test_cancelling_mid_stream_keeps_the_partial_reply(session: ChatSession) -> None:
    arrived = threading.Event()
    follow(session, lambda reply: arrived.set() if reply.chunks >= 4 else None)
    stopper = threading.Thread(target=lambda: arrived.wait(30) and session.cancel())
    stopper.start()
    try:
        reply = session.ask("A long answer, please.")  # runs to the end of the context
    finally:
        stopper.join()
    assert reply.status == "interrupted"
    assert reply.text
    assert [choice.finish_reason for choice in reply.result.choices] == [None]  # cut mid-way
    (turn,) = session.history
    assert turn.status == "interrupted" and turn.reply == reply.text
    assert not session.busy
    again = session.ask("And a short one.", params={"max_tokens": 3})  # the server is free
    assert again.status == "done" and again.text


def test_a_server_that_dies_mid_stream_is_one_error_and_keeps_the_text_so_far(
    kind: Kind, model_file: Path
) -> None:
    with kind.server(model_file, n_ctx=N_CTX, alias=ALIAS, api_key=KEY) as doomed:
        session = ChatSession(settings_for(doomed, max_retries=0))
        process = doomed.process
        assert process is not None

        def kill_after_four_chunks(reply: Any) -> None:
            if reply.chunks == 4:
                os.killpg(process.pid, signal.SIGKILL)

        try:
            with pytest.raises(IncompleteStreamError) as caught:
                session.ask("A long answer, please.", observer=kill_after_four_chunks)
        finally:
            session.close()
    assert "\n" not in str(caught.value)
    assert "broke in the middle of the reply" in str(caught.value)
    reply = session.last_reply
    assert reply is not None and reply.status == "failed"
    assert reply.text  # what arrived before the server died
    assert len(session.history) == 0  # a failed reply is not kept


# -- models ----------------------------------------------------------------------------------


def test_models_lists_the_alias_and_refuses_an_unknown_name(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run("%chat models").success
    assert capsys.readouterr().out.splitlines() == [f"* {ALIAS}"]
    refused = shell.run("%chat model no-such-model")
    one_line_usage_error(refused, capsys, "has no model 'no-such-model'")
    assert nbchat.get_session().settings.model == ALIAS


def test_an_unknown_model_in_a_cell_is_answered_by_the_one_model(
    llama: LlamaCppServer, kind: Kind, shell: Shell
) -> None:
    posts = Posts(llama, kind)
    result = shell.run("%%chat -m no-such-model --max-tokens 3\nhello", cell_id="u")
    assert result.success, result.error_in_exec
    (final,) = shell.final_outputs()
    (turn,) = nbchat.get_session().history
    assert turn.reply
    assert turn.model == ("no-such-model" if kind.echoes_model else ALIAS)
    saved = final.metadata["nbchat"]  # the model asked for, and the one that answered if other
    assert saved["model"] == "no-such-model"
    assert saved.get("answered_by", saved["model"]) == turn.model
    posts.check([200])


# -- the key ---------------------------------------------------------------------------------


def test_a_wrong_key_is_one_line_and_the_key_never_shows(
    shell: Shell, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = "sk-wrong-0123456789abcdefWRONG"
    session = nbchat.get_session()
    session.settings = session.settings.with_key(wrong, source="NBCHAT_API_KEY")
    refused = shell.run("%%chat\nhello", cell_id="w")
    one_line_usage_error(refused, capsys, "HTTP 401")
    session.settings = session.settings.with_key(KEY, source="NBCHAT_API_KEY")
    assert shell.publisher is not None
    seen: list[str] = []
    for source in ("%%chat --max-tokens 4\nhello", "%chat config", "%chat history"):
        assert shell.run(source).success, source
        captured = capsys.readouterr()
        seen += [captured.out, captured.err]
        seen += [json.dumps(message.data) for message in shell.publisher.messages]
    assert shell.run(f"%chat export {tmp_path / 'chat.json'}").success
    seen.append((tmp_path / "chat.json").read_text())
    seen += [repr(session), repr(session.settings), str(refused.error_in_exec)]
    assert [text for text in seen if KEY in text or wrong in text] == []


def test_a_wrong_key_is_an_authentication_error(llama: LlamaCppServer) -> None:
    session = ChatSession(settings_for(llama).with_key("sk-wrong-key-0123456789", source="x"))
    try:
        with pytest.raises(AuthenticationError) as caught:
            session.ask("hello")
    finally:
        session.close()
    assert caught.value.status == 401
