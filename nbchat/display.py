"""A reply's life in a notebook cell: placeholder, live updates, one final output.

While a reply streams, the cell shows a growing list of outputs. Each top-level Markdown block
is sent in its final form once: when blocks finish, the output that held the open tail is
rewritten to hold exactly those blocks and a fresh output below takes over the tail. Only the
small open tail is re-sent on each update, so the bytes sent stay a small multiple of the reply
instead of growing with its square. Updates come at most ``max_rate`` times a second and slow
down when rendering gets expensive.

When the reply ends, the outputs are replaced by one bundle: ``text/html`` (rendered, with a
footer and any reasoning folded away), ``text/markdown`` and ``text/plain`` holding the reply's
Markdown source exactly, and metadata naming the model and usage. That is what is saved in the
notebook, exported, and read back by tools.

What each piece looks like is :mod:`nbchat.views`'s; this module decides only when it is drawn
and where it goes (an :class:`OutputSink`). Terminal IPython uses :mod:`nbchat.terminal`.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from . import views
from .incremental import IncrementalRenderer
from .render import render_markdown
from .reply import Reply

__all__ = [
    "CellDisplay",
    "IPythonSink",
    "OutputSink",
    "UpdatePolicy",
    "final_bundle",
]


class OutputSink(Protocol):
    """Where a cell's outputs go: the kernel's display publisher, or a recorder in benchmarks."""

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        """Add an output to the cell under ``display_id``."""

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        """Replace the data of the output shown under ``display_id``."""

    def clear(self, *, wait: bool) -> None:
        """Remove the cell's outputs: now, or once the next one arrives (``wait``, no flicker)."""


class IPythonSink:
    """Publishes through an IPython shell's display publisher (a kernel sends it to the page)."""

    def __init__(self, shell: Any) -> None:
        self._publisher = shell.display_pub

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._publisher.publish(data=data, metadata=metadata, transient={"display_id": display_id})

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._publisher.publish(
            data=data, metadata=metadata, transient={"display_id": display_id}, update=True
        )

    def clear(self, *, wait: bool) -> None:
        self._publisher.clear_output(wait=wait)


class UpdatePolicy:
    """When to redraw a streaming reply.

    At most ``max_rate`` redraws a second, and never more often than ``render_share`` of the
    time goes to rendering: a redraw that took 20 ms pushes the next one 200 ms away at the
    default share of 10 %. The bytes spent resending the open tail are also held to
    ``tail_share`` of the finished HTML (plus ``tail_allowance``, so short replies update
    freely): a long open block then updates less often instead of flooding the connection.
    """

    def __init__(
        self,
        *,
        max_rate: float = 15.0,
        render_share: float = 0.1,
        tail_share: float = 0.75,
        tail_allowance: int = 16_384,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = 1.0 / max_rate
        self.render_share = render_share
        self.tail_share = tail_share
        self.tail_allowance = tail_allowance
        self.clock = clock
        self._next = clock()
        self.tail_bytes = 0
        self.finished_bytes = 0

    def due(self) -> bool:
        return self.clock() >= self._next

    def wait(self) -> float:
        """Seconds until the next redraw may come (0 when it may come now)."""
        return max(0.0, self._next - self.clock())

    def record(self, *, render_seconds: float, finished_bytes: int, tail_bytes: int) -> None:
        """Note a redraw: its render time and what it sent set when the next one may come."""
        self.finished_bytes += finished_bytes
        self.tail_bytes += tail_bytes
        interval = max(self.min_interval, render_seconds / self.render_share)
        over = self.tail_bytes - (self.tail_share * self.finished_bytes + self.tail_allowance)
        if over > 0:
            # Sending the tail costs more than the reply it shows: wait, in proportion.
            interval = max(interval, min(1.0, self.min_interval * (1 + over / max(tail_bytes, 1))))
        self._next = self.clock() + interval


def final_bundle(
    reply: Reply, renderers: dict[int, IncrementalRenderer] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one output a finished reply leaves in its cell: data and metadata."""
    renderers = renderers or {}
    result = reply.result
    texts = reply.texts()
    bodies = []
    for index, text in enumerate(texts):
        parts = (renderers.get(index) or IncrementalRenderer()).update(text)
        bodies.append("".join(parts.finished) + parts.tail)
    html_text = views.reply_html(bodies, views.Footing.of_reply(reply), reply.reasonings())
    if len(texts) > 1:
        markdown = "\n\n".join(
            f"{views.choice_heading(i + 1, markdown=True)}\n\n{text}"
            for i, text in enumerate(texts)
        )
    else:
        markdown = texts[0]
    usage = result.usage
    metadata = {
        "nbchat": {
            "model": reply.answered_model,
            "status": reply.status,
            "finish_reason": result.finish_reason,
            "usage": dict(usage.raw) if usage is not None else None,
            "seconds": round(reply.elapsed, 3),
        }
    }
    data = {"text/html": html_text, "text/markdown": markdown, "text/plain": markdown}
    return data, metadata


class CellDisplay:
    """Shows one reply in the cell that asked for it; pass it to ``ChatSession.ask``."""

    def __init__(
        self,
        sink: OutputSink,
        *,
        policy: UpdatePolicy | None = None,
        flush_when_quiet: bool = True,
    ) -> None:
        self.sink = sink
        self.policy = policy or UpdatePolicy()
        self.renderer = IncrementalRenderer()
        self.updates = 0
        """Outputs shown or replaced so far (the final bundle included)."""
        self.flush_when_quiet = flush_when_quiet
        """Redraw from a timer when the stream pauses, so the page never lags behind a
        reply that went quiet (a model thinking, a slow network) by more than one interval."""
        self._display_id = ""
        self._sent_blocks = 0
        self._tail_shown = ""
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __call__(self, reply: Reply) -> None:
        with self._lock:
            if reply.status == "pending":
                self._open(views.placeholder_html(reply.model))
            elif reply.status == "streaming":
                if self.policy.due():
                    self._cancel_timer()
                    self._redraw(reply)
                elif self.flush_when_quiet and self._timer is None:
                    self._flush_later(reply)
            else:
                self._cancel_timer()
                self._finish(reply)

    def _flush_later(self, reply: Reply) -> None:
        # The timer runs in the cell's context, so that its output goes to this cell.
        context = contextvars.copy_context()
        timer = threading.Timer(self.policy.wait(), context.run, (self._flush, reply))
        timer.daemon = True
        self._timer = timer
        timer.start()

    def _flush(self, reply: Reply) -> None:
        with self._lock:
            if self._timer is not threading.current_thread():
                return  # cancelled or superseded while it waited for the lock
            self._timer = None
            if reply.status == "streaming":
                self._redraw(reply)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _open(self, body: str) -> None:
        self._display_id = uuid.uuid4().hex
        self._tail_shown = body
        self.sink.show({"text/html": body}, {}, self._display_id)
        self.updates += 1

    def _redraw(self, reply: Reply) -> None:
        texts = reply.texts()
        before = self.renderer.render_seconds
        if len(texts) > 1:
            self._redraw_all(reply, texts)
            return
        text = texts[0]
        if not text:
            reasoning = reply.reasonings()[0]
            tail = views.thinking_html(reasoning) if reasoning else ""
            finished_html = ""
        else:
            parts = self.renderer.update(text, highlight_tail=False)
            new_blocks = parts.finished[self._sent_blocks :]
            finished_html = "".join(new_blocks)
            if new_blocks:
                # The output holding the tail takes the finished blocks for good...
                self._send(finished_html, replace=True)
                self._sent_blocks = len(parts.finished)
                # ...and a new output below holds what is still open.
                self._display_id = uuid.uuid4().hex
                self._tail_shown = ""
            tail = parts.tail
        tail_html = tail
        if tail_html and tail_html != self._tail_shown:
            self._send(tail_html, replace=bool(self._tail_shown))
            self._tail_shown = tail_html
        self.policy.record(
            render_seconds=self.renderer.render_seconds - before,
            finished_bytes=len(finished_html),
            tail_bytes=len(tail_html),
        )

    def _redraw_all(self, reply: Reply, texts: list[str]) -> None:
        """Several choices grow side by side: redraw them all in one output (rare and short)."""
        started = time.perf_counter()
        body = "".join(
            views.choice_heading(i + 1) + render_markdown(text) for i, text in enumerate(texts)
        )
        body += views.streaming_marker_html(reply.model)
        self._send(body, replace=True)
        self._tail_shown = body
        self.policy.record(
            render_seconds=time.perf_counter() - started, finished_bytes=0, tail_bytes=len(body)
        )

    def _send(self, body: str, *, replace: bool) -> None:
        data = {"text/html": body}
        if replace:
            self.sink.replace(data, {}, self._display_id)
        else:
            self.sink.show(data, {}, self._display_id)
        self.updates += 1

    def _finish(self, reply: Reply) -> None:
        if reply.status == "failed" and not any(reply.texts()):
            self.sink.clear(wait=False)  # nothing to keep: the error line says it all
            return
        data, metadata = final_bundle(reply, {0: self.renderer})
        self.sink.clear(wait=True)
        self.sink.show(data, metadata, uuid.uuid4().hex)
        self.updates += 1
