"""``%chat import``: a JSON export read back as turns, checked before anything changes.

The inverse of :func:`nbchat.export.to_json`. A file is taken only whole: any field of the wrong
type, in any turn, refuses the file with one line naming the first one, and the conversation
the session is in stays as it was. A file with another ``format`` (or none, unless it has the
shape of an export from before formats were named) is not an nbchat export; a larger
``version`` was written by a newer nbchat. The ``messages`` list of an export is what a request
would have carried; the turns say more, so only they are read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConversationError
from .export import FORMAT, VERSION
from .prompt import Attachment
from .protocol import ToolCall
from .turn import Turn

__all__ = ["MAX_IMPORT_BYTES", "Imported", "read"]

MAX_IMPORT_BYTES = 256 * 1024 * 1024
"""A larger file is refused before it is read."""

_OPTIONAL_MARKS = frozenset(f.name for f in dataclasses.fields(Turn)) & {"replayed"}
"""Marks a Turn of this version can carry besides ``stale``."""


@dataclass(frozen=True, slots=True)
class Imported:
    """What a file holds: the system prompt and the turns, in order."""

    system: str | None
    turns: tuple[Turn, ...]


class _Refused(ValueError):
    """Why the file is not taken (the text goes into the one-line error)."""


def read(path: Path) -> Imported:
    """The conversation in the export at ``path``; :class:`ConversationError` (one line,
    nothing changed) when it cannot be read or is not an nbchat export."""
    name = path.name or str(path)
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise _Refused(f"it is larger than {MAX_IMPORT_BYTES // 2**20} MiB")
        with path.open("rb") as source:
            data = json.load(source)
        return _conversation(data)
    except FileNotFoundError:
        raise ConversationError(f"%chat import: there is no file {path}") from None
    except OSError as error:
        raise ConversationError(f"%chat import: cannot read {path}: {error.strerror}") from None
    except (ValueError, RecursionError) as error:
        detail = error.args[0] if isinstance(error, _Refused) else "it is not JSON"
        raise ConversationError(
            f"%chat import: {name} is not an nbchat export: {detail}",
            hint="nothing changed",
        ) from None


def _refuse(message: str) -> _Refused:
    return _Refused(message)


def _conversation(data: object) -> Imported:
    if not isinstance(data, dict):
        raise _refuse("it is not a JSON object")
    declared = data.get("format")
    if declared is None:
        if not isinstance(data.get("messages"), list) or "exported" not in data:
            raise _refuse("it has no format field")
    elif declared != FORMAT:
        raise _refuse(f"its format is {str(declared)[:40]!r}, not {FORMAT!r}")
    version = data.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _refuse("its version is not a whole number")
    if version > VERSION:
        raise _refuse(f"it is version {version}, written by a newer nbchat (this one reads 1)")
    system = data.get("system")
    if system is not None and not isinstance(system, str):
        raise _refuse("its system prompt is not text")
    raw_turns = data.get("turns")
    if not isinstance(raw_turns, list):
        raise _refuse("it has no list of turns")
    turns = []
    for number, raw in enumerate(raw_turns, start=1):
        try:
            turns.append(_turn(raw))
        except _Refused as why:
            raise _refuse(f"turn {number} {why.args[0]}") from None
    return Imported(system or None, tuple(turns))


def _turn(raw: object) -> Turn:
    if not isinstance(raw, dict):
        raise _refuse("is not an object")
    fields: dict[str, Any] = {
        "prompt": _text(raw, "prompt", required=True),
        "reply": _text(raw, "reply", required=True),
        "model": _text(raw, "model"),
        "refusal": _text(raw, "refusal"),
    }
    cell_id = raw.get("cell_id")
    if cell_id is not None and not isinstance(cell_id, str):
        raise _refuse("has a cell_id that is not text")
    fields["cell_id"] = cell_id
    status = raw.get("status", "complete")
    if status not in ("complete", "interrupted"):
        raise _refuse("has a status that is neither complete nor interrupted")
    fields["status"] = status
    created = raw.get("created", time.time())
    if not _number(created):
        raise _refuse("has a created time that is not a number")
    fields["created"] = float(created)
    fields["usage"] = _usage(raw.get("usage"))
    finish = raw.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise _refuse("has a finish_reason that is not text")
    fields["finish_reason"] = finish
    fields["tool_calls"] = _tool_calls(raw.get("tool_calls", []))
    fields["attachments"] = _attachments(raw.get("attachments", []))
    for mark in ("stale", *sorted(_OPTIONAL_MARKS)):
        value = raw.get(mark, False)
        if not isinstance(value, bool):
            raise _refuse(f"has a {mark} mark that is not true or false")
        fields[mark] = value
    try:
        return Turn(**fields)
    except (ValueError, TypeError) as error:
        raise _refuse(f"does not fit: {error}") from None


def _text(raw: Mapping[str, object], name: str, *, required: bool = False) -> str:
    value = raw.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _refuse(f"has no {name} text" if value is None else f"has a {name} that is not text")
    return value


def _number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _usage(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(count, int) and not isinstance(count, bool) for count in value.values()
    ):
        raise _refuse("has usage that is not token counts")
    return {str(name): count for name, count in value.items()}


def _tool_calls(value: object) -> tuple[ToolCall, ...]:
    if not isinstance(value, list):
        raise _refuse("has tool_calls that are not a list")
    calls = []
    for call in value:
        if not (
            isinstance(call, dict)
            and isinstance(call.get("name"), str)
            and isinstance(call.get("arguments", ""), str)
            and (call.get("id") is None or isinstance(call.get("id"), str))
        ):
            raise _refuse("has a tool call without a name and text arguments")
        calls.append(ToolCall(call.get("id"), call["name"], call.get("arguments", "")))
    return tuple(calls)


def _attachments(value: object) -> tuple[Attachment, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _refuse("has attachments that are not a list of objects")
    try:
        return tuple(Attachment.from_json(item) for item in value)
    except (ValueError, TypeError, KeyError):
        raise _refuse("has an attachment that is not one") from None
