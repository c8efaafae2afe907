"""Properties of the renderer over any Markdown hypothesis makes, hostile HTML, dangerous URLs,
entities and nested constructs included:

- what comes out holds only tags and attributes of a small allow-list, no comment or
  declaration, and no URL of a dangerous scheme, however the scheme was spelt;
- rendering while the text streams in, split into chunks anyhow, ends equal to rendering the
  whole (and each step equals the whole render of the text so far), also when a long text
  that arrived at once is read ahead in windows.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat import incremental
from nbchat.incremental import IncrementalRenderer
from nbchat.render import markdown_parser, render_markdown

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None)

ALLOWED: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ["p", "em", "strong", "s", "blockquote", "ul", "li", "hr", "br", "h1", "h2", "h3"],
        frozenset(),
    ),
    **dict.fromkeys(["h4", "h5", "h6", "table", "thead", "tbody", "tr"], frozenset()),
    "ol": frozenset({"start"}),
    "th": frozenset({"style"}),
    "td": frozenset({"style"}),
    "a": frozenset({"href", "title", "rel", "target", "class"}),
    "pre": frozenset({"style"}),
    "code": frozenset({"style", "class"}),
    "span": frozenset({"style", "class"}),
    "div": frozenset({"class"}),
}
"""Every tag the renderer may write, and the attributes each may carry."""
REFUSED_SCHEMES = ("javascript:", "vbscript:", "file:", "data:")
IGNORED_BY_BROWSERS = re.compile(r"[\x00-\x20\x7f]+")
STYLE_VALUE = re.compile(r"[a-z\-]+\s*:\s*[^;:()<>\"'\\]*(\([^()<>\"'\\]*\))?[^;:()<>\"'\\]*;?\s*")
"""One declaration as Pygments or a table alignment writes it: ``color: var(--x, #000)``."""


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.other: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_comment(self, data: str) -> None:
        self.other.append(f"comment {data!r}")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"declaration {decl!r}")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"processing instruction {data!r}")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"unknown declaration {data!r}")


def assert_safe(html: str, markdown: str) -> None:
    collected = _Collect()
    collected.feed(html)
    collected.close()
    assert collected.other == [], (markdown, collected.other)
    for tag, attrs in collected.tags:
        assert tag in ALLOWED, (markdown, tag, attrs)
        assert set(attrs) <= ALLOWED[tag], (markdown, tag, attrs)
        href = attrs.get("href")
        if href is not None:
            squashed = IGNORED_BY_BROWSERS.sub("", unquote(href)).lower()
            assert not squashed.startswith(REFUSED_SCHEMES), (markdown, href)
        style = attrs.get("style")
        if style is not None:
            assert STYLE_VALUE.sub("", style.lower()) == "", (markdown, style)
            assert "url(" not in style.lower() and "expression" not in style.lower()
        if tag == "a":
            assert "noopener" in (attrs.get("rel") or ""), (markdown, attrs)


# --- hostile Markdown ---------------------------------------------------------------------------

SCHEMES = [
    *("javascript:", "JaVaScRiPt:", "vbscript:", "VBSCRIPT:", "data:", "DATA:", "file:"),
    *("&#106;avascript:", "&#x6A;avascript:", "java&#x09;script:", "java&#9;script:"),
    *("java&Tab;script:", "javascript&colon;", "javascript&#58;", "javascript%3A", "%6Aavascript:"),
    *("%20javascript:", " javascript:", "\tjavascript:", "\x00javascript:", "java\\script:"),
    *("javascript\\:", "java\nscript:", "data:text/html;base64,", "data:image/svg+xml,"),
    *("https://example.com/", "http://a.example/", "mailto:a@b.example", "/relative", "#x", ""),
]
PAYLOADS = ["alert(1)", "alert(document.cookie)", "<script>alert(1)</script>", "x", "%22onclick"]
URL = st.tuples(st.sampled_from(SCHEMES), st.sampled_from(PAYLOADS)).map("".join)


def _link(parts: tuple[str, str, str]) -> str:
    shape, text, url = parts
    return shape.format(text=text, url=url)


LINK_SHAPES = [
    "[{text}]({url})",
    "![{text}]({url})",
    "<{url}>",
    '[{text}]({url} "t\\"itle")',
    "[{text}](<{url}>)",
    "[![{text}]({url})]({url})",
    "[a [{text}]({url})](https://b.example)",
    "**[{text}]({url})**",
]
LINK = st.tuples(st.sampled_from(LINK_SHAPES), st.sampled_from(["t", "", "<b>", "`c`"]), URL).map(
    _link
)
HTML = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<svg onload=alert(1)>",
        "<iframe src=https://a.example></iframe>",
        "<style>body{display:none}</style>",
        "<!-- comment -->",
        "<![CDATA[x]]>",
        "<!DOCTYPE html>",
        "<?php echo 1 ?>",
        '<div style="background:url(javascript:alert(1))">',
        "<details open ontoggle=alert(1)>",
        '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
        "</p><script>",
        "<",
        "<a",
        '"><script>',
    ]
)
ENTITY = st.sampled_from(
    ["&amp;", "&lt;script&gt;", "&#0;", "&#x110000;", "&nbsp;", "&colon;", "&Tab;", "&#60;", "&"]
)
CONSTRUCT = st.sampled_from(
    [
        *("# ", "## ", "> ", "- ", "1. ", "2) ", "    ", "\t", "---", "***", "===", "| a | b |"),
        *("|---|:--:|", "```", "```python", '```"><script>', "```js onclick=x", "~~~"),
        *("`", "``", "*", "**", "_", "~~", "\\", "$", "$$", "\\(", "\\)", "\\[", "\\]"),
        *("$<script>$", "\\(<img src=x>\\)", "[x]: javascript:alert(1)", "[x]", "[^1]"),
    ]
)
TEXT = st.text(max_size=8)
PIECE = st.one_of(LINK, HTML, ENTITY, CONSTRUCT, URL, TEXT)
GLUE = st.sampled_from(["", " ", "\n", "\n\n", "\n    ", "\n> ", "\n- ", "\r\n", "\n```\n"])
MARKDOWN = st.lists(st.tuples(PIECE, GLUE).map("".join), max_size=12).map("".join)


@PROPERTY
@given(markdown=MARKDOWN)
def test_any_markdown_renders_only_safe_tags_attributes_and_urls(markdown: str) -> None:
    assert_safe(render_markdown(markdown), markdown)


@PROPERTY
@given(markdown=st.text(max_size=200))
def test_any_text_renders_only_safe_tags_attributes_and_urls(markdown: str) -> None:
    assert_safe(render_markdown(markdown), markdown)


# --- incremental equals whole -------------------------------------------------------------------

LINES = st.sampled_from(
    [
        *("", "- a", "  - b", "* star", "1. x", "2", "2.", " 3. y", "10)", "> q", "> - z"),
        *("para text", "more *em", "ph* end", "# H", "## H2 | x", "H | x", "|---|---|"),
        *("| a | b |", "```", "```py", "~~~", "    code", "---", "===", "***", "<div>"),
        *("$$", "$$x_1$$", "\\[", "\\]", "text $a", "b$ more", "\\(q_1", "r\\)", "[x](y)"),
    ]
)
DOCUMENT = st.one_of(
    st.lists(st.one_of(LINES, TEXT), max_size=16).map("\n".join),
    MARKDOWN,
)


def chunks(text: str, cuts: list[int]) -> list[str]:
    """The growing prefixes of ``text`` cut at ``cuts`` (positions, any order, any repeats)."""
    ends = sorted({min(max(cut, 0), len(text)) for cut in cuts} | {len(text)})
    return [text[:end] for end in ends]


@PROPERTY
@given(text=DOCUMENT, cuts=st.lists(st.integers(0, 400), max_size=12))
def test_incremental_rendering_over_any_split_ends_equal_to_the_whole(
    text: str, cuts: list[int]
) -> None:
    renderer = IncrementalRenderer()
    previous: tuple[str, ...] = ()
    for prefix in chunks(text, cuts):
        parts = renderer.update(prefix)
        assert "".join(parts.finished) + parts.tail == render_markdown(prefix), repr(prefix)
        assert parts.finished[: len(previous)] == previous, repr(prefix)
        previous = parts.finished
    final = renderer.update(text)
    assert "".join(final.finished) + final.tail == render_markdown(text)


@PROPERTY
@given(text=DOCUMENT)
def test_incremental_rendering_character_by_character_ends_equal_to_the_whole(text: str) -> None:
    renderer = IncrementalRenderer()
    for end in range(len(text) + 1):
        parts = renderer.update(text[:end])
    assert "".join(parts.finished) + parts.tail == render_markdown(text)


# --- a long text arriving at once is read in windows ----------------------------------------


@contextlib.contextmanager
def window(characters: int) -> Iterator[None]:
    saved = incremental._WINDOW
    incremental._WINDOW = characters
    try:
        yield
    finally:
        incremental._WINDOW = saved


@PROPERTY
@given(text=DOCUMENT, size=st.integers(1, 40), cuts=st.lists(st.integers(0, 400), max_size=4))
def test_reading_ahead_in_windows_ends_equal_to_the_whole(
    text: str, size: int, cuts: list[int]
) -> None:
    with window(size):
        renderer = IncrementalRenderer()
        previous: tuple[str, ...] = ()
        for prefix in chunks(text, cuts):
            parts = renderer.update(prefix)
            assert "".join(parts.finished) + parts.tail == render_markdown(prefix), repr(prefix)
            assert parts.finished[: len(previous)] == previous, repr(prefix)
            previous = parts.finished


def test_a_long_reply_arriving_at_once_is_parsed_a_window_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = markdown_parser()
    parse = parser.parse
    parsed: list[int] = []

    def measuring(source: str, env: Any = None) -> Any:
        parsed.append(len(source))
        return parse(source, env)

    monkeypatch.setattr(parser, "parse", measuring)
    text = "A short paragraph about the result.\n\n- a point\n- another point\n\n" * 20_000
    parts = IncrementalRenderer().update(text)
    assert len(text) > 5 * incremental._WINDOW
    assert max(parsed) <= 2 * incremental._WINDOW + 100
    assert sum(parsed) <= 2 * len(text)  # each part of the text is parsed about once
    monkeypatch.undo()
    assert "".join(parts.finished) + parts.tail == render_markdown(text)
