"""The conversation saved in the notebook: each reply's output metadata, and reading it back.

Every ``%%chat`` reply's final output (``text/markdown`` + ``text/html``) carries, under the
one key ``nbchat``, what is needed to rebuild the conversation and to replay the request.
Schema version 1::

    {"nbchat": {
        "version": 1,
        "cell_id": "…" | null,        # the cell that asked, as the frontend named it
        "prompt": "…",                # the user message exactly as sent (summaries included)
        "model": "…",                 # the model asked for
        "answered_by": "…",           # only when the server named another model
        "params": {…},                # the request parameters that were set (temperature, …)
        "host": "api.302.ai",         # the base URL's host
        "context": "<sha256>",        # digest of the messages before the prompt
        "fingerprint": "<sha256>",    # the request's identity (nbchat.fingerprint)
        "finish_reason": "stop" | …,
        "status": "done" | "interrupted" | "failed",
        "usage": {…} | null,          # token counts the server reported
        "seconds": 1.234,
        "replayed": true,             # only when answered from a recording
        "kept": false                 # only for a one-off (--no-history) question
    }}

The reply itself is not repeated: it is the output's ``text/markdown``. Nothing else is kept:
never the key, the headers or the base URL's path (the prompt is scrubbed of keys as the
history scrubs it). A later version adds fields; readers ignore those they do not know and
skip outputs whose ``version`` they do not read.

Reading back (:func:`follow_saved_notebook`), done once, when the notebook's session is first
used: the notebook's path comes from ``NBCHAT_NOTEBOOK`` (set it for ``nbconvert``/``nbclient``
runs), VS Code's ``__vsc_ipynb_file__`` or Jupyter's ``JPY_SESSION_NAME`` (absolute, or
relative to the kernel's working directory). The file is read as JSON (no nbformat needed);
its saved replies become recordings for replay (:mod:`nbchat.replay`), and, when the
history store has never seen the notebook and the frontend names its cells, the conversation
is rebuilt from them in cell order, keyed by cell id, with one line saying so. A frontend that
does not name cells (nbclient, nbconvert) runs the notebook from the top: each ``%%chat`` cell
then adds its turn again as it runs, so the conversation is not rebuilt ahead of it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .fingerprint import RequestKey
from .replay import Recording
from .secrets import mask_secrets
from .turn import Turn

if TYPE_CHECKING:
    from .reply import Reply
    from .session import ChatSession

__all__ = [
    "METADATA_KEY",
    "METADATA_VERSION",
    "SavedReply",
    "follow_saved_notebook",
    "notebook_path",
    "output_metadata",
    "read_saved_replies",
]

log = logging.getLogger("nbchat")

METADATA_KEY = "nbchat"
METADATA_VERSION = 1
_MOST_BYTES = 512 * 1024 * 1024  # a larger .ipynb is not read


def output_metadata(reply: Reply) -> dict[str, Any]:
    """The ``nbchat`` metadata of a finished reply's output (schema above)."""
    result = reply.result
    usage = result.usage
    key = reply.request_key
    prompt = reply.turn.prompt if reply.turn is not None else mask_secrets(reply.prompt)
    meta: dict[str, Any] = {
        "version": METADATA_VERSION,
        "cell_id": reply.cell_id,
        "prompt": prompt,
        "model": key.model if key is not None else reply.model,
    }
    if reply.answered_model != meta["model"]:
        meta["answered_by"] = reply.answered_model
    if key is not None:
        meta.update(
            params=dict(key.params),
            host=key.host,
            context=key.context,
            fingerprint=key.fingerprint,
        )
    meta.update(
        finish_reason=result.finish_reason,
        status=reply.status,
        usage=dict(usage.raw) if usage is not None else None,
        seconds=round(reply.elapsed, 3),
    )
    if reply.replayed:
        meta["replayed"] = True
    if reply.turn is None and reply.status == "done":
        meta["kept"] = False
    return {METADATA_KEY: meta}


@dataclass(frozen=True, slots=True)
class SavedReply:
    """One reply read back from a saved notebook."""

    cell_id: str | None
    """The id of the cell holding it, as the notebook file names it."""
    text: str
    """Its Markdown (the output's ``text/markdown``)."""
    model: str
    """The model that answered."""
    finish_reason: str | None
    status: str
    kept: bool
    """Part of the conversation (False for a ``--no-history`` question)."""
    key: RequestKey | None
    seconds: float | None = None
    """How long the reply took."""

    def turn(self) -> Turn | None:
        """The turn it was, for a conversation rebuilt from the notebook."""
        if not self.kept or self.key is None or self.status not in ("done", "interrupted"):
            return None
        return Turn(
            prompt=self.key.prompt,
            reply=self.text,
            cell_id=self.cell_id,
            status="complete" if self.status == "done" else "interrupted",
            model=self.model,
            finish_reason=self.finish_reason,
            request=self.key,
        )

    def recording(self, source: str) -> Recording | None:
        if self.key is None or self.status != "done":
            return None
        return Recording(self.key, self.text, self.model, self.finish_reason, source, self.seconds)


def notebook_path(
    user_ns: Mapping[str, object], environ: Mapping[str, str], cwd: str | None = None
) -> Path | None:
    """The saved notebook this kernel runs, if it can be found on disk.

    ``NBCHAT_NOTEBOOK`` first (an explicit choice, e.g. for ``nbconvert --execute``), then
    ``__vsc_ipynb_file__``, then ``JPY_SESSION_NAME``. A relative path is tried against the
    kernel's working directory, then by its file name alone (Jupyter's path is relative to the
    server's root, and a kernel usually runs in the notebook's own folder).
    """
    here = Path(cwd if cwd is not None else os.getcwd())
    vscode = user_ns.get("__vsc_ipynb_file__")
    candidates = [
        environ.get("NBCHAT_NOTEBOOK", ""),
        vscode if isinstance(vscode, str) else "",
        environ.get("JPY_SESSION_NAME", ""),
    ]
    for raw in candidates:
        if not raw.strip():
            continue
        path = Path(os.path.expanduser(raw.strip()))
        tries = [path] if path.is_absolute() else [here / path, here / path.name]
        for candidate in tries:
            if candidate.suffix == ".ipynb" and candidate.is_file():
                return candidate
    return None


def read_saved_replies(path: Path) -> list[SavedReply]:
    """The replies saved in the notebook at ``path``, in cell order (the last nbchat output of
    each code cell). Raises ``OSError`` or ``ValueError`` when the file cannot be read as a
    notebook; outputs that are not nbchat's, or of an unknown version, are skipped."""
    if path.stat().st_size > _MOST_BYTES:
        raise ValueError(f"larger than {_MOST_BYTES // 2**20} MiB")
    with path.open("rb") as file:
        notebook = json.load(file)
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    replies = []
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            saved = _saved_reply(cell)
            if saved is not None:
                replies.append(saved)
    return replies


def _saved_reply(cell: dict[str, Any]) -> SavedReply | None:
    outputs = cell.get("outputs")
    for output in reversed(outputs if isinstance(outputs, list) else []):
        if not isinstance(output, dict):
            continue
        metadata, data = output.get("metadata"), output.get("data")
        meta = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
        if not isinstance(meta, dict) or meta.get("version") != METADATA_VERSION:
            continue
        text = data.get("text/markdown") if isinstance(data, dict) else None
        if isinstance(text, list):  # nbformat may split a string into lines
            text = "".join(part for part in text if isinstance(part, str))
        prompt = meta.get("prompt")
        if not isinstance(text, str) or not isinstance(prompt, str):
            continue
        cell_id = cell.get("id")
        model = meta.get("answered_by") or meta.get("model")
        finish = meta.get("finish_reason")
        seconds = meta.get("seconds")
        return SavedReply(
            cell_id=cell_id if isinstance(cell_id, str) else None,
            text=text,
            model=model if isinstance(model, str) else "",
            finish_reason=finish if isinstance(finish, str) else None,
            status=str(meta.get("status", "")),
            kept=meta.get("kept") is not False,
            key=RequestKey.from_json(meta, prompt=prompt),
            seconds=_positive_seconds(seconds),
        )
    return None


def follow_saved_notebook(
    session: ChatSession,
    user_ns: Mapping[str, object],
    environ: Mapping[str, str],
    *,
    cells_named: bool,
    say: Any = print,
) -> Path | None:
    """Read the saved notebook into ``session``: its replies as recordings and, when the store
    has never seen the notebook and the frontend names cells, as the conversation (one line
    says so; a conversation emptied by ``%chat reset`` stays empty). Returns the
    path read, or None. A file that cannot be read is one warning on the ``nbchat`` logger."""
    path = notebook_path(user_ns, environ)
    if path is None:
        return None
    try:
        saved = read_saved_replies(path)
    except (OSError, ValueError) as error:
        log.warning("nbchat: the replies saved in %s cannot be read (%s)", path.name, error)
        return None
    session.recordings.add(_recordings(saved, path.name))
    history = session.history
    if cells_named and len(history) == 0 and not history.stored:
        turns = [turn for turn in (s.turn() for s in saved) if turn is not None]
        for turn in turns:
            history.commit(turn)
        if turns:
            count = f"{len(turns):,} turn{'s' if len(turns) != 1 else ''}"
            say(f"nbchat: the conversation ({count}) was rebuilt from {path.name}'s saved replies")
    return path


def _recordings(saved: Iterable[SavedReply], source: str) -> Iterable[Recording]:
    for reply in saved:
        recording = reply.recording(source)
        if recording is not None:
            yield recording


def _positive_seconds(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
