"""``%chat export``: the conversation as Markdown (to read) or JSON (to process, or to bring
back with ``%chat import``, :mod:`nbchat.importer`).

Only the conversation goes out: the system prompt, each turn's prompt and reply, model, status,
usage, its marks (``stale``, ``replayed``) and what the history keeps
with it (attachments' spans, refusal, tool calls, finish reason). Settings and the key never
do. The JSON names its format and version (:data:`FORMAT`, :data:`VERSION`) so that an import
can tell an nbchat export from any other JSON. The file is as private as the history it comes from
(mode 0o600), and an existing file is replaced only when asked (``force``): a mistyped path
must not destroy a notebook or an earlier export.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .session import ChatSession

__all__ = ["FORMAT", "VERSION", "to_json", "to_markdown", "write"]

FORMAT = "nbchat.conversation"
"""The ``format`` field of a JSON export."""
VERSION = 1
"""The ``version`` field of a JSON export: an import refuses a larger one."""


def to_markdown(session: ChatSession) -> str:
    """A readable transcript: each turn's question and answer under headings."""
    lines = ["# Conversation", ""]
    if session.system:
        lines += ["## System", "", session.system, ""]
    for number, turn in enumerate(session.history, start=1):
        lines += [f"## {number}. You", "", turn.prompt, ""]
        marks = ["interrupted"] if turn.status == "interrupted" else []
        marks += ["stale"] if turn.stale else []
        marks += ["replayed"] if turn.replayed else []
        note = f" ({', '.join(marks)})" if marks else ""
        lines += [f"## {number}. {turn.model or 'Assistant'}{note}", "", turn.reply, ""]
    return "\n".join(lines)


def to_json(session: ChatSession) -> dict[str, Any]:
    """The conversation as data: the messages an API call would carry (stale turns are left
    out of those, as of requests), plus every turn with its details and marks."""
    messages: list[dict[str, Any]] = []
    if session.system:
        messages.append({"role": "system", "content": session.system})
    turns = []
    for turn in session.history:
        if not turn.stale:
            messages.extend(turn.messages())
        entry: dict[str, Any] = {
            "cell_id": turn.cell_id,
            "prompt": turn.prompt,
            "reply": turn.reply,
            "status": turn.status,
            "model": turn.model,
            "usage": dict(turn.usage) if turn.usage else None,
            "created": turn.created,
            "stale": turn.stale,
        }
        if turn.replayed:
            entry["replayed"] = True
        if turn.attachments:
            entry["attachments"] = [a.to_json() for a in turn.attachments]
        if turn.refusal:
            entry["refusal"] = turn.refusal
        if turn.tool_calls:
            entry["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls
            ]
        if turn.finish_reason is not None:
            entry["finish_reason"] = turn.finish_reason
        turns.append(entry)
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "system": session.system,
        "messages": messages,
        "turns": turns,
    }


def write(session: ChatSession, path: Path, *, force: bool = False) -> int:
    """Write the conversation to ``path`` (``.md`` or ``.json``); returns the number of turns.

    Raises ``FileExistsError`` when ``path`` exists, unless ``force``.
    """
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        text = to_markdown(session)
    elif suffix == ".json":
        text = json.dumps(to_json(session), ensure_ascii=False, indent=2) + "\n"
    else:
        raise ValueError(f"%chat export writes .md or .json files, not {path.name!r}")
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)  # O_EXCL: no file, not even a symlink, is overwritten
    with open(fd, "w", encoding="utf-8") as out:
        if hasattr(os, "fchmod"):  # an overwritten file keeps its mode otherwise
            os.fchmod(fd, 0o600)
        out.write(text)
    return len(session.history)
