"""The chat panel: the notebook's conversation as a chat, in ipywidgets.

A panel is a second face on the notebook's one :class:`~nbchat.session.ChatSession`, not a
second conversation. It follows the session's events, so a reply asked for by a ``%%chat`` cell
streams into every open panel too, and what is asked in a panel is in the history the next
``%%chat`` cell sends. Its transcript is the session's history, redrawn when a turn is
committed or the conversation changes, so panels never drift apart from each other or from the
store; a reply's live view becomes the view of the turn the session says it was committed as.

Each message typed in a panel gets a turn id of its own (``panel-…``), as a cell's turn has its
cell's: asking again with that id (Regenerate, Send again) replaces the turn in place, and the
request carries only the turns before it, as for a re-run cell.

The panel asks from a worker thread: the kernel stays free to run cells while a reply streams,
and Stop (a comm message handled on the kernel's main thread) can close the connection
mid-reply. ``ChatPanel`` is itself a ``VBox``, so it nests in other widgets like any widget.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views
from .errors import BusyError, NbChatError
from .notebook import get_session
from .panel_controls import PanelControls
from .panel_view import TranscriptView
from .prompt import Prompt, compose
from .reply import ENDED, Reply
from .runtime import display, user_namespace
from .session import ChatSession
from .transcript import LiveReply, close_tree

__all__ = ["ChatPanel"]

log = logging.getLogger("nbchat")

_BUSY_MESSAGE = "A reply is already streaming in this notebook: wait for it, or press Stop"
_SIDE_NOTE = (
    "The chat panel is beside the notebook (--side needs JupyterLab; elsewhere, %chat panel)"
)


@dataclass(frozen=True)
class _Message:
    """A message on its way: what is sent, the turn it makes or replaces, what was typed."""

    prompt: Prompt
    cell_id: str
    """The turn's id in the conversation: a new one per typed message, so that asking again
    with the same id replaces that turn in place, as a re-run cell replaces its own."""
    typed: str = ""
    """The text as typed, given back to the input if it fails ("" when it was not typed)."""
    attached: tuple[str, ...] = ()


class ChatPanel(widgets.VBox):  # type: ignore[misc]
    """A chat panel on the notebook's session: ``ChatPanel()`` in a cell, or ``%chat panel``.

    ``namespace`` is where the context picker looks for dataframes (default: the notebook's
    variables). Attributes named after the controls (``input``, ``send_button``,
    ``stop_button``, ``again_button``, ``model_picker``, ``context_picker``, ``transcript``,
    ``status``) are the widgets themselves, for scripting and tests.
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
        self._worker: threading.Thread | None = None
        self._status_text = ""
        self._retry: _Message | None = None
        self._sidecar: Any = None

        controls = self._controls = PanelControls(self.session, self._set_status)
        self.model_picker = controls.model_picker
        self.context_picker = controls.context_picker
        self.context_hint = controls.context_hint
        self.refresh_button = controls.refresh_button
        self.new_button = controls.new_button
        self.transcript = controls.transcript
        self.input = controls.input
        self.send_button = controls.send_button
        self.stop_button = controls.stop_button
        self.again_button = controls.again_button
        self.status = controls.status
        self.code_actions = controls.code_actions
        self.copy_code = controls.copy_code
        """Copy a code block to the clipboard, as its Copy button does."""
        self.refresh_button.on_click(lambda _: self.refresh_context())
        self.new_button.on_click(lambda _: self.new_conversation())
        self.send_button.on_click(lambda _: self.send())
        self.stop_button.on_click(lambda _: self.stop())
        self.again_button.on_click(lambda _: self.again())
        self.input.on_submit(lambda: self.send())
        self._view = TranscriptView(
            self.session,
            self.transcript,
            controls.again_row,
            copy=controls.copy_code,
            on_stream=self._streaming_status,
            unanswered=lambda: self._retry is not None,
        )
        super().__init__(controls.rows())
        self.add_class("nbchat-panel")

        on = self.session.on
        self._unfollow = (
            on("reply_started", self._reply_started),
            on("reply_updated", self._view.update),
            on("reply_ended", self._reply_ended),
            on("turn_committed", self._view.commit),
            on("conversation_changed", self._sync),
        )
        self.refresh_context()
        latest = self.session.last_reply
        if self.session.busy and latest is not None and latest.status not in ENDED:
            self._reply_started(latest)  # opened while a reply streams: follow it to its end
        else:
            self._sync()
        if load_models:
            threading.Thread(target=controls.load_models, name="nbchat-models", daemon=True).start()

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.session!r}>"

    def show(self, *, side: bool = False) -> None:
        """Show the panel under the running cell; with ``side``, beside the notebook in
        JupyterLab's main area instead (a ``sidecar``), in view while the notebook scrolls."""
        if not side:
            display(self)
            return
        from sidecar import Sidecar  # type: ignore[import-untyped]

        if self._sidecar is not None:
            self._sidecar.close()
        self._sidecar = Sidecar(title="nbchat", anchor="split-right")
        with self._sidecar:
            display(self)
        print(_SIDE_NOTE)  # the kernel cannot tell whether the frontend has a side area

    def close(self) -> None:
        """Stop following the session and close the widgets (the conversation stays)."""
        for unfollow in self._unfollow:
            unfollow()
        close_tree(self._controls.again_row)
        for child in self.children:
            close_tree(child)
        super().close()
        if self._sidecar is not None:
            self._sidecar.close()

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
        return self._start(_Message(prompt, f"panel-{uuid4().hex}", text, attached))

    def regenerate(self) -> bool:
        """Ask the conversation's latest message again; the new reply takes the old one's
        place, in the history and here. False (and a status line) when it cannot."""
        turn = self.session.history.last()
        if turn is None:
            self._set_status("Nothing to regenerate yet.")
            return False
        if turn.cell_id is None:  # turns without an id only append: it would not replace
            self._set_status("This reply has no turn id to replace it by; ask again with Send.")
            return False
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return False
        return self._start(
            _Message(Prompt(turn.prompt, turn.attachments, images=turn.images), turn.cell_id)
        )

    def send_again(self) -> bool:
        """Send the message that failed, or was stopped before its reply began, as it was."""
        message = self._retry
        if message is None:
            self._set_status("Nothing to send again.")
            return False
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return False
        if message.typed and self.input.value == message.typed:
            self.input.value = ""  # it was given back when it failed; it goes now
            self.context_picker.value = ()
        return self._start(message)

    def again(self) -> bool:
        """What the Regenerate / Send again button does: :meth:`send_again` when a message
        got no reply, :meth:`regenerate` otherwise."""
        return self.send_again() if self._retry is not None else self.regenerate()

    def _start(self, message: _Message) -> bool:
        self._view.clear_notices()
        self._retry = None
        self._worker = threading.Thread(
            target=self._ask, args=(message,), name="nbchat-panel", daemon=True
        )
        self._worker.start()
        return True

    @property
    def live(self) -> LiveReply | None:
        """The reply streaming into the panel now, with the widgets it is drawn in."""
        return self._view.live

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
        self._view.clear_notices()
        self._retry = None
        left = self.session.new_conversation()
        back = f"; %chat open {left} brings them back" if left is not None else ""
        self._set_status(f"New conversation (earlier turns stay in the history store{back}).")

    def _ask(self, message: _Message) -> None:
        try:
            reply = self.session.ask(message.prompt, cell_id=message.cell_id)
        except BusyError:
            self._restore_input(message)
            self._set_status(_BUSY_MESSAGE, error=True)
        except NbChatError as error:
            self._failed(message, str(error))
        except Exception as error:  # the worker must report, never die silently
            log.exception("nbchat: the panel's request failed")
            self._failed(message, f"{type(error).__name__}: {error}")
        else:
            if reply.turn is None:  # stopped before any text came: nothing was kept
                self._failed(message, views.interrupted_message(0), error=False)

    def _failed(self, message: _Message, reason: str, *, error: bool = True) -> None:
        reason = " ".join(reason.split())
        self._restore_input(message)
        self._retry = message
        self._view.notice(message.prompt, reason)
        self._set_status(reason, error=error)

    def _restore_input(self, message: _Message) -> None:
        # The message comes back, with the frames it carried, unless something new was typed
        # meanwhile: nothing is lost.
        if not message.typed or self.input.value.strip():
            return
        self.input.value = message.typed
        names = {name for _, name in self.context_picker.options}
        self.context_picker.value = tuple(name for name in message.attached if name in names)

    # -- context ----------------------------------------------------------------------------

    def _user_namespace(self) -> Mapping[str, object]:
        return self._namespace if self._namespace is not None else user_namespace()

    def refresh_context(self) -> None:
        """List the notebook's dataframes again, keeping what was chosen if still there."""
        self._controls.list_frames(self._user_namespace())

    # -- following the session --------------------------------------------------------------

    def _reply_started(self, reply: Reply) -> None:
        """Any reply of the session: from this panel, another, or a ``%%chat`` cell."""
        self._view.start(reply)
        self._set_busy(True)
        self._set_status(f"asking {reply.model}…")

    def _reply_ended(self, reply: Reply) -> None:
        self._view.end(reply)
        self._set_busy(False)
        if reply.status == "failed":
            error = reply.error
            self._set_status(str(error) if error is not None else "the reply failed", error=True)
        else:
            footing = views.Footing.of_reply(reply)
            self._set_status(views.ended_status(footing, len(reply.text)))

    def _sync(self) -> None:
        self._view.sync()
        self._controls.follow_model()

    # -- status and controls ----------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy
        self.new_button.disabled = busy
        self.again_button.disabled = busy

    @property
    def status_text(self) -> str:
        """The status line as plain text: what the panel last said about its reply."""
        return self._status_text

    def _set_status(self, message: str, *, error: bool = False) -> None:
        self._status_text = message
        self.status.value = views.status_html(message, error=error)

    def _streaming_status(self) -> None:
        live = self._view.live
        if live is None:
            return
        reply = live.reply
        self._set_status(views.streaming_status(reply.model, live.characters(), reply.elapsed))
