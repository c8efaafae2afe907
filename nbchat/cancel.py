"""Stopping a request from another thread, also before the server's first byte.

Once a reply streams, :meth:`~nbchat.stream.ChatStream.cancel` shuts its socket. Before that,
the request sits inside urllib3: waiting for the response headers (a model still queued), or
sleeping out a ``Retry-After`` between two attempts. A :class:`Cancellation` reaches both: the
connections the request uses are attached to it while it waits for headers, and
:meth:`Cancellation.set` shuts them, so the wait ends at once; a retry sleeps on it rather than
with ``time.sleep``, so the pause ends at once too. Either way the request then ends with
:class:`RequestCancelled`.

requests offers no way to hand a per-request object down to urllib3's connections and retries,
so the client names the cancellation of the request being sent in a thread-local
(:func:`watching`), which runs on the same thread all the way down; :func:`active` reads it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["Cancellation", "RequestCancelled", "active", "watching"]


class RequestCancelled(Exception):
    """A request was stopped before its answer began; nothing arrived to keep.

    Not an :class:`~nbchat.errors.NbChatError`: it is what the user asked for, not a failure,
    and the session turns it into an interrupted reply rather than an error line.
    """


class Cancellation(threading.Event):
    """An event that, once set, also shuts every connection attached to it.

    A session keeps one and clears it for each reply; setting it from any thread stops the
    request at whatever stage it is in.
    """

    def __init__(self) -> None:
        super().__init__()
        self._attached: set[Any] = set()
        self._attached_lock = threading.Lock()

    def set(self) -> None:
        super().set()
        with self._attached_lock:
            connections = list(self._attached)
        for connection in connections:
            _shut(connection)

    def clear(self) -> None:
        super().clear()
        self.release()

    def attach(self, connection: Any) -> None:
        """Follow ``connection`` (an ``http.client`` connection, whose ``sock`` may change):
        shut it when this is set, at once if it is set already."""
        with self._attached_lock:
            self._attached.add(connection)
        if self.is_set():
            _shut(connection)

    def release(self) -> None:
        """Forget the attached connections: the answer began, the stream owns its socket."""
        with self._attached_lock:
            self._attached.clear()

    def check(self) -> None:
        """Raise :class:`RequestCancelled` when this is set."""
        if self.is_set():
            raise RequestCancelled("the request was stopped")

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` unless set first; raise :class:`RequestCancelled` when set."""
        if seconds > 0:
            self.wait(seconds)
        self.check()


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


@contextlib.contextmanager
def watching(cancellation: Cancellation | None) -> Iterator[None]:
    """Name ``cancellation`` as the one of the request this thread sends inside the block;
    the connections attached meanwhile are released when it ends."""
    previous = getattr(_current, "cancellation", None)
    _current.cancellation = cancellation
    try:
        yield
    finally:
        _current.cancellation = previous
        if cancellation is not None:
            cancellation.release()


def active() -> Cancellation | None:
    """The cancellation of the request this thread is sending, if any."""
    found = getattr(_current, "cancellation", None)
    return found if isinstance(found, Cancellation) else None
