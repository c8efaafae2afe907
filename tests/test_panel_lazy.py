"""A panel on a long conversation draws only the latest turns, with a "Show earlier turns"
button for the rest, so its widget tree stays the same size however long the history is."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest

from nbchat.history import History, Turn
from nbchat.panel import ChatPanel
from nbchat.panel_view import SHOWN_TURNS
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer, Reply

from conftest import fast_settings


def widget_count(widget: Any) -> int:
    """``widget`` and every widget under it."""
    return 1 + sum(widget_count(child) for child in getattr(widget, "children", ()))


def turn_texts(panel: ChatPanel) -> list[str]:
    """The text of each turn the transcript draws, oldest first."""
    views = [v for v in reversed(panel.transcript.children) if "nbchat-turn" in v._dom_classes]
    return [html.unescape(re.sub(r"<[^>]+>", " ", view.children[0].value)) for view in views]


def earlier_button(panel: ChatPanel) -> Any:
    found = [
        button
        for row in panel.transcript.children
        for button in getattr(row, "children", ())
        if "nbchat-show-earlier" in getattr(button, "_dom_classes", ())
    ]
    return found[0] if found else None


@pytest.fixture
def panel_on(server: LoopbackServer) -> Iterator[Any]:
    made: list[tuple[ChatPanel, ChatSession]] = []

    def make(turns: int) -> ChatPanel:
        history = History()
        for number in range(turns):
            history.commit(Turn(prompt=f"question {number}", reply=f"Answer **{number}**."))
        session = ChatSession(fast_settings(server.base_url, max_retries=0), history=history)
        panel = ChatPanel(session, namespace={}, load_models=False)
        made.append((panel, session))
        return panel

    yield make
    for panel, session in made:
        panel.wait(10)
        panel.close()
        session.close()


def test_the_panel_of_a_long_conversation_is_as_big_as_that_of_a_short_one(
    panel_on: Any,
) -> None:
    short, long = panel_on(2 * SHOWN_TURNS), panel_on(10_000)
    assert widget_count(long) == widget_count(short)
    texts = turn_texts(long)
    assert len(texts) == SHOWN_TURNS
    assert "question 9950" in texts[0] and "question 9999" in texts[-1]
    assert earlier_button(long).description == "Show earlier turns (9,950 more)"


def test_show_earlier_turns_draws_more_until_all_are_shown(panel_on: Any) -> None:
    panel = panel_on(SHOWN_TURNS + 10)
    assert "question 10" in turn_texts(panel)[0]
    earlier_button(panel).click()
    texts = turn_texts(panel)
    assert len(texts) == SHOWN_TURNS + 10 and "question 0" in texts[0]
    assert earlier_button(panel) is None


def test_a_conversation_that_fits_has_no_show_earlier_button(panel_on: Any) -> None:
    panel = panel_on(SHOWN_TURNS)
    assert len(turn_texts(panel)) == SHOWN_TURNS
    assert earlier_button(panel) is None


def test_a_new_message_on_a_long_conversation_keeps_the_tree_bounded(
    panel_on: Any, server: LoopbackServer
) -> None:
    panel = panel_on(10_000)
    counts = []
    for number in range(2):
        server.enqueue(Reply(f"Newest answer {number}."))
        panel.input.value = f"newest question {number}"
        panel.send()
        panel.wait(10)
        counts.append(widget_count(panel))
    texts = turn_texts(panel)
    assert len(texts) == SHOWN_TURNS and "newest question 1" in texts[-1]
    assert "question 9952" in texts[0]
    assert counts[0] == counts[1]  # a new turn in, the oldest drawn out
    assert earlier_button(panel).description == "Show earlier turns (9,952 more)"
