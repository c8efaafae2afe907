"""The widgets a panel's transcript is made of: a finished turn, a streaming reply, a notice.

A streaming reply is drawn by the same :class:`~nbchat.display.CellDisplay` as a notebook cell,
through :class:`WidgetSink`, which maps the display's outputs onto HTML widgets: finished
Markdown blocks are sent once and only the open tail is updated, at the cell's bounded rate.

A finished reply, streamed or read back from the conversation, is drawn by
:func:`reply_widgets`: its Markdown is cut after each top-level block that holds code, and each
code block's Copy button goes right under that block. A button cannot sit inside an HTML
widget, so a code block nested in a list or a quote gets its button under the list or quote.

Rendered Markdown goes into widgets carrying the classes JupyterLab and Notebook 7 give a
cell's HTML output (:data:`CELL_OUTPUT_CLASSES`): tables, quotes, lists and headings in the
panel follow the stylesheet (and the theme) they follow in cells. Inline styles on every table
cell would have fought that stylesheet in cells and grown a reply's HTML by every row. What any
of it looks like is :mod:`nbchat.views`' and :mod:`nbchat.render`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]
from markdown_it.utils import EnvType

from . import views
from .codeblocks import CODE_TOKENS, CodeBlock, code_blocks
from .display import CellDisplay, UpdatePolicy
from .history import Turn
from .prompt import Prompt
from .render import markdown_parser, normalize, render_markdown, render_tokens
from .reply import ENDED, Reply

__all__ = [
    "CELL_OUTPUT_CLASSES",
    "LiveReply",
    "WidgetSink",
    "add_code_buttons",
    "clipboard_script",
    "close_tree",
    "notice_view",
    "reply_pieces",
    "reply_widgets",
    "turn_view",
]

CopyCode = Callable[[CodeBlock, int], None]
"""What a Copy button does with its block and the block's number (from 1)."""

CELL_OUTPUT_CLASSES = ("jp-RenderedHTMLCommon", "jp-RenderedHTML", "jp-OutputArea-output")
"""The classes of a cell's HTML output, which the frontend's stylesheet styles."""


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget under it (their comms go with them)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def _rendered(value: str) -> Any:
    """An HTML widget for rendered Markdown, styled by the frontend as a cell's output is.

    Laid out as a block: as the inline row ipywidgets makes it, its content shrinks to fit,
    and a short piece of a reply (a line and a code block) would be narrower than the rest.
    Its text takes the size of a cell's text, not the smaller one widgets are given.
    """
    widget = widgets.HTMLMath(
        value=value,
        layout=widgets.Layout(display="block"),
        style={"font_size": "var(--jp-content-font-size1, 14px)"},
    )
    for name in CELL_OUTPUT_CLASSES:
        widget.add_class(name)
    return widget


class _TurnBox(widgets.VBox):  # type: ignore[misc]
    """One exchange of the transcript: the message, then the reply.

    ``keep_reply`` is set on the box of a reply still streaming: it places the Copy buttons
    once the reply is kept (see :func:`add_code_buttons`).
    """

    def __init__(
        self, children: Sequence[Any], keep_reply: Callable[[str, CopyCode], None] | None = None
    ) -> None:
        super().__init__(list(children), layout=widgets.Layout(flex="0 0 auto"))
        self.add_class("nbchat-turn")
        self.keep_reply = keep_reply


def _reply_box(children: Sequence[Any]) -> Any:
    box = widgets.VBox(list(children))
    box.add_class("nbchat-reply")
    return box


# -- code blocks and their Copy buttons -------------------------------------------------------


def reply_pieces(text: str) -> list[tuple[str, int]]:
    """``text`` rendered and cut after each top-level block that holds code: each piece's safe
    HTML, with how many code blocks it holds. Joined, the pieces are ``render_markdown(text)``.
    """
    env: EnvType = {}
    tokens = markdown_parser().parse(normalize(text), env)
    pieces: list[tuple[str, int]] = []
    start = held = 0
    for index, token in enumerate(tokens):
        held += token.type in CODE_TOKENS
        if held and token.level == 0 and token.nesting <= 0:  # a top-level block ends here
            pieces.append((render_tokens(tokens[start : index + 1], env), held))
            start, held = index + 1, 0
    if start < len(tokens):
        pieces.append((render_tokens(tokens[start:], env), 0))
    return pieces


def _copy_buttons(numbered: Sequence[tuple[int, CodeBlock]], many: bool, copy: CopyCode) -> Any:
    """A row of Copy buttons, one for each ``(number, block)``, labelled as ``%chat code N``
    numbers the blocks when the reply has ``many``."""
    buttons = []
    for number, block in numbered:
        button = widgets.Button(
            description=f"Copy {block.language or 'code'} {number}" if many else "Copy code",
            icon="copy",
            tooltip=f"Copy code block {number} of this reply to the clipboard",
            layout=widgets.Layout(width="auto", height="auto", margin="0"),
        )
        button.add_class("nbchat-copy-code")
        button.on_click(lambda _, block=block, number=number: copy(block, number))
        buttons.append(button)
    row = widgets.HBox(
        buttons, layout=widgets.Layout(justify_content="flex-end", margin="-0.6em 20px 0.6em 0")
    )
    row.add_class("nbchat-code-actions")
    return row


def reply_widgets(
    text: str,
    copy: CopyCode,
    *,
    footing: views.Footing,
    reasoning: str = "",
    extras: str = "",
) -> list[Any]:
    """A finished reply as widgets: its reasoning folded, its Markdown with a Copy button right
    under each code block, then ``extras`` (a refusal, tool calls) and the footer."""
    blocks = code_blocks(text)
    pieces = reply_pieces(text) if blocks else []
    if sum(held for _, held in pieces) != len(blocks) or not blocks:
        whole = views.reply_html([render_markdown(text) + extras], footing, [reasoning])
        shown = [_rendered(whole)]
        if blocks:  # not expected: the two counts are one rule; keep the buttons anyway
            shown.append(_copy_buttons(list(enumerate(blocks, start=1)), True, copy))
        return shown
    numbered = iter(enumerate(blocks, start=1))
    shown = []
    body = views.reasoning_html(reasoning)
    for html, held in pieces:
        body += html
        if held:
            shown.append(_rendered(body))
            mine = [next(numbered) for _ in range(held)]
            shown.append(_copy_buttons(mine, len(blocks) > 1, copy))
            body = ""
    shown.append(_rendered(body + extras + views.footer_html(footing)))
    return shown


def add_code_buttons(view: Any, text: str, copy: CopyCode) -> None:
    """Give the code blocks of a :class:`LiveReply`'s ``view`` their Copy buttons, once its
    reply is kept as ``text``; numbered as ``%chat code N`` numbers them."""
    keep = getattr(view, "keep_reply", None)
    if keep is None:
        raise TypeError(f"{view!r} is not the view of a streaming reply")
    keep(text, copy)


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


# -- the transcript's entries -----------------------------------------------------------------


def turn_view(turn: Turn, copy: CopyCode) -> Any:
    """A finished turn read from the conversation: the message, the reply, its footer."""
    reply = reply_widgets(
        turn.reply, copy, footing=views.Footing.of_turn(turn), extras=views.turn_extras_html(turn)
    )
    message = widgets.HTML(
        value=views.prompt_html(Prompt(turn.prompt, turn.attachments, images=turn.images))
    )
    box = _TurnBox([message, _reply_box(reply)])
    if turn.stale:  # its footer says so; the class lets a stylesheet or a test see it
        box.add_class("nbchat-stale")
    return box


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
        self.ending: Callable[[dict[str, Any]], list[Any]] | None = None
        """When set, draws the next output shown (the finished reply) as these widgets."""

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        drawn = self.ending(data) if self.ending is not None else [_rendered(data["text/html"])]
        if self._clear_on_next:
            self._clear_on_next = False
            self._outputs = {display_id: drawn[-1]}
            self._set_children(drawn)
        else:
            self._outputs[display_id] = drawn[-1]
            self.box.children = (*self.box.children, *drawn)
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
            self._set_children([])

    def _set_children(self, children: Sequence[Any]) -> None:
        """Show ``children`` instead, closing the widgets they replace."""
        gone = [child for child in self.box.children if child not in children]
        self.box.children = tuple(children)
        for child in gone:
            close_tree(child)


class LiveReply:
    """One reply streaming into a panel: the message, then the reply's growing outputs."""

    def __init__(self, reply: Reply, on_update: Callable[[], None]) -> None:
        self.reply = reply
        self.outputs = _reply_box([])
        self._sink = WidgetSink(self.outputs, on_update)
        message = widgets.HTML(value=views.prompt_html(reply.message))
        self.view = _TurnBox([message, self.outputs], keep_reply=self._keep)
        self.display = CellDisplay(self._sink, policy=UpdatePolicy())
        self._pieces_counted = 0
        self._characters = 0
        self._kept: tuple[str, CopyCode] | None = None
        self._final: dict[str, Any] | None = None

    def characters(self) -> int:
        """Characters of text so far, counting only the pieces new since the last call: the
        status line asks on every redraw, and summing the whole reply each time would grow
        with the square of its length."""
        pieces = self.reply.text_pieces()
        self._characters += sum(len(piece) for piece in pieces[self._pieces_counted :])
        self._pieces_counted = len(pieces)
        return self._characters

    def __call__(self, reply: Reply) -> None:
        if reply.status in ENDED:
            self._sink.ending = self._ending
        self.display(reply)

    def _keep(self, text: str, copy: CopyCode) -> None:
        """The reply is kept as ``text``: its final output gets Copy buttons, when it is drawn
        or at once if it is drawn already."""
        self._kept = (text, copy)
        if self._final is not None:
            self._sink.clear(wait=True)
            self._sink.show(self._final, {}, "final")

    def _ending(self, data: dict[str, Any]) -> list[Any]:
        """The finished reply's widgets; block by block with Copy buttons once it is kept."""
        self._final = data
        reply = self.reply
        if self._kept is None:
            return [_rendered(data["text/html"])]
        text, copy = self._kept
        if len(reply.texts()) > 1:  # several choices: the buttons are the kept one's, below
            blocks = list(enumerate(code_blocks(text), start=1))
            row = [_copy_buttons(blocks, True, copy)] if blocks else []
            return [_rendered(data["text/html"]), *row]
        choices = reply.result.choices
        return reply_widgets(
            text,
            copy,
            footing=views.Footing.of_reply(reply),
            reasoning=reply.reasonings()[0],
            extras=views.choice_extras_html(choices[0] if choices else None),
        )
