"""Talking to one OpenAI-compatible API: the three calls, and the connection they share.

``ChatClient.stream`` posts a request and returns a :class:`~nbchat.stream.ChatStream` that
yields each chunk as it arrives; ``complete`` asks for a whole reply; ``list_models`` reads
``GET /models``.

What it takes care of, so nothing above it has to:

- one pooled ``requests.Session``; a connect timeout, and a read timeout that bounds the silence
  *between* chunks (a long answer may take minutes, a dead one should not);
- retries before any byte of a body was read, bounded in count and in waiting time
  (:mod:`nbchat.retry`);
- ``stream_options.include_usage`` in every stream, unless switched off; a server that refuses
  it with a 400 is asked once more without it, and is remembered;
- the key goes only to the base URL it was configured for, redirects are not followed (they
  could carry it elsewhere), a loopback server is never reached through a proxy, and every key
  the client was given is cut out of anything a server echoes back
  (:class:`~nbchat.secrets.KeyScrubber`);
- every failure becomes one error of :mod:`nbchat.errors` (:mod:`nbchat.http_errors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests

from .accumulator import completion_result
from .adapter import CancellableAdapter
from .cancel import Cancellation, RequestCancelled, active, watching
from .config import Settings, is_loopback_url
from .errors import APIError
from .http_errors import check_error_body, check_status, host_of, read_json, transport_error
from .protocol import ChatRequest, ChatResult
from .retry import BoundedRetry
from .secrets import KeyScrubber
from .stream import ChatStream, open_stream, require_choices
from .version import __version__

__all__ = ["ChatClient"]

log = logging.getLogger("nbchat")

_USER_AGENT = f"nbchat/{__version__} requests/{requests.__version__}"


class ChatClient:
    """Talks to one OpenAI-compatible API described by :class:`Settings`.

    ``scrubber`` cuts keys out of what servers echo back; a session passes its own so that its
    client, its history and its errors cut the same keys. Every key the client's settings ever
    held is remembered by it, so an old key echoed after a change is still cut.
    """

    def __init__(
        self, settings: Settings | None = None, *, scrubber: KeyScrubber | None = None
    ) -> None:
        self.scrubber = scrubber if scrubber is not None else KeyScrubber()
        self.settings = settings if settings is not None else Settings.from_env()
        self._http: requests.Session | None = None
        self._http_lock = threading.Lock()
        self._http_retry_policy: tuple[int, float, float] | None = None
        self._refuses_usage: set[str] = set()

    def __repr__(self) -> str:
        return f"ChatClient(base_url={self.settings.base_url!r}, model={self.settings.model!r})"

    @property
    def settings(self) -> Settings:
        """Where and how to talk; setting new ones takes effect from the next request."""
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        self.scrubber.remember(settings.api_key)
        self._settings = settings

    # -- the three calls -------------------------------------------------------------------

    def stream(self, request: ChatRequest, *, cancel: Cancellation | None = None) -> ChatStream:
        """Send ``request`` with ``stream: true``; the returned stream yields chunks.

        Setting ``cancel`` before the answer began (the server holding its headers back, a
        pause between retries) shuts the connection and raises :class:`RequestCancelled` at
        once; after that, stop the stream itself (:meth:`ChatStream.cancel`).
        """
        request = dataclasses.replace(request, stream=True)  # the caller's object stays as it was
        request.validate()
        with watching(cancel):
            return self._open_stream(request, cancel)

    def _open_stream(self, request: ChatRequest, cancel: Cancellation | None) -> ChatStream:
        settings = self.settings
        payload = request.to_payload()
        added_usage = False
        if (
            settings.include_usage
            and "stream_options" not in payload
            and settings.base_url not in self._refuses_usage
        ):
            payload["stream_options"] = {"include_usage": True}
            added_usage = True
        if cancel is not None:
            cancel.check()
        response = self._post(settings, payload, stream=True)
        if added_usage and response.status_code == 400 and self._refused_usage(response):
            log.info(
                "%s refuses stream_options; asking again without it", host_of(settings.base_url)
            )
            self._refuses_usage.add(settings.base_url)
            del payload["stream_options"]
            response = self._post(settings, payload, stream=True)
        with _transport_errors(settings):
            check_status(response, settings, self.scrubber, model=request.model)
        return open_stream(response, scrubber=self.scrubber, read_timeout=settings.read_timeout)

    def complete(self, request: ChatRequest, *, cancel: Cancellation | None = None) -> ChatResult:
        """Send ``request`` with ``stream: false`` and return the whole reply; setting
        ``cancel`` meanwhile shuts the connection and raises :class:`RequestCancelled`."""
        request = dataclasses.replace(request, stream=False)
        request.validate()
        settings = self.settings
        host = host_of(settings.base_url)
        with watching(cancel):  # over the whole body too: it is read on the same connection
            if cancel is not None:
                cancel.check()
            response = self._post(settings, request.to_payload(), stream=False)
            with _transport_errors(settings):
                check_status(response, settings, self.scrubber, model=request.model)
                body = read_json(response, host, limit=ChatStream.max_reply_size)
        check_error_body(body, host, self.scrubber)
        return require_choices(completion_result(body), host)

    def list_models(self) -> list[str]:
        """The model ids the server offers (``GET /models``), sorted."""
        settings = self.settings
        response = self._send(settings, "GET", settings.base_url + "/models", stream=False)
        host = host_of(settings.base_url)
        with _transport_errors(settings):
            check_status(response, settings, self.scrubber, model=None)
            body = read_json(response, host, limit=ChatStream.max_reply_size)
        data = body.get("data") if isinstance(body, dict) else body
        if not isinstance(data, list):
            raise APIError(
                f"{host} answered /models with no model list",
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

    def _session(self, settings: Settings) -> requests.Session:
        """The pooled session, made anew when the retry settings changed (the adapter holds
        its ``Retry`` for good)."""
        retry_policy = (settings.max_retries, settings.retry_budget, settings.backoff_factor)
        with self._http_lock:
            if self._http is not None and self._http_retry_policy != retry_policy:
                self._http.close()
                self._http = None
            if self._http is None:
                http = requests.Session()
                adapter = CancellableAdapter(
                    max_retries=BoundedRetry.from_settings(settings),
                    pool_connections=4,
                    pool_maxsize=8,
                )
                http.mount("http://", adapter)
                http.mount("https://", adapter)
                http.headers["User-Agent"] = _USER_AGENT
                self._http = http
                self._http_retry_policy = retry_policy
            return self._http

    def _headers(self, settings: Settings, url: str) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        key = settings.key_for(url)
        if key is not None:
            headers["Authorization"] = f"Bearer {key.reveal()}"
        elif not is_loopback_url(url):
            settings.require_key()
        return headers

    def _post(
        self, settings: Settings, payload: dict[str, Any], *, stream: bool
    ) -> requests.Response:
        url = settings.base_url + "/chat/completions"
        return self._send(settings, "POST", url, stream=stream, json=payload)

    def _send(
        self,
        settings: Settings,
        method: str,
        url: str,
        *,
        stream: bool,
        json: Mapping[str, Any] | None = None,
    ) -> requests.Response:
        headers = self._headers(settings, url)
        if stream:
            # A compressing proxy may hold back a compressed stream until a block fills up.
            headers["Accept-Encoding"] = "identity"
        try:
            return self._session(settings).request(
                method,
                url,
                json=json,
                headers=headers,
                stream=True,  # every body is read in pieces, against a limit (read_body)
                timeout=(settings.connect_timeout, settings.read_timeout),
                allow_redirects=False,
                proxies=_no_proxy(url) if is_loopback_url(url) else None,
            )
        except requests.RequestException as exc:
            cancellation = active()
            if cancellation is not None and cancellation.is_set():
                raise RequestCancelled("the request was stopped") from None
            raise transport_error(exc, settings) from None

    def _refused_usage(self, response: requests.Response) -> bool:
        text = response.text
        return "stream_options" in text or "include_usage" in text


@contextlib.contextmanager
def _transport_errors(settings: Settings) -> Iterator[None]:
    """Reading a body can fail on the wire too (a read timeout, a broken connection): the same
    one-line errors as a request that got no answer."""
    try:
        yield
    except requests.RequestException as exc:
        cancellation = active()
        if cancellation is not None and cancellation.is_set():
            raise RequestCancelled("the request was stopped") from None
        raise transport_error(exc, settings) from None


def _no_proxy(url: str) -> dict[str, Any]:
    """Proxies for a loopback ``url``: none, whatever ``*_PROXY`` variables say.

    requests fills the dict it is given with the environment's proxies (``setdefault``), so it
    must be new for each request, and must name every key requests looks a proxy up by
    (``http``, ``https``, ``all``, with and without the host): one left out would be filled
    from ``ALL_PROXY`` and send the request, key and all, through the proxy.
    """
    host = urlsplit(url).hostname or ""  # as requests spells it: lower case, no brackets
    schemes = ("http", "https", "all")
    return {name: None for scheme in schemes for name in (scheme, f"{scheme}://{host}")}
