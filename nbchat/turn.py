"""One exchange of a conversation, as the history keeps it and the store writes it.

A module of its own so that :mod:`nbchat.history` (the conversation in memory) and
:mod:`nbchat.store` (the file) share the one definition, and the store never has to import the
history it serves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from .fingerprint import RequestKey
from .images import ImagePart, user_content
from .prompt import Attachment
from .protocol import ToolCall

__all__ = ["TOOLS_NOT_RUN", "Turn", "TurnStatus", "spans_fit"]

TOOLS_NOT_RUN = (
    "Not run: nbchat does not run tools in the notebook yet. Answer without this tool's result."
)
"""What the next request tells the model for each tool call it made: a request that replays an
assistant message with ``tool_calls`` must answer each call, or servers refuse it."""

TurnStatus = Literal["complete", "interrupted"]
_STATUSES: frozenset[str] = frozenset(get_args(TurnStatus))


@dataclass(frozen=True, slots=True)
class Turn:
    """One exchange: what the user sent and what came back, tied to the cell that asked."""

    prompt: str
    """The user message exactly as sent, so that the next request repeats it word for word."""
    reply: str
    """The assistant's text (first choice); what had arrived, if the reply was interrupted."""
    cell_id: str | None = None
    """The notebook cell that asked; None in terminal IPython, where turns only append."""
    status: TurnStatus = "complete"
    """``interrupted`` when the reply was stopped: its partial text is kept, and marked."""
    model: str = ""
    """The model that answered, for the record."""
    usage: Mapping[str, int] | None = field(default=None, hash=False)
    """Token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``) when known.

    Kept read-only, and only the whole-number entries: nested details are dropped.
    """
    created: float = field(default_factory=time.time)
    """When the turn was made, in seconds since the epoch."""
    attachments: tuple[Attachment, ...] = ()
    """Where each dataframe or array summary sits in :attr:`prompt`, in order, so that a
    transcript can fold them without parsing the prompt back. Checked by :func:`spans_fit`."""
    refusal: str = ""
    """The model's refusal, when it refused instead of answering."""
    tool_calls: tuple[ToolCall, ...] = ()
    """The functions the model asked to call, with their arguments as JSON text."""
    finish_reason: str | None = None
    """Why the reply ended, as the server said (``stop``, ``length``, ``tool_calls``, …)."""
    stale: bool = False
    """Answered from an earlier cell's old text: that cell was re-run with a new prompt since.
    A stale turn is left out of requests until its own cell is run again."""
    request: RequestKey | None = field(default=None, hash=False)
    """The request this turn answered, by its identity: what replay matches."""
    replayed: bool = False
    """The reply came from a recording, not from the server."""
    images: tuple[ImagePart, ...] = ()
    """The images sent after the prompt's text, kept so that later requests send them again
    (each with its ``estimated_tokens``, for a budget)."""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be 'complete' or 'interrupted', not {self.status!r}")
        if self.usage is not None:
            counts = {
                str(name): value
                for name, value in self.usage.items()
                if isinstance(value, int) and not isinstance(value, bool)
            }
            object.__setattr__(self, "usage", MappingProxyType(counts) if counts else None)
        object.__setattr__(self, "attachments", tuple(self.attachments))
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        object.__setattr__(self, "images", tuple(self.images))
        if not spans_fit(self.prompt, self.attachments):
            raise ValueError(
                f"attachments must lie in order inside the prompt of {len(self.prompt)}"
                f" characters, not {[(a.start, a.end) for a in self.attachments]}"
            )

    def messages(self) -> list[dict[str, Any]]:
        """The turn as chat messages, as a request replays it: the user's, the assistant's
        (a refusal as its text; tool calls as ``tool_calls``), then one ``tool`` message per
        call saying it was not run, which keeps the request valid for every server."""
        answer: dict[str, Any] = {"role": "assistant", "content": self.reply or self.refusal}
        question = {"role": "user", "content": user_content(self.prompt, self.images)}
        if not self.tool_calls:
            return [question, answer]
        ids = [call.id or f"call_{number}" for number, call in enumerate(self.tool_calls)]
        answer["content"] = answer["content"] or None
        answer["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments or "{}"},
            }
            for call_id, call in zip(ids, self.tool_calls, strict=True)
        ]
        results = [{"role": "tool", "tool_call_id": i, "content": TOOLS_NOT_RUN} for i in ids]
        return [question, answer, *results]


def spans_fit(text: str, attachments: Sequence[Attachment]) -> bool:
    """Whether the spans lie inside ``text``, in order and without overlapping.

    Only such spans can be folded: a transcript cuts the prompt at each span's ends in turn.
    """
    position = 0
    for attachment in attachments:
        if not position <= attachment.start <= attachment.end <= len(text):
            return False
        position = attachment.end
    return True
