"""The cell display on its own: what it sends to the page, and when."""

from __future__ import annotations

import threading
from typing import Any

from nbchat.display import CellDisplay, UpdatePolicy, final_bundle
from nbchat.render import render_markdown
from nbchat.reply import Reply


class Page:
    """A sink that records messages, and applies them the way a frontend does."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str, str]] = []  # (kind, display id, html)
        self.changed = threading.Event()

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.messages.append(("show", display_id, data.get("text/html", "")))
        self.changed.set()

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.messages.append(("replace", display_id, data.get("text/html", "")))
        self.changed.set()

    def clear(self, *, wait: bool) -> None:
        self.messages.append(("clear", "", ""))

    def visible_html(self) -> str:
        outputs: dict[str, str] = {}
        for kind, display_id, html in self.messages:
            if kind == "clear":
                outputs = {}
            else:
                outputs[display_id] = html
        return "".join(outputs.values())


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


def test_finished_blocks_are_sent_once_and_the_page_matches_the_text() -> None:
    clock = ManualClock()
    page = Page()
    display = CellDisplay(page, policy=UpdatePolicy(clock=clock), flush_when_quiet=False)
    reply = Reply("q", model="m")
    display(reply)
    paragraphs = [f"Paragraph number {i} with some words." for i in range(30)]
    text = "\n\n".join(paragraphs) + "\n"
    for start in range(0, len(text), 7):
        clock.now += 1.0  # always due
        add(reply, text[start : start + 7])
        display(reply)
    assert page.visible_html() == render_markdown(text)
    for paragraph in paragraphs[:-1]:
        sent = [html for _, _, html in page.messages if paragraph + "</p>" in html]
        assert len(sent) <= 2, (paragraph, len(sent))  # in the tail at most once, then final
    reply.end("done")
    display(reply)
    kind, _, html = page.messages[-1]
    assert kind == "show" and page.messages[-2][0] == "clear"
    assert render_markdown(text) in html


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
