"""What the user types on a ``%%chat`` or ``%chat`` line, turned into values or one-line errors.

The faces share these so that a value means the same and is refused the same way everywhere:
a bad ``--df-tokens`` on a ``%%chat`` line and on ``%chat context`` give the same message;
``KEY=VALUE`` is read the same by ``--param`` and ``%chat config``, and both refuse a key
(:func:`nbchat.secrets.refuse_key_name`). Every error the user can fix leaves as exactly
``UsageError`` (:func:`usage_error`), which IPython prints as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError

from .errors import NbChatError
from .secrets import refuse_key_name

__all__ = [
    "SCALAR_OPTIONS",
    "parse_assignment",
    "request_params",
    "row_count",
    "token_budget",
    "usage_error",
]

SCALAR_OPTIONS = (
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "user",
)
"""Request fields a ``%%chat`` option sets by the same name."""

_MIN_TOKENS = 100


def usage_error(error: NbChatError | str) -> UsageError:
    """``error`` as the one-line ``UsageError`` IPython shows without a traceback."""
    return UsageError(" ".join(str(error).split()))


def row_count(raw: str) -> int:
    """``--df-rows``: sample rows in a summary, a whole number ≥ 0."""
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"takes a whole number ≥ 0, got {raw!r}")
    return value


def token_budget(raw: str) -> int:
    """``--df-tokens``: the token budget of a summary, a whole number ≥ 100."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < _MIN_TOKENS:
        raise argparse.ArgumentTypeError(f"takes a whole number ≥ {_MIN_TOKENS}, got {raw!r}")
    return value


def parse_json_option(option: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise UsageError(f"{option} takes JSON, got {raw!r}") from None


def parse_assignment(option: str, raw: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE as JSON, or as a string when it is a bare word; a key name is
    refused."""
    name, sep, value = raw.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"{option} takes KEY=VALUE, got {raw!r}")
    try:
        refuse_key_name(name.removeprefix("param."))
    except NbChatError as error:
        raise usage_error(error) from None
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # a bare word is a string: model=gpt-4o, user=alice


def request_params(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields a parsed ``%%chat`` line sets."""
    params: dict[str, Any] = {}
    for name in SCALAR_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            params[name] = value
    if args.stop:
        params["stop"] = args.stop[0] if len(args.stop) == 1 else list(args.stop)
    if args.logit_bias is not None:
        bias = parse_json_option("--logit-bias", args.logit_bias)
        if not isinstance(bias, Mapping):
            raise UsageError("--logit-bias takes a JSON object, e.g. '{\"50256\": -100}'")
        params["logit_bias"] = dict(bias)
    for raw in args.param or ():
        name, value = parse_assignment("--param", raw)
        if name in ("model", "messages", "stream"):
            raise UsageError(f"--param cannot set {name!r}; it has its own option")
        params[name] = value
    return params
