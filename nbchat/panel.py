"""The chat panel: the notebook's conversation as a chat, in ipywidgets.

A panel is a second face on the notebook's one :class:`~nbchat.session.ChatSession`, not a
second conversation. It follows the session's events, so a reply asked for by a ``%%chat`` cell
streams into every open panel too, and what is asked in a panel is in the history the next
``%%chat`` cell sends. Its transcript is the session's history, redrawn when a turn is
committed or the conversation changes, so panels never drift apart from each other or from the
store; a reply's live view becomes the view of the turn the session says it was committed as.

The panel asks from a worker thread: the kernel stays free to run cells while a reply streams,
and Stop (a comm message handled on the kernel's main thread) can close the connection
mid-reply. ``ChatPanel`` is itself a ``VBox``, so it nests in other widgets like any widget.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views
from .codeblocks import CodeBlock
from .errors import BusyError, NbChatError
from .history import Turn
from .notebook import get_session
from .panel_controls import PanelControls
from .prompt import Prompt, compose
from .reply import ENDED, Reply
from .runtime import javascript, user_namespace
from .session import ChatSession
from .transcript import (
    LiveReply,
    add_code_buttons,
    clipboard_script,
    close_tree,
    notice_view,
    turn_view,
)

__all__ = ["ChatPanel"]

log = logging.getLogger("nbchat")

_BUSY_MESSAGE = "A reply is already streaming in this notebook: wait for it, or press Stop"


class ChatPanel(widgets.VBox):  # type: ignore[misc]
    """A chat panel on the notebook's session: ``ChatPanel()`` in a cell, or ``%chat panel``.

    ``namespace`` is where the context picker looks for dataframes (default: the notebook's
    variables). Attributes named after the controls (``input``, ``send_button``,
    ``stop_button``, ``model_picker``, ``context_picker``, ``transcript``, ``status``) are the
    widgets themselves, for scripting and tests.
    """

    def __init__(
        self,
        session: ChatSession | None = None,
        *,
        namespace: Mapping[str, object] | None = None,
        load_models: bool = True,
    ) -> None:
        self.session = session if session is not None else get_session()
        self._namespace = namespace
        self._lock = threading.RLock()
        self._turn_views: dict[int, tuple[Turn, Any]] = {}
        self._notices: list[Any] = []
        self._live: LiveReply | None = None
        self._worker: threading.Thread | None = None
        self._picker_updating = False
        self._status_text = ""

        controls = PanelControls(self.session.settings.model)
        self.model_picker = controls.model_picker
        self.context_picker = controls.context_picker
        self.context_hint = controls.context_hint
        self.refresh_button = controls.refresh_button
        self.new_button = controls.new_button
        self.transcript = controls.transcript
        self.input = controls.input
        self.send_button = controls.send_button
        self.stop_button = controls.stop_button
        self.status = controls.status
        self.code_actions = controls.code_actions
        self.model_picker.observe(self._model_picked, names="value")
        self.refresh_button.on_click(lambda _: self.refresh_context())
        self.new_button.on_click(lambda _: self.new_conversation())
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        super().__init__(controls.rows())
        self.add_class("nbchat-panel")

        on = self.session.on
        self._unfollow = (
            on("reply_started", self._reply_started),
            on("reply_updated", self._reply_updated),
            on("reply_ended", self._reply_ended),
            on("turn_committed", self._turn_committed),
            on("conversation_changed", self._sync),
        )
        self.refresh_context()
        latest = self.session.last_reply
        if self.session.busy and latest is not None and latest.status not in ENDED:
            self._reply_started(latest)  # opened while a reply streams: follow it to its end
        else:
            self._sync()
        if load_models:
            threading.Thread(target=self._load_models, name="nbchat-models", daemon=True).start()

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.session!r}>"

    def close(self) -> None:
        """Stop following the session and close the widgets (the conversation stays)."""
        for unfollow in self._unfollow:
            unfollow()
        for child in self.children:
            close_tree(child)
        super().close()

    # -- asking -----------------------------------------------------------------------------

    def send(self, content: Any = None, buffers: Any = None) -> bool:
        """Send the input as the next message, as the Send button does; False (and a status
        line) when it cannot go.

        With ``content``, this is ipywidgets' own ``Widget.send`` of a custom message to the
        frontend (``focus()`` and ``blur()`` use it), unchanged.
        """
        if content is not None:
            super().send(content, buffers)
            return True
        text = self.input.value.strip()
        if not text:
            self._set_status("Type a message first.")
            return False
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return False
        attached = tuple(self.context_picker.value)
        settings = self.session.settings
        try:
            prompt = compose(
                text,
                self._user_namespace(),
                fill=False,  # the panel sends what was typed; {name} is for %%chat cells
                frames=attached,
                tokens=settings.context_tokens,
                rows=settings.context_rows,
            )
        except NbChatError as error:
            self._set_status(str(error), error=True)
            return False
        self.input.value = ""
        self.context_picker.value = ()  # attached once, to this message
        with self._lock:
            self._notices.clear()
        self._worker = threading.Thread(
            target=self._ask, args=(prompt, text, attached), name="nbchat-panel", daemon=True
        )
        self._worker.start()
        return True

    @property
    def live(self) -> LiveReply | None:
        """The reply streaming into the panel now, with the widgets it is drawn in."""
        return self._live

    @property
    def asking(self) -> bool:
        """The panel's own worker is still asking (its reply has not ended)."""
        worker = self._worker
        return worker is not None and worker.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the panel's reply in flight (for scripts and tests)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def stop(self) -> None:
        """Stop the reply in flight; its partial text is kept, marked interrupted."""
        if not self.session.cancel():
            self._set_status("Nothing to stop.")

    def new_conversation(self) -> None:
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return
        self.session.new_conversation()
        self._set_status("New conversation (earlier turns stay in the history store).")

    def _ask(self, prompt: Prompt, typed: str, attached: tuple[str, ...]) -> None:
        try:
            self.session.ask(prompt)
        except BusyError:
            self._restore_input(typed, attached)
            self._set_status(_BUSY_MESSAGE, error=True)
        except NbChatError as error:
            self._failed(prompt, typed, attached, str(error))
        except Exception as error:  # the worker must report, never die silently
            log.exception("nbchat: the panel's request failed")
            self._failed(prompt, typed, attached, f"{type(error).__name__}: {error}")

    def _failed(self, prompt: Prompt, typed: str, attached: tuple[str, ...], message: str) -> None:
        message = " ".join(message.split())
        self._restore_input(typed, attached)
        with self._lock:
            self._notices.append(notice_view(prompt, message))
        self._sync()
        self._set_status(message, error=True)

    def _restore_input(self, typed: str, attached: tuple[str, ...]) -> None:
        # The message comes back, with the frames it carried, unless something new was typed
        # meanwhile: nothing is lost.
        if self.input.value.strip():
            return
        self.input.value = typed
        names = {name for _, name in self.context_picker.options}
        self.context_picker.value = tuple(name for name in attached if name in names)

    # -- context ----------------------------------------------------------------------------

    def _user_namespace(self) -> Mapping[str, object]:
        return self._namespace if self._namespace is not None else user_namespace()

    def refresh_context(self) -> None:
        """List the notebook's dataframes again, keeping what was chosen if still there."""
        from .frames import list_frames  # stdlib only: lists without importing pandas

        chosen = set(self.context_picker.value)
        options = [
            (f"{name} · {label}", name) for name, label in list_frames(self._user_namespace())
        ]
        self.context_picker.options = options
        self.context_picker.value = tuple(name for _, name in options if name in chosen)
        self.context_picker.layout.display = "" if options else "none"
        self.context_hint.layout.display = "none" if options else ""

    # -- following the session --------------------------------------------------------------

    def _reply_started(self, reply: Reply) -> None:
        """Any reply of the session: from this panel, another, or a ``%%chat`` cell."""
        with self._lock:
            self._live = LiveReply(reply, self._streaming_status)
            self._sync()
        self._live(reply)
        self._set_busy(True)
        self._set_status(f"asking {reply.model}…")

    def _reply_updated(self, reply: Reply) -> None:
        live = self._live
        if live is not None and live.reply is reply:
            live(reply)

    def _turn_committed(self, turn: Turn, reply: Reply | None) -> None:
        live = self._live
        with self._lock:
            if live is not None and live.reply is reply:
                # The live view becomes the view of the turn the reply was kept as.
                add_code_buttons(live.view, turn.reply, self.copy_code)
                self._turn_views[id(turn)] = (turn, live.view)

    def _reply_ended(self, reply: Reply) -> None:
        live = self._live
        if live is not None and live.reply is reply:
            live(reply)
        with self._lock:
            self._live = None
        self._sync()
        self._set_busy(False)
        if reply.status == "failed":
            error = reply.error
            self._set_status(str(error) if error is not None else "the reply failed", error=True)
        else:
            footing = views.Footing.of_reply(reply)
            self._set_status(views.ended_status(footing, len(reply.text)))

    def _sync(self) -> None:
        """Make the transcript the session's history, plus notices and the live reply."""
        with self._lock:
            shown: list[Any] = []
            kept: dict[int, tuple[Turn, Any]] = {}
            for turn in self.session.history.turns:
                entry = self._turn_views.get(id(turn))
                view = entry[1] if entry is not None and entry[0] is turn else None
                if view is None:
                    view = turn_view(turn, self.copy_code)
                kept[id(turn)] = (turn, view)
                shown.append(view)
            self._turn_views = kept
            shown.extend(self._notices)
            if self._live is not None:
                shown.append(self._live.view)
            if not shown:
                shown.append(widgets.HTML(value=views.empty_transcript()))
            self.transcript.children = tuple(reversed(shown))
        self._sync_model_picker()

    # -- code blocks ------------------------------------------------------------------------

    def copy_code(self, block: CodeBlock, number: int = 1) -> None:
        """Copy a code block to the browser's clipboard (frontends that run output scripts)."""
        script = clipboard_script(block.code)
        # Set as the output's state rather than captured from the running message, so it
        # works from a click handler or any thread; a fresh output runs the script again.
        self.code_actions.outputs = ()
        self.code_actions.append_display_data(javascript(script))
        lines = block.code.count("\n") + (not block.code.endswith("\n"))
        self._set_status(
            f"Copied code {number} ({lines} lines). In a cell, %chat code {number} puts it in "
            "a new cell below."
        )

    # -- status and controls ----------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.new_button.disabled = busy

    @property
    def status_text(self) -> str:
        """The status line as plain text: what the panel last said about its reply."""
        return self._status_text

    def _set_status(self, message: str, *, error: bool = False) -> None:
        self._status_text = message
        self.status.value = views.status_html(message, error=error)

    def _streaming_status(self) -> None:
        live = self._live
        if live is None:
            return
        reply = live.reply
        self._set_status(views.streaming_status(reply.model, live.characters(), reply.elapsed))

    # -- the model --------------------------------------------------------------------------

    def _load_models(self) -> None:
        models = self.session.quick_model_list()
        if models:
            self.model_picker.options = models
        else:
            self.model_picker.placeholder = "model id (the server lists no models)"

    def _model_picked(self, change: Mapping[str, Any]) -> None:
        if self._picker_updating:
            return
        name = str(change["new"]).strip()
        if not name or name == self.session.settings.model:
            return
        self.session.settings = replace(self.session.settings, model=name)
        self._set_status(f"Model: {name} (for the panel and %%chat cells)")

    def _sync_model_picker(self) -> None:
        model = self.session.settings.model
        if self.model_picker.value != model:
            self._picker_updating = True
            try:
                self.model_picker.value = model
            finally:
                self._picker_updating = False
