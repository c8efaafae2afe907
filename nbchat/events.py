"""The session's named events, and the one mechanism observers use to follow them.

=======================  ==================  ==============================================
event                    callback gets       when
=======================  ==================  ==============================================
``reply_started``        the reply           a question was asked; nothing has arrived yet
``reply_updated``        the reply           a stream chunk arrived
``reply_ended``          the reply           done, interrupted or failed (``reply.status``)
``turn_committed``       the turn, reply     a turn was kept in the conversation (before
                                             ``reply_ended`` of the reply it came from)
``conversation_changed`` nothing             a new conversation, system prompt or settings
=======================  ==================  ==============================================

Callbacks run on the thread that caused the event (a panel's worker, the kernel's main thread)
and should be quick; one that raises is logged and the others still run, because a broken
view must never break the reply it shows. ``on`` returns the function that stops following.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from .history import Turn
    from .reply import Reply

__all__ = ["EVENTS", "Events", "ReplyObserver"]

log = logging.getLogger("nbchat")

ReplyEvent = Literal["reply_started", "reply_updated", "reply_ended"]
EVENTS = (
    "reply_started",
    "reply_updated",
    "reply_ended",
    "turn_committed",
    "conversation_changed",
)
ReplyObserver = Callable[["Reply"], None]
"""Follows one reply through all its events (a cell's display passes one to ``ask``)."""


class Events:
    """Callbacks by event name. Emitting reads a tuple that is replaced, never changed, so the
    per-chunk path takes no lock."""

    def __init__(self) -> None:
        self._callbacks: dict[str, tuple[Callable[..., None], ...]] = dict.fromkeys(EVENTS, ())
        self._lock = threading.Lock()

    @overload
    def on(self, event: ReplyEvent, callback: Callable[[Reply], None]) -> Callable[[], None]: ...
    @overload
    def on(
        self, event: Literal["turn_committed"], callback: Callable[[Turn, Reply | None], None]
    ) -> Callable[[], None]: ...
    @overload
    def on(
        self, event: Literal["conversation_changed"], callback: Callable[[], None]
    ) -> Callable[[], None]: ...
    def on(self, event: str, callback: Callable[..., None]) -> Callable[[], None]:
        """Call ``callback`` on every ``event``; returns the function that stops it."""
        if event not in self._callbacks:
            raise ValueError(f"no event {event!r}; events are {', '.join(EVENTS)}")
        with self._lock:
            self._callbacks[event] = (*self._callbacks[event], callback)

        def off() -> None:
            with self._lock:
                self._callbacks[event] = tuple(
                    c for c in self._callbacks[event] if c is not callback
                )

        return off

    def count(self, event: str) -> int:
        """How many callbacks follow ``event`` (panels that closed no longer do)."""
        return len(self._callbacks[event])

    def emit(self, event: str, *args: Any, also: Callable[..., None] | None = None) -> None:
        """Call every callback of ``event`` with ``args``, then ``also`` if given."""
        callbacks = self._callbacks[event]
        if also is not None:
            callbacks = (*callbacks, also)
        for callback in callbacks:
            try:
                callback(*args)
            except Exception:
                log.exception("nbchat: an observer of %s failed", event)
