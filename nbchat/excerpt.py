"""Text cut to a token budget, with the cut said in the text itself.

A cell's source, an output's repr or an exception's message can be any size; what goes into a
prompt must not be. :func:`excerpt` keeps whole lines while they fit the budget (counted with
the same offline estimate as dataframe summaries, :func:`nbchat.frames.estimate_tokens`) and
ends with a marker saying how much was left out, so that the user reading the folded
attachment and the model reading the prompt both see that the text is not whole.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHARS_PER_TOKEN", "Excerpt", "excerpt", "fence"]

CHARS_PER_TOKEN = 12
"""More characters than the estimate ever gives one token (a long known word with its space):
text longer than ``budget × CHARS_PER_TOKEN`` cannot fit, so it is cut before it is counted."""

_MARKER_TOKENS = 32  # "… [1,234 more lines, 56,789 characters cut]", its newline, and room


@dataclass(frozen=True, slots=True)
class Excerpt:
    """Text that fits a budget, and whether anything had to go."""

    text: str
    cut: bool


def _tokens(text: str) -> int:
    from .frames import estimate_tokens

    return estimate_tokens(text)


def _fitting_prefix(line: str, budget: int) -> int:
    """How many characters of ``line`` fit ``budget``: the cost of a prefix grows about
    linearly with its length, so each step shrinks it in proportion to its excess, and two or
    three estimates find a prefix that fills nearly all of the budget."""
    size = min(len(line), budget * CHARS_PER_TOKEN)
    cost = _tokens(line[:size])
    while cost > budget and size > 0:
        size = min(size - 1, int(size * budget / cost * 0.97))
        cost = _tokens(line[:size])
    return max(size, 0)


def excerpt(text: str, budget: int) -> Excerpt:
    """``text`` if its estimate is at most ``budget`` tokens; else its first lines (or the
    start of its first line) and a marker saying what was cut, within ``budget`` in all."""
    head = text[: budget * CHARS_PER_TOKEN + 1]
    if len(head) == len(text) and _tokens(text) <= budget:
        return Excerpt(text, False)
    room = max(budget - _MARKER_TOKENS, 0)
    lines = head.split("\n")
    kept: list[str] = []
    used = 0
    for line in lines[:-1] if len(head) < len(text) else lines:
        cost = _tokens(line) + 1
        if used + cost > room:
            break
        kept.append(line)
        used += cost
    while kept:
        shown = "\n".join(kept)
        rest = text[len(shown) :]
        lines_cut, characters_cut = rest.count("\n"), len(rest) - 1
        marked = f"{shown}\n… [{lines_cut:,} more lines, {characters_cut:,} characters cut]"
        if _tokens(marked) <= budget:
            return Excerpt(marked, True)
        kept.pop()
    size = _fitting_prefix(lines[0], room)
    return Excerpt(f"{lines[0][:size]}… [{len(text) - size:,} more characters cut]", True)


def fence(text: str, language: str = "") -> str:
    """``text`` in a Markdown code fence longer than any run of backticks inside it."""
    longest = run = 0
    for character in text:
        run = run + 1 if character == "`" else 0
        longest = max(longest, run)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language}\n{text}\n{ticks}"
