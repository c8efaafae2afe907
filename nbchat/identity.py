"""Which stored conversation a notebook is when its path is new to the store: found by cell ids.

The store keys conversations by the notebook's path, but a path changes (JupyterLab asks to
rename ``Untitled.ipynb`` on the first save) while the cells' ids travel with the ``.ipynb``.
So when a kernel starts on a path the store does not know, the ids of the notebook's cells
(those of the saved file, else the first ``%%chat`` cell's) are looked up, one indexed query,
and where they belong to conversations of another path:

* **renamed or moved**: that other path no longer holds these cells (no file there, or a file
  with none of them, like a new ``Untitled.ipynb``): its conversations move to the new path,
  and the most recent one continues;
* **copied**: the file at that path still holds these cells (both notebooks are alive): the
  copy gets its own new conversation, started as a copy of the original's turns with the
  original recorded as its parent; the original keeps its own, and nothing is merged;
* **cannot tell** (the other file cannot be read): treated as a copy, which takes nothing away
  from the original.

Only notebook paths take part: a ``kernel:`` or ``process:`` key names a kernel, not a
notebook, and neither gives nor receives a conversation this way. Conversations imported from
a file are never followed (:func:`nbchat.catalog.holders`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from .catalog import copy_conversation, holders, read_conversation, rekey
from .schema import latest_conversation
from .store import Conversation, HistoryStore

__all__ = ["Followed", "follow", "is_notebook_path", "notebook_file", "saved_cell_ids"]

MAX_NOTEBOOK_BYTES = 32 * 1024 * 1024
"""A saved notebook larger than this is not read for its cell ids (its outputs would cost
more to parse than the look-up is worth)."""


@dataclass(frozen=True, slots=True)
class Followed:
    """A conversation that followed the notebook to its new path."""

    conversation: Conversation
    """The conversation the notebook goes on with, as stored now."""
    source_key: str
    """The path it was found under."""
    copied: bool
    """The notebook is a copy: ``conversation`` is a new copy of the source's."""

    def message(self, notebook_key: str) -> str:
        """The one line that says what happened."""
        name = _short_name(self.source_key, notebook_key)
        turns = len(self.conversation.turns)
        counted = f"{turns} turn{'' if turns == 1 else 's'}"
        if not self.copied:
            return (
                f"nbchat: continuing the conversation of {name} ({counted}), found by its cell ids"
            )
        return (
            f"nbchat: this notebook is a copy of {name} (same cell ids, both files exist): it"
            f" goes on in its own conversation {self.conversation.id}, a copy of that one's"
            f" {counted}; {name} keeps its own"
        )


def is_notebook_path(key: str) -> bool:
    """Whether a notebook key is a notebook's path (not a ``kernel:`` or ``process:`` key)."""
    return bool(key) and not key.startswith(("kernel:", "process:"))


def notebook_file(key: str, current_key: str, cwd: str | None = None) -> Path | None:
    """Where the notebook of ``key`` is saved, or None when that cannot be known.

    An absolute key is the path. A relative one (``JPY_SESSION_NAME`` relative to the server's
    root) is resolved against that root, found from this kernel's working directory, which
    Jupyter Server sets to the folder of the notebook ``current_key`` names.
    """
    path = Path(os.path.expanduser(key))
    if path.is_absolute():
        return path
    current = Path(os.path.expanduser(current_key))
    if current.is_absolute():
        return None  # the server's root is not known
    here = Path(cwd if cwd is not None else os.getcwd())
    folder = current.parent.parts
    if not folder:
        return here / path
    if here.parts[-len(folder) :] != folder:
        return None
    return Path(*here.parts[: -len(folder)]) / path


def saved_cell_ids(path: Path | None) -> list[str] | None:
    """The ids of the cells of the ``.ipynb`` at ``path``, in order; None when it cannot be
    read (no file, too large, not a notebook)."""
    if path is None:
        return None
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            return None
        with path.open("rb") as saved:
            notebook = json.load(saved)
    except (OSError, ValueError):
        return None
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        return None
    return [c["id"] for c in cells if isinstance(c, dict) and isinstance(c.get("id"), str)]


def follow(
    store: HistoryStore, notebook_key: str, cell_ids: Sequence[str], *, cwd: str | None = None
) -> Followed | None:
    """Let a known conversation follow the notebook at ``notebook_key`` by the rule above, or
    None when these cells belong to no conversation of another notebook path.

    Raises what the store raises (``sqlite3.Error``, ``OSError``); the move or copy is one
    write transaction, done only if the notebook still has no conversation of its own.
    """
    if not is_notebook_path(notebook_key) or not cell_ids:
        return None
    with store.transaction(write=False) as db:
        found = [
            (key, newest)
            for key, newest in holders(db, cell_ids)
            if key != notebook_key and is_notebook_path(key)
        ]
    if not found:
        return None
    wanted = set(cell_ids)
    gone = [key for key, _ in found if _left(key, notebook_key, wanted, cwd)]
    with store.transaction(write=True) as db:
        if latest_conversation(db, notebook_key) is not None:
            return None  # another kernel on this notebook got there first
        if gone:
            rekey(db, gone[0], notebook_key)
            latest = latest_conversation(db, notebook_key)
            moved = read_conversation(db, latest) if latest is not None else None
            return None if moved is None else Followed(moved, gone[0], copied=False)
        source_key, source_id = found[0]
        copied = copy_conversation(db, source_id, notebook_key, origin="copy")
        return Followed(copied, source_key, copied=True)


def _left(key: str, current_key: str, cell_ids: Collection[str], cwd: str | None) -> bool:
    """Whether the notebook once at ``key`` has gone from there: no file, or a readable one
    holding none of these cells. False when that cannot be told."""
    path = notebook_file(key, current_key, cwd)
    if path is None:
        return False
    if not path.exists():
        return True
    saved = saved_cell_ids(path)
    return saved is not None and not any(cell in cell_ids for cell in saved)


def _short_name(key: str, current_key: str) -> str:
    """The old path's file name, or the whole path when the name did not change (a move)."""
    name = os.path.basename(key)
    return name if name and name != os.path.basename(current_key) else key
