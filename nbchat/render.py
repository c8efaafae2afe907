"""Untrusted Markdown in, safe HTML out: whole, or incrementally while a reply streams.

A model's reply is untrusted input that lands in a notebook output, where HTML runs with the
notebook's privileges. So the parser is configured to treat Markdown as Markdown and nothing more:

- raw HTML is shown as text (``html=False``), never passed through;
- links to ``javascript:``, ``vbscript:``, ``file:`` and *all* ``data:`` URLs are refused and
  stay plain text; the check is made after entity- and percent-decoding and with whitespace and
  control characters removed, so ``jAvAsCrIpT:``, ``java&#x09;script:`` and ``%6Aavascript:``
  are refused too; links get ``rel="noopener noreferrer nofollow"``;
- images are never loaded: a remote image URL is a channel out of the notebook (its query string
  can carry whatever the model was shown), so an image becomes a link labelled with its alt text;
- every attribute value (titles, URLs, the language class of a code block) is escaped, and the
  class of a highlighted block comes from Pygments' own alias, not from the fence's info string.

Code is highlighted by Pygments with inline styles, because notebook frontends do not ship
Pygments' CSS. Only a fence that names a language Pygments knows is highlighted: guessing a
lexer is slow and often wrong, so unlabelled code stays plain.

Math is left for the frontend's MathJax: ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` are
taken out before Markdown can read ``_``, ``*`` or ``\\`` inside them as emphasis or escapes,
and are written back escaped between ``$…$`` (inline) or ``$$…$$`` (display) delimiters, which
JupyterLab, Notebook 7 and classic Notebook all typeset.

Link reference definitions (``[x]: https://…``) are switched off: a definition at the end of a
reply would change links in paragraphs already shown, which the incremental renderer promises
never to do. They show as text, like a link to nowhere.

:class:`IncrementalRenderer` keeps what is finished. A reply is a sequence of top-level blocks;
a block is *finished* once no text that may still arrive can change it, and from then on its
HTML is cached and its source is never parsed again (see :func:`_finished_count` for the rule).
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexers import get_lexer_by_name  # type: ignore[import-untyped]
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

__all__ = [
    "CodeBlock",
    "IncrementalRenderer",
    "RenderedParts",
    "code_blocks",
    "first_code_block",
    "render_markdown",
]


# --- URLs --------------------------------------------------------------------------------------

_REFUSED_SCHEMES = ("javascript:", "vbscript:", "file:", "data:")
# Browsers drop tabs and newlines anywhere in a URL and C0 controls or spaces around it.
_IGNORED_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f]+")
_LINK_REL = "noopener noreferrer nofollow"


def _is_safe_url(url: str) -> bool:
    """Whether a link or image URL may appear in an ``href``.

    markdown-it keeps ``data:image/…`` URLs; they are refused here too, since nothing in a
    reply needs one and an SVG image is a document that may carry script.
    """
    squashed = _IGNORED_BY_BROWSERS.sub("", unquote(url)).lower()
    return not squashed.startswith(_REFUSED_SCHEMES)


# --- code --------------------------------------------------------------------------------------

_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True)
# Tokens that the style leaves uncoloured inherit the theme's text colour, which is light in a
# dark theme: give the block the style's own background and a dark text colour to match.
# Notebook themes style `pre` and `code` themselves (JupyterLab gives `code` the page's background
# and both no padding), so the block sets what it needs to read as one panel.
_PRE_STYLE = (
    f"background: {_FORMATTER.style.background_color}; color: #1f1f1f; "
    "padding: 0.6em 0.8em; margin: 0.4em 0 1em; border-radius: 4px; overflow-x: auto"
)
_CODE_STYLE = "background: transparent; padding: 0"
_MAX_LANGUAGE_NAME = 40


@lru_cache(maxsize=256)
def _lexer(name: str) -> Any:
    """The Pygments lexer for a fence's language name, or None when Pygments has none.

    Cached, misses included: a miss makes Pygments scan its plugin entry points.
    """
    if len(name) > _MAX_LANGUAGE_NAME:
        return None
    try:
        return get_lexer_by_name(name, stripnl=False)
    except ClassNotFound:
        return None


# --- math --------------------------------------------------------------------------------------


def _math_inline_brackets(state: StateInline, silent: bool) -> bool:
    """``\\(…\\)`` (inline) and ``\\[…\\]`` (display) inside a paragraph, as OpenAI models write.

    It runs before the ``escape`` rule, which would otherwise read ``\\(`` as an escaped ``(``.
    An escaped backslash (``\\\\(``) is consumed by ``escape`` before this rule sees the ``(``.
    """
    src, pos = state.src, state.pos
    if src[pos] != "\\" or pos + 1 >= state.posMax:
        return False
    opener = src[pos + 1]
    if opener == "(":
        closer, token_type = "\\)", "math_inline"
    elif opener == "[":
        closer, token_type = "\\]", "math_inline_double"
    else:
        return False
    end = src.find(closer, pos + 2, state.posMax)
    if end < 0 or not src[pos + 2 : end].strip():
        return False
    if not silent:
        token = state.push(token_type, "math", 0)
        token.content = src[pos + 2 : end]
        token.markup = src[pos : pos + 2]
    state.pos = end + 2
    return True


def _math_block_brackets(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """``\\[`` … ``\\]`` on lines of their own: display math.

    Unlike texmath's rule it never crosses a blank line or the end of its container, so a
    ``\\]`` that arrives later cannot reshape blocks above a blank line that are already shown.
    """
    if state.is_code_block(start_line):
        return False
    start = state.bMarks[start_line] + state.tShift[start_line]
    line_end = state.eMarks[start_line]
    if not state.src.startswith("\\[", start, line_end):
        return False
    first = state.src[start + 2 : line_end].rstrip()
    if "\\]" in first:
        if not first.endswith("\\]") or not first[:-2].strip():
            return False  # text after the closer, or nothing inside: leave it to the paragraph
        content, last_line = first[:-2], start_line
    else:
        parts = [first]
        last_line = start_line + 1
        while True:
            if (
                last_line >= end_line
                or state.isEmpty(last_line)
                or state.sCount[last_line] < state.blkIndent
            ):
                return False
            begin = state.bMarks[last_line] + state.tShift[last_line]
            text = state.src[begin : state.eMarks[last_line]].rstrip()
            if text.endswith("\\]"):
                parts.append(text[:-2])
                break
            parts.append(text)
            last_line += 1
        content = "\n".join(parts)
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = content
    token.markup = "\\["
    token.map = [start_line, last_line + 1]
    state.line = last_line + 1
    return True


# --- rendering ---------------------------------------------------------------------------------


def _inside_link(tokens: Sequence[Token], idx: int) -> bool:
    depth = 0
    for token in tokens[:idx]:
        if token.type == "link_open":
            depth += 1
        elif token.type == "link_close":
            depth -= 1
    return depth > 0


class _SafeRenderer(RendererHTML):
    """markdown-it's HTML renderer with the token rules that keep a reply inert.

    Public method names are render rules, picked by token type (markdown-it's convention).
    """

    def link_open(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        token = tokens[idx]
        token.attrSet("rel", _LINK_REL)
        token.attrSet("target", "_blank")
        return self.renderToken(tokens, idx, options, env)

    def image(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        alt = self.renderInlineAsText(token.children, options, env).strip() or "image"
        label = "🖼 " + escapeHtml(alt)
        if _inside_link(tokens, idx):
            return label  # an anchor inside an anchor would split the outer link
        anchor = Token("link_open", "a", 1)
        anchor.attrSet("href", str(token.attrGet("src") or ""))
        title = token.attrGet("title")
        if title:
            anchor.attrSet("title", str(title))
        anchor.attrSet("rel", _LINK_REL)
        anchor.attrSet("target", "_blank")
        anchor.attrSet("class", "image-link")
        return f"<a{self.renderAttrs(anchor)}>{label}</a>"

    def fence(self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
        token = tokens[idx]
        info = unescapeAll(token.info).split(maxsplit=1)
        lexer = _lexer(info[0].lower()) if info else None
        if lexer is None or env.get("plain_code"):
            return f"<pre><code>{escapeHtml(token.content)}</code></pre>\n"
        spans = str(highlight(token.content, lexer, _FORMATTER))
        language = escapeHtml(str(lexer.aliases[0]))
        return (
            f'<pre style="{_PRE_STYLE}"><code class="language-{language}" style="{_CODE_STYLE}">'
            f"{spans}</code></pre>\n"
        )

    def math_inline(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return f'<span class="math inline">${escapeHtml(tokens[idx].content.strip())}$</span>'

    def math_inline_double(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        content = escapeHtml(tokens[idx].content.strip())
        return f'<span class="math display">$${content}$$</span>'

    def math_block(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        content = escapeHtml(tokens[idx].content.strip())
        return f'<div class="math display">$${content}$$</div>\n'


class _SafeMarkdownIt(MarkdownIt):
    """markdown-it with a stricter link check than its own (which lets ``data:image/…`` by)."""

    def validateLink(self, url: str) -> bool:
        return _is_safe_url(url)


@cache
def _markdown() -> MarkdownIt:
    """The one configured parser, built on first use (it costs a few milliseconds)."""
    md = _SafeMarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False},
        renderer_cls=_SafeRenderer,
    ).enable(["table", "strikethrough"])
    md.disable("reference")
    md.use(
        dollarmath_plugin,
        allow_labels=False,  # a label would become an element id on the page
        allow_space=False,  # "$5 and $ 6" is money, not math
        allow_digits=False,
        allow_blank_lines=False,  # a later "$$" must not swallow paragraphs already shown
        double_inline=True,
    )
    md.inline.ruler.before("escape", "math_inline_brackets", _math_inline_brackets)
    md.block.ruler.before("fence", "math_block_brackets", _math_block_brackets)
    # The plugin installed its own render rules for the math tokens; ours keep the delimiters.
    for name in ("math_inline", "math_inline_double", "math_block"):
        md.add_render_rule(name, getattr(_SafeRenderer, name))
    return md


_NEWLINES = re.compile(r"\r\n?")


def _normalize(text: str) -> str:
    """What markdown-it's ``normalize`` rule does, done first so line offsets agree with it."""
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    if "\0" in text:
        text = text.replace("\0", "\ufffd")
    return text


def _render_tokens(md: MarkdownIt, tokens: Sequence[Token], env: EnvType) -> str:
    return str(md.renderer.render(tokens, md.options, env))


def render_markdown(text: str) -> str:
    """Render a whole Markdown text to safe HTML (a final reply, or a stored one)."""
    md = _markdown()
    env: EnvType = {}
    return _render_tokens(md, md.parse(_normalize(text), env), env)


# --- incremental rendering ---------------------------------------------------------------------


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
    :func:`render_markdown` of the same text, split into finished blocks and the open tail.
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
            return self._update(_normalize(text), highlight_tail)
        finally:
            self._render_seconds += time.perf_counter() - began

    def _update(self, text: str, highlight_tail: bool = True) -> RenderedParts:
        if not text.startswith(self._text):
            self._offset = 0
            self._finished = ()
        self._text = text
        source = text[self._offset :]
        md = _markdown()
        env: EnvType = {}
        tokens = self._parse(source, env)
        starts = _line_starts(source)
        blocks = _top_level_blocks(tokens, source, starts)
        if not blocks:
            return RenderedParts(self._finished, "")
        done = _finished_count(source, blocks, starts)
        if done:
            self._finished += tuple(
                _render_tokens(md, tokens[block.start : following.start], env)
                for block, following in itertools.pairwise(blocks[: done + 1])
            )
            self._offset += starts[blocks[done].line]
        if not highlight_tail:
            env["plain_code"] = True
        tail = _render_tokens(md, tokens[blocks[done].start :], env)
        return RenderedParts(self._finished, tail)

    def _parse(self, source: str, env: EnvType) -> list[Token]:
        """Parse the open part of the reply (a seam for tests that count the work done)."""
        return _markdown().parse(source, env)


@dataclass(frozen=True)
class CodeBlock:
    """A fenced code block of a reply: what a "copy" or "new cell" control hands on."""

    language: str
    """The first word of the fence's info string (``python`` in ```` ```python ````); may be ""."""
    code: str


def code_blocks(text: str) -> list[CodeBlock]:
    """The reply's fenced and indented code blocks, in order."""
    blocks = []
    for token in _markdown().parse(_normalize(text)):
        if token.type in ("fence", "code_block"):
            language = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
            blocks.append(CodeBlock(language, token.content))
    return blocks


def first_code_block(text: str) -> str | None:
    """The content of the reply's first fenced code block, or None when it has none."""
    for token in _markdown().parse(_normalize(text)):
        if token.type == "fence":
            return token.content
    return None
