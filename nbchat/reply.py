"""A reply's life, as every face reads it: what was asked, what has arrived, how it ended.

A :class:`Reply` is made when a question is asked and handed to observers on every change, so
a cell, the terminal and any number of panels follow the same object. It moves through
``pending`` → ``streaming`` → one of ``done``, ``interrupted`` or ``failed`` by its public
methods (:meth:`~Reply.receive`, :meth:`~Reply.end`): the session calls them while a reply
streams, and tests or notebooks build a finished reply the same way with
:meth:`Reply.finished`. Once the session keeps the reply in the conversation, ``turn`` names
the :class:`~nbchat.history.Turn` it became.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .accumulator import StreamAccumulator
from .errors import NbChatError
from .prompt import Prompt
from .protocol import ChatResult, Usage

if TYPE_CHECKING:
    from .fingerprint import RequestKey
    from .history import Turn

__all__ = ["ENDED", "Reply", "ReplyStatus"]

ReplyStatus = Literal["pending", "streaming", "done", "failed", "interrupted"]
ENDED: frozenset[str] = frozenset({"done", "failed", "interrupted"})
"""The statuses a reply ends in."""


class Reply:
    """One reply, from the question to its end.

    Reading ``text`` or ``result`` joins what arrived so far, so an observer that redraws at a
    bounded rate should read them when it redraws, not on every change; :meth:`text_pieces`
    is cheap to follow per chunk.
    """

    def __init__(
        self,
        prompt: Prompt | str,
        *,
        model: str,
        cell_id: str | None = None,
        choices_requested: int = 1,
    ) -> None:
        self.message = prompt if isinstance(prompt, Prompt) else Prompt(prompt)
        """The user message as sent, with the summaries it carries."""
        self.model = model
        """The model asked for (the server may name a more precise one in ``result.model``)."""
        self.cell_id = cell_id
        """The notebook cell that asked, when the frontend names cells."""
        self.choices_requested = choices_requested
        self.status: ReplyStatus = "pending"
        self.error: NbChatError | None = None
        """Why the reply failed, when it did."""
        self.started = time.monotonic()
        self.ended: float | None = None
        self.chunks = 0
        """Stream chunks received so far."""
        self.turn: Turn | None = None
        """The turn of the conversation this reply became, once it is kept."""
        self.turns_left_out = 0
        """Earlier turns the context budget left out of the request (set by the session)."""
        self.estimated_prompt_tokens: int | None = None
        """The offline estimate of the tokens sent, until the server's usage says (session)."""
        self.cost: float | None = None
        """Dollars the reply cost, when the price table prices its model (session)."""
        self.cost_estimated = False
        """``cost`` comes from estimated tokens: the server reported no usage."""
        self.stale_left_out = 0
        """Stale turns before this one that its request left out (see ``Turn.stale``)."""
        self.request_key: RequestKey | None = None
        """The identity of the request it answers (its fingerprint), when the session sent one."""
        self.replayed = False
        """It was answered from a recording, not by the server (:mod:`nbchat.replay`)."""
        self._accumulator = StreamAccumulator()
        self._final: ChatResult | None = None

    @classmethod
    def finished(
        cls,
        prompt: Prompt | str,
        texts: str | Sequence[str],
        *,
        model: str = "model",
        status: ReplyStatus = "done",
        reasoning: str = "",
        usage: Mapping[str, Any] | None = None,
        finish_reason: str | None = "stop",
    ) -> Reply:
        """A reply that has already ended with ``texts`` (one per choice): for tests, for
        notebooks that show a saved reply, and for anything else that did not stream it."""
        reply = cls(prompt, model=model)
        choices = [texts] if isinstance(texts, str) else list(texts)
        for index, text in enumerate(choices):
            delta: dict[str, Any] = {"content": text}
            if reasoning and index == 0:
                delta["reasoning_content"] = reasoning
            reply.receive({"choices": [{"index": index, "delta": delta}]})
            if finish_reason is not None:
                reply.receive(
                    {"choices": [{"index": index, "delta": {}, "finish_reason": finish_reason}]}
                )
        if usage is not None:
            reply.receive({"choices": [], "usage": dict(usage)})
        reply.end(status)
        return reply

    def __repr__(self) -> str:
        return (
            f"<Reply {self.status} model={self.model!r} chars={len(self.text)} "
            f"cell_id={self.cell_id!r}>"
        )

    # -- the life of a reply ----------------------------------------------------------------

    def receive(self, chunk: Mapping[str, Any]) -> None:
        """Fold one ``chat.completion.chunk`` into the reply; it is now streaming."""
        self._accumulator.add(chunk)
        self.chunks += 1
        self.status = "streaming"

    def end(
        self,
        status: ReplyStatus,
        *,
        result: ChatResult | None = None,
        error: NbChatError | None = None,
    ) -> None:
        """End the reply: ``result`` is the whole reply when the caller has it (a complete
        stream, a non-streamed answer, a stream error's partial), else what was received."""
        if status not in ENDED:
            raise ValueError(f"a reply ends as done, failed or interrupted, not {status!r}")
        self._final = result if result is not None else self._accumulator.result(done=False)
        self.status = status
        self.error = error
        self.ended = time.monotonic()

    # -- what observers read ----------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """The user message exactly as sent."""
        return self.message.text

    @property
    def result(self) -> ChatResult:
        """The reply as assembled so far (final once the reply has ended)."""
        return self._final or self._accumulator.result(done=False)

    @property
    def text(self) -> str:
        """The first choice's Markdown so far."""
        if self._final is not None:
            return self._final.text
        return self._accumulator.text(0)

    def text_pieces(self) -> Sequence[str]:
        """The first choice's text as the pieces received so far (cheap to follow per chunk)."""
        if self._final is not None:
            return (self._final.text,)
        return self._accumulator.text_pieces(0)

    def texts(self) -> list[str]:
        """Every choice's Markdown so far, in choice order; ``[""]`` before any choice."""
        if self._final is not None:
            return [choice.text for choice in self._final.choices] or [""]
        accumulator = self._accumulator
        return [accumulator.text(i) for i in accumulator.choice_indexes] or [""]

    def reasonings(self) -> list[str]:
        """Every choice's reasoning so far ("" where the model showed none)."""
        if self._final is not None:
            return [choice.reasoning for choice in self._final.choices] or [""]
        accumulator = self._accumulator
        return [accumulator.reasoning(i) for i in accumulator.choice_indexes] or [""]

    @property
    def usage(self) -> Usage | None:
        return self.result.usage

    @property
    def elapsed(self) -> float:
        """Seconds from the request to the end of the reply (or until now)."""
        return (self.ended or time.monotonic()) - self.started

    @property
    def answered_model(self) -> str:
        """The model the server says answered, else the one asked for."""
        return self.result.model or self.model
