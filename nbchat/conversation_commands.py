"""``%chat conversations``, ``%chat open``, ``%chat import`` and ``%chat history --sent``.

The commands that look beyond the current conversation, kept apart from
:mod:`nbchat.actions` (which registers them) because they share one vocabulary: a
conversation's id, how to come back to the one left (``%chat open ID``), and what the next
request carries. What they do is :mod:`nbchat.conversations`'; this module only words it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import conversations, importer, views
from .catalog import Summary
from .options import shown
from .secrets import mask_secrets

if TYPE_CHECKING:
    from .actions import CommandContext

__all__ = ["back_hint", "conversations_list", "import_file", "open_id", "sent"]

_PREVIEW = 48  # characters of a conversation's first prompt in the list


def _say(text: str) -> None:
    print(shown(mask_secrets(text)))


def back_hint(left: int | None) -> str:
    """How to return to the conversation left ("" when there is none to return to)."""
    return f"; `%chat open {left}` brings it back" if left is not None else ""


def _preview(text: str) -> str:
    flat = " ".join(mask_secrets(text).split())
    return flat if len(flat) <= _PREVIEW else flat[: _PREVIEW - 1] + "…"


def _line(summary: Summary, *, current: bool, where: str = "") -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.last_active))
    turns = views.counted(summary.turns, "turn")
    notes = []
    if summary.parent is not None:
        notes.append(f"{'imported' if summary.origin == 'import' else 'copy of'} {summary.parent}")
    elif summary.origin == "import":
        notes.append("imported")
    note = f"  ({', '.join(notes)})" if notes else ""
    place = f"  in {where}" if where else ""
    first = _preview(summary.first_prompt) or "(no turns yet)"
    model = f"  {summary.model}" if summary.model else ""
    mark = "*" if current else " "
    return f"{mark} {summary.id:>4}  {when}  {turns:>9}{model}  {first}{note}{place}"


def conversations_list(ctx: CommandContext, args: argparse.Namespace) -> None:
    listing = conversations.listing(ctx.session)
    shown_mine = [s for s in listing.mine if s.turns or s.id == listing.current]
    if shown_mine:
        _say(f"Conversations of {listing.notebook_key}, most recent first (* the current one):")
        for summary in shown_mine:
            _say(_line(summary, current=summary.id == listing.current))
    else:
        _say(f"{listing.notebook_key} has no stored conversation yet.")
    if listing.elsewhere:
        _say("Recent in other notebooks (opening one copies it here):")
        for summary in listing.elsewhere:
            _say(_line(summary, current=False, where=summary.notebook_key))
    if len(shown_mine) > 1 or listing.elsewhere:
        _say("`%chat open ID` goes on with one.")


def open_id(ctx: CommandContext, args: argparse.Namespace) -> None:
    session = ctx.session
    if args.id == session.history.conversation_id and len(session.history):
        _say(f"Already in conversation {args.id} ({views.counted(len(session.history), 'turn')}).")
        return
    switched = conversations.open_conversation(session, args.id)
    turns = views.counted(len(switched.conversation.turns), "turn")
    source = switched.copied_from
    if source is None:
        _say(f"Continuing conversation {args.id} ({turns}){back_hint(switched.left)}.")
        return
    _say(
        f"Copied conversation {source.id} of {source.notebook_key} ({turns}) into this notebook"
        f" as conversation {switched.conversation.id}; the original stays with"
        f" {source.notebook_key}{back_hint(switched.left)}."
    )


def import_file(ctx: CommandContext, args: argparse.Namespace) -> None:
    path = Path(args.path).expanduser()
    imported = importer.read(path)
    switched = conversations.import_conversation(ctx.session, imported.system, imported.turns)
    kept = len(switched.conversation.turns)
    skipped = f" ({switched.skipped} left out: not valid Unicode)" if switched.skipped else ""
    _say(
        f"Imported {views.counted(kept, 'turn')} from {path.name} as conversation"
        f" {switched.conversation.id}{skipped}{back_hint(switched.left)}."
    )


def sent(ctx: CommandContext) -> None:
    """``%chat history --sent``: the messages a request from a new cell carries, before its
    prompt, exactly as built (whatever the session leaves out is left out here too)."""
    session = ctx.session
    request = session.build_request("", cell_id=None)
    messages = request.messages[:-1]  # the last one is the new cell's prompt
    left_out = sum(turn.stale for turn in session.history)
    note = f"; {views.counted(left_out, 'stale turn')} left out" if left_out else ""
    _say(
        f"The next request from a new cell carries {views.counted(len(messages), 'message')}"
        f" before its prompt (model {request.model}{note}):"
    )
    for number, message in enumerate(messages, start=1):
        extra = f" ({message['tool_call_id']})" if message.get("tool_call_id") else ""
        _say(f"── {number}. {message['role']}{extra}")
        content = message.get("content")
        if content:
            _say(str(content))
        if message.get("tool_calls"):
            _say(f"tool_calls: {json.dumps(message['tool_calls'], ensure_ascii=False)}")
