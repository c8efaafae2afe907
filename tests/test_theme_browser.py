"""A reply read in JupyterLab Light and JupyterLab Dark, in a wide and a narrow window.

One ``%%chat`` cell gets a reply with highlighted and plain code, a table and a quote; a panel
opened below shows the same turn. In each state (Light, Light narrow, Dark narrow, Dark) the
test measures what a reader depends on, from the computed styles in the page:

- the WCAG contrast of every character of code against its block's background, in the cell and
  in the panel: at least 4.5:1 for plain code text, 3:1 for highlighted tokens;
- in the panel, a table with a visible rule under its header and a quote with a visible bar,
  styled exactly as in the cell (one stylesheet for both);
- in the narrow window, nothing in the panel wider than the panel: long code lines wrap or
  scroll inside their block.

Screenshots of each state go to ``test-artifacts/theme-<state>.png``. The theme is switched the
way a person does it, with Settings → Theme.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbchat.testing import LoopbackServer
from nbchat.testing.script import Reply

from browser import ARTIFACTS, WAIT_MS, chromium, explained, run_cell
from jupyter_app import JupyterServer, notebook_root

NOTEBOOK = "theme.ipynb"
REPLY = '''\
## Greeting, in two languages

Call `greet(name)` once per user; the table says what each part costs.

| part | lines | cost |
|---|---:|---|
| parser | 120 | low |
| renderer | 340 | medium |

> Keep the names short: a **long** name reads badly on a narrow screen.

```python
import functools


@functools.cache
def greet(name: str, times: int = 2) -> str:
    """Say hello to *name*, a few times."""
    # The greeting is built once per name and kept.
    words = [f"Hello, {name}!" for _ in range(times)]
    return " ".join(words) if name and times > 0 else None


class Greeter:
    def __init__(self, prefix: str = "Hi") -> None:
        self.prefix, self.count = prefix, 0x1F + 3.5e-2
```

```bash
export NAME="world"  # who to greet
for i in 1 2 3; do echo "hello $NAME $i" | tr a-z A-Z; done
```

```
plain text, no language: greet(name) -> str
```

That is all.
'''
CELLS = ["%load_ext nbchat", "%%chat\nGreet people, with a table and code", "%chat panel"]

# WCAG 2 contrast of every character of code in ``root``: each text node's colour (its parent's,
# alpha-composited) against the background behind its block (composited up to the page).
CONTRAST = """(root) => {
  const parse = (text) => {
    const parts = text.match(/[\\d.]+/g).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  };
  const over = (top, below) => ({
    r: top.r * top.a + below.r * (1 - top.a),
    g: top.g * top.a + below.g * (1 - top.a),
    b: top.b * top.a + below.b * (1 - top.a),
    a: 1,
  });
  const behind = (element) => {
    if (!element) return {r: 255, g: 255, b: 255, a: 1};
    const colour = parse(getComputedStyle(element).backgroundColor);
    return colour.a >= 1 ? colour : over(colour, behind(element.parentElement));
  };
  const luminance = (c) => {
    const linear = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    return 0.2126 * linear(c.r) + 0.7152 * linear(c.g) + 0.0722 * linear(c.b);
  };
  const ratio = (x, y) => {
    const [light, dark] = [luminance(x), luminance(y)].sort((p, q) => q - p);
    return (light + 0.05) / (dark + 0.05);
  };
  const found = {blocks: 0, plain: [], token: []};
  for (const code of root.querySelectorAll('pre code')) {
    found.blocks += 1;
    const background = behind(code.closest('pre'));
    const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.data.trim()) continue;
      const element = node.parentElement;
      const colour = over(parse(getComputedStyle(element).color), background);
      const kind = element === code ? 'plain' : 'token';
      found[kind].push({text: node.data.trim().slice(0, 24), ratio: ratio(colour, background)});
    }
  }
  return found;
}"""

# The styles that make a table's rule and a quote's bar, and whether they can be seen.
TABLE_AND_QUOTE = """(root) => {
  const parse = (text) => text.match(/[\\d.]+/g).map(Number);
  const differs = (a, b) => parse(a).slice(0, 3).some((v, i) => Math.abs(v - parse(b)[i]) > 24);
  const page = (el) => {
    for (; el; el = el.parentElement) {
      const bg = getComputedStyle(el).backgroundColor;
      if (parse(bg)[3] !== 0) return bg;
    }
    return 'rgb(255, 255, 255)';
  };
  const pick = (el, names) => Object.fromEntries(names.map((n) => [n, getComputedStyle(el)[n]]));
  const head = root.querySelector('table thead');
  const quote = root.querySelector('blockquote');
  const rule = getComputedStyle(head);
  const bar = getComputedStyle(quote);
  return {
    rule: rule.borderBottomStyle !== 'none' && parseFloat(rule.borderBottomWidth) >= 1 &&
        differs(rule.borderBottomColor, page(head)),
    bar: bar.borderLeftStyle !== 'none' && parseFloat(bar.borderLeftWidth) >= 3 &&
        differs(bar.borderLeftColor, page(quote)),
    styles: {
      table: pick(root.querySelector('table'), ['borderCollapse', 'marginLeft', 'fontSize']),
      thead: pick(head, ['borderBottomStyle', 'borderBottomWidth', 'borderBottomColor']),
      th: pick(root.querySelector('th'), ['fontWeight', 'paddingLeft', 'paddingTop']),
      td: pick(root.querySelector('td'), ['paddingLeft', 'paddingTop']),
      quote: pick(quote, [
        'borderLeftStyle', 'borderLeftWidth', 'borderLeftColor', 'paddingLeft', 'marginLeft',
      ]),
    },
  };
}"""

# In a narrow window: what sticks out of the panel, and whether the Copy buttons are in view.
FITS = """(panel) => {
  const right = panel.getBoundingClientRect().right + 1;
  const wide = [...panel.querySelectorAll('.nbchat-transcript *')].filter(
      (e) => e.getBoundingClientRect().right > right && !e.closest('pre'));
  const transcript = panel.querySelector('.nbchat-transcript');
  return {
    panel: panel.getBoundingClientRect().width,
    window: window.innerWidth,
    sticking_out: wide.slice(0, 5).map((e) => e.tagName + '.' + e.className),
    scrolls_sideways: transcript.scrollWidth > transcript.clientWidth + 1,
    buttons_in_view: [...panel.querySelectorAll('button.nbchat-copy-code')].every(
        (b) => b.getBoundingClientRect().right <= right),
  };
}"""


def use_theme(page: Any, theme: str) -> None:
    """Settings → Theme → ``theme``, then wait until the page is drawn in it."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").filter(has_text=theme).first.click()
    page.wait_for_function(
        "(theme) => document.body.dataset.jpThemeName === theme", arg=theme, timeout=WAIT_MS
    )
    page.wait_for_timeout(500)  # the theme's stylesheet applies, and the page repaints


def check(page: Any, state: str, notes: dict[str, Any], *, narrow: bool = False) -> None:
    """Measure the cell's reply and the panel's in ``state``, and save a screenshot."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    panel = page.locator(".nbchat-panel")
    if narrow:
        fits = panel.evaluate(FITS)
        notes[f"{state} fits"] = fits
        assert fits["panel"] <= fits["window"], (state, fits)
        assert not fits["sticking_out"] and not fits["scrolls_sideways"], (state, fits)
        assert fits["buttons_in_view"], (state, fits)
    for name, where in (("cell", cell), ("panel", panel)):
        found = where.evaluate(CONTRAST)
        plain = min(found["plain"], key=lambda seen: seen["ratio"])
        token = min(found["token"], key=lambda seen: seen["ratio"])
        notes[f"{state} {name}"] = {"blocks": found["blocks"], "plain": plain, "token": token}
        assert found["blocks"] == 3, (state, name, found["blocks"])
        assert plain["ratio"] >= 4.5, (state, name, "plain code text", plain)
        assert token["ratio"] >= 3.0, (state, name, "highlighted token", token)
    in_cell = cell.evaluate(TABLE_AND_QUOTE)
    in_panel = panel.locator(".nbchat-reply").first.evaluate(TABLE_AND_QUOTE)
    notes[f"{state} table and quote"] = in_panel
    assert in_panel["rule"], (state, "the panel's table has no visible rule", in_panel)
    assert in_panel["bar"], (state, "the panel's quote has no visible bar", in_panel)
    assert in_panel["styles"] == in_cell["styles"], (state, in_panel, in_cell)
    # The panel's transcript keeps its newest lines in view: bring its table up for the picture.
    panel.locator(".nbchat-reply table").scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"theme-{state}.png"))


def test_code_tables_and_quotes_read_in_light_dark_and_narrow(
    server: LoopbackServer, tmp_path: Path
) -> None:
    root = notebook_root(tmp_path, "lab", NOTEBOOK, CELLS)
    server.enqueue(Reply(REPLY, chunk_size=40, delay=0.005))
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}

    with (
        JupyterServer("lab", root, env) as jupyter,
        chromium(tmp_path / "chromium") as browser,
    ):
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1100, "height": 1700})
        with explained(page, jupyter, notes, "theme"):
            page.goto(jupyter.notebook_url(NOTEBOOK))
            page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for()
            jupyter.wait_idle(timeout=WAIT_MS / 1000)
            run_cell(page, 0, 1)
            run_cell(page, 1, 2).locator(".nbchat-footer").wait_for()
            run_cell(page, 2, 3)
            panel = page.locator(".nbchat-panel")
            panel.locator(".nbchat-footer").wait_for()
            page.keyboard.press("Escape")
            page.keyboard.press("Control+b")  # the file browser away: room for the notebook
            page.wait_for_timeout(300)

            check(page, "light", notes)
            page.set_viewport_size({"width": 480, "height": 1700})
            page.wait_for_timeout(500)
            check(page, "narrow-light", notes, narrow=True)
            use_theme(page, "JupyterLab Dark")
            check(page, "narrow-dark", notes, narrow=True)
            page.set_viewport_size({"width": 1100, "height": 1700})
            page.wait_for_timeout(500)
            check(page, "dark", notes)
