"""Code blocks drawn in the notebook's theme: Pygments with inline styles in JupyterLab's colours.

Notebook frontends do not ship Pygments' CSS, and a saved notebook is read without nbchat's help,
so every colour is inline. Each is a theme variable with the Light theme's value as a fallback:
the block's background and text follow the theme, and so do token colours, taken from the
colours JupyterLab gives its own code editor, which are the ones known to read on that
background in Light and Dark alike.

A block longer than :data:`MAX_HIGHLIGHT` characters (200 KB) is shown plain: Pygments runs in
the kernel at a few hundred kilobytes a second, so a 10 MB block would hold the notebook for
over a minute, and colour does not help anyone read that much code.
"""

from __future__ import annotations

from functools import lru_cache
from html import escape
from typing import Any, ClassVar

from pygments import highlight, lexers  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.style import Style  # type: ignore[import-untyped]
from pygments.token import (  # type: ignore[import-untyped]
    Comment,
    Generic,
    Keyword,
    Name,
    Number,
    Operator,
    String,
)
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

__all__ = ["MAX_HIGHLIGHT", "code_html", "highlighted", "lexer_for"]

MAX_HIGHLIGHT = 200_000
"""Most characters of one code block that are highlighted; a longer block is shown plain."""


def _editor_colour(name: str, light: str) -> str:
    """A JupyterLab editor colour, with its Light-theme value for frontends without the variable.

    No spaces: Pygments splits a style definition on whitespace.
    """
    return f"var(--jp-mirror-editor-{name}-color,{light})"


class _ThemeStyle(Style):  # type: ignore[misc]
    """Token colours that follow the notebook's theme: JupyterLab's own editor colours.

    A code block's background is the theme's editor background, so the colours the theme gives
    its code editor are the ones known to read on it, Light or Dark. Tokens JupyterLab leaves
    plain (names, punctuation) stay plain here and take the block's text colour. Each fallback
    is the Light theme's value, chosen to keep 3:1 on the fallback background ``#f5f5f5``:
    the ``atom`` and ``bracket`` colours are not used, being below that.
    """

    styles: ClassVar[dict[Any, str]] = {
        Keyword: "bold " + _editor_colour("keyword", "#008000"),
        Operator: "bold " + _editor_colour("operator", "#7800c2"),
        Operator.Word: "bold " + _editor_colour("keyword", "#008000"),
        Name.Builtin: _editor_colour("builtin", "#008000"),
        Name.Exception: _editor_colour("builtin", "#008000"),
        Name.Builtin.Pseudo: _editor_colour("variable-2", "#00366d"),
        Name.Variable: _editor_colour("variable-2", "#00366d"),
        Name.Function: _editor_colour("def", "#00f"),
        Name.Class: _editor_colour("def", "#00f"),
        Name.Decorator: _editor_colour("meta", "#a2f"),
        Name.Label: _editor_colour("string-2", "#708"),
        Name.Tag: _editor_colour("tag", "#170"),
        Name.Attribute: _editor_colour("attribute", "#00c"),
        Comment: "italic " + _editor_colour("comment", "#408080"),
        Comment.Preproc: "noitalic " + _editor_colour("meta", "#a2f"),
        Comment.Hashbang: "noitalic " + _editor_colour("meta", "#a2f"),
        String: _editor_colour("string", "#ba2121"),
        String.Escape: _editor_colour("string-2", "#708"),
        String.Interpol: _editor_colour("string-2", "#708"),
        String.Regex: _editor_colour("string-2", "#708"),
        Number: _editor_colour("number", "#080"),
        Generic.Heading: "bold " + _editor_colour("header", "#00f"),
        Generic.Subheading: "bold " + _editor_colour("header", "#00f"),
        Generic.Deleted: _editor_colour("error", "#f00"),
        Generic.Inserted: _editor_colour("quote", "#090"),
        Generic.Error: _editor_colour("error", "#f00"),
        Generic.Traceback: _editor_colour("error", "#f00"),
        Generic.Prompt: "bold " + _editor_colour("meta", "#a2f"),
        Generic.Emph: "italic",
        Generic.Strong: "bold",
    }


_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True, style=_ThemeStyle)
# Every colour of a block is the theme's, or else the Light theme's: a background from one
# source with text from another is how code goes unreadable (JupyterLab Dark makes `code` text
# white, which on a fixed light background hides every untokenised character). The `code`
# element takes the block's colour rather than the frontend's code colour, for the same reason.
# Notebook themes style `pre` and `code` themselves (JupyterLab gives `code` the page's
# background and both no padding, and wraps their lines anywhere, mid-word), so the block sets
# what it needs to read as one panel whose long lines scroll, as in a code cell.
# Inline, because a saved notebook is read without nbchat's help.
_PRE_STYLE = (
    "background: var(--jp-cell-editor-background, #f5f5f5); "
    "color: var(--jp-content-font-color1, #1f1f1f); "
    "padding: 0.6em 0.8em; margin: 0.4em 0 1em; border-radius: 4px; "
    "overflow-x: auto; white-space: pre"
)
_CODE_STYLE = "background: transparent; color: inherit; padding: 0; white-space: inherit"
_MAX_LANGUAGE_NAME = 40


def code_html(body: str, *, language: str = "") -> str:
    """A code block: highlighted or plain, fenced or indented, all drawn as the same panel, so
    a block does not change its look when its highlighting arrives at the end of a stream."""
    named = f' class="language-{language}"' if language else ""
    return f'<pre style="{_PRE_STYLE}"><code{named} style="{_CODE_STYLE}">{body}</code></pre>\n'


@lru_cache(maxsize=256)
def lexer_for(name: str) -> Any:
    """The Pygments lexer for a fence's language name, or None when Pygments has none.

    Cached, misses included: a miss makes Pygments scan its plugin entry points. The lookup is
    made through :mod:`pygments.lexers` at call time, so replacing it there is seen here.
    """
    if len(name) > _MAX_LANGUAGE_NAME:
        return None
    try:
        return lexers.get_lexer_by_name(name, stripnl=False)
    except ClassNotFound:
        return None


def highlighted(code: str, lexer: Any) -> str:
    """``code`` as Pygments spans with inline theme colours (no surrounding element), or merely
    escaped when it is longer than :data:`MAX_HIGHLIGHT`."""
    if len(code) > MAX_HIGHLIGHT:
        return escape(code, quote=False)
    return str(highlight(code, lexer, _FORMATTER))
