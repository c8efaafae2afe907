"""An incremental Server-Sent Events decoder: bytes in, events out, no I/O.

It follows the WHATWG "event stream interpretation" rules, because real providers use all of
them: LF, CR and CRLF line ends (and a CRLF split across two reads), ``data:`` with or without
the space, several ``data`` lines joined by ``\\n``, comment lines such as ``: keep-alive``, the
``event``/``id``/``retry`` fields, and a leading byte-order mark.

Bytes are always decoded as UTF-8, whatever charset the ``Content-Type`` claims: ``requests``
assumes ISO-8859-1 for ``text/event-stream`` without a charset, which garbles every non-ASCII
reply. An incremental decoder keeps a multi-byte character that is split across two network
reads whole. Lines are split only on CR and LF: ``str.splitlines`` would also split on U+2028
and U+0085, which occur inside JSON strings.

At the end of the stream the standard discards an event that no blank line closed. Some servers
end with ``data: [DONE]`` and no newline at all, so :meth:`SSEDecoder.close` hands that
unfinished event back instead, and the caller decides what it is worth.

Reading costs time linear in the bytes, however the network cuts them: an unfinished line is
kept as its pieces and joined once, when its line end arrives (re-joining it on every read
made a long line in small reads quadratic: 8 MB in 1 KiB reads took seconds).

A stream that never ends an event (data lines and no blank line, a line that never ends) would
hold memory without bound, so one event may be at most :data:`MAX_EVENT_SIZE` characters
(16 MiB, its field names and line ends included; ``max_event_size`` changes it for a decoder):
past that :meth:`SSEDecoder.feed` raises :class:`EventTooLargeError`. Any other bytes are
decoded without raising.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["MAX_EVENT_SIZE", "EventTooLargeError", "SSEDecoder", "ServerSentEvent"]

MAX_EVENT_SIZE = 16 * 1024 * 1024
"""Most characters one event may hold: far above any chat chunk, short of exhausting memory."""

_MAX_RETRY_DIGITS = 18
"""A longer ``retry`` value is no real time (10**18 ms is 30 million years), and Python refuses
to convert one of more than 4,300 digits; it is ignored like any other bad value."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    """The data lines joined by ``\\n``."""
    event: str = "message"
    """The event type; ``message`` when the server named none."""
    id: str = ""
    """The last event id seen so far in the stream (it persists across events)."""


class EventTooLargeError(ValueError):
    """An event grew past the decoder's ``max_event_size``: the stream is not one to read on."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"an event grew past {limit:,} characters")


class SSEDecoder:
    """Turns the raw bytes of an event stream into :class:`ServerSentEvent` objects.

    Feed it network reads of any size with :meth:`feed`; call :meth:`close` once at the end.
    After an :class:`EventTooLargeError` the decoder is spent: start a new one.
    """

    __slots__ = (
        "_bom_checked",
        "_data",
        "_event_size",
        "_event_type",
        "_last_event_id",
        "_line_parts",
        "_line_size",
        "_skip_leading_lf",
        "_utf8",
        "comment_count",
        "foreign_fields",
        "max_event_size",
        "retry",
    )

    def __init__(self, *, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line_parts: list[str] = []  # the unfinished line, as the reads delivered it
        self._line_size = 0
        self._event_size = 0  # characters of the lines of the event being read
        self.max_event_size = max_event_size
        """Most characters an event may hold (its lines, line ends included)."""
        self._skip_leading_lf = False
        self._bom_checked = False
        self._data: list[str] = []
        self._event_type = ""
        self._last_event_id = ""
        self.retry: int | None = None
        """The reconnection time in milliseconds the server last asked for, if any."""
        self.comment_count = 0
        """How many comment lines (keep-alives) were seen."""
        self.foreign_fields: list[tuple[str, str]] = []
        """Lines with a field name the standard does not know, e.g. the ``error:`` line that
        older llama.cpp servers send instead of a data event. A reader ignores them; a caller
        may not want to."""

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one network read and return the events it completed (often none or one)."""
        text = self._utf8.decode(chunk)
        if not text:
            return []
        if "\n" in text or "\r" in text or not self._bom_checked or self._skip_leading_lf:
            return self._take_lines(text)
        # The middle of a long line: kept as it came, joined once its line end arrives.
        self._line_parts.append(text)
        self._line_size += len(text)
        if self._event_size + self._line_size > self.max_event_size:
            raise EventTooLargeError(self.max_event_size)
        return []

    def close(self) -> ServerSentEvent | None:
        """End the stream; return the event that was still open, if any, without dispatching it.

        A strict reader drops that event. It is returned so a caller can accept a final
        ``data: [DONE]`` that lacked its blank line.
        """
        text = self._utf8.decode(b"", True)
        if text:
            self._take_lines(text)
        if self._line_parts:
            line = "".join(self._line_parts)
            self._line_parts, self._line_size = [], 0
            self._take_line(line)
        if not self._data:
            return None
        tail = ServerSentEvent(
            "\n".join(self._data), self._event_type or "message", self._last_event_id
        )
        self._data = []
        self._event_type = ""
        self._event_size = 0
        return tail

    def _take_lines(self, text: str) -> list[ServerSentEvent]:
        if not self._bom_checked:
            self._bom_checked = True
            if text[0] == "\ufeff":
                text = text[1:]
                if not text:
                    return []
        if self._skip_leading_lf:
            self._skip_leading_lf = False
            if text[0] == "\n":
                text = text[1:]
        if "\r" in text:
            # A CR at the very end may be the first half of a CRLF whose LF is in the next read.
            self._skip_leading_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        tail = lines.pop()
        if lines and self._line_parts:
            self._line_parts.append(lines[0])
            lines[0] = "".join(self._line_parts)
            self._line_parts, self._line_size = [], 0
        if tail:
            self._line_parts.append(tail)
            self._line_size += len(tail)
        events: list[ServerSentEvent] = []
        take_line = self._take_line
        for line in lines:
            event = take_line(line)
            if event is not None:
                events.append(event)
        if self._event_size + self._line_size > self.max_event_size:
            raise EventTooLargeError(self.max_event_size)
        return events

    def _take_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        self._event_size += len(line) + 1
        if self._event_size > self.max_event_size:
            raise EventTooLargeError(self.max_event_size)
        if line.startswith("data:"):
            value = line[5:]
            self._data.append(value[1:] if value.startswith(" ") else value)
            return None
        if line[0] == ":":
            self.comment_count += 1
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":  # a bare "data" line with no colon: an empty data line
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit() and len(value) <= _MAX_RETRY_DIGITS:
                self.retry = int(value)
        else:
            self.foreign_fields.append((name, value))
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self._event_size = 0
        if not self._data:
            self._event_type = ""
            return None
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = ServerSentEvent(data, self._event_type or "message", self._last_event_id)
        self._data = []
        self._event_type = ""
        return event
