"""How much a request sends, estimated offline, and which earlier turns fit a context budget.

Tokens are estimated without a tokenizer (none is a dependency, and each model family counts
differently), erring high so that a request that fits the estimate fits the model:

- ASCII text: one token per 3.5 characters, rounded up (English prose is about 4 per token,
  code and JSON nearer 3);
- any other character (accents, CJK, emoji): one token each;
- each message: 4 tokens more (its role and framing), each request 3 (the reply's priming);
- each image part: :data:`IMAGE_TOKENS`.

The budget is per request and counts everything sent: the system prompt, the earlier turns
and the current message. When the conversation does not fit, the oldest turns are left out
whole, newest kept first, and never the system prompt or the current message; when those two
alone do not fit, :class:`OverBudgetError` says so with the sizes and nothing is sent.

With no ``context_budget`` set, a model's default comes from :data:`FAMILY_BUDGETS` by its
name (matched anywhere in it, so ``openai/gpt-4o`` and ``gpt-4o-2024-08-06`` are gpt-4o), and
:data:`FALLBACK_BUDGET` for a model no row names. The defaults sit well below each family's
context window, leaving room for the reply and for the estimate's error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import OverBudgetError

__all__ = [
    "FALLBACK_BUDGET",
    "FAMILY_BUDGETS",
    "IMAGE_TOKENS",
    "MIN_BUDGET",
    "Fitted",
    "default_budget",
    "estimate_message",
    "estimate_text",
    "fit",
]

MESSAGE_OVERHEAD = 4
"""Tokens each message costs besides its content."""
REQUEST_OVERHEAD = 3
"""Tokens each request costs besides its messages."""
IMAGE_TOKENS = 1_600
"""Tokens counted for one image part: above what a ~1,500-pixel image costs at high detail."""
MIN_BUDGET = 256
"""The smallest ``context_budget`` accepted: less could not hold a question."""
FALLBACK_BUDGET = 8_000
"""The budget for a model no row of :data:`FAMILY_BUDGETS` names: every current model takes it."""

FAMILY_BUDGETS: tuple[tuple[str, str, int], ...] = (
    # (family, pattern searched in the lowercased model name, default budget in tokens)
    ("gpt-5", r"gpt-5", 200_000),
    ("gpt-4.1", r"gpt-4\.1", 200_000),
    ("gpt-4o", r"gpt-4o|chatgpt-4o", 96_000),
    ("o-series", r"(?:^|/)o[1-9](?:-|$)", 150_000),
    ("gpt-4-turbo", r"gpt-4-turbo|gpt-4-\d{4}-preview", 96_000),
    ("gpt-4", r"gpt-4(?:-\d{4})?$", 6_000),
    ("gpt-3.5", r"gpt-3\.5", 12_000),
    ("claude", r"claude", 150_000),
    ("gemini", r"gemini", 200_000),
    ("deepseek", r"deepseek", 48_000),
    ("llama", r"llama", 24_000),
    ("qwen", r"qwen|qwq", 24_000),
    ("mistral", r"mistral|mixtral|codestral|ministral|magistral", 24_000),
)
"""The default budget of each known model family, first match wins."""

_FAMILIES = tuple(
    (family, re.compile(pattern), budget) for family, pattern, budget in FAMILY_BUDGETS
)


def default_budget(model: str) -> tuple[int, str | None]:
    """The default budget for ``model`` and the family that gave it (None: the fallback)."""
    name = model.strip().lower()
    for family, pattern, budget in _FAMILIES:
        if pattern.search(name):
            return budget, family
    return FALLBACK_BUDGET, None


def estimate_text(text: str) -> int:
    """Tokens ``text`` is estimated to take (see the module's rule)."""
    if text.isascii():
        return (len(text) * 2 + 6) // 7
    ascii_count = len(text.encode("ascii", "ignore"))
    return (ascii_count * 2 + 6) // 7 + (len(text) - ascii_count)


def _estimate_content(content: Any) -> int:
    if isinstance(content, str):
        return estimate_text(content)
    if isinstance(content, list):  # content parts: text and images
        total = 0
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text":
                total += estimate_text(str(part.get("text", "")))
            elif part.get("type") in ("image_url", "input_image", "image"):
                total += IMAGE_TOKENS
            else:
                total += estimate_text(str(part))
        return total
    return 0 if content is None else estimate_text(str(content))


def estimate_message(message: dict[str, Any]) -> int:
    """Tokens one chat message is estimated to take, tool calls included."""
    total = MESSAGE_OVERHEAD + _estimate_content(message.get("content"))
    calls = message.get("tool_calls")
    if calls:
        total += estimate_text(str(calls))
    return total


@dataclass(frozen=True, slots=True)
class Fitted:
    """What fitted a budget: the messages to send and what was left out."""

    messages: list[dict[str, Any]]
    """System prompt (if any), the turns kept, the current message."""
    turns_left_out: int
    """Earlier turns not sent, the oldest ones."""
    estimated_tokens: int
    """The estimate for everything sent."""
    budget: int


def fit(
    system: Sequence[dict[str, Any]],
    turns: Sequence[Sequence[dict[str, Any]]],
    current: dict[str, Any],
    budget: int,
) -> Fitted:
    """The newest of ``turns`` (each a turn's messages, oldest first) that fit ``budget`` with
    the ``system`` messages and the ``current`` one; the older ones are left out whole.

    Raises :class:`OverBudgetError` when ``system`` and ``current`` alone do not fit.
    """
    system_tokens = sum(estimate_message(m) for m in system)
    current_tokens = estimate_message(current)
    used = REQUEST_OVERHEAD + system_tokens + current_tokens
    if used > budget:
        sizes = f"The message (~{current_tokens:,} tokens) does"
        if system:
            sizes = (
                f"The message (~{current_tokens:,} tokens) and the system prompt "
                f"(~{system_tokens:,} tokens) do"
            )
        raise OverBudgetError(
            f"{sizes} not fit the context budget of {budget:,} tokens; nothing was sent",
            hint="send less, or raise it: %chat config context_budget=N",
        )
    kept = 0
    for turn in reversed(turns):
        cost = sum(estimate_message(m) for m in turn)
        if used + cost > budget:
            break
        used += cost
        kept += 1
    messages = list(system)
    for turn in turns[len(turns) - kept :]:
        messages.extend(turn)
    messages.append(current)
    return Fitted(messages, len(turns) - kept, used, budget)
