"""What a panel's transcript shows, kept to the session's history as it changes.

The transcript is the history's turns, then the panel's notices (messages that got no reply),
then the reply streaming now; newest last, drawn bottom-up. A reply that will replace a turn (a
regenerated reply, a re-run cell's) streams in that turn's place rather than below it, so the
conversation reads as it will be kept. The row with the Regenerate / Send again button goes
under the newest entry when the panel offers it.

Turn views are kept by turn and reused, so a redraw sends only what changed; the live view of a
reply becomes the view of the turn it is committed as. Only the latest :data:`SHOWN_TURNS` turns
are drawn at first, with a "Show earlier turns" button above them that draws as many more each
time: a conversation of 10,000 turns would otherwise be 10,000 views made and sent at once. (A
reply that replaces a turn not drawn streams at the bottom.) Events come from any thread (a panel's
worker, the kernel's main thread): every change holds one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views
from .history import Turn
from .prompt import Prompt
from .reply import Reply
from .session import ChatSession
from .transcript import CopyCode, LiveReply, add_code_buttons, notice_view, turn_view

__all__ = ["SHOWN_TURNS", "TranscriptView"]

SHOWN_TURNS = 50
"""Turns a transcript draws at first, the latest; "Show earlier turns" draws as many more."""


class TranscriptView:
    """Draws ``session``'s conversation into ``box``, with notices and the live reply."""

    def __init__(
        self,
        session: ChatSession,
        box: Any,
        again_row: Any,
        *,
        copy: CopyCode,
        on_stream: Callable[[], None],
        unanswered: Callable[[], bool],
    ) -> None:
        """``again_row`` holds the again button, labelled here for what it would do; the
        panel says whether a message of its own is ``unanswered`` (failed, or stopped before
        any text came)."""
        self._session = session
        self._box = box
        self._again_row = again_row
        self._copy = copy
        self._on_stream = on_stream
        self._unanswered = unanswered
        self._lock = threading.RLock()
        self._turn_views: dict[int, tuple[Turn, Any]] = {}
        self._notices: list[Any] = []
        self._shown_turns = SHOWN_TURNS
        self.earlier_button = widgets.Button(
            description="Show earlier turns", icon="chevron-up", layout=widgets.Layout(width="auto")
        )
        self.earlier_button.add_class("nbchat-show-earlier")
        self.earlier_button.on_click(lambda _: self.show_earlier())
        self._earlier_row = widgets.HBox(
            [self.earlier_button], layout=widgets.Layout(justify_content="center")
        )
        self.live: LiveReply | None = None
        """The reply streaming in now, with the widgets it is drawn in."""

    def start(self, reply: Reply) -> None:
        with self._lock:
            self.live = LiveReply(reply, self._on_stream)
            self.sync()
        self.live(reply)

    def update(self, reply: Reply) -> None:
        live = self.live
        if live is not None and live.reply is reply:
            live(reply)

    def commit(self, turn: Turn, reply: Reply | None) -> None:
        live = self.live
        with self._lock:
            if live is not None and live.reply is reply:
                # The live view becomes the view of the turn the reply was kept as.
                add_code_buttons(live.view, turn.reply, self._copy)
                self._turn_views[id(turn)] = (turn, live.view)

    def end(self, reply: Reply) -> None:
        live = self.live
        if live is not None and live.reply is reply:
            live(reply)
        with self._lock:
            self.live = None
        self.sync()

    def notice(self, prompt: Prompt, reason: str) -> None:
        """Show that ``prompt`` got no reply, and why (until the next message goes)."""
        with self._lock:
            self._notices.append(notice_view(prompt, reason))
        self.sync()

    def clear_notices(self) -> None:
        with self._lock:
            self._notices.clear()

    def show_earlier(self) -> None:
        """Draw :data:`SHOWN_TURNS` more of the earlier turns."""
        with self._lock:
            self._shown_turns += SHOWN_TURNS
        self.sync()

    def sync(self) -> None:
        """Make the transcript the session's history, plus notices and the live reply."""
        with self._lock:
            live = self.live
            replacing = live.reply.cell_id if live is not None else None
            placed = False
            shown: list[Any] = []
            kept: dict[int, tuple[Turn, Any]] = {}
            turns = self._session.history.turns
            hidden = max(0, len(turns) - self._shown_turns)
            if hidden:
                self.earlier_button.description = f"Show earlier turns ({hidden:,} more)"
                shown.append(self._earlier_row)
            for turn in turns[hidden:]:
                entry = self._turn_views.get(id(turn))
                view = entry[1] if entry is not None and entry[0] is turn else None
                if view is None:
                    view = turn_view(turn, self._copy)
                kept[id(turn)] = (turn, view)
                if live is not None and replacing is not None and turn.cell_id == replacing:
                    view, placed = live.view, True  # streams in the place it will take
                shown.append(view)
            self._turn_views = kept
            shown.extend(self._notices)
            if live is not None and not placed:
                shown.append(live.view)
            if live is None and self._offer_again():
                shown.append(self._again_row)
            if not shown:
                shown.append(widgets.HTML(value=views.empty_transcript()))
            self._box.children = tuple(reversed(shown))

    def _offer_again(self) -> bool:
        """Label the again button for what it would do now; False when it has nothing to do."""
        button = self._again_row.children[0]
        if self._unanswered():
            label, tip = "Send again", "Send the message that got no reply again"
        else:
            turn = self._session.history.last()
            if turn is None or turn.cell_id is None:  # without an id a turn cannot be replaced
                return False
            stopped = turn.status == "interrupted"
            label = "Send again" if stopped else "Regenerate"
            tip = f"Ask again; the new reply replaces this {'stopped ' if stopped else ''}one"
        button.description = label
        button.tooltip = tip
        return True
