"""What a session spends: each reply's cost from the user's prices, and the spend limit.

The session asks :class:`Spending` twice per request: :meth:`~Spending.check` before anything
is sent (a spend limit reached refuses the request with one line; so does a limit set for a
model the price table cannot price, since its spending could not be counted), and
:meth:`~Spending.charge` once the reply has ended, which prices it from the server's usage or,
when the server sent none, from the offline estimates (the cost is then marked estimated).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .budget import estimate_text
from .config import Settings
from .errors import SpendLimitError
from .prices import FILE_NAME, Price, PriceFile, PriceTable, format_dollars
from .reply import Reply
from .store import HistoryStore

__all__ = ["Spending"]


@dataclass
class Spending:
    """Dollars spent by one session, by model, from the price table."""

    spent: float = 0.0
    """Dollars spent so far by replies whose model has a price."""
    by_model: dict[str, float] = field(default_factory=dict)
    unpriced_replies: int = 0
    """Replies whose model the table has no price for: not in ``spent``."""
    _file: PriceFile = field(default_factory=PriceFile, repr=False)
    _table: PriceTable = field(default_factory=lambda: PriceTable({}), repr=False)

    def table(self, settings: Settings) -> PriceTable:
        """The current price table (read again when its file changed); a bad file raises
        :class:`~nbchat.errors.ConfigError`."""
        default = HistoryStore.default_path().with_name(FILE_NAME)
        self._table = self._file.table(settings.prices, default)
        return self._table

    def check(self, settings: Settings, model: str) -> None:
        """Raise :class:`SpendLimitError` when the next request to ``model`` must not go."""
        table = self.table(settings)
        limit = settings.spend_limit
        if limit is None:
            return
        if table.price_of(model) is None:
            where = table.source or "the price table"
            raise SpendLimitError(
                f"spend_limit is set but {where} has no price for {model!r}, so its spending "
                "cannot be counted; nothing was sent",
                hint="add its prices, or lift the limit: %chat config spend_limit=none",
            )
        if self.spent >= limit:
            raise SpendLimitError(
                f"This session has spent {format_dollars(self.spent)}, its spend limit is "
                f"{format_dollars(limit)}; nothing was sent",
                hint=f"raise it: %chat config spend_limit={_raised(limit)}",
            )

    def _price(self, reply: Reply) -> Price | None:
        return self._table.price_of(reply.answered_model) or self._table.price_of(reply.model)

    def charge(self, reply: Reply) -> None:
        """Price the ended ``reply`` (setting ``reply.cost``) and add it to the totals."""
        price = self._price(reply)
        if price is None:
            self.unpriced_replies += 1
            return
        usage = reply.result.usage
        if usage is not None and usage.prompt_tokens is not None:
            cached = usage.prompt_tokens_details.get("cached_tokens")
            cost = price.cost(
                usage.prompt_tokens,
                usage.completion_tokens or 0,
                cached if isinstance(cached, int) and not isinstance(cached, bool) else 0,
            )
        else:
            sent = reply.estimated_prompt_tokens or 0
            cost = price.cost(sent, sum(estimate_text(text) for text in reply.texts()))
            reply.cost_estimated = True
        reply.cost = cost
        self.spent += cost
        model = reply.answered_model
        self.by_model[model] = self.by_model.get(model, 0.0) + cost


def _raised(limit: float) -> str:
    """A round figure above ``limit`` to suggest: twice it, or 1 for a limit of 0."""
    suggested = limit * 2 if limit > 0 else 1.0
    return f"{suggested:g}"
