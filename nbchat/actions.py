"""What each ``%chat`` command does, on the notebook's session; output is plain text.

The commands are parsed by :mod:`nbchat.commands`; each handler here gets the parsed line and a
:class:`CommandContext` (the shell, the session, the running cell, the open panels). Whatever
the user can fix leaves as one ``UsageError`` line; library errors of the session become one
by :func:`nbchat.options.usage_error` at the magic. What is printed may hold a model's or a
server's text, so it goes through :func:`_say`: a terminal shows its control characters
instead of obeying them, and a key typed in the wrong place is not echoed back.
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from IPython.core.error import StdinNotImplementedError, UsageError

from . import conversation_commands, export, views
from .config import Settings
from .errors import ConfigError
from .options import parse_assignment, shown, usage_error
from .protocol import ChatRequest
from .secrets import looks_like_key, mask_secrets
from .session import ChatSession

__all__ = ["HANDLERS", "CommandContext", "code_to_next_cell", "show_panel"]


class CommandContext(Protocol):
    """What a command may use: the shell, the session, the cell running now, open panels."""

    @property
    def shell(self) -> Any: ...
    @property
    def session(self) -> ChatSession: ...
    @property
    def cell_id(self) -> str | None: ...
    @property
    def panels(self) -> dict[str, Any]: ...
    def ask(self, line: str, cell: str) -> None: ...


Handler = Callable[[CommandContext, argparse.Namespace], None]

_SETTING_FIELDS: tuple[str, ...] = (
    "base_url",
    "model",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "retry_budget",
    "include_usage",
    "context_tokens",
    "context_rows",
    "context_budget",
    "prices",
    "spend_limit",
    "replay",
    "replay_pace",
)
_REQUEST_FIELDS = tuple(name for name in ChatRequest.FIELDS if name != "stream")


def _say(text: str) -> None:
    """Print one line of a command's output, safe for a terminal and with keys masked."""
    print(shown(mask_secrets(text)))


def _preview(text: str, width: int) -> str:
    flat = " ".join(mask_secrets(text).split())  # masked before the cut, which could split a key
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def history(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    if getattr(args, "sent", False):
        conversation_commands.sent(ctx)
        return
    if not len(session.history):
        _say("The conversation is empty.")
        return
    if session.system:
        _say(f"system: {_preview(session.system, 70)}")
    for number, turn in enumerate(session.history, start=1):
        footing = views.Footing.of_turn(turn)
        marks = (footing.ending, views.CUT if footing.cut else "", "stale" if turn.stale else "")
        notes = [note for note in (*marks, views.REPLAYED if turn.replayed else "") if note]
        flag = f" ({'; '.join(notes)})" if notes else ""
        cell = f" cell {turn.cell_id[:8]}" if turn.cell_id else ""
        answer = (
            turn.reply or turn.refusal or ", ".join(f"tool call {c.name}" for c in turn.tool_calls)
        )
        _say(f"{number:>3}.{cell} you: {_preview(turn.prompt, 60)}")
        _say(f"     {footing.model}{flag}: {_preview(answer, 60)}")
    stale = sum(turn.stale for turn in session.history)
    if stale:
        print(
            f"{views.counted(stale, 'stale turn')}: answered before an earlier cell changed;"
            " left out of the next request until its cell runs again (%chat history --sent)."
        )


def reset(ctx: CommandContext, args: argparse.Namespace) -> None:
    turns = len(ctx.session.history)
    left = ctx.session.new_conversation()
    earlier = views.counted(turns, "turn")
    print(
        f"Started a new conversation; the last one ({earlier}) stays in the history store"
        f"{conversation_commands.back_hint(left)}."
    )


def show_panel(ctx: CommandContext, args: argparse.Namespace) -> None:
    from .runtime import frontend

    if ctx.shell is None or not frontend(ctx.shell).rich:
        raise UsageError(
            "%chat panel needs a notebook frontend (JupyterLab, Notebook 7, VS Code, Voila); "
            "in a terminal, ask with %%chat"
        )
    from .panel import ChatPanel

    panel = ChatPanel(ctx.session, namespace=ctx.shell.user_ns)
    if ctx.cell_id is not None:
        # Running the cell again replaces its panel: the old one stops following the
        # session instead of streaming every reply into widgets no one can see.
        earlier = ctx.panels.pop(ctx.cell_id, None)
        if earlier is not None:
            earlier.close()
        ctx.panels[ctx.cell_id] = panel
    panel.show(side=args.side)


def code_to_next_cell(ctx: CommandContext, text: str, number: int) -> None:
    """Put code block ``number`` (from 1) of ``text`` in a new cell below the running one."""
    from .codeblocks import code_blocks  # markdown-it: loaded when first needed

    blocks = code_blocks(text)
    if not blocks:
        raise UsageError("the reply has no code block")
    if not 1 <= number <= len(blocks):
        raise UsageError(f"the reply has {views.counted(len(blocks), 'code block')}, not {number}")
    if ctx.shell is not None:
        ctx.shell.set_next_input(blocks[number - 1].code.rstrip("\n"), replace=False)


def code(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    latest = session.last_reply
    text = latest.text if latest is not None else ""
    if not text:
        last_turn = session.history.last()
        text = last_turn.reply if last_turn is not None else ""
    if not text:
        raise UsageError("%chat code: the conversation has no reply yet")
    try:
        code_to_next_cell(ctx, text, args.number)
    except UsageError as error:
        raise UsageError(f"%chat code: {error}".replace("the reply", "the latest reply")) from None


def context(ctx: CommandContext, args: argparse.Namespace) -> None:
    from .prompt import compose

    if not args.names:
        raise UsageError("%chat context needs the name of a dataframe: %chat context df")
    settings = ctx.session.settings
    rows = settings.context_rows if args.df_rows is None else args.df_rows
    tokens = settings.context_tokens if args.df_tokens is None else args.df_tokens
    namespace = ctx.shell.user_ns if ctx.shell is not None else {}
    prompt = compose("", namespace, frames=args.names, tokens=tokens, rows=rows)
    _say(prompt.text)


EXPLAIN_QUESTION = "Explain this error and how to fix it."
"""What ``%chat explain`` asks when no question follows it."""


def explain(ctx: CommandContext, args: argparse.Namespace) -> None:
    """``%chat explain [question]``: ``%%chat --error`` with the question as the cell."""
    budget = f" --df-tokens {args.df_tokens}" if args.df_tokens is not None else ""
    ctx.ask(f"--error{budget}", (args.question or "").strip() or EXPLAIN_QUESTION)


def model(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    if args.name is None:
        _say(session.settings.model)
        return
    name = args.name
    if looks_like_key(name):
        raise UsageError(
            f"%chat model: {mask_secrets(name)!r} looks like an API key, not a model; nothing "
            "changed (enter a key with %chat key)"
        )
    known = session.quick_model_list()
    if known is not None and name not in known:
        close = [m for m in known if name.lower() in m.lower()][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else "; see %chat models"
        raise usage_error(f"{session.settings.base_url} has no model {name!r}{hint}")
    session.settings = replace(session.settings, model=name)
    _say(f"Model: {name}")


def models(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    session.settings.require_key()
    names = session.client.list_models()
    current = session.settings.model
    for name in names:
        _say(f"{'*' if name == current else ' '} {name}")
    if current not in names:
        _say(f"(the current model, {current}, is not in the server's list)")


def system(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    raw = args.text or ""
    if not raw and not args.clear:
        _say(session.system or "(no system prompt)")
        return
    quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'"
    text = raw[1:-1] if quoted else raw
    if args.clear or not text.strip():
        session.system = None
        print("System prompt cleared.")
        return
    session.system = text
    print(f"System prompt set ({views.counted(len(text), 'character')}).")


def config(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    settings = session.settings
    for word in args.assignments:
        name, value = parse_assignment("%chat config", word)
        settings = _configure(settings, name, value)
    if args.assignments:
        session.settings = settings
    for name, value in settings.describe().items():
        _say(f"{name:>16}: {value}")


def _configure(settings: Settings, name: str, value: Any) -> Settings:
    """``settings`` with one ``%chat config`` assignment applied."""
    try:
        if name == "base_url":
            return settings.with_base_url(str(value), source="%chat config")
        if name in _SETTING_FIELDS:
            updated = replace(settings, **{name: value})
            if name == "prices" and updated.prices is not None:
                from .prices import PriceFile

                PriceFile().table(updated.prices)  # a bad file is one line now, not at the ask
            return updated
    except ConfigError as error:
        raise usage_error(error) from None
    if name in _REQUEST_FIELDS or name.startswith("param."):
        field = name.removeprefix("param.")
        cleared = value is None or value == ""
        updated = settings.with_params(**{field: None if cleared else value})
        ChatRequest.check_params(updated.params)
        return updated
    raise usage_error(
        f"%chat config: unknown setting {name!r}; settings are "
        f"{', '.join(_SETTING_FIELDS + _REQUEST_FIELDS)}; "
        f"send another body field with param.{name}=VALUE"
    )


def key(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    url = session.settings.base_url
    try:
        entered = getpass.getpass(f"API key for {url}: ")
    except StdinNotImplementedError:
        raise UsageError(
            "This frontend cannot ask for input; set NBCHAT_API_KEY in the environment"
        ) from None
    except (EOFError, KeyboardInterrupt):
        raise UsageError("No key entered; nothing changed") from None
    entered = entered.strip()
    if not entered:
        raise UsageError("No key entered; nothing changed")
    session.settings = session.settings.with_key(entered, source="%chat key")
    print(f"Key {session.settings.describe()['api_key']} will be sent to {url} only.")


def usage(ctx: CommandContext, args: argparse.Namespace) -> None:
    from .usage_report import usage_lines

    for line in usage_lines(ctx.session):
        _say(line)


def export_to(ctx: CommandContext, args: argparse.Namespace) -> None:
    path = Path(args.path).expanduser()
    try:
        written = export.write(ctx.session, path, force=args.force)
    except ValueError as error:
        raise usage_error(str(error)) from None
    except FileExistsError:
        raise usage_error(
            f"%chat export: {path} exists; nothing was written (add --force to replace it)"
        ) from None
    except OSError as error:
        raise usage_error(f"Cannot write {path}: {error.strerror or error}") from None
    _say(f"Wrote {written} turns to {path}")


HANDLERS: dict[str, Handler] = {
    "history": history,
    "reset": reset,
    "panel": show_panel,
    "code": code,
    "context": context,
    "explain": explain,
    "model": model,
    "models": models,
    "system": system,
    "config": config,
    "key": key,
    "usage": usage,
    "export": export_to,
    "conversations": conversation_commands.conversations_list,
    "open": conversation_commands.open_id,
    "import": conversation_commands.import_file,
}
"""The handler of each ``%chat`` command (a test checks it matches the parser's commands)."""
