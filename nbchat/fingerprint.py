"""A request's identity: the canonical form of what decides its answer, and its SHA-256.

Two requests that would get the same answer from the same server have the same fingerprint:
the base URL's host, the model, the messages and the parameters that were set. What only
shapes how the answer travels is left out (``stream``, ``stream_options``), and so are the key
and the headers, which are never part of a request's body anyway. The canonical form is JSON
with sorted keys, no spaces, ASCII only; a float that is a whole number is written as one
(``-t 1`` and ``temperature=1`` are one request).

Besides the fingerprint, a :class:`RequestKey` keeps the parts a person can compare (host,
model, parameters, the last prompt, a digest of the earlier messages), so that a request with
no recording can be told what differs from the nearest one (:mod:`nbchat.replay`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .protocol import ChatRequest, Message

__all__ = ["TRANSPORT_FIELDS", "RequestKey", "canonical_json", "request_key"]

TRANSPORT_FIELDS = frozenset({"model", "messages", "stream", "stream_options"})
"""Body fields that are not parameters: the model and messages (kept apart) and the ones
that only change how the answer is delivered."""


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON: sorted keys, no spaces, ASCII, whole floats as integers."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def _digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("ascii")).hexdigest()


def _text(content: Any) -> str:
    """A message's content as text: a string as it is, content parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


@dataclass(frozen=True, slots=True)
class RequestKey:
    """What identifies a request, for matching recordings and saying how two differ."""

    fingerprint: str
    """SHA-256 (hex) of the canonical request: host, model, messages, params."""
    host: str
    """The base URL's host name, lower case (no port: a test server's port changes)."""
    model: str
    """The model asked for."""
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """The parameters that were set, canonical (never the key: it is not in a body)."""
    context: str = ""
    """SHA-256 of the messages before the last one (system prompt and earlier turns)."""
    prompt: str = ""
    """The last message's text: the prompt as sent."""

    def to_json(self) -> dict[str, Any]:
        """The parts worth storing with a turn (the prompt is the turn's own)."""
        return {
            "fingerprint": self.fingerprint,
            "host": self.host,
            "model": self.model,
            "params": dict(self.params),
            "context": self.context,
        }

    @classmethod
    def from_json(cls, raw: object, *, prompt: str = "") -> RequestKey | None:
        """A key read back; None when ``raw`` is not one (malformed data is left out)."""
        if not isinstance(raw, Mapping):
            return None
        fingerprint, host, model = raw.get("fingerprint"), raw.get("host"), raw.get("model")
        params, context = raw.get("params", {}), raw.get("context", "")
        if not all(isinstance(v, str) for v in (fingerprint, host, model, context)):
            return None
        if not isinstance(params, Mapping):
            return None
        return cls(str(fingerprint), str(host), str(model), dict(params), str(context), prompt)


def request_key(base_url: str, request: ChatRequest) -> RequestKey:
    """The identity of ``request`` sent to ``base_url``."""
    payload = request.to_payload()
    params = _canonical({k: v for k, v in payload.items() if k not in TRANSPORT_FIELDS})
    messages: list[Message] = list(request.messages)
    host = (urlsplit(base_url).hostname or "").lower()
    canonical = {"host": host, "model": request.model, "messages": messages, "params": params}
    return RequestKey(
        fingerprint=_digest(canonical),
        host=host,
        model=request.model,
        params=params,
        context=_digest(messages[:-1]),
        prompt=_text(messages[-1].get("content")) if messages else "",
    )
