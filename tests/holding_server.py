"""A raw-socket HTTP server on the loopback interface that answers with fixed bytes (or holds
its answer back), then watches for the client to hang up: to see at the server that a
connection was closed, and when."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class HoldingServer:
    """Each connection: read one request, send ``answer`` (nothing at all when it is empty),
    then wait up to ``hold`` seconds for the client to close the connection.

    ``hung_up`` is set, and ``hung_up_at`` noted (``time.monotonic()``), the first time a
    client closes a connection; ``requests`` counts the requests read.
    """

    def __init__(self, answer: bytes = b"", *, hold: float = 30.0) -> None:
        self.answer = answer
        self.hold = hold
        self.requests = 0
        self.hung_up = threading.Event()
        self.hung_up_at: float | None = None
        self.request_arrived = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener was closed
                return
            with self._lock:
                self._sockets.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(self.hold)
        try:
            if not self._read_request(connection):
                self._note_hang_up()
                return
            if self.answer:
                connection.sendall(self.answer)
            while connection.recv(65536):  # a second request: not expected, read and ignored
                pass
            self._note_hang_up()
        except TimeoutError:
            return  # held for `hold` seconds and the client never left
        except OSError:  # reset, broken pipe: the client left
            self._note_hang_up()

    def _read_request(self, connection: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            piece = connection.recv(65536)
            if not piece:
                return False
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            piece = connection.recv(65536)
            if not piece:
                return False
            body += piece
        with self._lock:
            self.requests += 1
        self.request_arrived.set()
        return True

    def _note_hang_up(self) -> None:
        with self._lock:
            if self.hung_up_at is None:
                self.hung_up_at = time.monotonic()
        self.hung_up.set()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
