"""The cell display on its own: what it sends to the page, and when."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from nbchat.display import CellDisplay, UpdatePolicy, final_bundle
from nbchat.incremental import IncrementalRenderer
from nbchat.render import render_markdown
from nbchat.reply import Reply, ReplyStatus


class Page:
    """A sink that records messages, and applies them the way a frontend does: an update
    replaces the data of the output shown under its id, ``clear(wait=True)`` clears when the
    next output is shown."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []  # (kind, display id, html)
        self.outputs: dict[str, str] = {}  # display id → html, in the order they were shown
        self.most_outputs = 0
        """The most outputs the page held at any moment."""
        self.changed = threading.Event()
        self._clear_on_next = False

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.messages.append(("show", display_id, data.get("text/html", "")))
        if self._clear_on_next:
            self.outputs, self._clear_on_next = {}, False
        self.outputs[display_id] = data.get("text/html", "")
        self.most_outputs = max(self.most_outputs, len(self.outputs))
        self.changed.set()

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.messages.append(("replace", display_id, data.get("text/html", "")))
        if display_id in self.outputs:
            self.outputs[display_id] = data.get("text/html", "")
        self.changed.set()

    def clear(self, *, wait: bool) -> None:
        self.messages.append(("clear", "", ""))
        if wait:
            self._clear_on_next = True
        else:
            self.outputs = {}

    def visible_html(self) -> str:
        return "".join(self.outputs.values())


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def streaming_reply() -> Reply:
    reply = Reply("q", model="m")
    reply.receive({"choices": []})  # a first chunk with no text: the reply is streaming
    return reply


def add(reply: Reply, text: str) -> None:
    reply.receive({"choices": [{"index": 0, "delta": {"content": text}}]})


def paragraphs(count: int) -> list[str]:
    return [f"Paragraph number {i} with some words." for i in range(count)]


def many_blocks(count: int) -> str:
    """A long reply of every kind of block; fences name no language, so that code looks the
    same finished (highlighted) and open (plain)."""
    kinds = (
        "## Section {i}",
        "A paragraph, number {i}, with *emphasis*, `code` and a [link](https://example.com).",
        "- item {i}\n- another item\n  - nested",
        "| column | value |\n|---|---:|\n| row {i} | {i}.5 |",
        "```\nprint({i})\nx = {i} * 2\n```",
        "> quoted {i}\n> and more",
        "1. first {i}\n2. second",
    )
    return "\n\n".join(kinds[i % len(kinds)].format(i=i) for i in range(count)) + "\n"


class Streamed:
    """A reply streamed into a :class:`Page` piece by piece, the clock moving ``step`` seconds
    before each piece."""

    def __init__(self, clock: ManualClock | None = None, step: float = 1.0) -> None:
        self.clock = clock or ManualClock()
        self.step = step
        self.page = Page()
        self.display = CellDisplay(
            self.page, policy=UpdatePolicy(clock=self.clock), flush_when_quiet=False
        )
        self.reply = Reply("q", model="m")
        self.display(self.reply)

    def pieces(self, text: str, sizes: tuple[int, ...]) -> Iterator[str]:
        """Send ``text`` in pieces of ``sizes`` (in turn); yields the text so far after each."""
        start = 0
        for size in itertools.cycle(sizes):
            if start >= len(text):
                return
            self.clock.now += self.step
            add(self.reply, text[start : start + size])
            self.display(self.reply)
            start += size
            yield text[:start]

    def end(self) -> None:
        self.reply.end("done")
        self.display(self.reply)


def test_a_long_reply_never_holds_more_than_ten_outputs_and_the_page_always_shows_it() -> None:
    text = many_blocks(400)
    streamed = Streamed()  # the clock always moves enough: every piece is drawn
    oracle = IncrementalRenderer()
    for count, so_far in enumerate(streamed.pieces(text, (7, 1, 13, 3))):
        assert streamed.page.most_outputs <= 10, count
        parts = oracle.update(so_far, highlight_tail=False)
        assert streamed.page.visible_html() == "".join(parts.finished) + parts.tail, count
        if count % 97 == 0:  # now and then, against the whole reply rendered at once
            assert streamed.page.visible_html() == render_markdown(so_far), count
    assert streamed.page.visible_html() == render_markdown(text)
    streamed.end()
    (final,) = streamed.page.outputs.values()
    assert render_markdown(text) in final


def test_a_long_reply_sends_each_block_a_few_times_at_most() -> None:
    texts = paragraphs(300)
    text = "\n\n".join(texts) + "\n"
    streamed = Streamed()
    for _ in streamed.pieces(text, (7,)):
        pass
    page = streamed.page
    assert page.visible_html() == render_markdown(text)
    assert page.most_outputs <= 10
    for paragraph in texts[:-1]:
        sent = [html for _, _, html in page.messages if paragraph + "</p>" in html]
        # in the open tail twice at most, then placed, then resent three times at most
        assert len(sent) <= 6, (paragraph, len(sent))
    streamed.end()
    kind, _, html = page.messages[-1]
    assert kind == "show" and page.messages[-2][0] == "clear"
    assert list(page.outputs.values()) == [html] and render_markdown(text) in html


def test_a_throttled_long_reply_stays_within_ten_outputs() -> None:
    text = many_blocks(600)
    streamed = Streamed(step=0.01)  # 100 pieces a second: most pieces wait for the next draw
    for _ in streamed.pieces(text, (5,)):
        assert streamed.page.most_outputs <= 10
    streamed.clock.now += 1.0
    add(streamed.reply, "")
    streamed.display(streamed.reply)
    assert streamed.page.visible_html() == render_markdown(text)


def test_a_second_choice_takes_the_place_of_what_the_first_showed_alone() -> None:
    streamed = Streamed()
    first = "\n\n".join(paragraphs(30)) + "\n"
    for _ in streamed.pieces(first, (9,)):
        pass
    streamed.reply.receive({"choices": [{"index": 1, "delta": {"content": "Another answer."}}]})
    streamed.clock.now += 1.0
    streamed.display(streamed.reply)
    visible = streamed.page.visible_html()
    assert visible.count("Paragraph number 3 with") == 1, visible
    assert (
        visible.index("Choice 1")
        < visible.index("Paragraph number 0")
        < visible.index("Choice 2")
        < visible.index("Another answer.")
    )
    streamed.end()
    (final,) = streamed.page.outputs.values()
    assert final.count("Paragraph number 3 with") == 1 and "Another answer." in final


@pytest.mark.parametrize("status", ["interrupted", "failed"])
def test_a_reply_that_stops_before_any_text_leaves_the_cell_empty(status: ReplyStatus) -> None:
    page = Page()
    display = CellDisplay(page, flush_when_quiet=False)
    reply = Reply("q", model="m")
    display(reply)
    assert "asking m" in page.visible_html()
    reply.receive({"choices": []})
    display(reply)
    reply.end(status)
    display(reply)
    assert page.outputs == {} and page.messages[-1] == ("clear", "", "")


def test_updates_are_throttled_by_the_clock() -> None:
    clock = ManualClock()
    page = Page()
    display = CellDisplay(page, policy=UpdatePolicy(clock=clock), flush_when_quiet=False)
    reply = streaming_reply()
    for _ in range(100):
        add(reply, "word ")
        display(reply)  # the clock does not move: only the first redraw is due
    assert len(page.messages) == 1
    clock.now += 1.0
    add(reply, "end")
    display(reply)
    assert len(page.messages) == 2 and "word word" in page.messages[-1][2]


def test_a_quiet_stream_is_flushed_by_a_timer() -> None:
    page = Page()
    display = CellDisplay(page, policy=UpdatePolicy(max_rate=20.0))
    reply = streaming_reply()
    add(reply, "first")
    display(reply)
    page.changed.clear()
    add(reply, " and the rest, then silence")
    display(reply)  # not due yet: a timer will show it
    assert page.changed.wait(5)
    assert "the rest, then silence" in page.messages[-1][2]


def test_the_final_bundle_holds_markdown_exactly_and_names_the_model() -> None:
    reply = streaming_reply()
    add(reply, "**bold** <script>x</script>\n")
    reply.end("done")
    data, metadata = final_bundle(reply)
    assert data["text/plain"] == data["text/markdown"] == "**bold** <script>x</script>\n"
    assert "<strong>bold</strong>" in data["text/html"]
    assert "<script>" not in data["text/html"]
    assert metadata["nbchat"]["model"] == "m" and metadata["nbchat"]["status"] == "done"


class LivePage:
    """A live widget as the page draws it: finished HTML added to, an open tail replaced."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.finished = ""
        self.tail = ""
        self.appended: list[str] = []
        self.messages = 0
        self.closed = False

    def bundle(self) -> dict[str, Any]:
        return {"text/plain": "streaming", "application/vnd.jupyter.widget-view+json": {}}

    def update(self, *, append: str = "", tail: str | None = None, reset: bool = False) -> None:
        assert not self.closed
        self.messages += 1
        if reset:
            self.finished = ""
        self.finished += append
        self.appended.append(append)
        if tail is not None:
            self.tail = tail

    def close(self) -> None:
        self.closed = True

    def visible_html(self) -> str:
        return self.finished + self.tail


class LiveStreamed(Streamed):
    def __init__(self, step: float = 1.0) -> None:
        self.views: list[LivePage] = []
        self.clock = ManualClock()
        self.step = step
        self.page = Page()
        self.display = CellDisplay(
            self.page,
            policy=UpdatePolicy(clock=self.clock),
            flush_when_quiet=False,
            live=self._view,
        )
        self.reply = Reply("q", model="m")
        self.display(self.reply)

    def _view(self) -> LivePage:
        self.views.append(LivePage(self.page))
        return self.views[-1]


def test_a_live_widget_holds_a_long_reply_in_one_output_sending_each_block_once() -> None:
    text = many_blocks(400)
    streamed = LiveStreamed()
    (view,) = streamed.views  # made for the placeholder, before anything arrived
    assert "asking m" in view.tail
    oracle = IncrementalRenderer()
    for count, so_far in enumerate(streamed.pieces(text, (7, 1, 13, 3))):
        assert len(streamed.page.outputs) == 1, count
        parts = oracle.update(so_far, highlight_tail=False)
        assert view.visible_html() == "".join(parts.finished) + parts.tail, count
    assert view.visible_html() == render_markdown(text)
    finished = "".join(IncrementalRenderer().update(text, highlight_tail=False).finished)
    assert "".join(view.appended) == finished  # every finished block crossed exactly once
    assert [kind for kind, _, _ in streamed.page.messages] == ["show"]  # no output rewritten
    streamed.end()
    assert view.closed and streamed.page.most_outputs == 1
    (final,) = streamed.page.outputs.values()
    assert render_markdown(text) in final and 'class="nbchat-footer"' in final


def test_a_live_widget_starts_again_when_a_second_choice_arrives() -> None:
    streamed = LiveStreamed()
    for _ in streamed.pieces("\n\n".join(paragraphs(30)) + "\n", (9,)):
        pass
    streamed.reply.receive({"choices": [{"index": 1, "delta": {"content": "Another answer."}}]})
    streamed.clock.now += 1.0
    streamed.display(streamed.reply)
    (view,) = streamed.views
    visible = view.visible_html()
    assert visible.count("Paragraph number 3 with") == 1, visible
    assert visible.index("Choice 1") < visible.index("Choice 2") < visible.index("Another")


@pytest.mark.parametrize("status", ["interrupted", "failed"])
def test_a_live_widget_that_gets_no_text_is_removed_and_closed(status: ReplyStatus) -> None:
    streamed = LiveStreamed()
    streamed.reply.receive({"choices": []})
    streamed.display(streamed.reply)
    streamed.reply.end(status)
    streamed.display(streamed.reply)
    (view,) = streamed.views
    assert view.closed and streamed.page.outputs == {}
