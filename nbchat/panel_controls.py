"""The panel's widgets, built and laid out, and what its two pickers do.

Kept apart so the panel's module reads as behaviour: following the session, sending, stopping.
The self-contained controls are the exception: the model picker shows and sets the session's
model, the context picker offers the namespace's dataframes, and the Copy buttons' clipboard.
Layout follows ipywidgets' own composites: a wrapping header row, the transcript, the input (a
:class:`~nbchat.composer.Composer`, which sends on Enter), the buttons with the status line, and
a hidden output that runs the Copy buttons' script. The Regenerate / Send again button sits in
its own row, which the panel puts under the newest entry of the transcript.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views
from .codeblocks import CodeBlock, code_blocks
from .composer import Composer
from .runtime import javascript
from .session import ChatSession
from .transcript import clipboard_script

__all__ = ["PanelControls"]


class PanelControls:
    """Every control of a panel, as attributes named after what they are."""

    def __init__(self, session: ChatSession, say: Callable[[str], None]) -> None:
        self._session = session
        self._say = say
        self._picker_updating = False
        self.model_picker = widgets.Combobox(
            value=session.settings.model,
            options=[],
            placeholder="model id",
            description="Model",
            ensure_option=False,
            continuous_update=False,
            layout=widgets.Layout(width="auto", flex="1 1 16em"),
        )
        self.context_picker = widgets.SelectMultiple(
            options=[],
            rows=3,
            description="Context",
            tooltip="Dataframes whose summaries go with the next message",
            layout=widgets.Layout(width="auto", flex="1 1 16em"),
        )
        self.context_hint = widgets.HTML(
            value=views.context_hint(), layout=widgets.Layout(flex="1 1 auto")
        )
        self.refresh_button = widgets.Button(
            description="↻", tooltip="Look for dataframes again", layout=widgets.Layout(width="3em")
        )
        self.new_button = widgets.Button(
            description="New conversation",
            tooltip="Start over; earlier turns stay in the store",
            layout=widgets.Layout(width="auto", flex="0 0 auto"),
        )
        self.transcript = widgets.VBox(
            layout=widgets.Layout(
                # Newest last, drawn bottom-up: a reversed column keeps the view scrolled to
                # the latest message as it grows, with no script in the page.
                flex_flow="column-reverse",
                max_height="36em",
                overflow="auto",
                border="1px solid var(--jp-border-color2, #e0e0e0)",
                padding="4px 10px",
            )
        )
        self.transcript.add_class("nbchat-transcript")
        self.input = Composer(layout=widgets.Layout(width="100%"))
        self.input.add_class("nbchat-input")
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", disabled=True)
        self.again_button = widgets.Button(
            description="Regenerate", icon="refresh", layout=widgets.Layout(width="auto")
        )
        self.again_button.add_class("nbchat-again")
        self.again_row = widgets.HBox([self.again_button], layout=widgets.Layout(flex="0 0 auto"))
        self.status = widgets.HTML(value="")
        self.status.add_class("nbchat-status")
        self.code_actions = widgets.Output(layout=widgets.Layout(display="none"))
        self.header = widgets.HBox(
            [
                self.model_picker,
                self.context_picker,
                self.context_hint,
                self.refresh_button,
                self.new_button,
            ],
            layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
        )
        self.buttons = widgets.HBox([self.send_button, self.stop_button, self.status])
        self.model_picker.observe(self._model_picked, names="value")

    def rows(self) -> list[Any]:
        """The panel's children, top to bottom."""
        return [self.header, self.transcript, self.input, self.buttons, self.code_actions]

    # -- the pickers: the session's model, the namespace's frames ---------------------------

    def list_frames(self, namespace: Mapping[str, object]) -> None:
        """Offer ``namespace``'s dataframes, keeping what was chosen if still there."""
        from .frames import list_frames  # stdlib only: lists without importing pandas

        chosen = set(self.context_picker.value)
        options = [(f"{name} · {label}", name) for name, label in list_frames(namespace)]
        self.context_picker.options = options
        self.context_picker.value = tuple(name for _, name in options if name in chosen)
        self.context_picker.layout.display = "" if options else "none"
        self.context_hint.layout.display = "none" if options else ""

    def load_models(self) -> None:
        """Offer the server's models (a thread's job: the server may be slow to answer)."""
        models = self._session.quick_model_list()
        if models:
            self.model_picker.options = models
        else:
            self.model_picker.placeholder = "model id (the server lists no models)"

    def follow_model(self) -> None:
        """Show the session's model, however it was set (``%chat model``, another panel)."""
        model = self._session.settings.model
        if self.model_picker.value != model:
            self._picker_updating = True
            try:
                self.model_picker.value = model
            finally:
                self._picker_updating = False

    def _model_picked(self, change: Mapping[str, Any]) -> None:
        if self._picker_updating:
            return
        name = str(change["new"]).strip()
        session = self._session
        if not name or name == session.settings.model:
            return
        session.settings = replace(session.settings, model=name)
        self._say(f"Model: {name} (for the panel and %%chat cells)")

    # -- the Copy buttons ------------------------------------------------------------------------

    def copy_code(self, block: CodeBlock, number: int = 1) -> None:
        """Copy a code block to the browser's clipboard (frontends that run output scripts)."""
        script = clipboard_script(block.code)
        # Set as the output's state rather than captured from the running message, so it
        # works from a click handler or any thread; a fresh output runs the script again.
        self.code_actions.outputs = ()
        self.code_actions.append_display_data(javascript(script))
        lines = views.counted(block.code.count("\n") + (not block.code.endswith("\n")), "line")
        said = f"Copied code {number} ({lines})."
        if self._latest_block(number) == block.code:  # %chat code N takes the latest reply's
            said += f" In a cell, %chat code {number} puts it in a new cell below."
        self._say(said)

    def _latest_block(self, number: int) -> str | None:
        """Code block ``number`` of the latest reply, as ``%chat code`` finds it."""
        latest, turn = self._session.last_reply, self._session.history.last()
        text = (latest.text if latest is not None else "") or (turn.reply if turn else "")
        blocks = code_blocks(text)
        return blocks[number - 1].code if 0 < number <= len(blocks) else None
