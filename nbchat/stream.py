"""A reply arriving: the body of one answer, read as it comes and folded into a result.

:class:`ChatStream` reads the body of a ``text/event-stream`` answer piece by piece as the
network delivers it, decodes the events, and yields each chunk while the
:class:`~nbchat.accumulator.StreamAccumulator` builds the reply. A server that ignored
``stream: true`` and sent one JSON body is read by :class:`WholeBodyStream` instead;
:func:`open_stream` picks which from the answer's ``Content-Type``.

Every way a body can go wrong after the status line becomes a :class:`~nbchat.errors.StreamError`
that carries what had arrived as ``partial``, so no text the user already saw is lost. A body
that ends without any choice is one of them too, told apart by what did arrive: nothing at all
(llama-cpp-python answers a prompt longer than its context with 200 and an empty body), data but
no text, or some text; only the last has text to keep, and only the first says the prompt is
the likely cause, because asking again then fails the same way.

A stream that never ends must not take the kernel's memory with it (data lines and no blank
line, a line that never ends, endless unknown fields): an event may hold at most 16 MiB
(:data:`~nbchat.sse.MAX_EVENT_SIZE`) and a reply's body at most 64 MiB (:data:`MAX_REPLY_SIZE`),
far above what a model writes in one answer; past either, an ``IncompleteStreamError`` keeps
the text so far. ``ChatStream.max_event_size`` and ``max_reply_size`` hold the limits.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import requests
from urllib3.exceptions import HTTPError

from .accumulator import StreamAccumulator
from .errors import IncompleteStreamError, InStreamError, MalformedChunkError, NbChatError
from .http_errors import (
    SNIPPET,
    TOO_LONG_HINT,
    Failure,
    check_error_body,
    classify,
    context_exceeded,
    host_of,
    read_json,
)
from .protocol import ChatResult
from .secrets import KeyScrubber
from .sse import MAX_EVENT_SIZE, EventTooLargeError, SSEDecoder

__all__ = ["MAX_REPLY_SIZE", "ChatStream", "WholeBodyStream", "open_stream"]

MAX_REPLY_SIZE = 64 * 1024 * 1024
"""Most bytes of a streamed body read for one reply (decompressed), keep-alives included."""

_READ_SIZE = 64 * 1024
_DRAIN_TIMEOUT = 2.0  # seconds to wait for the end of a body after [DONE]
_QUOTE = 80  # characters of a malformed chunk quoted in its error
_TIMEOUTS = (Failure.READ_TIMEOUT, Failure.CONNECT_TIMEOUT)
_FEWER = "send fewer turns (%chat reset) or smaller summaries (a smaller --df-tokens)"
_TOO_LONG = f"the prompt is likely longer than the model's context: {_FEWER}"
_NO_CHOICE = (
    "nothing was kept; if asking again fails the same way, the prompt may be too long for the "
    f"model's context: {_FEWER}"
)


def _has_text(result: ChatResult) -> bool:
    return any(choice.text for choice in result.choices)


def _answered(result: ChatResult) -> bool:
    """Whether any choice holds something to show: text, a refusal, tool calls or reasoning.
    A gateway may turn an upstream's empty answer into a choice that only says ``stop``."""
    return any(c.text or c.refusal or c.tool_calls or c.reasoning for c in result.choices)


def open_stream(
    response: requests.Response, *, scrubber: KeyScrubber, read_timeout: float
) -> ChatStream:
    """The stream that reads ``response``: chunk by chunk, or whole when it is plain JSON."""
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type and "event-stream" not in content_type:
        return WholeBodyStream(response, scrubber=scrubber, read_timeout=read_timeout)
    return ChatStream(response, scrubber=scrubber, read_timeout=read_timeout)


class ChatStream:
    """A reply arriving. Iterate to get each chunk (a dict); ``result`` holds the whole reply.

    Iteration ends normally when the reply is complete. It raises :class:`InStreamError` for an
    error the server sent inside the stream, :class:`MalformedChunkError` for a chunk that is not
    JSON, :class:`IncompleteStreamError` when the connection ends early; each carries the partial
    :class:`ChatResult` as ``partial``. :meth:`cancel` may be called from any thread.

    ``read_timeout`` is the one the request was sent with: it bounds the silence between two
    pieces of the body, and errors quote it.
    """

    max_event_size = MAX_EVENT_SIZE
    """Most characters of one event; a larger one ends the reply as incomplete."""
    max_reply_size = MAX_REPLY_SIZE
    """Most bytes of body read for one reply; past them the reply ends as incomplete."""

    def __init__(
        self, response: requests.Response, *, scrubber: KeyScrubber, read_timeout: float
    ) -> None:
        self._response = response
        self._scrubber = scrubber
        self._read_timeout = read_timeout
        self._host = host_of(response.url)
        self._cancelled = threading.Event()
        self._iterating = False
        self.accumulator = StreamAccumulator()
        self.result: ChatResult | None = None
        self.decoder = SSEDecoder(max_event_size=self.max_event_size)
        self._foreign_checked = 0  # how many of the decoder's foreign fields were looked at
        self.events = 0
        """Data events received so far, ``[DONE]`` included (comments and keep-alives not)."""

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def snapshot(self) -> ChatResult:
        """What has arrived so far, as a result flagged incomplete unless it is finished."""
        return self.result or self.accumulator.result(done=False)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._iterating = True
        try:
            yield from self._chunks()
        finally:
            self._iterating = False
            self.close()

    def _chunks(self) -> Iterator[dict[str, Any]]:
        accumulator, decoder = self.accumulator, self.decoder
        done = False
        loads = json.loads
        body_size, max_body_size = 0, self.max_reply_size
        try:
            for raw in self._network_reads():
                body_size += len(raw)
                if body_size > max_body_size:
                    raise self._too_large(f"more than {max_body_size / 2**20:g} MiB of body")
                for event in decoder.feed(raw):
                    data = event.data
                    if done or not data:
                        continue
                    self.events += 1
                    if data == "[DONE]":
                        done = True
                        self._expect_end_soon()
                        continue
                    chunk = self._parse(data, event.event, loads)
                    accumulator.add(chunk)
                    if accumulator.errors:
                        self._raise_in_stream_error()
                    yield chunk
                    if self._cancelled.is_set():
                        return
                if len(decoder.foreign_fields) > self._foreign_checked:
                    self._check_foreign_fields()
        except EventTooLargeError as exc:
            raise self._too_large(f"an event of more than {exc.limit / 2**20:g} MiB") from None
        except NbChatError:
            raise
        except Exception as exc:
            if self._cancelled.is_set():  # whatever a shut socket raised, stopping was asked for
                return
            if not isinstance(exc, (requests.RequestException, HTTPError, OSError)):
                raise
            if not done:
                raise self._broken(exc) from None
            # [DONE] arrived and the reply is whole; only the end of the body misbehaved.
        if self._cancelled.is_set():
            return
        tail = decoder.close()
        if tail is not None and tail.data and not done:
            self.events += 1
            if tail.data == "[DONE]":
                done = True
            else:
                chunk = self._parse(tail.data, tail.event, loads)
                accumulator.add(chunk)
                if accumulator.errors:
                    self._raise_in_stream_error()
                yield chunk
        self._check_foreign_fields()
        result = accumulator.result(done=done)
        if not result.complete or not _answered(result):
            raise self._ended_early(result)
        self.result = result

    def _ended_early(self, result: ChatResult) -> IncompleteStreamError:
        """The error for a body that ended cleanly but without a whole reply, by what came."""
        warned = f"; it warned: {result.warnings[0]}" if result.warnings else ""
        if not self.events:
            status = self._response.status_code
            return IncompleteStreamError(
                f"{self._host} answered HTTP {status} but sent no data: no text arrived{warned}",
                partial=result,
                hint=_TOO_LONG,
            )
        if result.complete:  # it said it was done, yet sent no choice
            return IncompleteStreamError(
                f"The stream from {self._host} ended without any reply: no text arrived{warned}",
                partial=result,
                hint=_NO_CHOICE,
            )
        if not _has_text(result):
            return IncompleteStreamError(
                f"The stream from {self._host} ended before any text arrived{warned}",
                partial=result,
                hint="nothing was kept; ask again",
            )
        return IncompleteStreamError(
            f"The stream from {self._host} ended before the reply was complete{warned}",
            partial=result,
            hint="the text so far is kept; ask again to get the rest",
        )

    def _network_reads(self) -> Iterator[bytes]:
        """Each piece of the body as soon as it arrives.

        ``iter_content(chunk_size=None)`` would do for a chunked body but waits for the whole
        of a close-delimited one (an HTTP/1.0 server or proxy), so read1 serves that case.
        """
        raw = self._response.raw
        if raw.chunked and raw.supports_chunked_reads():
            yield from raw.read_chunked(None, decode_content=True)
        else:
            while data := raw.read1(_READ_SIZE, decode_content=True):
                yield data

    def _socket(self) -> socket.socket | None:
        connection = getattr(self._response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        return sock if isinstance(sock, socket.socket) else None

    def _expect_end_soon(self) -> None:
        """After ``[DONE]`` only the end of the body is left; a server that keeps the
        connection open without ending the body must not hold the reply for a read timeout."""
        sock = self._socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(min(_DRAIN_TIMEOUT, self._read_timeout))

    def _parse(self, data: str, event_type: str, loads: Callable[[str], Any]) -> dict[str, Any]:
        try:
            chunk = loads(data)
        except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
            chunk = None
        if isinstance(chunk, dict) and not isinstance(chunk.get("choices", []), list):
            chunk = None  # `choices` must be a list; anything else is not a completion chunk
        if not isinstance(chunk, dict):
            # Scrub the whole text, then cut: a cut first could split a key and leave part of it.
            scrubbed = self._scrubber.scrub(data)
            if event_type == "error":
                self.accumulator.errors.append({"message": scrubbed[:SNIPPET]})
                self._raise_in_stream_error()
            partial = self.accumulator.result(done=False)
            kept = "the text so far is kept" if _has_text(partial) else "nothing was kept"
            raise MalformedChunkError(
                f"{self._host} sent a stream chunk that is not a completion chunk: "
                f"{scrubbed[:_QUOTE]!r}",
                partial=partial,
                hint=f"the server may not be OpenAI-compatible; {kept}",
            )
        return chunk

    def _too_large(self, what: str) -> IncompleteStreamError:
        partial = self.accumulator.result(done=False)
        kept = "the text so far is kept" if _has_text(partial) else "nothing was kept"
        return IncompleteStreamError(
            f"The stream from {self._host} sent {what} without ending the reply; stopped reading",
            partial=partial,
            hint=f"{kept}; the server is not ending its stream",
        )

    def _check_foreign_fields(self) -> None:
        """Act on the foreign fields that arrived since the last look (each is read once)."""
        fields = self.decoder.foreign_fields
        start, self._foreign_checked = self._foreign_checked, len(fields)
        for name, value in fields[start:]:
            if name == "error":  # older llama.cpp servers: `error: {...}` instead of a data line
                try:
                    error = json.loads(value)
                except ValueError:
                    error = {"message": value}
                self.accumulator.errors.append(
                    error if isinstance(error, dict) else {"message": str(error)}
                )
                self._raise_in_stream_error()

    def _raise_in_stream_error(self) -> None:
        errors = self.accumulator.errors
        errors[:] = [self._scrubber.scrub_json(e) for e in errors]
        error = dict(errors[0])
        message = self._scrubber.scrub(str(error.get("message") or error)) or "unknown error"
        kind = error.get("type") or error.get("code")
        partial = self.accumulator.result(done=False)
        if context_exceeded({"error": error}, message):
            # llama.cpp before its PR #16109 says so inside a 200 stream, not with a 400
            raise InStreamError(
                "The conversation is too long for the model's context (said inside the stream "
                f"from {self._host})",
                partial=partial,
                error=error,
                hint=TOO_LONG_HINT,
            )
        raise InStreamError(
            f"{self._host} reported an error mid-stream: {message}"
            + (f" [{kind}]" if kind else ""),
            partial=partial,
            error=error,
            hint="the text so far is kept" if partial.text else None,
        )

    def _broken(self, exc: Exception) -> NbChatError:
        partial = self.accumulator.result(done=False)
        text = _has_text(partial)
        kept = "the text so far is kept" if text else "nothing was kept"
        if classify(exc) in _TIMEOUTS:
            silent = "in the middle of the reply" if self.events else "after it began to answer"
            return IncompleteStreamError(
                f"{self._host} sent nothing for {self._read_timeout:g} s {silent}",
                partial=partial,
                hint=f"{kept}; raise NBCHAT_READ_TIMEOUT for slow models",
            )
        broke = "in the middle of the reply" if self.events else "before any data arrived"
        return IncompleteStreamError(
            f"The connection to {self._host} broke {broke}",
            partial=partial,
            hint=f"{kept}; ask again" + (" to get the rest" if text else ""),
        )

    def cancel(self) -> None:
        """Stop now, from any thread: the connection is shut, iteration ends quietly."""
        self._cancelled.set()
        sock = self._socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self._iterating:  # else the iterating thread closes it as it leaves
            self.close()

    def close(self) -> None:
        """Release the connection (it is reused only if the body was read to the end)."""
        self._response.close()


class WholeBodyStream(ChatStream):
    """A server that ignored ``stream: true`` and sent one JSON body: one chunk, then done."""

    def _chunks(self) -> Iterator[dict[str, Any]]:
        body = read_json(self._response, self._host, limit=self.max_reply_size)
        check_error_body(body, self._host, self._scrubber)
        self.accumulator.add_completion(body)
        self.result = require_choices(self.accumulator.result(done=True), self._host)
        yield body


def require_choices(result: ChatResult, host: str) -> ChatResult:
    """``result`` when it holds a choice; a whole answer with none is an error, not an empty
    reply (nothing would be shown, and an empty turn would be kept)."""
    if not _answered(result):
        raise IncompleteStreamError(
            f"{host} answered without any reply: no text arrived", partial=result, hint=_NO_CHOICE
        )
    return result
