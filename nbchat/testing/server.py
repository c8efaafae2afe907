"""An OpenAI-compatible chat server on the loopback interface, scripted from Python.

Tests of the HTTP client run it over real sockets, so that chunked framing, keep-alive and
broken connections are the real thing; offline demos point a notebook at it. Each request to
``/v1/chat/completions`` takes the next item of a FIFO script (a :class:`Reply`, a
:class:`Status` or a :class:`RawSSE`), played exactly as scripted. When the script is empty the
server acts as a small real one: it refuses a model that ``GET /v1/models`` does not list (404
``model_not_found``) and an ``n`` out of range, and gives a canned reply, one per choice.

This module holds the script, the record and the settings, and the command; how a request is
answered on the wire is :mod:`nbchat.testing.handler`.

Run ``python -m nbchat.testing.server --port 8123`` and use ``http://127.0.0.1:8123/v1``
(``--long`` makes every canned reply the long Markdown one).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from .canned import LONG_KEYWORD, canned_reply
from .handler import LoopbackHTTPServer, shut
from .script import RawSSE, RecordedRequest, Reply, ScriptItem, Status

__all__ = ["DEFAULT_MODELS", "LoopbackServer", "main"]

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "deepseek-reasoner")
_STOP_WAIT = 2.0  # upper bound on waiting for handler threads in stop(); they normally take ms

DefaultReply: TypeAlias = ScriptItem | Callable[[Any], ScriptItem]


def loopback_host(host: str) -> str:
    """``host`` if it is a loopback address ("localhost" becoming 127.0.0.1), else ValueError.

    The server answers anyone without a key, so it must never listen beyond this machine.
    """
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError(
            f"refusing to listen on {host!r}: the loopback server only binds loopback "
            "addresses (127.x.x.x, localhost, ::1)"
        )
    return str(address)


class LoopbackServer:
    """A scripted OpenAI-compatible chat server on 127.0.0.1, serving from a background thread.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`). The attributes that
    shape its answers can be changed at any time, also while it runs.
    """

    base_path = "/v1"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: Sequence[str] | None = DEFAULT_MODELS,
        models_status: int | None = None,
        reject_fields: Iterable[str] = (),
        require_key: str | None = None,
        known_models: Iterable[str] | None = None,
        check_canned: bool = True,
        default_reply: DefaultReply = canned_reply,
    ) -> None:
        self.host = loopback_host(host)
        self._wanted_port = port
        self.models: list[str] | None = None if models is None else list(models)
        """What GET /models lists; None makes /models answer 404."""
        self.models_status: int | None = models_status
        """When set, GET /models answers this status with a JSON error."""
        self.reject_fields: set[str] = set(reject_fields)
        """Top-level request fields that get a 400 "Unrecognized request argument"."""
        self.require_key: str | None = require_key
        """When set, requests need ``Authorization: Bearer <key>`` or get a 401."""
        self.known_models: set[str] | None = None if known_models is None else set(known_models)
        """When set, chat requests for any other model get a 404 model_not_found, scripted or
        not."""
        self.check_canned: bool = check_canned
        """Whether a request left to the default reply is checked as a real server checks it:
        a model that ``models`` does not list gets a 404 (no check while ``models`` is None),
        an ``n`` out of range a 400. Scripted items are never checked this way."""
        self.default_reply: DefaultReply = default_reply
        """Answer when the script is empty: an item, or a function of the request JSON."""

        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._script: deque[ScriptItem] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._completion_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the loopback server is already running")
        self._stopping = threading.Event()
        self._httpd = LoopbackHTTPServer(self, (self.host, self._wanted_port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"nbchat-loopback-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection, also ones stalled or sleeping mid-reply.

        Returns within milliseconds; calling it again, or before start, does nothing.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            for connection in self._connections:
                shut(connection)
            self._drained.wait_for(lambda: not self._connections, timeout=_STOP_WAIT)
        thread.join(timeout=_STOP_WAIT)
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port actually bound (an ephemeral one unless a port was asked for)."""
        if self._httpd is None:
            raise RuntimeError("the loopback server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """What a client uses as its base URL, e.g. ``http://127.0.0.1:50123/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"

    # ---- script and record ---------------------------------------------------------------

    def enqueue(self, *items: ScriptItem) -> None:
        """Append answers to the script; each chat request takes the oldest one left."""
        for item in items:
            if not isinstance(item, (Reply, Status, RawSSE)):
                raise TypeError(f"expected Reply, Status or RawSSE, got {type(item).__name__}")
        with self._lock:
            self._script.extend(items)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first, on every path."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the POSTs to chat/completions."""
        path = f"{self.base_path}/chat/completions"
        return [r for r in self.requests if r.method == "POST" and urlsplit(r.path).path == path]

    @property
    def last_request(self) -> RecordedRequest:
        """The most recent request; LookupError if none came yet."""
        with self._lock:
            if not self._requests:
                raise LookupError("the loopback server has received no request yet")
            return self._requests[-1]

    # ---- used by the handler threads -----------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take_scripted(self) -> ScriptItem | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def _default_item(self, request: Any) -> ScriptItem:
        default = self.default_reply
        if isinstance(default, (Reply, Status, RawSSE)):
            return default
        return default(request)

    def _new_completion_id(self) -> str:
        with self._lock:
            return f"chatcmpl-loop-{next(self._completion_ids)}"

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)
            if self._stopping.is_set():
                shut(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._drained.notify_all()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve canned replies until Ctrl-C, for trying a notebook without any real server."""
    parser = argparse.ArgumentParser(
        prog="python -m nbchat.testing.server",
        description="An offline OpenAI-compatible chat server that gives canned replies.",
    )
    listed = ", ".join(DEFAULT_MODELS)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8123, help="port to listen on (0: any free)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between streamed pieces")
    parser.add_argument(
        "--long",
        action="store_true",
        help=f"make every reply the long Markdown one (without it, a message containing "
        f"{LONG_KEYWORD} gets it)",
    )
    parser.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="NAME",
        help=f"a model to list and accept; repeat for more (default: {listed})",
    )
    args = parser.parse_args(argv)
    try:
        server = LoopbackServer(args.host, args.port, models=args.models or DEFAULT_MODELS)
    except ValueError as error:
        parser.error(str(error))
    delay, long = args.delay, args.long
    server.default_reply = lambda request: canned_reply(request, delay=delay, long=long)
    with server:
        print(
            f"nbchat loopback server on {server.base_url} (canned replies, no key needed)",
            flush=True,
        )
        kind = "long replies" if long else f"put {LONG_KEYWORD} in a message for a long reply"
        print(f"models: {', '.join(server.models or ())}; {kind}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
