"""``%chat usage`` in words: tokens per model, and dollars where the price table knows them."""

from __future__ import annotations

from .errors import ConfigError
from .prices import format_dollars
from .session import ChatSession
from .views import counted

__all__ = ["usage_lines"]


def usage_lines(session: ChatSession) -> list[str]:
    """The lines of ``%chat usage``: the totals, then one line per model, then the spend."""
    totals, spending = session.usage, session.spending
    lines = [
        f"{counted(totals.replies, 'reply', 'replies')}: {totals.prompt_tokens:,} prompt + "
        f"{totals.completion_tokens:,} completion = {totals.total_tokens:,} tokens"
    ]
    for name in sorted(set(totals.by_model) | set(spending.by_model)):
        line = f"  {name}: {totals.by_model.get(name, 0):,} tokens"
        if name in spending.by_model:
            line += f" · {format_dollars(spending.by_model[name])}"
        lines.append(line)
    if totals.replies_without_usage:
        missing = counted(totals.replies_without_usage, "reply", "replies")
        lines.append(f"  ({missing} came without usage figures)")
    limit = session.settings.spend_limit
    if spending.by_model or limit is not None:
        spent = f"Spent {format_dollars(spending.spent)}"
        if limit is not None:
            spent += f" of a {format_dollars(limit)} spend limit"
        if spending.unpriced_replies:
            unpriced = counted(spending.unpriced_replies, "reply", "replies")
            spent += f" ({unpriced} not priced: no price for the model)"
        lines.append(spent)
    try:
        table = spending.table(session.settings)
    except ConfigError as error:
        lines.append(f"Costs unknown: {error}")
    else:
        if not table and not spending.by_model:
            lines.append("No costs: no price table (see README, What is sent, and how much)")
    return lines
