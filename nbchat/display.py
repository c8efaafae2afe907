"""A reply's life in a notebook cell: placeholder, live updates, one final output.

While a reply streams, the cell holds at most ``max_outputs`` (10) outputs: JupyterLab shows
50 and hides the rest behind "Show more outputs", where they stop updating. The last output
shows the open tail and is resent on each update; the others hold the finished top-level
Markdown blocks, rendered once. An output can be rewritten but not removed, so to make room,
the outputs from some point on are merged: their HTML is resent in the first of them and the
others are emptied, for what finishes next. The order of merges (:func:`_placements`) resends
about as little as any order could with that many outputs: each byte a handful of times, the
number growing very slowly with the reply's length. Updates come at most ``max_rate`` times a
second and slow down when rendering or resending the open tail gets expensive.

When the reply ends, the outputs are replaced by one bundle: ``text/html`` (rendered, with a
footer and any reasoning folded away), ``text/markdown`` and ``text/plain`` holding the reply's
Markdown source exactly, and metadata naming the request and its fingerprint
(:func:`nbchat.ipynb.output_metadata`, a versioned schema). That is what is saved in the
notebook, exported, and read back by tools. A reply that fails or is interrupted before any
text leaves the cell empty: the magic says why in one line.

What each piece looks like is :mod:`nbchat.views`'s; this module decides only when it is drawn
and where it goes (an :class:`OutputSink`). Terminal IPython uses :mod:`nbchat.terminal`.
"""

from __future__ import annotations

import contextvars
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from . import views
from .incremental import IncrementalRenderer
from .ipynb import output_metadata
from .render import render_markdown
from .reply import Reply

__all__ = [
    "CellDisplay",
    "IPythonSink",
    "LiveView",
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


class LiveView(Protocol):
    """One output that adds what it is sent (:class:`nbchat.live_reply.LiveReply`): finished
    HTML crosses once and only the open tail is resent, with no limit on outputs to work
    around."""

    def bundle(self) -> dict[str, Any]:
        """The output data that shows the view in the cell."""

    def update(self, *, append: str = "", tail: str | None = None, reset: bool = False) -> None:
        """Forget the finished HTML (``reset``), add ``append`` to it, show ``tail`` after it."""

    def close(self) -> None:
        """Let the page forget the view: the cell's final output has replaced it."""


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
    choices = result.choices
    bodies, markdowns = [], []
    for index, text in enumerate(texts):
        choice = choices[index] if index < len(choices) else None
        parts = (renderers.get(index) or IncrementalRenderer()).update(text)
        bodies.append("".join(parts.finished) + parts.tail + views.choice_extras_html(choice))
        markdowns.append(views.choice_markdown(text, choice))
    html_text = views.size_notes_html(reply.message.notes) + views.reply_html(
        bodies, views.Footing.of_reply(reply), reply.reasonings()
    )
    html_text = views.images_html(reply.message.images) + html_text  # what the model was shown
    markdown = views.choices_markdown(markdowns)
    metadata = output_metadata(reply)
    data = {"text/html": html_text, "text/markdown": markdown, "text/plain": markdown}
    return data, metadata


class CellDisplay:
    """Shows one reply in the cell that asked for it, in at most ``max_outputs`` outputs while
    it streams; pass it to ``ChatSession.ask``."""

    def __init__(
        self,
        sink: OutputSink,
        *,
        policy: UpdatePolicy | None = None,
        flush_when_quiet: bool = True,
        max_outputs: int = 10,
        live: Callable[[], LiveView] | None = None,
    ) -> None:
        if max_outputs < 2:
            raise ValueError(f"max_outputs must be at least 2, got {max_outputs}")
        self.sink = sink
        self.policy = policy or UpdatePolicy()
        self.renderer = IncrementalRenderer()
        self.updates = 0
        """Outputs shown or replaced so far (the final bundle included)."""
        self.flush_when_quiet = flush_when_quiet
        """Redraw from a timer when the stream pauses, so the page never lags behind a
        reply that went quiet (a model thinking, a slow network) by more than one interval."""
        self._display_id = uuid.uuid4().hex  # the open tail's output, always the last one
        self._tail_shown: str | None = None  # what it shows; None: not shown yet
        self._sent_blocks = 0
        self._outputs: list[str] = []  # display ids of the outputs of finished HTML, in order
        self._held: list[str] = []  # what each of them holds ("" once merged away)
        self._used = 0  # how many of them, from the first, hold HTML
        self._places = _placements(max_outputs - 1)
        self._make_live = live
        """Makes the one output a reply streams into, where the frontend draws widgets; the
        outputs above the tail are used only without it."""
        self._live: LiveView | None = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._header = ""  # notices kept above the reply in the first output (cut values)

    def __call__(self, reply: Reply) -> None:
        with self._lock:
            if reply.status == "pending":
                self._header = views.size_notes_html(reply.message.notes)
                self._show_tail(views.placeholder_html(reply.model, views.sending_parts(reply)))
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

    def _show_tail(self, body: str, *, finished: str = "") -> int:
        """Show ``body`` as the open tail, after ``finished`` (HTML just finished, for a live
        view: outputs get it from :meth:`_place`); returns the tail's bytes sent."""
        if self._make_live is not None:
            return self._update_live(body, finished)
        if body == (self._tail_shown or ""):
            return 0
        self._send(self._display_id, body, replace=self._tail_shown is not None)
        self._tail_shown = body
        return len(body)

    def _update_live(self, tail: str, finished: str, *, reset: bool = False) -> int:
        if self._live is None:
            assert self._make_live is not None
            self._live = self._make_live()
            self.sink.show(self._live.bundle(), {}, self._display_id)
            self.updates += 1
            reset = True  # the notices above the reply come first
        if reset:
            finished = self._header + finished
        new_tail = None if tail == (self._tail_shown or "") and not reset else tail
        if not (finished or reset or new_tail is not None):
            return 0
        self._live.update(append=finished, tail=new_tail, reset=reset)  # one message: no
        self.updates += 1  # moment shows a block both finished and still in the tail
        self._tail_shown = tail
        return len(new_tail or "")

    def _redraw(self, reply: Reply) -> None:
        texts = reply.texts()
        before = self.renderer.render_seconds
        if len(texts) > 1:
            self._redraw_all(reply, texts)
            return
        text, finished_html = texts[0], ""
        if not text:  # the model may be thinking; until it says something, keep what is shown
            reasoning = reply.reasonings()[0]
            tail = views.thinking_html(reasoning) if reasoning else self._tail_shown or ""
        else:
            parts = self.renderer.update(text, highlight_tail=False)
            finished_html = "".join(parts.finished[self._sent_blocks :])
            self._sent_blocks = len(parts.finished)
            if finished_html and self._make_live is None:
                self._place(finished_html)
            tail = parts.tail
        self.policy.record(
            render_seconds=self.renderer.render_seconds - before,
            finished_bytes=len(finished_html),
            tail_bytes=self._show_tail(tail, finished=finished_html),
        )

    def _place(self, html_text: str) -> None:
        """Put newly finished HTML into the outputs above the tail, where the plan says. Merged
        HTML is sent before its old outputs are emptied, so no text is ever missing from the
        page, even between two messages (it may show twice for that moment)."""
        output, merge = next(self._places)
        if merge is not None:
            self._rewrite(merge, "".join(self._held[merge : self._used]))
            for emptied in range(merge + 1, self._used):
                if emptied != output:
                    self._rewrite(emptied, "")
            self._used = merge + 1
        if output < self._used:  # the last output takes it too
            self._rewrite(output, self._held[output] + html_text)
            return
        self._used = output + 1
        if output < len(self._outputs):
            self._rewrite(output, html_text)
            return
        # A new output is needed: the tail's becomes it, and a new one below takes the tail.
        self._outputs.append(self._display_id)
        self._held.append(html_text)
        self._send(self._display_id, html_text, replace=self._tail_shown is not None)
        self._display_id = uuid.uuid4().hex
        self._tail_shown = None

    def _rewrite(self, output: int, html_text: str) -> None:
        self._held[output] = html_text
        self._send(self._outputs[output], html_text, replace=True)

    def _redraw_all(self, reply: Reply, texts: list[str]) -> None:
        """Several choices grow side by side: redraw them all in one output (rare and short)."""
        started = time.perf_counter()
        body = "".join(
            views.choice_heading(i + 1) + render_markdown(text) for i, text in enumerate(texts)
        )
        body += views.streaming_marker_html(reply.model)
        if self._make_live is not None:
            self.policy.record(
                render_seconds=time.perf_counter() - started,
                finished_bytes=0,
                tail_bytes=self._update_live(body, "", reset=True),
            )
            return
        for output in range(self._used):  # what the first choice showed alone goes
            self._rewrite(output, "")
        self._used = 0
        self.policy.record(
            render_seconds=time.perf_counter() - started,
            finished_bytes=0,
            tail_bytes=self._show_tail(body),
        )

    def _send(self, display_id: str, body: str, *, replace: bool) -> None:
        first = self._outputs[0] if self._outputs else self._display_id
        if self._header and display_id == first:
            body = self._header + body
        data = {"text/html": body}
        if replace:
            self.sink.replace(data, {}, display_id)
        else:
            self.sink.show(data, {}, display_id)
        self.updates += 1

    def _finish(self, reply: Reply) -> None:
        try:
            if reply.status in ("failed", "interrupted") and not any(reply.texts()):
                self.sink.clear(wait=False)  # nothing to keep: the one-line reason says it all
                return
            data, metadata = final_bundle(reply, {0: self.renderer})
            self.sink.clear(wait=True)
            self.sink.show(data, metadata, uuid.uuid4().hex)
            self.updates += 1
        finally:
            if self._live is not None:
                self._live.close()
                self._live = None


def _fill(times: int, slots: int, first: int) -> Iterator[tuple[int, int | None]]:
    """Places for the most units that outputs ``first`` … ``first + slots - 1`` can take
    without resending any more than ``times`` times: f(times, slots) = f(times - 1, slots) +
    f(times, slots - 1), by filling them all with one time fewer, merging them into the first,
    and going on in the others; f(0, k) = k, f(m, 1) = m + 1. A place is ``(output, merge)``:
    where the unit goes, after merging the outputs from ``merge`` on into ``merge`` (or not)."""
    if slots == 1:
        for _ in range(times + 1):
            yield first, None  # one output takes each unit by being resent whole
    elif times == 0:
        for output in range(first, first + slots):
            yield output, None
    else:
        yield from _fill(times - 1, slots, first)
        rest = _fill(times, slots - 1, first + 1)
        yield next(rest)[0], first
        yield from rest


def _placements(slots: int) -> Iterator[tuple[int, int | None]]:
    """Where each unit (the blocks finished since the last update) goes, in ``slots`` outputs.

    The plan for resending at most m times begins with the plan for m - 1, so one endless
    sequence serves a reply of any length: after n units nothing has been resent more than m
    times, for the least m with f(m, slots) ≥ n (with 9 outputs: once up to 46 units, three
    times up to 550, five up to 3,718). Its total is within 5 % of the least possible.
    """
    if slots == 1:
        while True:
            yield 0, None
    yield from _fill(0, slots, 0)
    times = 0
    while True:
        times += 1
        rest = _fill(times, slots - 1, 1)
        yield next(rest)[0], 0
        yield from rest
