"""An OpenAI-compatible chat server on the loopback interface, scripted from Python.

Tests of the HTTP client run it over real sockets, so that chunked framing, keep-alive and
broken connections are the real thing; offline demos point a notebook at it. Each request to
``/v1/chat/completions`` takes the next item of a FIFO script (a :class:`Reply`, a
:class:`Status` or a :class:`RawSSE`), or a canned reply when the script is empty.

Run ``python -m nbchat.testing.server --port 8123`` and use ``http://127.0.0.1:8123/v1``.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import itertools
import json
import re
import socket
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeAlias, cast
from urllib.parse import urlsplit

from .script import (
    RawSSE,
    RecordedRequest,
    Reply,
    ScriptItem,
    Status,
    canned_reply,
    completion_body,
    encode_json,
    error_body,
    status_error_body,
    stream_chunks,
)

__all__ = ["DEFAULT_MODELS", "LoopbackServer", "main"]

DEFAULT_MODELS = ("gpt-4o-mini", "deepseek-reasoner")
_STOP_WAIT = 2.0  # upper bound on waiting for handler threads in stop(); they normally take ms
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_MALFORMED_EVENT = b'data: {"choices": [{"delta": {"content": "oops"\n\n'
_MALFORMED_BODY = b'{"id": "chatcmpl-loop", "choices": [{"message": {"content": "oops"'

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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup, which can take seconds on some hosts."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = (
            str(self.server_address[0]),
            int(self.server_address[1]),
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that went away; report real bugs as usual."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each SSE chunk must leave at once, not wait for an ACK

    @property
    def owner(self) -> LoopbackServer:
        return cast(_HTTPServer, self.server).owner

    def version_string(self) -> str:
        return "nbchat-loopback"

    def log_message(self, format: str, *args: Any) -> None:
        """Tests and notebooks do not want a line per request on stderr."""

    def setup(self) -> None:
        super().setup()
        self.owner._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner._untrack(self.connection)

    def handle(self) -> None:
        """Serve requests until the client leaves; a client hanging up mid-reply is normal."""
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # ---- routing -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        received_at = time.monotonic()
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers, body, parsed, received_at)
        self.owner._record(request)

        route = urlsplit(self.path).path
        base = self.owner.base_path
        if self.command == "POST" and route == f"{base}/chat/completions":
            self._chat(parsed)
        elif self.command == "GET" and route == f"{base}/models":
            self._models()
        else:
            self._not_found(route)

    def _read_body(self) -> bytes:
        """The whole request body, so the next request on a kept-alive connection parses."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            pieces = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(pieces)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _not_found(self, route: str) -> None:
        message = f"Invalid URL ({self.command} {route})"
        self._send_body(404, encode_json(error_body(message, "invalid_request_error")))

    def _authorized(self) -> bool:
        """Check the bearer key if one is required; the 401 never repeats any key."""
        key = self.owner.require_key
        if key is None or self.headers.get("Authorization", "").strip() == f"Bearer {key}":
            return True
        message = "Incorrect API key provided."
        body = error_body(message, "invalid_request_error", code="invalid_api_key")
        self._send_body(401, encode_json(body))
        return False

    def _models(self) -> None:
        owner = self.owner
        if not self._authorized():
            return
        if owner.models_status is not None:
            self._send_body(
                owner.models_status, encode_json(status_error_body(owner.models_status))
            )
        elif owner.models is None:
            self._not_found(f"{owner.base_path}/models")
        else:
            data = [
                {"id": model, "object": "model", "created": 0, "owned_by": "nbchat-loopback"}
                for model in owner.models
            ]
            self._send_body(200, encode_json({"object": "list", "data": data}))

    def _chat(self, request: Any) -> None:
        """Refuse what the configured checks refuse (without using up a script item), then
        play the next item of the script."""
        owner = self.owner
        if not self._authorized():
            return
        if not isinstance(request, dict):
            message = "We could not parse the JSON body of your request."
            self._send_body(400, encode_json(error_body(message, "invalid_request_error")))
            return
        rejected = [name for name in request if name in owner.reject_fields]
        if rejected:
            message = f"Unrecognized request argument supplied: {rejected[0]}"
            body = error_body(message, "invalid_request_error", param=rejected[0])
            self._send_body(400, encode_json(body))
            return
        model = request.get("model")
        known = owner.known_models
        if known is not None and not (isinstance(model, str) and model in known):
            message = f"The model `{model}` does not exist or you do not have access to it."
            body = error_body(message, "invalid_request_error", code="model_not_found")
            self._send_body(404, encode_json(body))
            return

        item = owner._next_item(request)
        if isinstance(item, Status):
            self._play_status(item)
        elif isinstance(item, RawSSE):
            self._play_raw(item)
        elif request.get("stream") is True:
            self._stream_reply(item, request)
        else:
            self._whole_reply(item, request)

    # ---- script items --------------------------------------------------------------------

    def _play_status(self, item: Status) -> None:
        if self._pause(item.delay):
            self._abort()
            return
        if item.body is None:
            body, content_type = encode_json(status_error_body(item.status)), "application/json"
        elif isinstance(item.body, bytes):
            body, content_type = item.body, "application/octet-stream"
        elif isinstance(item.body, str):
            body, content_type = item.body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            body, content_type = encode_json(item.body), "application/json"
        self._send_body(item.status, body, content_type, item.headers)

    def _play_raw(self, item: RawSSE) -> None:
        if item.piece_size is None:
            cuts = [0, *(match.end() for match in _EVENT_END.finditer(item.data))]
        else:
            cuts = list(range(0, len(item.data), item.piece_size))
        # An empty piece would read as the terminating chunk, so none is sent.
        ends = itertools.pairwise([*cuts, len(item.data)])
        pieces = [item.data[a:b] for a, b in ends if a < b]
        self._start_stream(item.content_type)
        for piece in pieces:
            if self._pause(item.delay):
                self._abort()
                return
            self._send_chunk(piece)
        self._end_stream()

    def _stream_reply(self, reply: Reply, request: dict[str, Any]) -> None:
        """Send the reply as SSE, one event per HTTP chunk, breaking it as the fault says."""
        completion_id, created = self.owner._new_completion_id(), int(time.time())
        events = [
            encode_json(chunk) for chunk in stream_chunks(reply, request, completion_id, created)
        ]
        fault = reply.fault
        fault_at = min(fault[1], len(events)) if fault else len(events)
        self._start_stream("text/event-stream")
        for payload in events[:fault_at]:
            if self._pause(reply.delay):
                self._abort()
                return
            self._send_chunk(b"data: " + payload + b"\n\n")

        kind = fault[0] if fault else None
        if self._cut_connection(reply, kind):
            return
        if kind == "malformed_after":
            self._send_chunk(_MALFORMED_EVENT)
        elif kind == "error_after":
            error = error_body(reply.error_message, "server_error")
            self._send_chunk(b"data: " + encode_json(error) + b"\n\n")
        if not reply.no_done:
            if self._pause(reply.delay):
                self._abort()
                return
            self._send_chunk(b"data: [DONE]\n\n")
        self._end_stream()

    def _cut_connection(self, reply: Reply, kind: str | None) -> bool:
        """Play a drop or a stall (silence, then the cut); True when the connection is gone."""
        if kind == "stall_after":
            self.owner._stopping.wait(reply.stall_seconds)
        if kind in ("drop_after", "stall_after"):
            self._abort()
            return True
        return False

    def _whole_reply(self, reply: Reply, request: dict[str, Any]) -> None:
        """Send the reply as one chat.completion; faults become their non-streaming kin."""
        if self._pause(reply.delay):
            self._abort()
            return
        kind = reply.fault[0] if reply.fault else None
        if self._cut_connection(reply, kind):
            return
        if kind == "malformed_after":
            self._send_body(200, _MALFORMED_BODY)
        elif kind == "error_after":
            self._send_body(500, encode_json(error_body(reply.error_message, "server_error")))
        else:
            completion_id = self.owner._new_completion_id()
            body = completion_body(reply, request, completion_id, int(time.time()))
            self._send_body(200, encode_json(body))

    # ---- wire ----------------------------------------------------------------------------

    def _send_body(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        extra = dict(headers or {})
        override = [name for name in extra if name.lower() == "content-type"]
        if override:
            content_type = extra.pop(override[0])
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; True when the server began stopping meanwhile."""
        return seconds > 0 and self.owner._stopping.wait(seconds)

    def _abort(self) -> None:
        """Cut the connection where it stands: the client sees it end mid-response."""
        self.close_connection = True
        _shut(self.connection)


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
        """When set, chat requests for any other model get a 404 model_not_found."""
        self.default_reply: DefaultReply = default_reply
        """Answer when the script is empty: an item, or a function of the request JSON."""

        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._script: deque[ScriptItem] = deque()
        self._requests: list[RecordedRequest] = []
        self._connections: set[socket.socket] = set()
        self._completion_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> LoopbackServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the loopback server is already running")
        self._stopping = threading.Event()
        self._httpd = _HTTPServer(self, (self.host, self._wanted_port))
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
                _shut(connection)
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

    def _next_item(self, request: Any) -> ScriptItem:
        with self._lock:
            if self._script:
                return self._script.popleft()
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
                _shut(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._drained.notify_all()


def _shut(connection: socket.socket) -> None:
    """Shut a socket down so that a thread blocked reading or writing it wakes up."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve canned replies until Ctrl-C, for trying a notebook without any real server."""
    parser = argparse.ArgumentParser(
        prog="python -m nbchat.testing.server",
        description="An offline OpenAI-compatible chat server that gives canned replies.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8123, help="port to listen on (0: any free)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between streamed pieces")
    args = parser.parse_args(argv)
    try:
        server = LoopbackServer(args.host, args.port)
    except ValueError as error:
        parser.error(str(error))
    delay = args.delay
    server.default_reply = lambda request: canned_reply(request, delay=delay)
    with server:
        print(
            f"nbchat loopback server on {server.base_url} (canned replies, no key needed)",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
