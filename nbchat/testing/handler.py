"""The HTTP side of the loopback server: one request read, checked and answered on the wire.

:class:`ScriptHandler` routes each request, refuses what the server's settings refuse, and
plays the next script item with real HTTP framing (chunked SSE, kept-alive connections, cuts
mid-reply); :class:`LoopbackHTTPServer` runs it on a thread per connection. The script, the
record of requests and the settings live on :class:`~nbchat.testing.server.LoopbackServer`,
which each handler reaches as its ``owner``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from .checks import Refusal, body_refusal, canned_refusal, key_refusal, model_refusal
from .script import (
    RawSSE,
    RecordedRequest,
    Reply,
    Status,
    completion_body,
    encode_json,
    error_body,
    status_error_body,
    stream_chunks,
)

if TYPE_CHECKING:
    from .server import LoopbackServer

__all__ = ["LoopbackHTTPServer", "ScriptHandler", "shut"]

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_MALFORMED_EVENT = b'data: {"choices": [{"delta": {"content": "oops"\n\n'
_MALFORMED_BODY = b'{"id": "chatcmpl-loop", "choices": [{"message": {"content": "oops"'


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A thread per connection, so that a stalled reply never holds up the next request."""

    daemon_threads = True

    def __init__(self, owner: LoopbackServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, ScriptHandler)

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


class ScriptHandler(BaseHTTPRequestHandler):
    """One connection's requests, answered from the owner's script and settings."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each SSE chunk must leave at once, not wait for an ACK

    @property
    def owner(self) -> LoopbackServer:
        return cast(LoopbackHTTPServer, self.server).owner

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
        authorization = self.headers.get("Authorization", "")
        return self._refuse(key_refusal(self.owner.require_key, authorization))

    def _refuse(self, refusal: Refusal | None) -> bool:
        """Send ``refusal`` if there is one; True when there was none (the request goes on)."""
        if refusal is not None:
            self._send_body(refusal.status, encode_json(refusal.body))
        return refusal is None

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
        play the next item of the script; with none left, check the request as a real server
        would and give the default (canned) reply."""
        owner = self.owner
        if not self._authorized() or not self._refuse(body_refusal(request, owner.reject_fields)):
            return
        if not self._refuse(model_refusal(request, owner.known_models)):
            return
        item = owner._take_scripted()
        if item is None:
            if owner.check_canned and not self._refuse(canned_refusal(request, owner.models)):
                return
            item = owner._default_item(request)
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
        shut(self.connection)


def shut(connection: socket.socket) -> None:
    """Shut a socket down so that a thread blocked reading or writing it wakes up."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
