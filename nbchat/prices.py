"""What a reply cost, from the user's own price table. nbchat ships no prices as truth.

The table is a JSON file, ``prices.json`` next to the history file (``$NBCHAT_HOME`` when it
is set) unless the ``prices`` setting names another, mapping a model name to dollars per
million tokens::

    {"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.60},
     "claude-": {"input": 3, "output": 15}}

A model is priced by its exact name, else by the longest name in the table that begins it
(``claude-`` prices every Claude model the table has no row of its own for). ``cached_input``
is optional (cached prompt tokens then cost ``input``). The file is read again when it
changes, so editing it applies to the next reply. A file that cannot be read or holds anything
else is one :class:`~nbchat.errors.ConfigError` line naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

__all__ = ["FILE_NAME", "Price", "PriceFile", "PriceTable", "format_dollars"]

FILE_NAME = "prices.json"
_FIELDS = ("input", "cached_input", "output")


def format_dollars(amount: float) -> str:
    """``$0.0042``, ``$1.23``: cents for a dollar or more, four decimals below."""
    if amount >= 1:
        return f"${amount:,.2f}"
    if 0 < amount < 0.0001:
        return "<$0.0001"
    return f"${amount:.4f}"


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices, in dollars per million tokens."""

    input: float
    output: float
    cached_input: float | None = None
    """Cached prompt tokens; None: they cost ``input``."""

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        """Dollars for a reply: cached prompt tokens at their price, the rest at ``input``."""
        cached = min(max(cached_tokens, 0), prompt_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        return (
            (prompt_tokens - cached) * self.input
            + cached * cached_price
            + completion_tokens * self.output
        ) / 1_000_000


def _price(source: str, model: str, raw: object) -> Price:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: {model!r} must map to an object like "
            '{"input": 0.15, "output": 0.6}, got ' + type(raw).__name__
        )
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"{source}: {model!r} has an unknown field {unknown[0]!r}; the fields are "
            + ", ".join(_FIELDS)
        )
    values: dict[str, float] = {}
    for name in _FIELDS:
        if name not in raw:
            if name == "cached_input":
                continue
            raise ConfigError(f"{source}: {model!r} has no {name!r} price")
        value = raw[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or value < 0
        ):
            raise ConfigError(
                f"{source}: {model!r} {name} must be dollars per million tokens (a number ≥ 0), "
                f"got {value!r}"
            )
        values[name] = float(value)
    return Price(values["input"], values["output"], values.get("cached_input"))


class PriceTable:
    """The user's prices by model name; empty when the user has none."""

    def __init__(self, prices: Mapping[str, Price], *, source: str = "") -> None:
        self.prices = dict(prices)
        self.source = source
        """The file it was read from ("" when none)."""
        self._by_length = sorted(self.prices, key=len, reverse=True)

    def __len__(self) -> int:
        return len(self.prices)

    def price_of(self, model: str) -> Price | None:
        """``model``'s price: by its exact name, else by the longest name that begins it."""
        exact = self.prices.get(model)
        if exact is not None:
            return exact
        for name in self._by_length:
            if name and model.startswith(name):
                return self.prices[name]
        return None

    @classmethod
    def parse(cls, text: str, *, source: str) -> PriceTable:
        try:
            raw = json.loads(text)
        except ValueError as error:
            raise ConfigError(
                f"{source} is not valid JSON: {error}",
                hint="see README, What is sent, and how much",
            ) from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{source} must hold a JSON object of model names")
        return cls({str(k): _price(source, str(k), v) for k, v in raw.items()}, source=source)

    @classmethod
    def read(cls, path: Path, *, required: bool) -> PriceTable:
        """The table in ``path``; an empty one when it does not exist and is not ``required``
        (the default path the user never made)."""
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            if not required:
                return cls({})
            raise ConfigError(f"prices file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"prices file {path} cannot be read: {reason}") from None
        return cls.parse(text, source=f"prices file {path}")


class PriceFile:
    """A price table read again whenever its file changes (checked by size and mtime)."""

    def __init__(self) -> None:
        self._key: tuple[str, int, int] | None = None
        self._table = PriceTable({})

    def table(self, path: str | None, default: Path | None = None) -> PriceTable:
        """The table of ``path`` (the ``prices`` setting), else of ``default`` if it exists."""
        if path:
            file = Path(os.path.expanduser(path))
        elif default is not None:
            file = default
        else:
            return PriceTable({})
        try:
            stat = file.stat()
            key = (str(file), stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = (str(file), -1, -1)
        if key != self._key:
            self._table = PriceTable.read(file, required=path is not None)
            self._key = key
        return self._table
