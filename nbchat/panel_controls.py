"""The panel's widgets, built and laid out; what they do is :class:`~nbchat.panel.ChatPanel`'s.

Kept apart so the panel's module reads as behaviour: following the session, sending, stopping.
Layout follows ipywidgets' own composites: a wrapping header row, the transcript, the input, the
buttons with the status line, and a hidden output that runs the Copy buttons' script.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views

__all__ = ["PanelControls"]


class PanelControls:
    """Every control of a panel, as attributes named after what they are."""

    def __init__(self, model: str) -> None:
        self.model_picker = widgets.Combobox(
            value=model,
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
        self.input = widgets.Textarea(
            placeholder="Ask about your notebook… (Send, or %%chat in a cell: same conversation)",
            rows=3,
            layout=widgets.Layout(width="100%"),
        )
        self.input.add_class("nbchat-input")
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.stop_button = widgets.Button(description="Stop", disabled=True)
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

    def rows(self) -> list[Any]:
        """The panel's children, top to bottom."""
        return [self.header, self.transcript, self.input, self.buttons, self.code_actions]
