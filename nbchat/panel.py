"""The chat panel: the notebook's conversation as a chat, in ipywidgets.

A panel is a second face on the notebook's one :class:`~nbchat.session.ChatSession`, not a
second conversation. It subscribes to the session, so a reply asked for by a ``%%chat`` cell
streams into every open panel too, and what is asked in a panel is in the history the next
``%%chat`` cell sends. Its transcript is drawn from the session's history whenever a reply
ends or the conversation changes, so panels never drift apart from each other or from the
store.

The panel asks from a worker thread: the kernel stays free to run cells while a reply streams,
and Stop (a comm message handled on the kernel's main thread) can close the connection
mid-reply. A streaming reply is drawn with the same :class:`~nbchat.display.CellDisplay` as a
cell, through a sink that maps its outputs onto HTML widgets: finished Markdown blocks are sent
once, only the open tail is updated, at a bounded rate.

Everything shown is rendered by :mod:`nbchat.render`, which escapes raw HTML and refuses
script URLs: model output never runs in the page.
"""

from __future__ import annotations

import html
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from .display import CellDisplay, UpdatePolicy
from .errors import BusyError, NbChatError
from .history import Turn
from .render import CodeBlock, code_blocks, render_markdown
from .session import ChatSession, Reply, get_session

__all__ = ["ChatPanel"]

log = logging.getLogger("nbchat")

_MUTED = "color: var(--jp-ui-font-color2, #777); font-size: 0.85em"
_BUSY_MESSAGE = "A reply is already streaming in this notebook: wait for it, or press Stop"
_ATTACHMENT = re.compile(r"<dataframe\b([^>\n]*)>\n.*?\n</dataframe>", re.DOTALL)
_ATTRIBUTE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|(\S+))')


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _attachment_label(attributes: str) -> str:
    values = {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _ATTRIBUTE.finditer(attributes)
    }
    name = values.get("name", "data")
    shape = " × ".join(values[key] for key in ("rows", "cols") if key in values)
    return f"{name} ({shape})" if shape else name


def prompt_html(prompt: str) -> str:
    """A user message as HTML: the text as typed, attached summaries folded away."""
    parts: list[str] = []
    position = 0
    for match in _ATTACHMENT.finditer(prompt):
        before = prompt[position : match.start()].strip()
        if before:
            parts.append(f'<div style="white-space: pre-wrap">{html.escape(before)}</div>')
        label = html.escape(_attachment_label(match.group(1)))
        parts.append(
            f'<details class="nbchat-attachment"><summary style="{_MUTED}">attached: {label}'
            f'</summary><pre style="font-size: 0.8em; white-space: pre-wrap">'
            f"{html.escape(match.group(0))}</pre></details>"
        )
        position = match.end()
    rest = prompt[position:].strip()
    if rest:
        parts.append(f'<div style="white-space: pre-wrap">{html.escape(rest)}</div>')
    return (
        '<div class="nbchat-you" style="border-left: 3px solid var(--jp-brand-color1, #1976d2);'
        ' padding: 2px 8px; margin: 6px 0">'
        f'<div style="{_MUTED}; font-weight: bold">You</div>{"".join(parts)}</div>'
    )


def _turn_footer(turn: Turn) -> str:
    parts = [html.escape(turn.model or "model")]
    usage = turn.usage or {}
    if "prompt_tokens" in usage and "completion_tokens" in usage:
        parts.append(f"{usage['prompt_tokens']:,} → {usage['completion_tokens']:,} tokens")
    elif "total_tokens" in usage:
        parts.append(f"{usage['total_tokens']:,} tokens")
    if turn.status == "interrupted":
        parts.append("stopped")
    return f'<div class="nbchat-footer" style="{_MUTED}">{" · ".join(parts)}</div>'


def _notice_html(prompt: str, message: str) -> str:
    return prompt_html(prompt) + (
        '<div class="nbchat-error" style="color: var(--jp-error-color1, #d32f2f)">'
        f"⚠ {html.escape(message)}</div>"
    )


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


class _WidgetSink:
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


class _LiveReply:
    """One reply streaming into a panel: the prompt, then the reply's growing outputs."""

    def __init__(self, reply: Reply, on_update: Callable[[], None]) -> None:
        self.reply = reply
        self.outputs = widgets.VBox()
        self.view = widgets.VBox(
            [widgets.HTML(value=prompt_html(reply.prompt)), self.outputs],
            layout=widgets.Layout(flex="0 0 auto"),
        )
        self.view.add_class("nbchat-turn")
        self.display = CellDisplay(_WidgetSink(self.outputs, on_update), policy=UpdatePolicy())
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


class ChatPanel:
    """A chat panel on the notebook's session: ``ChatPanel()`` in a cell, or ``%chat panel``.

    The panel is shown by displaying it. ``namespace`` is where the context picker looks for
    dataframes (default: the notebook's variables). Attributes named after the controls
    (``input``, ``send_button``, ``stop_button``, ``model_picker``, ``context_picker``,
    ``transcript``, ``status``) are the widgets themselves, for scripting and tests.
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
        self._live: _LiveReply | None = None
        self._worker: threading.Thread | None = None
        self._picker_updating = False

        self.model_picker = widgets.Combobox(
            value=self.session.settings.model,
            options=[],
            placeholder="model id",
            description="Model",
            ensure_option=False,
            continuous_update=False,
            layout=widgets.Layout(width="auto", flex="1 1 16em"),
        )
        self.model_picker.observe(self._model_picked, names="value")
        self.context_picker = widgets.SelectMultiple(
            options=[],
            rows=3,
            description="Context",
            tooltip="Dataframes whose summaries go with the next message",
            layout=widgets.Layout(width="auto", flex="1 1 16em"),
        )
        self.context_hint = widgets.HTML(
            value=f'<span style="{_MUTED}">Context: no dataframes yet</span>',
            layout=widgets.Layout(flex="1 1 auto"),
        )
        self.refresh_button = widgets.Button(
            description="↻", tooltip="Look for dataframes again", layout=widgets.Layout(width="3em")
        )
        self.refresh_button.on_click(lambda _: self.refresh_context())
        self.new_button = widgets.Button(
            description="New conversation",
            tooltip="Start over; earlier turns stay in the store",
            layout=widgets.Layout(width="auto", flex="0 0 auto"),
        )
        self.new_button.on_click(lambda _: self.new_conversation())
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
        self.send_button = widgets.Button(description="Send", button_style="primary")
        self.send_button.on_click(lambda _: self.send())
        self.stop_button = widgets.Button(description="Stop", disabled=True)
        self.stop_button.on_click(lambda _: self.stop())
        self.status = widgets.HTML(value="")
        self.status.add_class("nbchat-status")
        self.input.add_class("nbchat-input")
        self.code_actions = widgets.Output(layout=widgets.Layout(display="none"))
        self.widget = widgets.VBox(
            [
                widgets.HBox(
                    [
                        self.model_picker,
                        self.context_picker,
                        self.context_hint,
                        self.refresh_button,
                        self.new_button,
                    ],
                    layout=widgets.Layout(flex_flow="row wrap", align_items="flex-start"),
                ),
                self.transcript,
                self.input,
                widgets.HBox([self.send_button, self.stop_button, self.status]),
                self.code_actions,
            ]
        )
        self.widget.add_class("nbchat-panel")

        self._unsubscribe = self.session.subscribe(self._follow)
        self._unwatch = self.session.watch(self._conversation_changed)
        self.refresh_context()
        self._sync()
        self._set_busy(self.session.busy)
        if load_models:
            threading.Thread(target=self._load_models, name="nbchat-models", daemon=True).start()

    def __repr__(self) -> str:
        return f"<ChatPanel on {self.session!r}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def close(self) -> None:
        """Stop following the session and close the widgets (the conversation stays)."""
        self._unsubscribe()
        self._unwatch()
        _close_tree(self.widget)

    # -- asking -----------------------------------------------------------------------------

    def send(self) -> bool:
        """Send the input as the next message; False (and a status line) when it cannot go."""
        text = self.input.value.strip()
        if not text:
            self._set_status("Type a message first.")
            return False
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return False
        try:
            prompt = self._with_attachments(text)
        except (LookupError, TypeError, ValueError) as error:
            self._set_status(_one_line(error), error=True)
            return False
        attached = tuple(self.context_picker.value)
        self.input.value = ""
        self.context_picker.value = ()  # attached once, to this message
        with self._lock:
            self._notices.clear()
        self._worker = threading.Thread(
            target=self._ask, args=(prompt, text, attached), name="nbchat-panel", daemon=True
        )
        self._worker.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the panel's reply in flight (for scripts and tests)."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)

    def stop(self) -> None:
        """Stop the reply in flight; its partial text is kept, marked stopped."""
        if not self.session.cancel():
            self._set_status("Nothing to stop.")

    def new_conversation(self) -> None:
        if self.session.busy:
            self._set_status(_BUSY_MESSAGE, error=True)
            return
        self.session.new_conversation()
        self._set_status("New conversation (earlier turns stay in the history store).")

    def _ask(self, prompt: str, typed: str, attached: tuple[str, ...]) -> None:
        try:
            self.session.ask(prompt)
        except BusyError:
            self._restore_input(typed, attached)
            self._set_status(_BUSY_MESSAGE, error=True)
        except NbChatError as error:
            self._failed(typed, attached, _one_line(error))
        except Exception as error:  # the worker must report, never die silently
            log.exception("nbchat: the panel's request failed")
            self._failed(typed, attached, f"{type(error).__name__}: {_one_line(error)}")

    def _failed(self, typed: str, attached: tuple[str, ...], message: str) -> None:
        self._restore_input(typed, attached)
        with self._lock:
            self._notices.append(widgets.HTML(value=_notice_html(typed, message)))
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
        if self._namespace is not None:
            return self._namespace
        from IPython import get_ipython

        shell = get_ipython()
        return shell.user_ns if shell is not None else {}

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

    def _with_attachments(self, text: str) -> str:
        from .context import attachments

        names = list(self.context_picker.value)
        if not names:
            return text
        settings = self.session.settings
        summaries = attachments(
            names,
            self._user_namespace(),
            prompt=text,
            tokens=settings.context_tokens,
            rows=settings.context_rows,
        )
        return "\n\n".join([text, *summaries])

    # -- following the session --------------------------------------------------------------

    def _follow(self, reply: Reply) -> None:
        """Every reply of the session, from this panel, another, or a ``%%chat`` cell."""
        if reply.status == "pending":
            with self._lock:
                self._live = _LiveReply(reply, self._streaming_status)
                self._sync()
            self._set_busy(True)
            self._set_status(f"asking {html.escape(reply.model)}…")
        live = self._live
        if live is None or live.reply is not reply:
            return  # began before this panel opened
        live(reply)
        if reply.status in ("pending", "streaming"):
            return
        with self._lock:
            self._live = None
            if reply.status != "failed":
                self._adopt(live, reply)
            self._sync()
        self._set_busy(False)
        self._end_status(reply)

    def _adopt(self, live: _LiveReply, reply: Reply) -> None:
        """Keep the finished live view as the view of the turn it was committed as."""
        text = reply.result.text
        for turn in reversed(self.session.history.turns):
            if turn.prompt == reply.prompt and turn.reply == text:
                if id(turn) not in self._turn_views:
                    self._add_code_actions(live.view, text)
                    self._turn_views[id(turn)] = (turn, live.view)
                return

    def _conversation_changed(self) -> None:
        self._sync()

    def _sync(self) -> None:
        """Make the transcript the session's history, plus notices and the live reply."""
        with self._lock:
            views: list[Any] = []
            kept: dict[int, tuple[Turn, Any]] = {}
            for turn in self.session.history.turns:
                entry = self._turn_views.get(id(turn))
                view = entry[1] if entry is not None and entry[0] is turn else self._turn_view(turn)
                kept[id(turn)] = (turn, view)
                views.append(view)
            self._turn_views = kept
            views.extend(self._notices)
            if self._live is not None:
                views.append(self._live.view)
            if not views:
                views.append(widgets.HTML(value=self._empty_html()))
            self.transcript.children = tuple(reversed(views))
        self._sync_model_picker()

    def _empty_html(self) -> str:
        return (
            f'<div style="{_MUTED}">No messages yet. What you ask here and in <code>%%chat</code>'
            " cells is one conversation.</div>"
        )

    def _turn_view(self, turn: Turn) -> Any:
        view = widgets.VBox(
            [
                widgets.HTML(value=prompt_html(turn.prompt)),
                widgets.HTMLMath(
                    value=f'<div class="nbchat-reply">{render_markdown(turn.reply)}'
                    f"{_turn_footer(turn)}</div>"
                ),
            ],
            layout=widgets.Layout(flex="0 0 auto"),
        )
        view.add_class("nbchat-turn")
        self._add_code_actions(view, turn.reply)
        return view

    # -- code blocks --------------------------------------------------------------------------

    def _add_code_actions(self, view: Any, text: str) -> None:
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
            button.on_click(lambda _, block=block, number=number: self.copy_code(block, number))
            buttons.append(button)
        view.children = (*view.children, widgets.HBox(buttons))

    def copy_code(self, block: CodeBlock, number: int = 1) -> None:
        """Copy a code block to the browser's clipboard (frontends that run output scripts)."""
        from IPython.display import Javascript

        # json.dumps escapes quotes, backslashes and every non-ASCII character, and "<" is
        # escaped too, so that no "</script>" survives a frontend that inlines the script: the
        # code is data in the script, whatever the model wrote.
        literal = json.dumps(block.code).replace("<", "\\u003c")
        script = (
            "navigator.clipboard.writeText(" + literal + ")"
            ".catch(function (e) { console.warn('nbchat: copy failed', e); });"
        )
        # Set as the output's state rather than captured from the running message, so it
        # works from a click handler or any thread; a fresh output runs the script again.
        self.code_actions.outputs = ()
        self.code_actions.append_display_data(Javascript(script))  # type: ignore[no-untyped-call]
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
        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))

    def _set_status(self, message: str, *, error: bool = False) -> None:
        colour = "var(--jp-error-color1, #d32f2f)" if error else "var(--jp-ui-font-color2, #777)"
        text = message if not error else html.escape(message)
        self.status.value = f'<span style="color: {colour}; font-size: 0.9em">{text}</span>'

    def _streaming_status(self) -> None:
        live = self._live
        if live is None:
            return
        reply = live.reply
        characters = live.characters()
        self._set_status(
            f"streaming {html.escape(reply.model)}… {characters:,} characters · "
            f"{reply.elapsed:.1f} s"
        )

    def _end_status(self, reply: Reply) -> None:
        if reply.status == "failed":
            message = _one_line(reply.error) if reply.error is not None else "the reply failed"
            self._set_status(message, error=True)
            return
        result = reply.result
        parts = [html.escape(result.model or reply.model)]
        usage = result.usage
        if usage is not None and usage.total_tokens is not None:
            parts.append(f"{usage.total_tokens:,} tokens")
        parts.append(f"{reply.elapsed:.1f} s")
        if reply.status == "interrupted":
            parts.append(f"stopped; the partial reply ({len(result.text):,} characters) is kept")
        self._set_status(" · ".join(parts))

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
        self._set_status(f"Model: {html.escape(name)} (for the panel and %%chat cells)")

    def _sync_model_picker(self) -> None:
        model = self.session.settings.model
        if self.model_picker.value != model:
            self._picker_updating = True
            try:
                self.model_picker.value = model
            finally:
                self._picker_updating = False
