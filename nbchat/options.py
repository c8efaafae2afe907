"""What the user types on a ``%%chat`` or ``%chat`` line, turned into values or one-line errors.

The faces share these so that a value means the same and is refused the same way everywhere:
a bad ``--df-tokens`` on a ``%%chat`` line and on ``%chat context`` give the same message;
``KEY=VALUE`` is read the same by ``--param`` and ``%chat config``, and both refuse a key
(:func:`nbchat.secrets.refuse_key_name`), and a value that looks like a key. Every error the
user can fix leaves as exactly ``UsageError`` (:func:`usage_error`), which IPython prints as one
line, without a traceback; what it echoes has keys masked and control characters made visible
(:func:`shown`), since a terminal would obey an escape sequence a server or a paste put there.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .errors import NbChatError
from .secrets import looks_like_key, mask_secrets, refuse_key_name

if TYPE_CHECKING:
    from .cells import CellRange

__all__ = [
    "SCALAR_OPTIONS",
    "cell_number",
    "cell_range",
    "join_option_values",
    "parse_assignment",
    "request_params",
    "row_count",
    "shown",
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

_VISIBLE = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
_VISIBLE[0x7F] = "\u2421"  # ␡
_VISIBLE.update({code: f"\\x{code:02x}" for code in range(0x80, 0xA0)})  # C1: CSI is 0x9b
"""Each control character but newline and tab, as a picture of itself (``\\x1b`` → ``␛``)."""


def shown(text: str) -> str:
    """``text`` safe to write to a terminal: no control character but newline and tab is left
    to act (OSC 52 would set the clipboard, OSC 8 hide a link, CSI 2J clear the screen)."""
    return text.translate(_VISIBLE)


def usage_error(error: NbChatError | str) -> UsageError:
    """``error`` as the one-line ``UsageError`` IPython shows without a traceback; keys it may
    echo are masked and control characters shown, not obeyed."""
    return UsageError(shown(mask_secrets(" ".join(str(error).split()))))


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


def cell_number(raw: str) -> CellRange:
    """``--cell N``: one cell by its execution count, or counted back from the latest (-1)."""
    from .cells import CellRange

    try:
        return CellRange.parse(raw, single=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cell_range(raw: str) -> CellRange:
    """``--cells A:B``: cells as a Python slice of those run so far (``-3:``, ``3:5``)."""
    from .cells import CellRange

    try:
        return CellRange.parse(raw)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


_VALUE_MAY_START_WITH_DASH = ("--cell", "--cells")


def join_option_values(words: list[str]) -> list[str]:
    """``--cells -3:`` as ``--cells=-3:``: argparse takes a value starting with ``-`` for an
    option unless it is a plain negative number, and a range is not one."""
    joined: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in _VALUE_MAY_START_WITH_DASH and index + 1 < len(words):
            joined.append(f"{word}={words[index + 1]}")
            index += 2
            continue
        joined.append(word)
        index += 1
    return joined


def parse_json_option(option: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise usage_error(f"{option} takes JSON, got {raw!r}") from None


class _NotJSONValue(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, no server does."""


def _refuse_constant(name: str) -> Any:
    raise _NotJSONValue(name)


def parse_assignment(option: str, raw: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE as JSON, or as a string when it is a bare word; a key name, or a
    value that looks like a key, is refused."""
    name, sep, text = raw.partition("=")
    name = name.strip()
    if not sep or not name:
        raise usage_error(f"{option} takes KEY=VALUE, got {raw!r}")
    if looks_like_key(text):
        raise usage_error(
            f"{option}: the value of {name!r} looks like an API key; nothing changed "
            "(a key is never a magic argument: run %chat key)"
        )
    value: Any
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except _NotJSONValue:
        raise usage_error(
            f"{option}: {name} takes a finite number, got {text.strip()!r} (JSON has no NaN or "
            "Infinity, so no server could read it)"
        ) from None
    except ValueError:
        value = text  # a bare word is a string: model=gpt-4o, user=alice
    try:
        refuse_key_name(name)
    except NbChatError as error:
        raise usage_error(error) from None
    return name, value


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
            raise usage_error(f"--param cannot set {name!r}; it has its own option")
        params[name] = value
    return params
