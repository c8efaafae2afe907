"""The assembly of a streamed reply: chunks in, a :class:`~nbchat.protocol.ChatResult` out.

``StreamAccumulator`` folds ``chat.completion.chunk`` objects into a ``ChatResult``. Providers
differ in many small ways and it tolerates all the ones seen in the wild: choices interleaved by
``index`` (n > 1), reasoning as ``reasoning_content`` (DeepSeek, xAI, Qwen), ``reasoning``
(Ollama, OpenRouter) or typed ``thinking`` parts (Mistral), ``usage`` on every chunk (keep the
last, never add), a final usage-only chunk with empty ``choices``, chunks without ``delta``, tool
calls with or without an ``index``, in-band ``error`` objects, and fields nobody has heard of.
JSON may spell a character outside the BMP as a surrogate pair and a server may cut the pair
between two chunks (``"\\ud83d"`` then ``"\\ude00"``), so the halves are joined here: every
text comes out valid Unicode (SQLite cannot store a lone surrogate), a truly lone one as U+FFFD.

A whole non-streamed body is read the same way (:func:`completion_result`), so a streamed and a
non-streamed reply cannot come out different.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .protocol import ChatResult, Choice, ToolCall, Usage

__all__ = ["StreamAccumulator", "completion_result"]


def completion_result(body: Mapping[str, Any]) -> ChatResult:
    """Read a non-streamed ``chat.completion`` object."""
    accumulator = StreamAccumulator()
    accumulator.add_completion(body)
    return accumulator.result(done=True)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid(text: str) -> str:
    """``text`` with its surrogate pairs joined and each lone surrogate made U+FFFD."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Text:
    """The pieces of one growing text, each valid Unicode: a piece ending in the first half of
    a surrogate pair keeps that half back until the next piece brings the second."""

    __slots__ = ("held", "pieces")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.held = ""

    def append(self, piece: str) -> None:
        if self.held:
            piece, self.held = self.held + piece, ""
        if piece and "\ud800" <= piece[-1] <= "\udbff":
            piece, self.held = piece[:-1], piece[-1]
        if piece:
            self.pieces.append(_valid(piece))

    def join(self) -> str:
        text = "".join(self.pieces)
        return f"{text}\ufffd" if self.held else text  # a first half that no second followed


class _ChoiceParts:
    """The growing pieces of one choice; joined only when someone asks."""

    __slots__ = ("finish_reason", "reasoning", "refusal", "text", "tool_calls")

    def __init__(self) -> None:
        self.text = _Text()
        self.reasoning = _Text()
        self.refusal = _Text()
        self.finish_reason: str | None = None
        self.tool_calls: list[list[Any]] = []  # [index, id, name, _Text of arguments]

    def add_content(self, content: Any) -> None:
        if isinstance(content, str):
            self.text.append(content)
            return
        if not isinstance(content, list):
            return
        for part in content:  # typed parts, e.g. Mistral's thinking/text
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                self.text.append(part["text"])
            elif kind == "thinking":
                thinking = part.get("thinking")
                if isinstance(thinking, str):
                    self.reasoning.append(thinking)
                elif isinstance(thinking, list):
                    for piece in thinking:
                        if isinstance(piece, dict) and isinstance(piece.get("text"), str):
                            self.reasoning.append(piece["text"])

    def add_tool_calls(self, calls: Any) -> None:
        if not isinstance(calls, list):
            return
        for call in calls:
            if not isinstance(call, dict):
                continue
            function = call.get("function") or {}
            index, call_id = call.get("index"), call.get("id")
            name = function.get("name") if isinstance(function, dict) else None
            slot = None
            if index is not None:
                slot = next((s for s in self.tool_calls if s[0] == index), None)
            elif self.tool_calls and (call_id == self.tool_calls[-1][1] if call_id else not name):
                # No index (Mistral): a fragment continues the last call unless it starts one.
                slot = self.tool_calls[-1]
            if slot is None:
                slot = [index, None, "", _Text()]
                self.tool_calls.append(slot)
            if call_id:
                slot[1] = call_id
            if isinstance(name, str) and name != slot[2]:
                slot[2] += name  # some servers repeat the whole name in every fragment
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                slot[3].append(arguments)

    def freeze(self, index: int) -> Choice:
        return Choice(
            index=index,
            text=self.text.join(),
            reasoning=self.reasoning.join(),
            refusal=self.refusal.join(),
            finish_reason=self.finish_reason,
            tool_calls=tuple(ToolCall(s[1], _valid(s[2]), s[3].join()) for s in self.tool_calls),
        )


def _text(value: object) -> str | None:
    """``value`` when it is a non-empty string, else None."""
    return value if isinstance(value, str) and value else None


class StreamAccumulator:
    """Folds ``chat.completion.chunk`` objects into a :class:`ChatResult`.

    ``add`` is on the hot path of every stream, so it does the least it can: it appends text
    pieces and joins them only when :meth:`result` or :meth:`text` is called.
    """

    __slots__ = (
        "_choices",
        "created",
        "errors",
        "id",
        "model",
        "system_fingerprint",
        "usage",
        "warnings",
    )

    def __init__(self) -> None:
        self._choices: dict[int, _ChoiceParts] = {}
        self.id: str | None = None
        self.model: str | None = None
        self.created: int | None = None
        self.system_fingerprint: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.errors: list[Mapping[str, Any]] = []
        self.warnings: list[str] = []

    def add(self, chunk: Mapping[str, Any]) -> None:
        """Take one parsed chunk. Unknown fields are ignored, and so is a known field of the wrong
        type (a ``model`` that is a list, ``usage`` that is not an object): nothing here raises on
        odd input, and nothing of the wrong type reaches a reply or the history."""
        model = _text(chunk.get("model"))
        if self.id is None and _text(chunk.get("id")):
            self.id = chunk["id"]
            self.model = model or self.model
            created = chunk.get("created")
            self.created = created if isinstance(created, int) else None
        elif self.model is None and model:
            self.model = model
        if self.system_fingerprint is None and _text(chunk.get("system_fingerprint")):
            self.system_fingerprint = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if usage and isinstance(usage, Mapping):
            self.usage = usage
        error = chunk.get("error")
        if error:
            self.errors.append(error if isinstance(error, dict) else {"message": str(error)})
        warnings = chunk.get("warnings")
        if warnings:
            self._add_warnings(warnings)
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index") or 0
            if not isinstance(index, int):
                index = int(index) if isinstance(index, str) and index.isdecimal() else 0
            parts = self._choices.get(index)
            if parts is None:
                parts = self._choices[index] = _ChoiceParts()
            delta = choice.get("delta")
            if delta and isinstance(delta, dict):
                content = delta.get("content")
                if content:
                    parts.add_content(content)
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
                if reasoning and isinstance(reasoning, str):
                    parts.reasoning.append(reasoning)
                refusal = delta.get("refusal")
                if refusal and isinstance(refusal, str):
                    parts.refusal.append(refusal)
                tool_calls = delta.get("tool_calls")
                if tool_calls:
                    parts.add_tool_calls(tool_calls)
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                parts.finish_reason = finish_reason

    def add_completion(self, body: Mapping[str, Any]) -> None:
        """Take a whole non-streamed ``chat.completion``: its messages become one delta each."""
        choices = [
            {
                "index": c.get("index", i),
                "delta": c.get("message") or {},
                "finish_reason": c.get("finish_reason"),
            }
            for i, c in enumerate(body.get("choices") or ())
            if isinstance(c, dict)
        ]
        self.add({**body, "choices": choices})

    def _add_warnings(self, warnings: Any) -> None:
        for warning in warnings if isinstance(warnings, list) else [warnings]:
            if isinstance(warning, dict):
                message = warning.get("message") or warning.get("type")
                if message:
                    self.warnings.append(str(message))
            elif warning:
                self.warnings.append(str(warning))

    @property
    def finished(self) -> bool:
        """Every choice seen so far has a finish_reason (and there is at least one)."""
        return bool(self._choices) and all(c.finish_reason for c in self._choices.values())

    def text(self, index: int = 0) -> str:
        """The answer of one choice so far."""
        parts = self._choices.get(index)
        return parts.text.join() if parts else ""

    def text_pieces(self, index: int = 0) -> Sequence[str]:
        """The answer of one choice as the pieces that arrived, not joined: a reader that
        follows a stream takes the pieces past the ones it has seen, without copying the rest."""
        parts = self._choices.get(index)
        return parts.text.pieces if parts else ()

    def reasoning(self, index: int = 0) -> str:
        """The reasoning of one choice so far."""
        parts = self._choices.get(index)
        return parts.reasoning.join() if parts else ""

    @property
    def choice_indexes(self) -> list[int]:
        return sorted(self._choices)

    def result(self, *, done: bool) -> ChatResult:
        """Freeze what has arrived. ``done``: the stream ended with ``[DONE]`` (or a full body)."""
        return ChatResult(
            choices=tuple(self._choices[i].freeze(i) for i in sorted(self._choices)),
            usage=Usage.from_json(self.usage) if isinstance(self.usage, Mapping) else None,
            id=self.id,
            model=self.model,
            created=self.created,
            system_fingerprint=self.system_fingerprint,
            complete=(done or self.finished) and not self.errors,
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
        )
