"""The chat-completions contract: a typed request, and the shape of a reply.

``ChatRequest`` carries every field of the chat-completions schema and refuses out-of-range
values *before* anything is sent, naming the field and its range; provider features that the
schema does not name (``seed``, ``response_format``, ``reasoning_effort``…) travel in ``extra``.

``ChatResult`` (its ``Choice``, ``ToolCall`` and ``Usage``) is what a reply becomes, whether it
was streamed or sent whole; :mod:`nbchat.accumulator` builds it from the wire's chunks. Both
sides of the wire share these types, so they live apart from the folding logic and import only
the error tree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import RequestValidationError

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Choice",
    "Message",
    "ToolCall",
    "Usage",
]

Message = dict[str, Any]
"""One chat message as sent: a ``role`` and its ``content`` (and any provider fields)."""

_MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_MAX_STOP_SEQUENCES = 4


def _brief(value: object) -> str:
    """``repr(value)``, cut short: a 400-digit number in an error is noise."""
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _require_number(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestValidationError(
            name, f"must be a number from {low:g} to {high:g}, got {_brief(value)}"
        )
    # isnan only for floats: an int too large for a float would overflow in it
    if (isinstance(value, float) and math.isnan(value)) or not low <= value <= high:
        raise RequestValidationError(name, f"must be from {low:g} to {high:g}, got {_brief(value)}")


def _require_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestValidationError(name, f"must be a whole number ≥ {low}, got {_brief(value)}")
    if value < low:
        raise RequestValidationError(name, f"must be ≥ {low}, got {_brief(value)}")


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
    turns_left_out: int = field(default=0, compare=False)
    """Not sent: earlier turns the context budget left out of ``messages``."""
    estimated_prompt_tokens: int | None = field(default=None, compare=False)
    """Not sent: the offline estimate of the tokens ``messages`` take (:mod:`nbchat.budget`)."""

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
        request = cls(model=model, messages=messages, **cls._sorted_params(params or {}))
        request.validate()
        return request

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Raise ``RequestValidationError`` when a default parameter (``%chat config``) is out
        of range, before any request is made with it."""
        cls(model="", messages=[], **cls._sorted_params(params)).validate_params()

    @classmethod
    def _sorted_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        named: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in params.items():
            (named if key in cls.FIELDS else extra)[key] = value
        if isinstance(named.get("logit_bias"), Mapping):
            named["logit_bias"] = dict(named["logit_bias"])
        return {**named, "extra": extra}

    def validate(self) -> None:
        """Raise ``RequestValidationError`` naming the first field that is out of range."""
        if not isinstance(self.model, str) or not self.model.strip():
            raise RequestValidationError("model", "must be a non-empty model id")
        self._validate_messages()
        self.validate_params()

    def validate_params(self) -> None:
        """Check every field but the model and the messages."""
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
