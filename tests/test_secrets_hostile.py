"""The key against hostile or careless input: a server that echoes it where an error quote is
cut, a proxy variable that would route loopback traffic elsewhere, a key pasted where a
setting or a model name goes, and text that would drive the terminal instead of being shown.
Everything runs at a real boundary: the loopback server, a listening socket, a real IPython
shell, files on disk."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from nbchat.client import ChatClient
from nbchat.errors import NbChatError
from nbchat.testing import LoopbackServer, RawSSE, Reply, Status

from conftest import fast_settings, stream_to_end
from ipython_shell import Shell, make_shell

SECRET = "sk-hostile-7d1e0c9b8a6f4e2d0c1b3a5f7e9d8c6b"
FOREIGN = "sk-proj-pasted0123456789abcdefABCDEF"  # shaped like a key, never configured


def fragments_of(secret: str, size: int = 10) -> list[str]:
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_part_of(secret: str, *texts: str) -> None:
    for text in texts:
        leaked = [part for part in fragments_of(secret) if part in text]
        assert leaked == [], text


# -- scrub first, then cut ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"data: " + b"x" * 70 + SECRET.encode() + b"\n\n", id="malformed-chunk"),
        pytest.param(
            b"event: error\ndata: " + b"y" * 190 + SECRET.encode() + b"\n\n", id="error-event"
        ),
    ],
)
def test_a_key_across_the_quote_cut_is_not_quoted_in_part(
    server: LoopbackServer, body: bytes
) -> None:
    client = ChatClient(fast_settings(server.base_url).with_key(SECRET))
    server.enqueue(RawSSE(body))
    with pytest.raises(NbChatError) as caught:
        stream_to_end(client)
    error = caught.value
    assert_no_part_of(SECRET, str(error), repr(error), repr(getattr(error, "error", None)))


# -- loopback never goes through a proxy -------------------------------------------------


class ProxySocket:
    """A listening socket standing in for a proxy: records every connection made to it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.received.append(connection.recv(65536))
                    connection.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    self.received.append(b"")

    def close(self) -> None:
        self._listener.close()
        self._thread.join(timeout=5)


@pytest.fixture
def proxy() -> Iterator[ProxySocket]:
    running = ProxySocket()
    yield running
    running.close()


PROXY_VARIABLES = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
]


@pytest.mark.parametrize("variable", PROXY_VARIABLES)
def test_loopback_requests_never_reach_a_proxy(
    server: LoopbackServer,
    proxy: ProxySocket,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
) -> None:
    monkeypatch.setenv(variable, proxy.url)
    client = ChatClient(fast_settings(server.base_url, max_retries=0).with_key(SECRET))
    server.enqueue(Reply(text="direct"))
    assert stream_to_end(client).text == "direct"
    client.list_models()
    assert proxy.received == []
    assert [r.headers.get("authorization") for r in server.requests] == [f"Bearer {SECRET}"] * 2


def test_a_proxy_variable_does_not_stick_after_it_is_unset(
    server: LoopbackServer, proxy: ProxySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = ChatClient(fast_settings(server.base_url, max_retries=0).with_key(SECRET))
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    server.enqueue(Reply(text="first"))
    with contextlib.suppress(NbChatError):  # whatever became of it, the next one matters
        stream_to_end(client)
    seen = len(proxy.received)
    monkeypatch.delenv("ALL_PROXY")
    other = ChatClient(fast_settings(server.base_url, max_retries=0).with_key(SECRET))
    server.enqueue(Reply(text="second"))
    assert stream_to_end(other).text == "second"
    assert len(proxy.received) == seen


# -- a key typed in the wrong place ------------------------------------------------------


@pytest.fixture
def terminal(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_API_KEY", SECRET)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    yield from make_shell(rich=False)


def one_usage_line(result: Any, capsys: pytest.CaptureFixture[str]) -> str:
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("UsageError: ") and "\n" not in err, err
    assert "Traceback" not in captured.out + captured.err
    return captured.out + err


@pytest.mark.parametrize("secret", [SECRET, FOREIGN], ids=["configured", "key-shaped"])
@pytest.mark.parametrize(
    "line",
    [
        "%chat config {secret}",
        "%chat config base_url={secret}",
        "%chat config user={secret}",
        "%chat config {secret}=1",
        "%chat model {secret}",
    ],
)
def test_a_key_typed_in_the_wrong_place_is_not_echoed(
    terminal: Shell, capsys: pytest.CaptureFixture[str], line: str, secret: str
) -> None:
    capsys.readouterr()
    result = terminal.run(line.format(secret=secret))
    shown = one_usage_line(result, capsys)
    assert_no_part_of(secret, shown)
    terminal.run("%chat config")
    settings = capsys.readouterr().out
    assert "test-model" in settings
    assert_no_part_of(secret, settings)


@pytest.mark.parametrize(
    "option",
    [
        "--param authorization=hunter2",
        "--param Authorization='Bearer hunter2'",
        "--param x-api-key=hunter2",
        "--param client_secret=hunter2",
        "--param password=hunter2",
        "--param refresh_token=hunter2",
        "--param param.accessToken=hunter2",
    ],
)
def test_a_credential_named_as_a_body_field_is_refused(
    terminal: Shell, server: LoopbackServer, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    capsys.readouterr()
    result = terminal.run(f"%%chat {option}\nhello")
    assert "never a magic argument" in one_usage_line(result, capsys)
    assert server.chat_requests == []


def test_a_credential_setting_is_refused_by_chat_config(
    terminal: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    result = terminal.run("%chat config param.access-token=hunter2")
    assert "never a magic argument" in one_usage_line(result, capsys)
    result = terminal.run("%chat config param.Authorization=hunter2")
    assert "never a magic argument" in one_usage_line(result, capsys)


def test_ordinary_body_fields_that_mention_tokens_and_keys_stay_allowed(
    terminal: Shell, server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Reply(text="ok"))
    options = "--param max_completion_tokens=50 --param prompt_cache_key=abc --max-tokens 40"
    result = terminal.run(f"%%chat {options}\nhello")
    assert result.error_in_exec is None, capsys.readouterr().err
    body = server.chat_requests[-1].json
    assert body["max_completion_tokens"] == 50 and body["prompt_cache_key"] == "abc"


# -- export: no silent overwrite, private file -------------------------------------------


def test_export_refuses_to_overwrite_and_writes_a_private_file(
    terminal: Shell, server: LoopbackServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Reply(text="the answer"))
    terminal.run("%%chat\nthe question")
    fresh = tmp_path / "fresh.md"
    assert terminal.run(f"%chat export {fresh}").error_in_exec is None
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert "the answer" in fresh.read_text("utf-8")

    precious = tmp_path / "notes.md"
    precious.write_text("my notes", "utf-8")
    precious.chmod(0o644)
    capsys.readouterr()
    shown = one_usage_line(terminal.run(f"%chat export {precious}"), capsys)
    assert "--force" in shown
    assert precious.read_text("utf-8") == "my notes"

    assert terminal.run(f"%chat export {precious} --force").error_in_exec is None
    assert "the answer" in precious.read_text("utf-8")
    assert stat.S_IMODE(precious.stat().st_mode) == 0o600


# -- nothing drives the terminal ---------------------------------------------------------

HOSTILE = (
    "\x1b]52;c;cm0gLXJmIH4=\x07\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\\x1b[2J\x9b6n"
)


def assert_inert(text: str) -> None:
    controls = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert controls == [], repr(text)


def test_a_streamed_reply_and_history_cannot_drive_the_terminal(
    terminal: Shell, server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Reply(text=f"before {HOSTILE} after", chunk_size=5))
    capsys.readouterr()
    assert terminal.run(f"%%chat\nsay {HOSTILE}").error_in_exec is None
    out = capsys.readouterr().out
    assert_inert(out)
    assert "before ␛]52;c;" in out and "after" in out
    terminal.run("%chat history")
    out = capsys.readouterr().out
    assert_inert(out)
    assert "␛]52" in out


def test_a_server_error_cannot_drive_the_terminal(
    terminal: Shell, server: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.enqueue(Status(400, body={"error": {"message": f"bad {HOSTILE}"}}))
    capsys.readouterr()
    shown = one_usage_line(terminal.run("%%chat\nhello"), capsys)
    assert_inert(shown)
    assert "␛[2J" in shown


# -- a mistyped environment variable is one line -----------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NBCHAT_MAX_RETRIES", "²"),
        ("NBCHAT_CONTEXT_ROWS", "٣"),
        ("NBCHAT_CONNECT_TIMEOUT", "soon"),
        ("NBCHAT_BASE_URL", "ftp://example.com"),
    ],
)
def test_a_mistyped_variable_is_one_usage_line(
    server: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv(variable, value)
    for shell in make_shell(rich=False):
        capsys.readouterr()
        shown = one_usage_line(shell.run("%%chat\nhello"), capsys)
        assert variable in shown
        assert one_usage_line(shell.run("%chat config"), capsys)
    assert server.chat_requests == []
    assert os.environ[variable] == value


@pytest.mark.parametrize(
    "line",
    [
        "%chat sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "%chat model a sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "%%chat -t sk-proj-abcdefghijklmnopqrstuvwxyz0123456789\nhello",
    ],
)
def test_a_pasted_key_is_masked_in_parse_errors(
    line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from ipython_shell import make_shell

    for shell in make_shell(rich=True):
        result = shell.run(line)
        assert type(result.error_in_exec).__name__ == "UsageError"
        err = capsys.readouterr().err
        assert "abcdefghijklmnopqrstuvwxyz0123456789" not in err
        assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("%chat config read_timeout=Infinity", ["read_timeout", "finite number"]),
        ("%chat config read_timeout=1e400", ["read_timeout", "at most 86,400"]),
        ("%chat config max_retries=" + "9" * 400, ["max_retries", "from 0 to 100"]),
        ("%chat config param.seed=NaN", ["seed", "finite number"]),
        ("%%chat --param seed=NaN\nhello", ["seed", "finite number"]),
        ("%%chat -o __builtins__\nhello", ["-o/--out", "__builtins__"]),
        ("%%chat -o class\nhello", ["-o/--out", "'class'"]),
    ],
)
def test_values_no_server_could_use_are_one_line(
    line: str, words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from ipython_shell import make_shell

    for shell in make_shell(rich=True):
        before = dict(shell.ip.user_ns)
        result = shell.run(line)
        assert type(result.error_in_exec).__name__ == "UsageError", repr(result.error_in_exec)
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        for word in words:
            assert word in err, err
        assert shell.ip.user_ns["__builtins__"] is before["__builtins__"]
