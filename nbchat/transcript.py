"""The widgets a panel's transcript is made of: a finished turn, a streaming reply, a notice.

A streaming reply is drawn by the same :class:`~nbchat.display.CellDisplay` as a notebook cell,
through :class:`WidgetSink`, which maps the display's outputs onto HTML widgets: finished
Markdown blocks are sent once and only the open tail is updated, at the cell's bounded rate.
What any of it looks like is :mod:`nbchat.views`'.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from . import views
from .codeblocks import CodeBlock, code_blocks
from .display import CellDisplay, UpdatePolicy
from .history import Turn
from .prompt import Prompt
from .render import render_markdown
from .reply import Reply

__all__ = [
    "LiveReply",
    "WidgetSink",
    "add_code_buttons",
    "clipboard_script",
    "close_tree",
    "notice_view",
    "turn_view",
]

CopyCode = Callable[[CodeBlock, int], None]
"""What a Copy button does with its block and the block's number (from 1)."""


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget under it (their comms go with them)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def _turn_box(children: list[Any]) -> Any:
    box = widgets.VBox(children, layout=widgets.Layout(flex="0 0 auto"))
    box.add_class("nbchat-turn")
    return box


def add_code_buttons(view: Any, text: str, copy: CopyCode) -> None:
    """Put a Copy button for each code block of ``text`` under ``view``, numbered as
    ``%chat code N`` numbers them."""
    blocks = code_blocks(text)
    if not blocks:
        return
    buttons = []
    for number, block in enumerate(blocks, start=1):
        label = f"Copy {block.language or 'code'} {number}" if len(blocks) > 1 else "Copy code"
        button = widgets.Button(
            description=label,
            icon="copy",
            tooltip="Copy to the clipboard; %chat code in a cell puts it in a new cell",
            layout=widgets.Layout(width="auto"),
        )
        button.add_class("nbchat-copy-code")
        button.on_click(lambda _, block=block, number=number: copy(block, number))
        buttons.append(button)
    view.children = (*view.children, widgets.HBox(buttons))


def clipboard_script(code: str) -> str:
    """A script that puts ``code`` on the clipboard, holding it only as data.

    ``json.dumps`` escapes quotes, backslashes and every non-ASCII character, and ``<`` is
    escaped too, so that no ``</script>`` survives a frontend that inlines the script, whatever
    the model wrote.
    """
    literal = json.dumps(code).replace("<", "\\u003c")
    return (
        "navigator.clipboard.writeText(" + literal + ")"
        ".catch(function (e) { console.warn('nbchat: copy failed', e); });"
    )


def turn_view(turn: Turn, copy: CopyCode) -> Any:
    """A finished turn read from the conversation: the message, the reply, its footer."""
    body = render_markdown(turn.reply)
    reply = widgets.HTMLMath(value=views.reply_html([body], views.Footing.of_turn(turn)))
    view = _turn_box(
        [widgets.HTML(value=views.prompt_html(Prompt(turn.prompt, turn.attachments))), reply]
    )
    add_code_buttons(view, turn.reply, copy)
    return view


def notice_view(prompt: Prompt | str, message: str) -> Any:
    """A message that failed: what was asked, then the one-line reason."""
    message_prompt = prompt if isinstance(prompt, Prompt) else Prompt(prompt)
    return widgets.HTML(value=views.prompt_html(message_prompt) + views.notice_html(message))


class WidgetSink:
    """:class:`~nbchat.display.OutputSink` onto widgets: each output becomes an HTML widget
    in ``box``; replacing an output sets its widget's value, and nothing else is resent."""

    def __init__(self, box: Any, on_update: Callable[[], None]) -> None:
        self.box = box
        self._on_update = on_update
        self._outputs: dict[str, Any] = {}
        self._clear_on_next = False

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        output = widgets.HTMLMath(value=data["text/html"])
        if self._clear_on_next:
            self._clear_on_next = False
            self._outputs = {display_id: output}
            self.box.children = (output,)
        else:
            self._outputs[display_id] = output
            self.box.children = (*self.box.children, output)
        self._on_update()

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        output = self._outputs.get(display_id)
        if output is None:
            self.show(data, metadata, display_id)
            return
        output.value = data["text/html"]
        self._on_update()

    def clear(self, *, wait: bool) -> None:
        if wait:
            self._clear_on_next = True
        else:
            self._outputs = {}
            self.box.children = ()


class LiveReply:
    """One reply streaming into a panel: the message, then the reply's growing outputs."""

    def __init__(self, reply: Reply, on_update: Callable[[], None]) -> None:
        self.reply = reply
        self.outputs = widgets.VBox()
        self.view = _turn_box([widgets.HTML(value=views.prompt_html(reply.message)), self.outputs])
        self.display = CellDisplay(WidgetSink(self.outputs, on_update), policy=UpdatePolicy())
        self._pieces_counted = 0
        self._characters = 0

    def characters(self) -> int:
        """Characters of text so far, counting only the pieces new since the last call: the
        status line asks on every redraw, and summing the whole reply each time would grow
        with the square of its length."""
        pieces = self.reply.text_pieces()
        self._characters += sum(len(piece) for piece in pieces[self._pieces_counted :])
        self._pieces_counted = len(pieces)
        return self._characters

    def __call__(self, reply: Reply) -> None:
        self.display(reply)
