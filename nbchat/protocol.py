"""The chat-completions contract: a typed request, and the assembly of a streamed reply.

``ChatRequest`` carries every field of the chat-completions schema and refuses out-of-range
values *before* anything is sent, naming the field and its range; provider features that the
schema does not name (``seed``, ``response_format``, ``reasoning_effort``…) travel in ``extra``.

``StreamAccumulator`` folds stream chunks into a ``ChatResult``. Providers differ in many small
ways and it tolerates all the ones seen in the wild: choices interleaved by ``index`` (n > 1),
reasoning as ``reasoning_content`` (DeepSeek, xAI, Qwen), ``reasoning`` (Ollama, OpenRouter) or
typed ``thinking`` parts (Mistral), ``usage`` on every chunk (keep the last, never add), a final
usage-only chunk with empty ``choices``, chunks without ``delta``, tool calls with or without an
``index``, in-band ``error`` objects, and fields nobody has heard of.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import RequestValidationError

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Choice",
    "StreamAccumulator",
    "ToolCall",
    "Usage",
]

Message = dict[str, Any]

_MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_STOP_SEQUENCES = 4


def _require_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestValidationError(
            name, f"must be a number from {low:g} to {high:g}, got {value!r}"
        )
    if math.isnan(value) or not low <= value <= high:
        raise RequestValidationError(name, f"must be from {low:g} to {high:g}, got {value!r}")


def _require_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestValidationError(name, f"must be a whole number ≥ {low}, got {value!r}")
    if value < low:
        raise RequestValidationError(name, f"must be ≥ {low}, got {value!r}")


@dataclass(slots=True)
class ChatRequest:
    """One ``POST /chat/completions`` body. Fields left as ``None`` are not sent."""

    model: str
    """The model id, e.g. ``gpt-4o-mini``."""
    messages: list[Message]
    """The conversation: dicts with a ``role`` and ``content``."""
    temperature: float | None = None
    """Sampling temperature, 0 to 2."""
    top_p: float | None = None
    """Nucleus sampling mass, 0 to 1."""
    n: int | None = None
    """How many choices to generate, ≥ 1."""
    stream: bool = True
    """Stream the reply as server-sent events."""
    stop: str | list[str] | None = None
    """A stop sequence, or a list of up to 4."""
    max_tokens: int | None = None
    """Most tokens to generate, ≥ 1."""
    presence_penalty: float | None = None
    """-2 to 2: positive values favour new topics."""
    frequency_penalty: float | None = None
    """-2 to 2: positive values discourage verbatim repetition."""
    logit_bias: dict[int | str, float] | None = None
    """Token id → bias from -100 to 100."""
    user: str | None = None
    """An id for the end user, for the provider's abuse monitoring."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Provider fields the schema does not name (``seed``, ``stream_options``, …), sent as is."""

    FIELDS = (
        "temperature",
        "top_p",
        "n",
        "stream",
        "stop",
        "max_tokens",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "user",
    )

    @classmethod
    def build(
        cls, model: str, messages: list[Message], params: Mapping[str, Any] | None = None
    ) -> ChatRequest:
        """Make a request from a flat mapping, sorting named fields from provider extras."""
        named: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in (params or {}).items():
            (named if key in cls.FIELDS else extra)[key] = value
        if isinstance(named.get("logit_bias"), Mapping):
            named["logit_bias"] = dict(named["logit_bias"])
        request = cls(model=model, messages=messages, extra=extra, **named)
        request.validate()
        return request

    def validate(self) -> None:
        """Raise ``RequestValidationError`` naming the first field that is out of range."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise RequestValidationError("model", "must be a non-empty model id")
        self._validate_messages()
        if self.temperature is not None:
            _require_number("temperature", self.temperature, 0, 2)
        if self.top_p is not None:
            _require_number("top_p", self.top_p, 0, 1)
        if self.n is not None:
            _require_int("n", self.n, 1)
        if not isinstance(self.stream, bool):
            raise RequestValidationError("stream", f"must be true or false, got {self.stream!r}")
        if self.stop is not None:
            self._validate_stop()
        if self.max_tokens is not None:
            _require_int("max_tokens", self.max_tokens, 1)
        if self.presence_penalty is not None:
            _require_number("presence_penalty", self.presence_penalty, -2, 2)
        if self.frequency_penalty is not None:
            _require_number("frequency_penalty", self.frequency_penalty, -2, 2)
        if self.logit_bias is not None:
            self._validate_logit_bias()
        if self.user is not None and not isinstance(self.user, str):
            raise RequestValidationError("user", f"must be a string, got {self.user!r}")
        clashes = sorted(set(self.extra) & {"model", "messages", *self.FIELDS})
        if clashes:
            raise RequestValidationError(
                clashes[0], "is a named request field; set it directly, not as an extra field"
            )

    def _validate_messages(self) -> None:
        if not isinstance(self.messages, list) or not self.messages:
            raise RequestValidationError("messages", "must be a non-empty list of messages")
        for position, message in enumerate(self.messages):
            if not isinstance(message, dict) or message.get("role") not in _MESSAGE_ROLES:
                roles = ", ".join(sorted(_MESSAGE_ROLES))
                raise RequestValidationError(
                    f"messages[{position}]", f"must be a dict whose role is one of {roles}"
                )

    def _validate_stop(self) -> None:
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise RequestValidationError("stop", "must be a non-empty string or a list of them")
        if not 1 <= len(stops) <= _MAX_STOP_SEQUENCES:
            raise RequestValidationError(
                "stop", f"takes 1 to {_MAX_STOP_SEQUENCES} sequences, got {len(stops)}"
            )

    def _validate_logit_bias(self) -> None:
        if not isinstance(self.logit_bias, dict):
            raise RequestValidationError("logit_bias", "must map token ids to biases")
        for token, bias in self.logit_bias.items():
            if isinstance(token, bool) or not (
                isinstance(token, int)
                or (isinstance(token, str) and token.isascii() and token.isdigit())
            ):
                raise RequestValidationError(
                    "logit_bias", f"keys must be token ids (whole numbers), got {token!r}"
                )
            _require_number(f"logit_bias[{token}]", bias, -100, 100)

    def to_payload(self) -> dict[str, Any]:
        """The JSON body: set fields only, logit_bias keys as strings, extras last."""
        payload: dict[str, Any] = {"model": self.model, "messages": self.messages}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.logit_bias is not None:
            payload["logit_bias"] = {str(k): v for k, v in self.logit_bias.items()}
        payload.update(self.extra)
        return payload


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call the model asked for; ``arguments`` is the JSON text as streamed."""

    id: str | None
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts the server reported; ``raw`` keeps every field it sent."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    raw: Mapping[str, Any]

    @property
    def prompt_tokens_details(self) -> Mapping[str, Any]:
        """E.g. ``cached_tokens``; empty when the server sent none."""
        return self.raw.get("prompt_tokens_details") or {}

    @property
    def completion_tokens_details(self) -> Mapping[str, Any]:
        """E.g. ``reasoning_tokens``; empty when the server sent none."""
        return self.raw.get("completion_tokens_details") or {}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Usage:
        def count(name: str) -> int | None:
            value = raw.get(name)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return cls(
            count("prompt_tokens"), count("completion_tokens"), count("total_tokens"), dict(raw)
        )


@dataclass(frozen=True, slots=True)
class Choice:
    """One assembled choice of a reply."""

    index: int
    text: str
    """The answer, as Markdown source."""
    reasoning: str = ""
    """The model's reasoning, kept apart from the answer."""
    refusal: str = ""
    finish_reason: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A whole reply, or as much of it as arrived."""

    choices: tuple[Choice, ...]
    usage: Usage | None = None
    id: str | None = None
    model: str | None = None
    created: int | None = None
    system_fingerprint: str | None = None
    complete: bool = True
    """False when the stream ended before the reply did (no finish_reason, no ``[DONE]``)."""
    errors: tuple[Mapping[str, Any], ...] = ()
    """``error`` objects the server put inside the stream."""
    warnings: tuple[str, ...] = ()
    """Warnings a gateway attached to chunks (e.g. guardrails)."""

    @property
    def text(self) -> str:
        """The first choice's answer ("" when there is no choice)."""
        return self.choices[0].text if self.choices else ""

    @property
    def reasoning(self) -> str:
        return self.choices[0].reasoning if self.choices else ""

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None

    @classmethod
    def from_completion(cls, body: Mapping[str, Any]) -> ChatResult:
        """Read a non-streamed ``chat.completion`` object."""
        accumulator = StreamAccumulator()
        accumulator.add_completion(body)
        return accumulator.result(done=True)


class _ChoiceParts:
    """The growing pieces of one choice; joined only when someone asks."""

    __slots__ = ("finish_reason", "reasoning", "refusal", "text", "tool_calls")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.finish_reason: str | None = None
        self.tool_calls: list[list[Any]] = []  # [index, id, name, [argument pieces]]

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
                    self.reasoning.extend(
                        p["text"]
                        for p in thinking
                        if isinstance(p, dict) and isinstance(p.get("text"), str)
                    )

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
                slot = [index, None, "", []]
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
            text="".join(self.text),
            reasoning="".join(self.reasoning),
            refusal="".join(self.refusal),
            finish_reason=self.finish_reason,
            tool_calls=tuple(ToolCall(s[1], s[2], "".join(s[3])) for s in self.tool_calls),
        )


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
        """Take one parsed chunk. Unknown fields are ignored; nothing here raises on odd input."""
        if self.id is None and chunk.get("id"):
            self.id = chunk["id"]
            self.model = chunk.get("model") or self.model
            self.created = chunk.get("created")
        elif self.model is None and chunk.get("model"):
            self.model = chunk["model"]
        if self.system_fingerprint is None and chunk.get("system_fingerprint"):
            self.system_fingerprint = chunk["system_fingerprint"]
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        error = chunk.get("error")
        if error:
            self.errors.append(error if isinstance(error, dict) else {"message": str(error)})
        warnings = chunk.get("warnings")
        if warnings:
            self._add_warnings(warnings)
        for choice in chunk.get("choices") or ():
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
        return "".join(parts.text) if parts else ""

    def text_pieces(self, index: int = 0) -> Sequence[str]:
        """The answer of one choice as the pieces that arrived, not joined: a reader that
        follows a stream takes the pieces past the ones it has seen, without copying the rest."""
        parts = self._choices.get(index)
        return parts.text if parts else ()

    def reasoning(self, index: int = 0) -> str:
        """The reasoning of one choice so far."""
        parts = self._choices.get(index)
        return "".join(parts.reasoning) if parts else ""

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
