"""Shared fixtures: a clean environment, a loopback server, a client pointed at it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbchat.client import ChatClient
from nbchat.config import Settings
from nbchat.reply import Reply
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer

from ipython_shell import Shell, make_shell

_ISOLATED_PREFIXES = ("NBCHAT_", "OPENAI_")
_KEPT = frozenset({"NBCHAT_SSE_CORPUS"})  # where the tests' data lives, not a setting


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test sees the developer's keys, and nothing writes into the real home."""
    for name in list(os.environ):
        if name in _KEPT:
            continue
        if name.startswith(_ISOLATED_PREFIXES) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NBCHAT_HOME", str(home / "nbchat"))
    monkeypatch.setenv("IPYTHONDIR", str(home / "ipython"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(home / "jupyter-config"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(home / "jupyter-runtime"))


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """nbchat pointed at the loopback server through its environment, as a user would."""
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "5")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    return server


@pytest.fixture
def shell(env: LoopbackServer) -> Iterator[Shell]:
    """A real IPython shell with nbchat loaded, recording what a kernel would send."""
    yield from make_shell(rich=True)


@pytest.fixture
def terminal(env: LoopbackServer) -> Iterator[Shell]:
    """A real IPython shell that prints plain text, as terminal IPython does."""
    yield from make_shell(rich=False)


def fast_settings(base_url: str, **overrides: object) -> Settings:
    """Settings for tests: short timeouts and backoff so faults resolve in well under a second."""
    values: dict[str, object] = {
        "base_url": base_url,
        "model": "test-model",
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
        "max_retries": 2,
        "retry_budget": 5.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[ChatClient]:
    chat_client = ChatClient(fast_settings(server.base_url))
    yield chat_client
    chat_client.close()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def follow(session: ChatSession, observer: Callable[[Reply], None]) -> Callable[[], None]:
    """Follow every reply event of ``session`` with one observer; returns the function that
    stops it."""
    stops = [
        session.on(event, observer) for event in ("reply_started", "reply_updated", "reply_ended")
    ]

    def stop() -> None:
        for each in stops:
            each()

    return stop


def stream_to_end(client: ChatClient) -> Any:
    """Ask ``client`` one short question and read the stream to its end; the result."""
    from nbchat.protocol import ChatRequest

    with client.stream(
        ChatRequest.build("test-model", [{"role": "user", "content": "hi"}])
    ) as stream:
        for _ in stream:
            pass
    return stream.result


def one_line(error: BaseException) -> str:
    """``str(error)``, which must be one line."""
    text = str(error)
    assert "\n" not in text, text
    return text
