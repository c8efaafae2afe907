"""Untrusted Markdown in, safe HTML out.

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

Code is highlighted by :mod:`nbchat.highlight` (Pygments, inline styles in the theme's colours).
Only a fence that names a language Pygments knows is highlighted: guessing a lexer is slow and
often wrong, so unlabelled code stays plain.

Math is left for the frontend's MathJax: ``$…$``, ``$$…$$``, ``\\(…\\)`` and ``\\[…\\]`` are
taken out before Markdown can read ``_``, ``*`` or ``\\`` inside them as emphasis or escapes,
and are written back escaped between ``$…$`` (inline) or ``$$…$$`` (display) delimiters, which
JupyterLab, Notebook 7 and classic Notebook all typeset.

Link reference definitions (``[x]: https://…``) are switched off: a definition at the end of a
reply would change links in paragraphs already shown, which :mod:`nbchat.incremental` promises
never to do. They show as text, like a link to nowhere.

There is one configured parser, :func:`markdown_parser`. :mod:`nbchat.incremental` and
:mod:`nbchat.codeblocks` parse with it too, so what they call a block or a code block is what
the reader sees rendered; they render tokens back with :func:`render_tokens`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_block import StateBlock
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin

from .highlight import code_html, highlighted, lexer_for

__all__ = ["markdown_parser", "normalize", "render_markdown", "render_tokens"]


# --- URLs -----------------------------------------------------------------------------------------

_REFUSED_SCHEMES = ("javascript:", "vbscript:", "file:", "data:")
# Browsers drop tabs and newlines anywhere in a URL and C0 controls or spaces around it.
_IGNORED_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f]+")
_LINK_REL = "noopener noreferrer nofollow"
_PLAIN_CODE = "plain_code"  # an env key: when true, fences are not highlighted


def _is_safe_url(url: str) -> bool:
    """Whether a link or image URL may appear in an ``href``.

    markdown-it keeps ``data:image/…`` URLs; they are refused here too, since nothing in a
    reply needs one and an SVG image is a document that may carry script.
    """
    squashed = _IGNORED_BY_BROWSERS.sub("", unquote(url)).lower()
    return not squashed.startswith(_REFUSED_SCHEMES)


# --- code -----------------------------------------------------------------------------------------


# --- math -----------------------------------------------------------------------------------------


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


# --- the safe renderer ----------------------------------------------------------------------------


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
        lexer = lexer_for(info[0].lower()) if info else None
        if lexer is None or env.get(_PLAIN_CODE):
            return code_html(escapeHtml(token.content))
        return code_html(
            highlighted(token.content, lexer), language=escapeHtml(str(lexer.aliases[0]))
        )

    def code_block(
        self, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        return code_html(escapeHtml(tokens[idx].content))

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
def markdown_parser() -> MarkdownIt:
    """The one configured parser, built on first use (it costs a few milliseconds).

    Everything nbchat parses goes through this instance's ``parse``, so the safety settings
    above hold wherever a reply is read, and a block means the same thing everywhere.
    """
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


def normalize(text: str) -> str:
    """What markdown-it's ``normalize`` rule does, done first so that offsets into the text
    agree with the line numbers in the tokens (the incremental renderer slices by them)."""
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    if "\0" in text:
        text = text.replace("\0", "\ufffd")
    return text


def render_tokens(tokens: Sequence[Token], env: EnvType, *, highlight_code: bool = True) -> str:
    """The safe HTML of parsed tokens: all of a parse, or a run of whole top-level blocks of it.

    ``highlight_code=False`` leaves fenced code plain: highlighted HTML is several times larger,
    which matters for the part of a reply that is sent to the page again and again.
    """
    md = markdown_parser()
    if not highlight_code:
        env = {**env, _PLAIN_CODE: True}
    return str(md.renderer.render(tokens, md.options, env))


def render_markdown(text: str) -> str:
    """Render a whole Markdown text to safe HTML (a final reply, or a stored one)."""
    env: EnvType = {}
    return render_tokens(markdown_parser().parse(normalize(text), env), env)
