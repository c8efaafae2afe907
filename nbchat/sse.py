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
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    """The data lines joined by ``\\n``."""
    event: str = "message"
    """The event type; ``message`` when the server named none."""
    id: str = ""
    """The last event id seen so far in the stream (it persists across events)."""


class SSEDecoder:
    """Turns the raw bytes of an event stream into :class:`ServerSentEvent` objects.

    Feed it network reads of any size with :meth:`feed`; call :meth:`close` once at the end.
    """

    __slots__ = (
        "_bom_checked",
        "_data",
        "_event_type",
        "_last_event_id",
        "_partial_line",
        "_skip_leading_lf",
        "_utf8",
        "comment_count",
        "foreign_fields",
        "retry",
    )

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial_line = ""
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
        return self._take_lines(text)

    def close(self) -> ServerSentEvent | None:
        """End the stream; return the event that was still open, if any, without dispatching it.

        A strict reader drops that event. It is returned so a caller can accept a final
        ``data: [DONE]`` that lacked its blank line.
        """
        text = self._utf8.decode(b"", True)
        if text:
            self._take_lines(text)
        if self._partial_line:
            line, self._partial_line = self._partial_line, ""
            self._take_line(line)
        if not self._data:
            return None
        tail = ServerSentEvent(
            "\n".join(self._data), self._event_type or "message", self._last_event_id
        )
        self._data = []
        self._event_type = ""
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
        if self._partial_line:
            lines[0] = self._partial_line + lines[0]
        self._partial_line = lines.pop()
        events: list[ServerSentEvent] = []
        take_line = self._take_line
        for line in lines:
            event = take_line(line)
            if event is not None:
                events.append(event)
        return events

    def _take_line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
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
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        else:
            self.foreign_fields.append((name, value))
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event_type = ""
            return None
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = ServerSentEvent(data, self._event_type or "message", self._last_event_id)
        self._data = []
        self._event_type = ""
        return event
