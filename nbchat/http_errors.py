"""What went wrong on the wire, as one error of :mod:`nbchat.errors` with a hint.

Two kinds of failure arrive here. An *answer* with an error status (or a 200 whose body is an
error object) becomes an :class:`~nbchat.errors.APIError` that quotes the server's own words;
*no answer at all* (a requests or urllib3 exception) becomes a
:class:`~nbchat.errors.TransportError`.

Exceptions are recognised by their type, through the one table :data:`_FAILURES`, never by the
words of their message: those differ between operating systems, C libraries and versions of
urllib3. The table is read along the exception's chain (``MaxRetryError.reason``, ``__cause__``,
the exception requests wraps, ``__context__``), outermost first, so that requests' own verdict
(a connect timeout, a TLS failure) wins over the socket error beneath it.

Whatever a server sends back passes through the :class:`~nbchat.secrets.KeyScrubber` before it
is quoted, in case it echoes the key.
"""

from __future__ import annotations

import enum
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from urllib3 import exceptions as urllib3_errors

from .config import Settings
from .errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    InStreamError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportError,
    TransportTimeoutError,
)
from .retry import retry_after, retryable_status
from .secrets import KeyScrubber

__all__ = [
    "SNIPPET",
    "TOO_LONG_HINT",
    "Failure",
    "check_error_body",
    "check_status",
    "classify",
    "context_exceeded",
    "host_of",
    "read_body",
    "read_json",
    "transport_error",
]

SNIPPET = 200
"""Most characters of a server's text quoted in an error: enough to read, short of a page."""

_CONTEXT_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
"""OpenAI's ``code`` and llama.cpp's ``type`` for a prompt longer than the model's context."""
_CONTEXT_WORDS = (
    "context_length_exceeded",  # OpenAI's code, quoted inside a gateway's message
    "maximum context length",  # OpenAI's and vLLM's message
    "exceeds the available context size",  # llama.cpp's message
    "contextwindowexceedederror",  # LiteLLM's exception name, at the head of its message
)
"""Words that say the same in the message of a server that sends no code for it (vLLM, LiteLLM:
its ``code`` is the status as a string); compared lower-cased."""
TOO_LONG_HINT = (
    "start a new conversation with %%chat --new, ask without the earlier turns with "
    "--no-history, or %chat reset"
)
"""What to do about a conversation too long for the model, however the server said so."""
_MAX_ERROR_BODY = 1024 * 1024
"""Most bytes of an error answer read: far more than is quoted, far less than a flood."""
_PIECE = 64 * 1024


class Failure(enum.Enum):
    """Why no answer came, in the terms the user can act on."""

    CONNECT_TIMEOUT = "connect timeout"
    READ_TIMEOUT = "read timeout"
    TLS = "TLS"
    DNS = "DNS"
    REFUSED = "refused"


_FAILURES: dict[type[BaseException], Failure] = {
    requests.ConnectTimeout: Failure.CONNECT_TIMEOUT,
    urllib3_errors.ConnectTimeoutError: Failure.CONNECT_TIMEOUT,
    requests.ReadTimeout: Failure.READ_TIMEOUT,
    urllib3_errors.ReadTimeoutError: Failure.READ_TIMEOUT,
    TimeoutError: Failure.READ_TIMEOUT,  # a socket timeout urllib3 did not wrap
    requests.exceptions.SSLError: Failure.TLS,
    urllib3_errors.SSLError: Failure.TLS,
    ssl.SSLError: Failure.TLS,
    urllib3_errors.NameResolutionError: Failure.DNS,
    socket.gaierror: Failure.DNS,
    urllib3_errors.NewConnectionError: Failure.REFUSED,
    ConnectionRefusedError: Failure.REFUSED,
}
"""Exception type → failure. A type not listed is looked up by its bases, nearest first, so
urllib3's ``NameResolutionError`` is DNS although it is also a ``NewConnectionError`` (and
that, in turn, a ``ConnectTimeoutError``)."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps, outermost first, each once."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        wrapped = link.args[0] if link.args else None
        if isinstance(link, urllib3_errors.MaxRetryError) and link.reason is not None:
            link = link.reason
        elif link.__cause__ is not None:
            link = link.__cause__
        elif isinstance(link, requests.RequestException) and isinstance(wrapped, BaseException):
            link = wrapped
        else:
            link = link.__context__


def classify(exc: BaseException) -> Failure | None:
    """The failure ``exc`` stands for, or None when the table does not know it."""
    for link in _chain(exc):
        for kind in type(link).__mro__:
            failure = _FAILURES.get(kind)
            if failure is not None:
                return failure
    return None


def host_of(url: str) -> str:
    """``host:port`` of ``url``, as errors name the server."""
    return urlsplit(url).netloc or url


_MESSAGES: dict[Failure, tuple[type[TransportError], str, str]] = {
    Failure.CONNECT_TIMEOUT: (
        TransportTimeoutError,
        "Connecting to {host} took longer than {connect_timeout:g} s",
        "{tried}; check the network and NBCHAT_BASE_URL",
    ),
    Failure.READ_TIMEOUT: (
        TransportTimeoutError,
        "{host} accepted the request but sent nothing for {read_timeout:g} s",
        "the server may be overloaded; raise NBCHAT_READ_TIMEOUT for slow models",
    ),
    Failure.TLS: (
        ConnectError,
        "TLS handshake with {host} failed",
        "check the base URL's scheme (http vs https) and certificates",
    ),
    Failure.DNS: (
        ConnectError,
        "Cannot resolve host {hostname}",
        "check the spelling of the base URL and your network",
    ),
    Failure.REFUSED: (
        ConnectError,
        "Connection to {host} was refused",
        "is the server running? {tried}",
    ),
}
"""Failure → the error raised for it: its class, its message and its hint, filled in from the
settings the request was sent with."""


def transport_error(exc: BaseException, settings: Settings) -> TransportError:
    """The error for a request that got no answer from ``settings.base_url``."""
    host = host_of(settings.base_url)
    failure = classify(exc)
    if failure is None:
        return ConnectError(
            f"Cannot reach {host}: {type(exc).__name__}", hint="check the network and the base URL"
        )
    error_class, message, hint = _MESSAGES[failure]
    attempts = settings.max_retries + 1
    facts = {
        "host": host,
        "hostname": urlsplit(settings.base_url).hostname,
        "tried": f"tried {attempts} times" if attempts > 1 else "tried once",
        "connect_timeout": settings.connect_timeout,
        "read_timeout": settings.read_timeout,
    }
    return error_class(message.format(**facts), hint=hint.format(**facts))


def _server_message(body: Any, text: str) -> str | None:
    """The server's own words, from the error shapes OpenAI-compatible servers use."""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str) and error:
            return error
        for key in ("message", "detail", "msg"):
            if body.get(key):
                detail = body[key]
                return detail if isinstance(detail, str) else json.dumps(detail)[:SNIPPET]
    text = text.strip()
    return text[:SNIPPET] if text else None


def read_body(response: requests.Response, limit: int) -> bytes | None:
    """The body of ``response`` (decompressed), read piece by piece; None when it holds more
    than ``limit`` bytes, and then the connection is closed rather than read to its end.

    Reading in pieces is what keeps a server that never ends its body, or a small compressed
    body that unpacks to gigabytes, from taking the kernel's memory with it.
    """
    pieces: list[bytes] = []
    size = 0
    try:
        for piece in response.iter_content(_PIECE):
            size += len(piece)
            if size > limit:
                return None
            pieces.append(piece)
    finally:
        response.close()  # back to the pool when read to the end, else closed
    return b"".join(pieces)


def read_json(response: requests.Response, host: str, *, limit: int) -> Any:
    """The body of a successful answer as JSON; an :class:`APIError` when it is not JSON or
    is longer than ``limit`` bytes."""
    content = read_body(response, limit)
    if content is None:
        raise APIError(
            f"{host} sent more than {limit / 2**20:g} MiB of body for one answer; stopped reading",
            status=response.status_code,
            hint="nothing was kept; the server is not ending its answer",
        )
    try:
        return json.loads(content.decode("utf-8", "replace"))
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise APIError(
            f"{host} answered with something that is not JSON",
            status=response.status_code,
            hint="is the base URL an OpenAI-compatible API (usually ending /v1)?",
        ) from None


def check_error_body(body: Any, host: str, scrubber: KeyScrubber) -> None:
    """Raise :class:`InStreamError` for a 200 whose body is an error object, not a reply."""
    if isinstance(body, dict) and body.get("error") and not body.get("choices"):
        body = scrubber.scrub_json(body)
        message = _server_message(body, "") or "unknown error"
        if context_exceeded(body, message):
            raise InStreamError(
                f"The conversation is too long for the model's context (said by {host})",
                error=body["error"] if isinstance(body["error"], dict) else None,
                hint=TOO_LONG_HINT,
            )
        raise InStreamError(
            f"{host} reported an error: {message}",
            error=body["error"] if isinstance(body["error"], dict) else None,
        )


def check_status(
    response: requests.Response, settings: Settings, scrubber: KeyScrubber, *, model: str | None
) -> None:
    """Raise the :class:`APIError` for an answer of 300 or above (its body is read and the
    connection released); return quietly for anything below."""
    status = response.status_code
    if status < 300:
        return
    text = (read_body(response, _MAX_ERROR_BODY) or b"").decode("utf-8", "replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    body = scrubber.scrub_json(body)
    server_message = _server_message(body, scrubber.scrub(text))
    raise _status_error(response, settings, server_message, body, model)


def _status_error(
    response: requests.Response,
    settings: Settings,
    server_message: str | None,
    body: Any,
    model: str | None,
) -> APIError:
    status = response.status_code
    host = host_of(settings.base_url)
    said = f": {server_message}" if server_message else ""
    retries = getattr(response.raw, "retries", None)
    attempts = 1 + len(getattr(retries, "history", ()) or ())
    tried = f"tried {attempts} times" if attempts > 1 else "not retried"
    kwargs: dict[str, Any] = {"status": status, "server_message": server_message, "body": body}
    if 300 <= status < 400:
        location = response.headers.get("Location", "?")
        return APIError(
            f"{host} redirects to {location} (HTTP {status})",
            hint="set the base URL to where it redirects; nbchat does not "
            "follow redirects, so the key cannot travel elsewhere",
            **kwargs,
        )
    if status in (401, 403):
        source = settings.key_source if settings.usable_key else None
        hint = (
            f"check the key in {source}; it was sent to {settings.base_url}"
            if source
            else "no key was sent: set NBCHAT_API_KEY or run %chat key"
        )
        return AuthenticationError(f"HTTP {status} from {host}{said}", hint=hint, **kwargs)
    if status == 404:
        what = (
            f"is the model {model!r} available here (%chat models lists them), "
            f"and is the base URL {settings.base_url} right?"
            if model
            else f"is the base URL {settings.base_url} right?"
        )
        return NotFoundError(f"HTTP 404 from {host}{said}", hint=what, **kwargs)
    if status == 429:
        asked = retry_after(response.headers)
        wait = f"; the server asks to wait {asked} s" if asked else ""
        return RateLimitError(
            f"Rate limited by {host} (HTTP 429){said}",
            hint=f"{tried}{wait}; wait, or check your plan's limits",
            **kwargs,
        )
    if status >= 500:
        return ServerError(
            f"HTTP {status} from {host}{said}",
            hint=f"the server failed; {tried}. Try again later",
            **kwargs,
        )
    if status == 400 and context_exceeded(body, server_message):
        return APIError(
            f"The conversation is too long for the model's context (HTTP 400 from {host})",
            hint=TOO_LONG_HINT,
            **kwargs,
        )
    if status in (400, 415, 422) and _images_refused(server_message):
        named = f"The model {model!r}" if model else "The model"
        return APIError(
            f"{named} does not accept images (HTTP {status} from {host}{said})",
            hint="ask without {fig}, --image or --cell-image, or pick a vision model with -m",
            **kwargs,
        )
    advice = "the request was refused as it stands" if status == 400 else None
    if retryable_status(status):  # 408, 409: busy with something else, so asked again
        advice = f"the server could not take the request now; {tried}. Try again later"
    return APIError(f"HTTP {status} from {host}{said}", hint=advice, **kwargs)


_IMAGE_WORDS = ("image", "vision", "multimodal", "multi-modal", "content part")
"""Words in a refusal that say the model takes no images: OpenAI's "image_url is only
supported by certain models", llama.cpp's "image input is not supported", vLLM's "not a
multimodal model", a gateway's "does not support vision"; compared lower-cased."""


def _images_refused(server_message: str | None) -> bool:
    said = (server_message or "").lower()
    return any(words in said for words in _IMAGE_WORDS)


def context_exceeded(body: Any, server_message: str | None) -> bool:
    """Whether a 400 says the prompt is longer than the model's context: asking again as it
    stands fails the same way, and only a shorter conversation helps."""
    error = body.get("error") if isinstance(body, dict) else None
    fields = error if isinstance(error, dict) else body if isinstance(body, dict) else {}
    if {str(fields.get("code")), str(fields.get("type"))} & _CONTEXT_CODES:
        return True
    said = (server_message or "").lower()
    return any(words in said for words in _CONTEXT_WORDS)
