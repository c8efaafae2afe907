"""Rendering a reply while it streams, without rendering again what can no longer change.

A live display redraws a reply many times a second while it grows. Rendering the whole text each
time costs more the longer the reply gets, for HTML that is mostly what was sent before. A reply
is a sequence of top-level blocks, and a block is *finished* once no text that may still arrive
can change it (the rule is :func:`_finished_count`'s): a finished block is rendered once, and
its source is never parsed again.

Parsing and rendering are :mod:`nbchat.render`'s (its one parser and its safe renderer), so the
parts joined are always exactly what :func:`nbchat.render.render_markdown` makes of the text.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it.token import Token
from markdown_it.utils import EnvType

from .render import markdown_parser, normalize, render_tokens

__all__ = ["IncrementalRenderer", "RenderedParts"]


@dataclass(frozen=True, slots=True)
class RenderedParts:
    """The HTML of a reply so far, split where it can no longer change."""

    finished: tuple[str, ...]
    """The HTML of each finished top-level block, in order. Across updates that extend the text
    this only grows, and an entry never changes: a display may append it once and forget it."""
    tail: str
    """The HTML of the blocks still open; replace the previous tail with it. May be empty."""


@dataclass(frozen=True, slots=True)
class _Block:
    """A top-level block of a parse, as far as deciding whether it is finished needs."""

    start: int
    """Index of its first token."""
    line: int
    """Its first source line."""
    closes_itself: bool
    """It ends on a line of its own and takes no continuation lines: an ATX heading, a
    thematic break, a (necessarily closed) fence, a display-math block."""
    opens_math: bool
    """It is not math but starts like display math (``$$`` or ``\\[``): a closing line that
    arrives later can turn it and every line after it, up to a blank line, into one block."""


_WINDOW = 128 * 1024
"""Characters of a long open part parsed at once (see ``IncrementalRenderer._read_ahead``)."""
_SELF_CLOSING = frozenset({"hr", "fence", "math_block"})
_MATH_OPENERS = ("$$", "\\[")
_DIGITS_ONLY = re.compile(r"[ \t]*\d+")


def _line_starts(source: str) -> list[int]:
    """Offsets where each line begins; only ``\\n`` ends a line, as in markdown-it."""
    starts = [0]
    position = source.find("\n")
    while position >= 0:
        starts.append(position + 1)
        position = source.find("\n", position + 1)
    return starts


def _line(source: str, starts: list[int], number: int) -> str:
    end = starts[number + 1] - 1 if number + 1 < len(starts) else len(source)
    return source[starts[number] : end]


def _top_level_blocks(tokens: Sequence[Token], source: str, starts: list[int]) -> list[_Block]:
    blocks = []
    for index, token in enumerate(tokens):
        if token.level == 0 and token.nesting >= 0 and token.map is not None:
            line = token.map[0]
            closes_itself = token.type in _SELF_CLOSING or (
                token.type == "heading_open" and token.markup.startswith("#")
            )
            opens_math = token.type != "math_block" and _line(source, starts, line).lstrip(
                " \t"
            ).startswith(_MATH_OPENERS)
            blocks.append(_Block(index, line, closes_itself, opens_math))
    return blocks


def _finished_count(source: str, blocks: list[_Block], starts: list[int]) -> int:
    """How many leading blocks of ``source`` no text appended to it can change.

    Everything above the start of block *k* is final when block *k-1* cannot take in anything
    from line *k* on, and line *k* cannot turn into a continuation of block *k-1*:

    - a blank line separates them. After a blank line only a list or an indented code block
      can go on, and whether line *k* is indented enough is known from its first visible
      character; except that a line of bare digits at the very end is not settled yet: ``2``
      becomes the list item ``2.`` when the ``.`` arrives.
    - or block *k-1* closes itself (see :class:`_Block`), line *k* is complete (until then it
      might become a table's delimiter row, turning a heading above it into a table header),
      and no block since the last blank line opens math that a later line could close.

    The last block is never finished: more text may extend it.
    """
    last_line = len(starts) - 1
    finished = 0
    math_may_open = False
    for k in range(1, len(blocks)):
        before, line = blocks[k - 1], blocks[k].line
        math_may_open = math_may_open or before.opens_math
        if _line(source, starts, line - 1).strip(" \t") == "":
            math_may_open = False
            if line < last_line or not _DIGITS_ONLY.fullmatch(_line(source, starts, line)):
                finished = k
        elif before.closes_itself and not math_may_open and line < last_line:
            finished = k
    return finished


class IncrementalRenderer:
    """Renders a growing reply: finished top-level blocks are rendered once and cached; only the
    open tail is re-rendered.

    Each :meth:`update` parses only the source after the last finished block, so the work per
    update follows the size of the open part, not of the whole reply. Its output always equals
    :func:`nbchat.render.render_markdown` of the same text, split into finished blocks and the
    open tail.
    """

    __slots__ = ("_finished", "_offset", "_render_seconds", "_text")

    def __init__(self) -> None:
        self._text = ""  # the (normalized) text of the last update
        self._offset = 0  # where its open part starts; the finished blocks lie before
        self._finished: tuple[str, ...] = ()
        self._render_seconds = 0.0

    @property
    def render_seconds(self) -> float:
        """Total ``time.perf_counter()`` time spent in :meth:`update`, for throttling."""
        return self._render_seconds

    def update(self, text: str, *, highlight_tail: bool = True) -> RenderedParts:
        """Render ``text``, the whole reply so far.

        Normally it extends the previous text. If it does not (the reply was restarted or
        edited), rendering starts over, and ``finished`` may then lose or change entries.
        ``highlight_tail=False`` leaves code in the open tail unhighlighted: highlighted HTML is
        several times larger, and a live display resends the tail many times; finished blocks
        are always highlighted.
        """
        began = time.perf_counter()
        try:
            return self._update(normalize(text), highlight_tail)
        finally:
            self._render_seconds += time.perf_counter() - began

    def _update(self, text: str, highlight_tail: bool = True) -> RenderedParts:
        if not text.startswith(self._text):
            self._offset = 0
            self._finished = ()
        self._text = text
        self._read_ahead(text)
        source = text[self._offset :]
        env: EnvType = {}
        tokens = markdown_parser().parse(source, env)
        starts = _line_starts(source)
        blocks = _top_level_blocks(tokens, source, starts)
        if not blocks:
            return RenderedParts(self._finished, "")
        done = self._keep_finished(source, tokens, env, starts, blocks)
        tail = render_tokens(tokens[blocks[done].start :], env, highlight_code=highlight_tail)
        return RenderedParts(self._finished, tail)

    def _keep_finished(
        self,
        source: str,
        tokens: Sequence[Token],
        env: EnvType,
        starts: list[int],
        blocks: list[_Block],
    ) -> int:
        """Render and keep the finished blocks of ``source`` (which starts at the offset), move
        the offset past them; how many there were."""
        done = _finished_count(source, blocks, starts)
        if done:
            self._finished += tuple(
                render_tokens(tokens[block.start : following.start], env)
                for block, following in itertools.pairwise(blocks[: done + 1])
            )
            self._offset += starts[blocks[done].line]
        return done

    def _read_ahead(self, text: str) -> None:
        """Take a long open part in windows of :data:`_WINDOW` characters cut at line ends,
        keeping each one's finished blocks, as if the text had arrived that way.

        A reply that arrives in one big piece (a whole answer, a fast server, a long stall in
        the display) would otherwise be parsed at once, and markdown-it's tokens take about a
        hundred times the text's size. Since a finished block is one no appended text can
        change, the blocks a window finishes are the text's own; a window that finishes none
        (one long paragraph, an unclosed fence) ends the reading ahead.
        """
        while len(text) - self._offset > 2 * _WINDOW:
            cut = text.rfind("\n", self._offset, self._offset + _WINDOW)
            if cut < 0:
                return
            source = text[self._offset : cut + 1]
            env: EnvType = {}
            tokens = markdown_parser().parse(source, env)
            starts = _line_starts(source)
            blocks = _top_level_blocks(tokens, source, starts)
            if not blocks or not self._keep_finished(source, tokens, env, starts, blocks):
                return
