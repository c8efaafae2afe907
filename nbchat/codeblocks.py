"""The code blocks of a reply, numbered the way the reader counts them.

The rule: the code blocks of a reply are every block that the reader sees rendered as code,
fenced (```` ``` ```` or ``~~~``) and indented alike, at any depth (inside a list or a quote
too), in the order they appear, numbered from 1. One list serves every control that names a
block: ``%%chat --code`` takes block 1, ``%chat code N`` takes block N, and the panel's Copy
buttons are numbered by it, so "block 2" is the same block wherever it is said.

The reply is parsed by :mod:`nbchat.render`'s one parser, the one that renders it, so what is a
code block here is exactly what is shown as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .render import markdown_parser, normalize

__all__ = ["CODE_TOKENS", "CodeBlock", "code_blocks"]

CODE_TOKENS = frozenset({"fence", "code_block"})


@dataclass(frozen=True)
class CodeBlock:
    """A code block of a reply: what a "copy" or "new cell" control hands on."""

    language: str
    """The first word of a fence's info string (``python`` in ```` ```python ````); "" for a
    fence without one and for an indented block."""
    code: str
    """The block's text as written, without the fence lines or the indentation."""


def code_blocks(text: str) -> list[CodeBlock]:
    """The reply's code blocks in the module's order: block N is ``code_blocks(text)[N - 1]``."""
    blocks = []
    for token in markdown_parser().parse(normalize(text)):
        if token.type in CODE_TOKENS:
            words = token.info.split(maxsplit=1)
            blocks.append(CodeBlock(words[0] if words else "", token.content))
    return blocks
