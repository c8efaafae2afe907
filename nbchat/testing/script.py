"""What the loopback server answers: the script items, the record of a request, and the pure
functions that turn a scripted reply into OpenAI-shaped JSON.

Nothing here touches a socket, so the shapes can be read (and changed) apart from the plumbing
in :mod:`nbchat.testing.handler`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeAlias

SYSTEM_FINGERPRINT = "fp_loopback"
FALLBACK_MODEL = "loopback"
_FAULTS = ("drop_after", "stall_after", "malformed_after", "error_after")

# Delta and finish_reason of one streamed chunk for one choice.
_Step: TypeAlias = tuple[dict[str, Any], "str | None"]


@dataclass
class Reply:
    """A successful chat completion: streamed the way OpenAI streams it when the request asks
    for a stream, sent whole otherwise, and optionally broken on purpose by one fault.

    Faults count the data events already sent, the first (role) chunk being event 0, so
    ``drop_after=1`` sends the role chunk and then cuts the connection. A count beyond the last
    chunk means "after the last chunk, before ``[DONE]``".
    """

    text: str = ""
    """Assistant content for choice 0 (unused when ``choices`` is given)."""
    reasoning: str | None = None
    """Streamed before the content as ``delta.reasoning_content``, like DeepSeek's reasoner."""
    choices: list[str] | None = None
    """One text per choice index for n > 1; the choices' chunks are interleaved round robin."""
    chunk_size: int = 4
    """Characters (never bytes) of text per content or reasoning delta."""
    delay: float = 0.0
    """Seconds to wait before each data event (before the whole body when not streaming)."""
    model: str | None = None
    """Model named in the reply; the request's model when None."""
    finish_reason: str = "stop"
    """finish_reason of every choice's last chunk."""
    usage: dict[str, Any] | None = None
    """Usage object to report; computed from the request and the deltas when None."""
    include_usage_chunk: bool | None = None
    """Send a final usage-only chunk; None follows the request's stream_options.include_usage."""
    drop_after: int | None = None
    """Cut the connection after this many data events: no ``[DONE]``, no terminating chunk."""
    stall_after: int | None = None
    """Go silent after this many data events for ``stall_seconds``, then cut the connection."""
    stall_seconds: float = 30.0
    """How long a stall lasts unless the server stops first."""
    malformed_after: int | None = None
    """After this many data events send a truncated JSON chunk, then ``[DONE]``."""
    error_after: int | None = None
    """After this many data events send an in-stream ``{"error": ...}`` event, then ``[DONE]``."""
    error_message: str = "The server had an error processing your request."
    """Message of the in-stream error (and of the 500 when the request was not streamed)."""
    no_done: bool = False
    """End the stream cleanly but leave out ``data: [DONE]``."""

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")
        if self.choices is not None and not self.choices:
            raise ValueError("choices needs at least one text (or None for just `text`)")
        chosen = [name for name in _FAULTS if getattr(self, name) is not None]
        if len(chosen) > 1:
            raise ValueError(f"a Reply takes at most one fault, got {', '.join(chosen)}")
        if chosen and getattr(self, chosen[0]) < 0:
            raise ValueError(f"{chosen[0]} must not be negative")

    @property
    def texts(self) -> list[str]:
        """The content of each choice, in index order."""
        return list(self.choices) if self.choices is not None else [self.text]

    @property
    def fault(self) -> tuple[str, int] | None:
        """The fault to inject as (field name, event count), if any."""
        for name in _FAULTS:
            after = getattr(self, name)
            if after is not None:
                return name, int(after)
        return None


@dataclass
class Status:
    """An HTTP error (or any status) instead of a completion, e.g. a 429 with Retry-After."""

    status: int
    """HTTP status code to answer with."""
    body: Any = None
    """str is sent as text/plain, bytes as they are, anything else as JSON; None gives an
    OpenAI-style error object naming the status."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers; a Content-Type here overrides the one chosen from ``body``."""
    delay: float = 0.0
    """Seconds to wait before answering."""


@dataclass
class RawSSE:
    """Exact bytes to play back as a streamed body, such as a capture from a real server."""

    data: bytes
    """The whole SSE body, sent unchanged."""
    piece_size: int | None = None
    """Send HTTP chunks of this many bytes, to split UTF-8 characters and CRLF pairs across
    reads; None sends one chunk per event (split after each blank line)."""
    delay: float = 0.0
    """Seconds to wait before each chunk."""
    content_type: str = "text/event-stream"
    """Content-Type header of the response."""

    def __post_init__(self) -> None:
        if self.piece_size is not None and self.piece_size < 1:
            raise ValueError(f"piece_size must be at least 1, got {self.piece_size}")


ScriptItem: TypeAlias = Reply | Status | RawSSE
"""One scripted answer; each chat request consumes the next one."""


@dataclass
class RecordedRequest:
    """One request as the server received it, kept so tests can look at what was sent."""

    method: str
    """HTTP method, e.g. "POST"."""
    path: str
    """Request target including any query string, e.g. "/v1/chat/completions"."""
    headers: dict[str, str]
    """Headers with lower-cased names; repeated headers are joined with ", "."""
    body: bytes
    """The raw body."""
    json: Any
    """The body parsed as JSON, or None when it is empty or not JSON."""
    received_at: float
    """time.monotonic() when the request arrived."""


def split_text(text: str, size: int) -> list[str]:
    """Cut ``text`` into pieces of ``size`` characters (code points, so never mid-character)."""
    return [text[start : start + size] for start in range(0, len(text), size)]


def message_text(content: Any) -> str:
    """The plain text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(part for part in parts if isinstance(part, str))
    return ""


def _messages(request: Any) -> list[dict[str, Any]]:
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return []
    return [message for message in messages if isinstance(message, dict)]


def last_user_text(request: Any) -> str:
    """The text of the last user message in a chat request, or "" if there is none."""
    for message in reversed(_messages(request)):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def reply_model(reply: Reply, request: Any) -> str:
    """The model a reply names: its own, else the request's, else a fixed placeholder."""
    if reply.model is not None:
        return reply.model
    model = request.get("model") if isinstance(request, dict) else None
    return model if isinstance(model, str) else FALLBACK_MODEL


def wants_usage_chunk(reply: Reply, request: Any) -> bool:
    """Whether the stream ends with a usage-only chunk, as OpenAI does on request."""
    if reply.include_usage_chunk is not None:
        return reply.include_usage_chunk
    options = request.get("stream_options") if isinstance(request, dict) else None
    return isinstance(options, dict) and options.get("include_usage") is True


def _choice_steps(reply: Reply, text: str) -> list[_Step]:
    steps: list[_Step] = [({"role": "assistant", "content": ""}, None)]
    if reply.reasoning:
        steps += [
            ({"reasoning_content": piece}, None)
            for piece in split_text(reply.reasoning, reply.chunk_size)
        ]
    steps += [({"content": piece}, None) for piece in split_text(text, reply.chunk_size)]
    steps.append(({}, reply.finish_reason))
    return steps


def compute_usage(reply: Reply, request: Any) -> dict[str, Any]:
    """The usage object: the scripted one, or rough counts that are at least self-consistent.

    Prompt tokens are the words of the request's messages; completion tokens are the deltas
    streamed, reasoning ones included (as OpenAI counts reasoning inside completion tokens).
    """
    if reply.usage is not None:
        return reply.usage
    prompt = sum(len(message_text(m.get("content")).split()) for m in _messages(request))
    content = sum(len(split_text(text, reply.chunk_size)) for text in reply.texts)
    reasoning = len(split_text(reply.reasoning or "", reply.chunk_size)) * len(reply.texts)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": content + reasoning,
        "total_tokens": prompt + content + reasoning,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def stream_chunks(
    reply: Reply, request: Any, completion_id: str, created: int
) -> list[dict[str, Any]]:
    """Every ``chat.completion.chunk`` of a streamed reply, in sending order, before ``[DONE]``.

    Each choice gets a role chunk, reasoning deltas, content deltas and a finish chunk; with
    several choices the chunks take turns by index, as OpenAI's do.
    """
    header = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply_model(reply, request),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    per_choice = [_choice_steps(reply, text) for text in reply.texts]
    chunks: list[dict[str, Any]] = []
    for position in range(max(len(steps) for steps in per_choice)):
        for index, steps in enumerate(per_choice):
            if position < len(steps):
                delta, finish_reason = steps[position]
                choice = {
                    "index": index,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
                chunks.append({**header, "choices": [choice]})
    if wants_usage_chunk(reply, request):
        chunks.append({**header, "choices": [], "usage": compute_usage(reply, request)})
    return chunks


def completion_body(reply: Reply, request: Any, completion_id: str, created: int) -> dict[str, Any]:
    """The ``chat.completion`` object answering a request that did not ask for a stream."""
    choices = []
    for index, text in enumerate(reply.texts):
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": reply_model(reply, request),
        "choices": choices,
        "usage": compute_usage(reply, request),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_error_body(status: int) -> dict[str, Any]:
    """The error object sent for a scripted status that has no body of its own."""
    if status == 429:
        type_, code = "requests", "rate_limit_exceeded"
    elif status >= 500:
        type_, code = "server_error", None
    elif status == 401:
        type_, code = "invalid_request_error", "invalid_api_key"
    else:
        type_, code = "invalid_request_error", None
    return error_body(f"Scripted status {status}", type_, code)


def encode_json(value: Any) -> bytes:
    """JSON as UTF-8 bytes, non-ASCII characters sent raw the way real servers send them."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
