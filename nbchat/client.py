"""HTTP for chat completions: the only module that imports ``requests``.

``ChatClient.stream`` posts a request and returns a :class:`ChatStream` that yields each chunk
as it arrives; ``complete`` asks for a whole reply; ``list_models`` reads ``GET /models``.

What it takes care of, so nothing above it has to:

- one pooled ``requests.Session``; a connect timeout, and a read timeout that bounds the silence
  *between* chunks (a long answer may take minutes, a dead one should not);
- retries with exponential backoff for connection errors and 408, 409, 429, 500, 502, 503, 504
  answers, before any byte of a body was read, honouring ``Retry-After`` — done by urllib3's
  ``Retry``, bounded in count and in total waiting time;
- ``stream_options.include_usage`` in every stream, unless switched off; a server that refuses
  it with a 400 is asked once more without it, and is remembered;
- the key goes only to the base URL it was configured for, redirects are not followed (they
  could carry it elsewhere), and it is scrubbed from anything a server echoes back;
- every failure becomes one error of :mod:`nbchat.errors`, with the server's own message and a
  hint about what to do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from . import __version__
from .config import Settings, is_loopback_url
from .errors import (
    APIError,
    AuthenticationError,
    ConnectError,
    IncompleteStreamError,
    InStreamError,
    MalformedChunkError,
    NbChatError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TransportTimeoutError,
)
from .protocol import ChatRequest, ChatResult, StreamAccumulator
from .sse import SSEDecoder

__all__ = ["ChatClient", "ChatStream"]

log = logging.getLogger("nbchat")

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
_NO_PROXY: dict[str, Any] = {"http": None, "https": None}
_SNIPPET = 200
_READ_SIZE = 64 * 1024
_DRAIN_TIMEOUT = 2.0  # seconds to wait for the end of a body after [DONE]


class _BoundedRetry(Retry):
    """urllib3's ``Retry``, plus a cap on the total time spent waiting between attempts.

    A ``Retry-After`` longer than what is left of the budget ends the retrying at once: the
    user hears "rate limited, the server asks for 600 s" now instead of after ten minutes.
    """

    def __init__(
        self, *args: Any, budget: float = 60.0, waited: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.waited = waited

    def new(self, **kwargs: Any) -> _BoundedRetry:
        kwargs.setdefault("budget", self.budget)
        kwargs.setdefault("waited", self.waited)
        return super().new(**kwargs)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _BoundedRetry:
        if isinstance(error, ReadTimeoutError):
            # The server has the request and is slow, not gone: asking again would double the
            # wait and may bill twice. (A pooled connection the server had closed, by
            # contrast, is a ProtocolError and is retried.)
            raise error
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, _BoundedRetry)
        wait = retry.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = retry.get_backoff_time()
        retry.waited = self.waited + wait
        if retry.waited > self.budget:
            raise MaxRetryError(_pool, url or "", error)
        return retry


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


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
                return detail if isinstance(detail, str) else json.dumps(detail)[:_SNIPPET]
    text = text.strip()
    return text[:_SNIPPET] if text else None


class ChatStream:
    """A reply arriving. Iterate to get each chunk (a dict); ``result`` holds the whole reply.

    Iteration ends normally when the reply is complete. It raises :class:`InStreamError` for an
    error the server sent inside the stream, :class:`MalformedChunkError` for a chunk that is not
    JSON, :class:`IncompleteStreamError` when the connection ends early; each carries the partial
    :class:`ChatResult` as ``partial``. :meth:`cancel` may be called from any thread.
    """

    def __init__(self, response: requests.Response, client: ChatClient) -> None:
        self._response = response
        self._client = client
        self._host = _host_of(response.url)
        self._cancelled = threading.Event()
        self._iterating = False
        self.accumulator = StreamAccumulator()
        self.result: ChatResult | None = None
        self.decoder = SSEDecoder()

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
        try:
            for raw in self._network_reads():
                for event in decoder.feed(raw):
                    data = event.data
                    if done or not data:
                        continue
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
                if decoder.foreign_fields:
                    self._check_foreign_fields()
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
        if not result.complete:
            warned = f"; it warned: {result.warnings[0]}" if result.warnings else ""
            raise IncompleteStreamError(
                f"The stream from {self._host} ended before the reply was complete{warned}",
                partial=result,
                hint="the text so far is kept; ask again to get the rest",
            )
        self.result = result

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

    def _expect_end_soon(self) -> None:
        """After ``[DONE]`` only the end of the body is left; a server that keeps the
        connection open without ending the body must not hold the reply for a read timeout."""
        sock = getattr(getattr(self._response.raw, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(min(_DRAIN_TIMEOUT, self._client.settings.read_timeout))

    def _parse(self, data: str, event_type: str, loads: Any) -> dict[str, Any]:
        try:
            chunk = loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            if event_type == "error":
                self.accumulator.errors.append({"message": data[:_SNIPPET]})
                self._raise_in_stream_error()
            raise MalformedChunkError(
                f"{self._host} sent a stream chunk that is not a JSON object: "
                f"{self._client.scrub(data[:80])!r}",
                partial=self.accumulator.result(done=False),
                hint="the server may not be OpenAI-compatible; the text so far is kept",
            )
        return chunk

    def _check_foreign_fields(self) -> None:
        for name, value in self.decoder.foreign_fields:
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
        errors[:] = [self._client.scrub_json(e) for e in errors]
        error = dict(errors[0])
        message = self._client.scrub(str(error.get("message") or error)) or "unknown error"
        kind = error.get("type") or error.get("code")
        partial = self.accumulator.result(done=False)
        raise InStreamError(
            f"{self._host} reported an error mid-stream: {message}"
            + (f" [{kind}]" if kind else ""),
            partial=partial,
            error=error,
            hint="the text so far is kept" if partial.text else None,
        )

    def _broken(self, exc: Exception) -> NbChatError:
        partial = self.accumulator.result(done=False)
        if isinstance(exc, (ReadTimeoutError, requests.Timeout, TimeoutError)):
            timeout = self._client.settings.read_timeout
            return IncompleteStreamError(
                f"{self._host} sent nothing for {timeout:g} s in the middle of the reply",
                partial=partial,
                hint="the text so far is kept; raise NBCHAT_READ_TIMEOUT for slow models",
            )
        return IncompleteStreamError(
            f"The connection to {self._host} broke in the middle of the reply",
            partial=partial,
            hint="the text so far is kept; ask again to get the rest",
        )

    def cancel(self) -> None:
        """Stop now, from any thread: the connection is shut, iteration ends quietly."""
        self._cancelled.set()
        connection = getattr(self._response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if not self._iterating:  # else the iterating thread closes it as it leaves
            self.close()

    def close(self) -> None:
        """Release the connection (it is reused only if the body was read to the end)."""
        self._response.close()


class ChatClient:
    """Talks to one OpenAI-compatible API described by :class:`Settings`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._http: requests.Session | None = None
        self._http_lock = threading.Lock()
        self._http_retry_policy: tuple[int, float, float] | None = None
        self._refuses_usage: set[str] = set()

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    # -- the three calls -------------------------------------------------------------------

    def stream(self, request: ChatRequest) -> ChatStream:
        """Send ``request`` with ``stream: true``; the returned stream yields chunks."""
        request = dataclasses.replace(request, stream=True)  # the caller's object stays as it was
        request.validate()
        payload = request.to_payload()
        added_usage = False
        if (
            self.settings.include_usage
            and "stream_options" not in payload
            and self.settings.base_url not in self._refuses_usage
        ):
            payload["stream_options"] = {"include_usage": True}
            added_usage = True
        response = self._post(payload, stream=True)
        if added_usage and response.status_code == 400 and self._refused_usage(response):
            log.info("%s refuses stream_options; asking again without it", self._host)
            self._refuses_usage.add(self.settings.base_url)
            del payload["stream_options"]
            response = self._post(payload, stream=True)
        self._raise_for_status(response, model=request.model)
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type and "event-stream" not in content_type:
            # Some servers ignore stream: true; take the whole reply as one chunk.
            return _WholeBodyStream(response, self)
        return ChatStream(response, self)

    def complete(self, request: ChatRequest) -> ChatResult:
        """Send ``request`` with ``stream: false`` and return the whole reply."""
        request = dataclasses.replace(request, stream=False)
        request.validate()
        response = self._post(request.to_payload(), stream=False)
        self._raise_for_status(response, model=request.model)
        body = self._json_body(response)
        self._raise_for_error_body(body)
        return ChatResult.from_completion(body)

    def list_models(self) -> list[str]:
        """The model ids the server offers (``GET /models``), sorted."""
        url = self._url("/models")
        response = self._send("GET", url, stream=False)
        self._raise_for_status(response, model=None)
        body = self._json_body(response)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise APIError(
                f"{self._host} answered /models with no model list",
                status=response.status_code,
                body=None,
                hint="the server may not list models; type the model name instead",
            )
        ids = {str(m["id"]) if isinstance(m, dict) and "id" in m else str(m) for m in data}
        return sorted(ids)

    def close(self) -> None:
        """Close pooled connections."""
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _host(self) -> str:
        return _host_of(self.settings.base_url)

    def _url(self, path: str) -> str:
        return self.settings.base_url + path

    def _session(self) -> requests.Session:
        settings = self.settings
        retry_policy = (settings.max_retries, settings.retry_budget, settings.backoff_factor)
        with self._http_lock:
            if self._http is not None and self._http_retry_policy != retry_policy:
                self._http.close()  # settings changed: the adapter's Retry is out of date
                self._http = None
            if self._http is None:
                self._http = self._make_session()
                self._http_retry_policy = retry_policy
            return self._http

    def _make_session(self) -> requests.Session:
        settings = self.settings
        retry = _BoundedRetry(
            total=settings.max_retries,
            connect=settings.max_retries,
            read=min(1, settings.max_retries),  # a pooled connection the server closed
            status=settings.max_retries,
            other=0,
            redirect=False,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=settings.backoff_factor,
            backoff_max=8.0,
            backoff_jitter=0.25,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            budget=settings.retry_budget,
        )
        http = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=8)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
        http.headers["User-Agent"] = f"nbchat/{__version__} requests/{requests.__version__}"
        return http

    def _headers(self, url: str) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        key = self.settings.key_for(url)
        if key is not None:
            headers["Authorization"] = f"Bearer {key.reveal()}"
        elif not is_loopback_url(url):
            self.settings.require_key()
        return headers

    def _post(self, payload: dict[str, Any], *, stream: bool) -> requests.Response:
        return self._send("POST", self._url("/chat/completions"), stream=stream, json=payload)

    def _send(
        self, method: str, url: str, *, stream: bool, json: Mapping[str, Any] | None = None
    ) -> requests.Response:
        headers = self._headers(url)
        if stream:
            # A compressing proxy may hold back a compressed stream until a block fills up.
            headers["Accept-Encoding"] = "identity"
        timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        proxies = _NO_PROXY if is_loopback_url(url) else None
        try:
            return self._session().request(
                method,
                url,
                json=json,
                headers=headers,
                stream=stream,
                timeout=timeout,
                allow_redirects=False,
                proxies=proxies,
            )
        except requests.RequestException as exc:
            raise self._transport_error(exc) from None

    def _transport_error(self, exc: requests.RequestException) -> NbChatError:
        host = self._host
        reason: Any = exc.args[0] if exc.args else exc
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        attempts = self.settings.max_retries + 1
        if isinstance(exc, requests.ConnectTimeout):
            return TransportTimeoutError(
                f"Connecting to {host} took longer than {self.settings.connect_timeout:g} s",
                hint=f"tried {attempts} times; check the network and NBCHAT_BASE_URL",
            )
        if isinstance(exc, requests.ReadTimeout):
            return TransportTimeoutError(
                f"{host} accepted the request but sent nothing for "
                f"{self.settings.read_timeout:g} s",
                hint="the server may be overloaded; raise NBCHAT_READ_TIMEOUT for slow models",
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return ConnectError(
                f"TLS handshake with {host} failed",
                hint="check the base URL's scheme (http vs https) and certificates",
            )
        if (
            isinstance(reason, NameResolutionError)
            or "Name or service not known" in str(exc)
            or "nodename nor servname" in str(exc)
        ):
            return ConnectError(
                f"Cannot resolve host {urlsplit(self.settings.base_url).hostname}",
                hint="check the spelling of the base URL and your network",
            )
        if isinstance(reason, NewConnectionError) or "Connection refused" in str(exc):
            return ConnectError(
                f"Connection to {host} was refused",
                hint=f"is the server running? tried {attempts} times",
            )
        return ConnectError(
            f"Cannot reach {host}: {type(exc).__name__}", hint="check the network and the base URL"
        )

    def _refused_usage(self, response: requests.Response) -> bool:
        text = response.text
        return "stream_options" in text or "include_usage" in text

    def scrub(self, text: str) -> str:
        """``text`` with the key cut out, should a server echo it back."""
        key = self.settings.api_key
        if key is not None and key.reveal() in text:
            text = text.replace(key.reveal(), "[key]")
        return text

    def scrub_json(self, value: Any) -> Any:
        """A JSON value with the key cut out of every string in it."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        return value

    def _json_body(self, response: requests.Response) -> Any:
        try:
            return json.loads(response.content.decode("utf-8", "replace"))
        except ValueError:
            raise APIError(
                f"{self._host} answered with something that is not JSON",
                status=response.status_code,
                hint="is the base URL an OpenAI-compatible API (usually ending /v1)?",
            ) from None

    def _raise_for_error_body(self, body: Any) -> None:
        if isinstance(body, dict) and body.get("error") and not body.get("choices"):
            body = self.scrub_json(body)
            message = _server_message(body, "") or "unknown error"
            raise InStreamError(
                f"{self._host} reported an error: {message}",
                error=body["error"] if isinstance(body["error"], dict) else None,
            )

    def _raise_for_status(self, response: requests.Response, *, model: str | None) -> None:
        status = response.status_code
        if status < 300:
            return
        try:
            text = response.content.decode("utf-8", "replace")
        finally:
            response.close()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = None
        body = self.scrub_json(body)
        server_message = _server_message(body, self.scrub(text))
        raise self._status_error(response, status, server_message, body, model)

    def _status_error(
        self,
        response: requests.Response,
        status: int,
        server_message: str | None,
        body: Any,
        model: str | None,
    ) -> APIError:
        host = self._host
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
            source = self.settings.key_source if self.settings.usable_key else None
            hint = (
                f"check the key in {source}; it was sent to {self.settings.base_url}"
                if source
                else "no key was sent: set NBCHAT_API_KEY or run %chat key"
            )
            return AuthenticationError(f"HTTP {status} from {host}{said}", hint=hint, **kwargs)
        if status == 404:
            what = (
                f"is the model {model!r} available here (%chat models lists them), "
                f"and is the base URL {self.settings.base_url} right?"
                if model
                else f"is the base URL {self.settings.base_url} right?"
            )
            return NotFoundError(f"HTTP 404 from {host}{said}", hint=what, **kwargs)
        if status == 429:
            retry_after = response.headers.get("Retry-After")
            wait = f"; the server asks to wait {retry_after} s" if retry_after else ""
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
        return APIError(
            f"HTTP {status} from {host}{said}",
            hint="the request was refused as it stands" if status == 400 else None,
            **kwargs,
        )


class _WholeBodyStream(ChatStream):
    """A server that ignored ``stream: true`` and sent one JSON body: one chunk, then done."""

    def _chunks(self) -> Iterator[dict[str, Any]]:
        body = self._client._json_body(self._response)
        self._client._raise_for_error_body(body)
        self.accumulator.add_completion(body)
        self.result = self.accumulator.result(done=True)
        yield body
