"""The API key goes to the base URL it was configured for and nowhere else, and never shows up
in a repr, an error, a log line or anything printed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from nbchat.client import ChatClient
from nbchat.config import Settings
from nbchat.errors import NbChatError
from nbchat.protocol import ChatRequest
from nbchat.testing import LoopbackServer, Reply, Status

from conftest import fast_settings

SECRET = "sk-secret-4f1c9a7e0b2d4c6e8a1b3d5f7e9c0a2b"


def ask() -> ChatRequest:
    return ChatRequest.build("test-model", [{"role": "user", "content": "hi"}])


def drain(client: ChatClient) -> Any:
    with client.stream(ask()) as stream:
        for _ in stream:
            pass
    return stream.result


@pytest.fixture
def other_server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


def test_key_is_sent_as_bearer_to_its_own_base_url(server: LoopbackServer) -> None:
    client = ChatClient(fast_settings(server.base_url).with_key(SECRET, source="NBCHAT_API_KEY"))
    server.enqueue(Reply(text="ok"))
    drain(client)
    client.list_models()
    assert [r.headers.get("authorization") for r in server.requests] == [f"Bearer {SECRET}"] * 2


def test_key_is_not_sent_after_switching_to_another_server(
    server: LoopbackServer, other_server: LoopbackServer
) -> None:
    settings = fast_settings(server.base_url).with_key(SECRET, source="NBCHAT_API_KEY")
    client = ChatClient(settings.with_base_url(other_server.base_url))
    other_server.enqueue(Reply(text="ok"))
    drain(client)
    client.list_models()
    assert len(other_server.requests) == 2
    assert all("authorization" not in r.headers for r in other_server.requests)
    assert all(SECRET.encode() not in r.body for r in other_server.requests)


def test_openai_key_is_not_sent_to_an_nbchat_base_url(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    client = ChatClient(Settings.from_env())
    server.enqueue(Reply(text="ok"))
    drain(client)
    assert "authorization" not in server.last_request.headers


def test_nbchat_key_reaches_the_nbchat_base_url(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCHAT_API_KEY", SECRET)
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url.removesuffix("/v1"))  # bare host
    client = ChatClient(Settings.from_env())
    server.enqueue(Reply(text="ok"))
    drain(client)
    assert server.last_request.headers["authorization"] == f"Bearer {SECRET}"


def test_a_redirect_cannot_carry_the_key_away(
    server: LoopbackServer, other_server: LoopbackServer
) -> None:
    client = ChatClient(fast_settings(server.base_url).with_key(SECRET))
    server.enqueue(Status(308, headers={"Location": other_server.base_url + "/chat/completions"}))
    with pytest.raises(NbChatError, match="redirects"):
        drain(client)
    assert other_server.requests == []


def _texts_of(error: BaseException) -> list[str]:
    """str and repr of an error and of everything chained to it."""
    texts = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), repr(getattr(seen, "args", ()))]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_key_never_appears_in_errors_reprs_or_logs(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = fast_settings(server.base_url, backoff_factor=0.01).with_key(
        SECRET, source="NBCHAT_API_KEY"
    )
    client = ChatClient(settings)
    echoing = {"error": {"message": f"Incorrect API key provided: {SECRET}", "code": "bad_key"}}
    server.enqueue(
        Status(401, body=echoing),
        Status(500, body=echoing),
        Status(500, body=echoing),
        Status(500, body=echoing),
        Status(400, body=f"bad request from {SECRET}"),
        Reply(text="partial", error_after=2, error_message=f"upstream rejected {SECRET}"),
        Reply(text="partial", drop_after=2),
        Reply(text="partial", malformed_after=1),
    )
    shown: list[str] = [repr(settings), str(settings), repr(client), str(settings.describe())]
    for _ in range(6):
        with pytest.raises(NbChatError) as caught:
            drain(client)
        shown += _texts_of(caught.value)
        partial = getattr(caught.value, "partial", None)
        shown.append(repr(partial))
    server.enqueue(Reply(text="fine"))
    with client.stream(ask()) as stream:
        shown.append(repr(stream))
        for chunk in stream:
            shown.append(repr(chunk))
    shown.append(repr(stream.result))
    captured = capsys.readouterr()
    shown += [captured.out, captured.err, caplog.text]
    shown += [r.getMessage() for r in caplog.records]
    assert caplog.records, "debug logging should have recorded the requests"
    leaks = [text for text in shown if SECRET in text]
    assert leaks == []
    # and the server did receive it, so the scan above was looking at a key in real use
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("dummy", ["EMPTY", "none", "x", "1234567"])
def test_a_dummy_key_for_a_local_server_does_not_mangle_replies(dummy: str) -> None:
    from nbchat.config import APIKey
    from nbchat.secrets import KeyScrubber, mask_secrets

    scrubber = KeyScrubber(APIKey(dummy))
    text = f"The column is {dummy} here: x = none or EMPTY, 1234567."
    assert scrubber.scrub(text) == text
    assert mask_secrets(text) == text
    real = "sk-local-0123456789abcdef"
    scrubber.remember(APIKey(real))
    assert scrubber.scrub(f"{text} {real}") == f"{text} [key removed]"
