"""The rendering layer: exact cases from a fixture file, safety over every output, incremental
rendering that always equals rendering the whole text, and code blocks numbered as shown."""

from __future__ import annotations

import random
import re
import uuid
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pygments.lexers  # type: ignore[import-untyped]
import pytest
from pygments.lexers.python import PythonLexer  # type: ignore[import-untyped]
from pygments.util import ClassNotFound  # type: ignore[import-untyped]

from nbchat.codeblocks import CodeBlock, code_blocks
from nbchat.incremental import IncrementalRenderer, RenderedParts
from nbchat.render import markdown_parser, render_markdown
from nbchat.transcript import reply_pieces
from nbchat.views import STYLES

FIXTURE = Path(__file__).parent / "fixtures" / "render_cases.txt"
SEPARATOR = "⁂"


def load_cases(path: Path = FIXTURE) -> list[tuple[str, str, str]]:
    """(title, markdown, expected html) for each case; see the file's header for the format."""
    cases: list[tuple[str, str, str]] = []
    state, title, collected, markdown = "between", "", [], ""
    for line in path.read_text("utf-8").splitlines():
        if line != SEPARATOR:
            collected.append(line)
            continue
        if state == "between":
            title = [text for text in collected if text.strip()][-1]
            state = "input"
        elif state == "input":
            markdown = "\n".join(collected) + "\n"
            state = "expected"
        else:
            cases.append((title, markdown, "\n".join(collected) + "\n"))
            state = "between"
        collected = []
    assert state == "between", "the file ends inside a case"
    return cases


CASES = load_cases()


# --- what an output may contain ----------------------------------------------------------------

REFUSED = ("javascript:", "vbscript:", "data:", "file:")


class _Tags(HTMLParser):
    """Every start tag of a fragment, with its attributes decoded as a browser would, and its
    text as a reader sees it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


def assert_inert(html: str, case: str = "") -> None:
    """Nothing in ``html`` can run script, load a resource, or send a referrer."""
    lowered = html.lower()
    assert "<script" not in lowered, case
    assert "<img" not in lowered, case
    for tag_text in re.findall(r"<[^>]*>", lowered):
        unquoted = re.sub(r'"[^"]*"', '""', tag_text)  # the renderer quotes every value with "
        assert not re.search(r"\son\w+\s*=", unquoted), (case, tag_text)
    for tag, attrs in _Tags(html).tags:
        assert tag not in {"script", "img", "iframe", "object", "embed", "style", "svg"}, case
        assert not any(name.startswith("on") for name in attrs), (case, tag, attrs)
        for name in ("href", "src"):
            value = re.sub(r"[\x00-\x20\x7f]", "", attrs.get(name) or "").lower()
            assert not value.startswith(REFUSED), (case, tag, attrs)
        if tag == "a":
            assert "noopener" in (attrs.get("rel") or ""), (case, attrs)


class _Highlighted(_Tags):
    """What Pygments wrote inside one highlighted block."""

    def coloured_spans(self) -> int:
        """How many of its tags are spans that set a text colour."""
        return sum(
            1
            for tag, attrs in self.tags
            if tag == "span" and re.search(r"(^|;)\s*color:", attrs.get("style") or "")
        )


HIGHLIGHTED_CODE = re.compile(r'(<code class="language-[^"]*" style="[^"]*">)(.*?)(</code>)', re.S)


def without_pygments_markup(html: str) -> tuple[str, list[_Highlighted]]:
    """``html`` reduced as the fixture file's header says, and each highlighted block's content.

    The reduction takes out only tags that are spans with nothing but a style: anything else
    inside a highlighted block is left in place, where it fails the exact comparison.
    """
    found: list[_Highlighted] = []

    def reduce(match: re.Match[str]) -> str:
        content = _Highlighted(match[2])
        found.append(content)
        if any(tag != "span" or list(attrs) != ["style"] for tag, attrs in content.tags):
            return match[0]
        return match[1] + escape(content.text, quote=False) + match[3]

    return HIGHLIGHTED_CODE.sub(reduce, html), found


# --- the fixture file --------------------------------------------------------------------------


def test_fixture_file_covers_the_required_ground() -> None:
    titles = " ".join(title for title, _, _ in CASES)
    for topic in ("heading", "table", "javascript", "vbscript", "data", "image", "math", "Chinese"):
        assert topic in titles, topic
    assert len({title for title, _, _ in CASES}) == len(CASES), "titles must be unique"


@pytest.mark.parametrize(
    ("markdown", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_fixture_case_renders_exactly(markdown: str, expected: str) -> None:
    html, highlighted = without_pygments_markup(render_markdown(markdown))
    assert html == expected
    assert all(block.coloured_spans() for block in highlighted)
    assert len(highlighted) == expected.count('<code class="language-')


def test_the_fixture_reduction_keeps_what_is_not_a_plain_span() -> None:
    code = '<code class="language-python" style="x">'
    spans = f'<pre style="c">{code}<span style="color: red">a &lt; b</span></code>'
    assert without_pygments_markup(spans)[0] == f'<pre style="c">{code}a &lt; b</code>'
    for inside in ('<b style="color: red">a</b>', '<span style="color: red" onclick="x">a</span>'):
        html = f"{code}{inside}</code>"
        assert without_pygments_markup(html)[0] == html


def test_no_fixture_output_can_run_script_or_load_anything() -> None:
    for title, markdown, expected in CASES:
        assert_inert(expected, title)
        assert_inert(render_markdown(markdown), title)


# --- safety ------------------------------------------------------------------------------------


def test_raw_html_is_shown_escaped() -> None:
    html = render_markdown('<b onmouseover="x()">bold</b>\n\n<iframe src="https://a.example">\n')
    assert html == (
        "<p>&lt;b onmouseover=&quot;x()&quot;&gt;bold&lt;/b&gt;</p>\n"
        "<p>&lt;iframe src=&quot;https://a.example&quot;&gt;</p>\n"
    )


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        "java&#x0A;script:alert(1)",
        "java&#9;script:alert(1)",
        "&#x6A;avascript:alert(1)",
        "javascript%3Aalert(1)",
        "%20javascript:alert(1)",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=",
        "data:image/png;base64,iVBORw0KGgo=",
    ],
)
def test_dangerous_urls_never_become_links(url: str) -> None:
    for markdown in (f"[a]({url})", f"![a]({url})", f"<{url}>"):
        html = render_markdown(markdown)
        assert "<a " not in html, html
        assert_inert(html)


def test_ordinary_urls_become_links() -> None:
    html = render_markdown("[a](https://example.com) [b](/relative) [c](mailto:a@b.example)")
    assert html.count("<a href=") == 3


def test_links_open_without_referrer_or_opener() -> None:
    html = render_markdown("[a](https://example.com)")
    assert 'rel="noopener noreferrer nofollow"' in html
    assert 'target="_blank"' in html


def test_markdown_image_is_a_link_and_never_loads() -> None:
    html = render_markdown("![secret chart](http://evil.example/p.png?q=SECRET)")
    assert "<img" not in html
    assert html == (
        '<p><a href="http://evil.example/p.png?q=SECRET" rel="noopener noreferrer nofollow"'
        ' target="_blank" class="image-link">🖼 secret chart</a></p>\n'
    )


def test_image_without_alt_text_still_has_a_visible_label() -> None:
    assert ">🖼 image</a>" in render_markdown("![](https://img.example/p.png)")


def test_attribute_values_are_escaped() -> None:
    html = render_markdown('[x](https://a.example/"onmouseover="x "t\\"><b>")')
    assert_inert(html)
    assert "<b>" not in html


# --- code --------------------------------------------------------------------------------------


def test_known_language_is_highlighted_with_inline_styles() -> None:
    html = render_markdown("```py\nx = '<b>'\n```\n")
    assert html.startswith('<pre style="')
    assert '<code class="language-python" style=' in html  # Pygments' alias, not the info
    assert "class=" not in html.replace('class="language-python"', "")
    reduced, (content,) = without_pygments_markup(html)
    assert content.text == "x = '<b>'\n"
    assert content.coloured_spans() > 0
    assert reduced.endswith(""">x = '&lt;b&gt;'\n</code></pre>\n""")


def test_unlabelled_code_is_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_guessing(*args: object, **kwargs: object) -> None:
        raise AssertionError("a lexer was guessed")

    monkeypatch.setattr("pygments.lexers.guess_lexer", no_guessing)
    html = render_markdown("```\n#!/usr/bin/env python\nimport os\n```\n")
    assert "<span" not in html and "language-" not in html
    assert html.endswith(">#!/usr/bin/env python\nimport os\n</code></pre>\n")


def test_language_names_are_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Names nothing has rendered before, so no earlier lookup can be what answers them.
    known, unknown = (f"lang{uuid.uuid4().hex[:16]}" for _ in range(2))
    calls: list[str] = []

    def lookup(name: str, **options: Any) -> object:
        calls.append(name)
        if name != known:
            raise ClassNotFound(name)
        return PythonLexer(**options)

    monkeypatch.setattr(pygments.lexers, "get_lexer_by_name", lookup)
    for _ in range(3):
        html = render_markdown(f"```{known}\nif x: pass\n```\n\n```{unknown}\nif x: pass\n```\n")
    assert calls == [known, unknown]
    highlighted, plain = html.split("</pre>\n")[:2]
    assert 'class="language-python"' in highlighted and "<span" in highlighted
    assert "<span" not in plain and "language-" not in plain
    assert plain.endswith(">if x: pass\n</code>")


def test_fence_info_string_cannot_reach_the_markup() -> None:
    html = render_markdown('```python" onmouseover="x\nprint(1)\n```\n')
    assert "onmouseover" not in html
    assert_inert(html)


# --- colours ------------------------------------------------------------------------------------

EVERY_KIND_OF_CODE = """\
```python
@functools.cache
def greet(name: str, times: int = 2) -> str:
    \"\"\"Docstring.\"\"\"  # comment
    return f"hi {name}\\n" * times if name and not None else 0x1F + 3.5e-2


class Greeter(Base):
    pass
```

```bash
export NAME="w"; for i in 1 2; do echo "$NAME $i" | tr a-z A-Z; done  # loop
```

```html
<!doctype html><a href="x" class='y'>&amp;</a>
```

```diff
--- a
+++ b
@@ -1 +1 @@
-old
+new
```

```json
{"a": [1, true, null], "b": "c"}
```

```sql
select count(*) from t where a like '%x%' -- note
```

```c
#include <stdio.h>
int main(void) { return printf("%d\\n", 1); }
```

```pycon
>>> 1 / 0
Traceback (most recent call last):
ZeroDivisionError: division by zero
```

```
plain
```

    indented
"""
THEME_COLOUR = re.compile(r"var\(--jp-[a-z0-9-]+, ?(#[0-9a-f]{3}|#[0-9a-f]{6})\)")


def colours(html: str) -> list[tuple[str, str]]:
    """Every ``(color or background, value)`` the inline styles of ``html`` set."""
    styles = [attrs.get("style") or "" for _, attrs in _Tags(html).tags]
    return re.findall(r"(?:^|;)\s*(color|background):\s*([^;]+)", ";".join(styles))


def contrast(first: str, second: str) -> float:
    """The WCAG 2 contrast ratio of two ``#rgb`` or ``#rrggbb`` colours."""

    def luminance(colour: str) -> float:
        digits = colour[1:] if len(colour) == 7 else "".join(c * 2 for c in colour[1:])
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(first), luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_colour_of_a_code_block_is_the_themes_with_a_light_fallback() -> None:
    found = colours(render_markdown(EVERY_KIND_OF_CODE))
    assert {name for name, _ in found} == {"color", "background"}
    for name, value in found:
        assert value in {"transparent", "inherit"} or THEME_COLOUR.fullmatch(value), (name, value)


def test_without_the_themes_variables_code_reads_on_the_fallback_background() -> None:
    html = render_markdown(EVERY_KIND_OF_CODE)
    pre = _Tags(html).tags[0][1]["style"] or ""
    background = THEME_COLOUR.search(pre.split("background:")[1])[1]  # type: ignore[index]
    text = THEME_COLOUR.search(pre.split("; color:")[1])[1]  # type: ignore[index]
    assert contrast(text, background) >= 4.5
    tokens = {value for name, value in colours(html) if name == "color" and "mirror" in value}
    assert len(tokens) >= 10, tokens  # most of the theme's token colours are in use
    for value in tokens:
        fallback = THEME_COLOUR.fullmatch(value)[1]  # type: ignore[index]
        assert contrast(fallback, background) >= 3.0, value


def test_every_colour_of_the_other_fragments_is_the_themes_with_a_fallback_that_reads() -> None:
    for cls, style in STYLES.items():
        for name, value in re.findall(r"(?:^|;)\s*(color|background|border[a-z-]*):([^;]+)", style):
            assert "#" not in value or THEME_COLOUR.search(value), (cls, name, value)
        text = re.search(r"(?:^|;)\s*color:\s*([^;]+)", style)
        if text:
            fallback = THEME_COLOUR.fullmatch(text[1].strip())[1]  # type: ignore[index]
            assert contrast(fallback, "#ffffff") >= 4.5, (cls, fallback)


# --- math --------------------------------------------------------------------------------------


def test_markdown_does_not_touch_text_inside_math() -> None:
    html = render_markdown(r"$a_1 * b_2 * c_3$ and \(\{x_i\}\) and $$\frac{a_*}{b_*}$$")
    assert "<em>" not in html
    assert '<span class="math inline">$a_1 * b_2 * c_3$</span>' in html
    assert r'<span class="math inline">$\{x_i\}$</span>' in html
    assert r'<span class="math display">$$\frac{a_*}{b_*}$$</span>' in html


def test_math_text_is_escaped() -> None:
    html = render_markdown("$$\nx < y </div><script>\n$$\n")
    assert html == '<div class="math display">$$x &lt; y &lt;/div&gt;&lt;script&gt;$$</div>\n'


def test_prices_are_not_math() -> None:
    assert render_markdown("From $5 to $10.") == "<p>From $5 to $10.</p>\n"


def test_bracket_display_math_on_its_own_lines_is_a_block() -> None:
    html = render_markdown("\\[\na_1\n+ b\n\\]\n")
    assert html == '<div class="math display">$$a_1\n+ b$$</div>\n'


def test_unclosed_display_math_falls_back_to_text() -> None:
    assert render_markdown("\\[\nx_1\n\nmore") == "<p>[\nx_1</p>\n<p>more</p>\n"


# --- incremental rendering ---------------------------------------------------------------------

REPLY = """\
# Plan
Intro line with *emphasis* and `code`, a [link](https://example.com) and $x_1$.

Setext heading
--------------

- one
- two
  - nested a
  - nested b

- three, which makes the list loose

Paragraph after the list.

1. first
2. second

3. third
10. tenth

> quoted line
lazy continuation

> another quote

| left | center | right |
|:-----|:------:|------:|
| a    | b      | c     |
| d    | e      | f     |

```python
def f(x):
    return x < 1


print(f(0))
```

    indented code

    more indented code

$$
a_1 * b_2
$$
\\[
\\int_0^1 x\\,dx
\\]
## Done
Final words with \\(y_j\\) and 中文。
***
Trailing paragraph without a newline"""


def stream(text: str, sizes: list[int]) -> list[str]:
    """The growing prefixes of ``text`` when it arrives in chunks of the given sizes (cycled)."""
    prefixes, end, i = [], 0, 0
    while end < len(text):
        end = min(len(text), end + sizes[i % len(sizes)])
        prefixes.append(text[:end])
        i += 1
    return prefixes


def assert_streams_like_whole(prefixes: list[str]) -> RenderedParts | None:
    """Each update equals the whole render of its text, and finished blocks only accumulate."""
    renderer = IncrementalRenderer()
    parts = None
    for text in prefixes:
        previous = parts.finished if parts else ()
        parts = renderer.update(text)
        assert "".join(parts.finished) + parts.tail == render_markdown(text), repr(text)
        assert parts.finished[: len(previous)] == previous, repr(text)
    return parts


def all_prefixes(text: str) -> list[str]:
    return [text[:end] for end in range(len(text) + 1)]


def test_every_prefix_of_a_reply_renders_like_the_whole_text() -> None:
    parts = assert_streams_like_whole(all_prefixes(REPLY))
    assert parts is not None
    assert len(parts.finished) == 14  # down to "## Done"
    assert parts.tail.startswith("<p>Final words")
    assert parts.tail.endswith("<hr />\n<p>Trailing paragraph without a newline</p>\n")


@pytest.mark.parametrize("sizes", [[2], [3, 7], [13], [50, 1], [1000]])
def test_chunked_updates_render_like_the_whole_text(sizes: list[int]) -> None:
    assert_streams_like_whole(stream(REPLY, sizes))


def test_every_prefix_of_every_fixture_case_renders_like_the_whole_text() -> None:
    for _, markdown, _ in CASES:
        assert_streams_like_whole(all_prefixes(markdown))


def test_every_prefix_of_all_fixture_cases_in_one_reply_renders_like_the_whole_text() -> None:
    assert_streams_like_whole(all_prefixes("\n".join(markdown for _, markdown, _ in CASES)))


LINES = [
    *["", "", ""],
    *["- a", "  - b", "* star", "+ plus", "-", "*", "1. x", "2", "2.", " 3. y", "10)", "1) paren"],
    *["> q", "> - z", "> ", "para text", "more *em", "ph* end", "   indented3", "\t- tab"],
    *["# H", "## H2 | x", "H | x", "|---|---|", "| a | b |", "```", "```py", "~~~"],
    *["    code", "      deep", "---", "===", "***", "  ", "<div>", "[x]: http://a", "[x]"],
    *["$$", "$$x_1$$", "a_1 * b", "\\[", "\\]", "x\\]", "text $a", "b$ more", "\\(q_1", "r\\)"],
]


@pytest.mark.parametrize("seed", range(8))
def test_random_documents_stream_like_the_whole_text(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(40):
        text = "\n".join(rnd.choice(LINES) for _ in range(rnd.randint(3, 24)))
        assert_streams_like_whole(stream(text, [rnd.choice([1, 1, 2, 3, 7])]))


def finished_after(*texts: str) -> RenderedParts:
    renderer = IncrementalRenderer()
    parts = renderer.update("")
    for text in texts:
        parts = renderer.update(text)
    return parts


def test_a_paragraph_stays_open_while_it_could_become_a_setext_heading() -> None:
    assert finished_after("Title\n").finished == ()
    assert finished_after("Title\n---\n").tail == "<h2>Title</h2>\n"
    assert finished_after("Title\n---\n\nNext").finished == ("<h2>Title</h2>\n",)


def test_a_list_stays_open_until_unindented_text_after_a_blank_line() -> None:
    assert finished_after("- a\n- b\n\n").finished == ()
    assert finished_after("- a\n- b\n\n  still the item").finished == ()
    assert finished_after("- a\n- b\n\n- loose now").finished == ()
    parts = finished_after("- a\n- b\n\nAfter")
    assert parts.finished == ("<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n",)


def test_bare_digits_after_an_ordered_list_stay_open() -> None:
    assert finished_after("1. a\n\n2").finished == ()
    assert finished_after("1. a\n\n2.").finished == ()
    assert finished_after("1. a\n\n2\n").finished == ("<ol>\n<li>a</li>\n</ol>\n",)


def test_an_open_fence_with_blank_lines_stays_in_the_tail() -> None:
    parts = finished_after("Intro\n\n```python\nx = 1\n\n\ny = 2\n")
    assert parts.finished == ("<p>Intro</p>\n",)
    assert parts.tail.startswith("<pre") and "y" in parts.tail


def test_a_heading_is_finished_once_the_line_after_it_is_complete() -> None:
    assert finished_after("# H\n| a | b |").finished == ()
    assert finished_after("# H | x\n|---|---|").finished == ()  # this one becomes a table
    assert finished_after("# H\nText\n").finished == ("<h1>H</h1>\n",)


def test_an_unclosed_math_opener_keeps_what_follows_it_open() -> None:
    parts = finished_after("$$\nx\n# H\n***\ny")
    assert parts.finished == ()
    assert finished_after("$$\nx\n# H\n***\ny\n$$").tail.startswith('<div class="math display">')


def test_a_text_that_does_not_extend_the_last_one_starts_over() -> None:
    renderer = IncrementalRenderer()
    renderer.update("First\n\nSecond\n\nThird")
    parts = renderer.update("Other\n\nText")
    assert parts.finished == ("<p>Other</p>\n",)
    assert parts.tail == "<p>Text</p>\n"


def test_crlf_split_across_updates_renders_like_the_whole_text() -> None:
    text = "a\r\n\r\n- b\r\n- c\r\rd\r\n"
    assert_streams_like_whole(all_prefixes(text))
    assert render_markdown(text) == render_markdown(text.replace("\r\n", "\n").replace("\r", "\n"))


def test_empty_text_renders_nothing() -> None:
    assert IncrementalRenderer().update("") == RenderedParts((), "")
    assert IncrementalRenderer().update("\n\n  \n") == RenderedParts((), "")
    assert render_markdown("") == ""


def count_parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources handed to the one parser from now on, in order."""
    parser = markdown_parser()
    parse = parser.parse
    parsed: list[str] = []

    def counting(src: str, env: Any = None) -> Any:
        parsed.append(src)
        return parse(src, env)

    monkeypatch.setattr(parser, "parse", counting)
    return parsed


def test_every_reader_of_a_reply_parses_with_the_one_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = count_parsed(monkeypatch)
    render_markdown("whole")
    IncrementalRenderer().update("growing")
    code_blocks("    code")
    assert parsed == ["whole", "growing", "    code"]


def test_updates_parse_only_the_open_part_of_a_long_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    paragraph = "A paragraph of a long reply, with **some** markup in it. " * 3 + "\n\n"
    parsed = count_parsed(monkeypatch)
    renderer = IncrementalRenderer()
    text = ""
    for _ in range(300):
        for piece in stream(paragraph, [9]):
            renderer.update(text + piece)
        text += paragraph
    assert len(text) > 50_000
    assert len(parsed) == 300 * len(stream(paragraph, [9]))
    assert max(map(len, parsed)) <= 2 * len(paragraph)
    parts = renderer.update(text + "end")
    assert len(parts.finished) == 300
    assert len(parsed[-1]) <= 2 * len(paragraph)


def test_render_seconds_accumulates_over_updates() -> None:
    renderer = IncrementalRenderer()
    assert renderer.render_seconds == 0.0
    renderer.update("# H\n\ntext")
    first = renderer.render_seconds
    renderer.update("# H\n\ntext and more")
    assert 0.0 < first < renderer.render_seconds


def test_rendered_parts_are_immutable() -> None:
    parts = RenderedParts(("<p>a</p>\n",), "")
    with pytest.raises(AttributeError):
        parts.tail = "x"  # type: ignore[misc]


def test_the_tail_can_leave_its_code_plain_while_finished_code_is_highlighted() -> None:
    text = "```python\nx = 1\n```\n\n```python\ny = 2\n```\n"
    parts = IncrementalRenderer().update(text, highlight_tail=False)
    assert "<span" in parts.finished[0] and "<span" not in parts.tail
    assert parts.tail.endswith(">y = 2\n</code></pre>\n")
    # The plain block is drawn as the same panel: it does not jump when highlighted later.
    pre = re.compile(r'<pre style="[^"]*">')
    assert pre.match(parts.tail)[0] == pre.match(parts.finished[0])[0]  # type: ignore[index]
    whole = IncrementalRenderer().update(text)
    assert "".join(whole.finished) + whole.tail == render_markdown(text)


# --- code blocks -------------------------------------------------------------------------------


def shown_as_code(html: str) -> list[str]:
    """The text of each ``<pre>`` of a fragment: the code blocks a reader sees, in order."""
    return [_Tags(inner).text for inner in re.findall(r"<pre[^>]*>(.*?)</pre>", html, re.S)]


NESTED_CODE = """\
Math and inline code are not code blocks: $$x$$ and `y`.

- item

  ```sh
  ls
  ```

> quoted
>
>     indented in a quote

~~~ Python extra words
print("~")
~~~
"""


def test_code_block_one_is_the_first_block_shown_as_code_even_when_indented() -> None:
    text = "Run this:\n\n    pip install nbchat\n\nthen:\n\n```python\nimport nbchat\n```\n"
    assert code_blocks(text) == [
        CodeBlock("", "pip install nbchat\n"),
        CodeBlock("python", "import nbchat\n"),
    ]
    assert shown_as_code(render_markdown(text))[0] == "pip install nbchat\n"


def test_code_blocks_are_the_blocks_rendered_as_code_in_order() -> None:
    assert [block.language for block in code_blocks(NESTED_CODE)] == ["sh", "", "Python"]
    texts = [NESTED_CODE, REPLY, *(markdown for _, markdown, _ in CASES)]
    for text in texts:
        shown = shown_as_code(render_markdown(text))
        assert [block.code for block in code_blocks(text)] == shown, text


def test_a_reply_without_code_has_no_code_blocks() -> None:
    assert code_blocks("Prose with `inline code` and $$x_1$$.\n\n$$\ny\n$$\n") == []
    assert code_blocks("") == []


def test_a_reply_cut_after_its_code_blocks_renders_like_the_whole_text() -> None:
    texts = [NESTED_CODE, REPLY, EVERY_KIND_OF_CODE, *(markdown for _, markdown, _ in CASES)]
    for text in texts:
        pieces = reply_pieces(text)
        assert "".join(html for html, _ in pieces) == render_markdown(text), text
        assert sum(held for _, held in pieces) == len(code_blocks(text)), text
        for html, held in pieces:
            assert len(shown_as_code(html)) == held, (text, html)
    # A block nested in a list is cut after the list: the list stays one piece of HTML.
    nested = reply_pieces(NESTED_CODE)
    assert [held for _, held in nested] == [1, 1, 1]
    assert nested[0][0].startswith("<p>") and nested[0][0].endswith("</ul>\n")
    assert nested[1][0].startswith("<blockquote>")
