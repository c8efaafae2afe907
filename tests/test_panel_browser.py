"""The chat panel in a real JupyterLab and a real Notebook 7, used in headless Chromium.

A notebook shows the panel with ``%chat panel``; the test types into it and clicks its buttons
the way a person does. The kernel talks to the loopback server, which streams scripted replies.
One browser session checks, in order:

1. a reply streams into the transcript (a state with the table but not the last sentence is
   seen before the final one), while another cell runs to completion: the kernel stays free;
2. the finished reply has a rendered table and highlighted code; each code block has its own
   Copy button right under it, which puts that block on the clipboard; a screenshot goes to
   ``test-artifacts/panel-<kind>.png``;
3. a dataframe picked under Context goes with the next message, shown folded; Stop on that
   stalled reply ends it at once, keeping the partial text, marked interrupted;
4. a reply full of markup runs nothing and shows the markup as text;
5. a Copy button of the first, now older, reply still copies its own block, and the status line
   does not send the reader to ``%chat code N``, which takes the latest reply's block N.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nbchat.testing import LoopbackServer
from nbchat.testing.script import Reply

from browser import ARTIFACTS, STOP_WATCHING, WAIT_MS, WATCH, chromium, explained, run_cell
from jupyter_app import JupyterServer, Kind, notebook_root

NOTEBOOK = "panel.ipynb"
CELLS = [
    "%load_ext nbchat",
    "%chat panel",
    "import pandas as pd\n"
    "sales = pd.DataFrame({'city': ['Paris', 'Lyon'] * 50, 'revenue': range(100)})\n"
    "print('kernel free:', len(sales))",
]
LAST_SENTENCE = "That is the whole quarter."
CODE = 'def growth(a: float, b: float) -> float:\n    return (b - a) / a * 100\n\nprint("ok")\n'
SQL = "select month, sum(sales) from quarter group by month;\n"
REPLY = f"""\
## Quarterly figures

The months of the first quarter, with their sales, and a function to compare them; the
numbers are made up, the shapes are the ones a model sends back.

| month | sales |
|---|---:|
| January | 1,200 |
| February | 1,350 |
| March | 1,500 |

```python
{CODE}```

The same figures straight from the database:

```sql
{SQL}```

{LAST_SENTENCE}
"""
SLOW = "A reply that will be stopped. " + " ".join(f"w{i}" for i in range(400))
HOSTILE = """\
Careful: <script>window.pwned = "script"</script> and <img src=x onerror="window.pwned='img'">
and [a link](javascript:window.pwned='link') and <b onmouseover="window.pwned='b'">bold</b>.
"""

FINISHED = """(panel) => {
  const turns = panel.querySelectorAll('.nbchat-turn');
  const last = turns[0];  // the transcript is drawn bottom-up: the newest comes first
  return {
    turns: turns.length,
    tables: last.querySelectorAll('.nbchat-reply table').length,
    cells: [...last.querySelectorAll('.nbchat-reply td')].map((td) => td.innerText),
    highlighted: last.querySelectorAll('.nbchat-reply pre span[style]').length,
    footer: [...last.querySelectorAll('.nbchat-footer')].map((f) => f.innerText),
  };
}"""
# Where each code block and each Copy button of the newest turn are drawn.
PLACES = """(panel) => {
  const turn = panel.querySelector('.nbchat-turn');
  const box = (e) => {
    const r = e.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  };
  return {
    blocks: [...turn.querySelectorAll('.nbchat-reply pre')].map(box),
    buttons: [...turn.querySelectorAll('button.nbchat-copy-code')].map(
        (b) => ({label: b.innerText.trim(), box: box(b)})),
    last: box([...turn.querySelectorAll('.nbchat-reply p')].find(
        (p) => p.innerText.includes('whole quarter'))),
  };
}"""
DANGER = """(panel) => ({
  pwned: window.pwned === undefined ? null : String(window.pwned),
  scripts: panel.querySelectorAll('script').length,
  images: panel.querySelectorAll('img').length,
  handlers: [...panel.querySelectorAll('*')].filter(
      (e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
  bad_links: [...panel.querySelectorAll('a')].filter(
      (a) => !/^https?:/.test(a.getAttribute('href') || 'https:')).length,
})"""


def send(page: Any, text: str) -> None:
    panel = page.locator(".nbchat-panel")
    panel.locator(".nbchat-input textarea").fill(text)
    panel.locator("button.jupyter-button:text-is('Send')").click()


def copy_and_check(page: Any, button: Any, code: str) -> None:
    """Click the Copy ``button``; the clipboard, emptied first, then holds ``code``."""
    page.evaluate("() => navigator.clipboard.writeText('')")
    button.click()
    deadline = time.monotonic() + WAIT_MS / 1000
    while (copied := page.evaluate("() => navigator.clipboard.readText()")) != code:
        assert time.monotonic() < deadline, f"the clipboard holds {copied!r}, not {code!r}"
        page.wait_for_timeout(50)


def wait_until_idle(page: Any) -> None:
    """Until Send is enabled again: the reply is over."""
    page.locator(".nbchat-panel button.jupyter-button:text-is('Send'):not([disabled])").wait_for()


@pytest.mark.parametrize("kind", ["lab", "notebook"], ids=["jupyterlab", "notebook7"])
def test_panel_streams_stops_and_runs_nothing_from_the_model(
    kind: Kind, server: LoopbackServer, tmp_path: Path
) -> None:
    root = notebook_root(tmp_path, kind, NOTEBOOK, CELLS)
    server.enqueue(
        Reply(REPLY, chunk_size=3, delay=0.02),  # ~200 chunks: about 4 s
        Reply(SLOW, chunk_size=6, stall_after=30, stall_seconds=120),
        Reply(HOSTILE, chunk_size=7, delay=0.005),
    )
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}

    with (
        JupyterServer(kind, root, env) as jupyter,
        chromium(tmp_path / "chromium") as browser,
    ):
        browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=jupyter.base_url)
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1100, "height": 1500})
        with explained(page, jupyter, notes, f"panel-{kind}"):
            page.goto(jupyter.notebook_url(NOTEBOOK))
            page.locator(".jp-Notebook .jp-Cell").nth(2).wait_for()
            jupyter.wait_idle(timeout=WAIT_MS / 1000)
            assert [c[0] for c in jupyter.kernel_commands()] == [sys.executable]
            run_cell(page, 0, 1)
            run_cell(page, 1, 2)
            panel = page.locator(".nbchat-panel")
            panel.locator(".nbchat-transcript").wait_for()
            assert "No messages yet" in panel.locator(".nbchat-transcript").inner_text()

            # 1. The reply streams in while another cell runs.
            page.evaluate(WATCH)
            send(page, "Show me the quarter")
            panel.locator(".nbchat-transcript", has_text="Quarterly figures").wait_for()
            free_cell = run_cell(page, 2, 3)
            assert "kernel free: 100" in free_cell.locator(".jp-OutputArea").inner_text()
            notes["ran while streaming"] = LAST_SENTENCE not in panel.inner_text()
            panel.locator(".nbchat-footer").wait_for()
            wait_until_idle(page)
            states = page.evaluate(STOP_WATCHING)
            notes["states"] = [s[-80:] for s in states]
            partial = [s for s in states if "1,350" in s and LAST_SENTENCE not in s]
            assert partial, "never saw the table while the last sentence was still missing"
            assert LAST_SENTENCE in states[-1]
            assert notes["ran while streaming"], "the other cell had to wait for the reply"

            # 2. The finished reply, its code on the clipboard, and a screenshot.
            finished = panel.evaluate(FINISHED)
            notes["finished"] = finished
            assert finished["tables"] == 1 and finished["cells"][:2] == ["January", "1,200"]
            assert finished["highlighted"] >= 8, finished
            assert finished["footer"] and finished["footer"][0].startswith("test-model")
            places = panel.evaluate(PLACES)
            notes["places"] = places
            assert [b["label"] for b in places["buttons"]] == ["Copy python 1", "Copy sql 2"]
            assert len(places["blocks"]) == 2
            for index, (block, button) in enumerate(
                zip(places["blocks"], places["buttons"], strict=True)
            ):
                _, top, right, bottom = button["box"]
                assert 0 <= top - block[3] <= 16, (index, block, button)  # right under it...
                assert abs(right - block[2]) <= 24, (index, block, button)  # ...at its right
                after = places["blocks"][index + 1][1] if index == 0 else places["last"][1]
                assert bottom <= after, (index, button, after)  # ...before what follows
            newest = panel.locator(".nbchat-turn").first.locator("button.nbchat-copy-code")
            copy_and_check(page, newest.filter(has_text="Copy sql 2"), SQL)
            panel.locator(".widget-html.nbchat-status", has_text="Copied code 2").wait_for()
            status = panel.locator(".widget-html.nbchat-status").inner_text()
            assert "Copied code 2" in status and "%chat code 2" in status, status
            copy_and_check(page, newest.filter(has_text="Copy python 1"), CODE)
            panel.locator(".widget-html.nbchat-status", has_text="Copied code 1").wait_for()
            ARTIFACTS.mkdir(exist_ok=True)
            panel.screenshot(path=str(ARTIFACTS / f"panel-{kind}.png"))

            # 3. Stop on a reply that went quiet mid-way; it carries a dataframe's summary.
            panel.locator("button.jupyter-button", has_text="↻").click()
            picker = panel.locator(".widget-select-multiple select")
            picker.locator("option", has_text="sales").wait_for()
            picker.select_option(label=picker.locator("option").first.inner_text())
            page.wait_for_timeout(300)  # the choice travels to the kernel
            send(page, "Now a slow one")
            panel.locator(".nbchat-transcript", has_text="w20 ").wait_for()
            panel.locator("button.jupyter-button", has_text="Stop").click()
            wait_until_idle(page)
            # Send comes back a moment before the status line says how the reply ended.
            panel.locator(".widget-html.nbchat-status", has_text="interrupted").wait_for()
            status = panel.locator(".widget-html.nbchat-status").inner_text()
            notes["stop status"] = status
            assert "interrupted" in status and "kept" in status
            assert "interrupted" in panel.locator(".nbchat-footer").first.inner_text()
            assert "w20" in panel.locator(".nbchat-transcript").inner_text()
            attachment = panel.locator("details.nbchat-attachment")
            assert attachment.count() == 1 and attachment.get_attribute("open") is None
            assert "sales · pandas DataFrame · 100 × 2" in attachment.inner_text()
            assert "| revenue |" not in attachment.inner_text()  # folded away until opened

            # 4. Markup from the model is text, and runs nothing.
            send(page, "Say something dangerous")
            wait_until_idle(page)
            panel.locator(".nbchat-transcript", has_text="onerror").wait_for()
            page.wait_for_timeout(300)  # time for anything that would run to run
            danger = panel.evaluate(DANGER)
            notes["danger"] = danger
            assert danger == {
                "pwned": None,
                "scripts": 0,
                "images": 0,
                "handlers": 0,
                "bad_links": 0,
            }
            text = panel.locator(".nbchat-transcript").inner_text()
            assert '<script>window.pwned = "script"</script>' in text
            assert "<img src=x onerror=" in text
            panel.screenshot(path=str(ARTIFACTS / f"panel-{kind}-later.png"))

            # 5. Copy from the first reply, which is no longer the latest.
            first_turn = panel.locator(".nbchat-turn").last  # drawn bottom-up: oldest last
            copy_and_check(page, first_turn.locator("button.nbchat-copy-code").last, SQL)
            panel.locator(".widget-html.nbchat-status", has_text="Copied").wait_for()
            status = panel.locator(".widget-html.nbchat-status").inner_text()
            notes["older copy status"] = status
            assert status.startswith("Copied") and "%chat code" not in status, status

            prompts = [r.json["messages"][-1]["content"] for r in server.chat_requests]
            assert prompts[1].startswith('Now a slow one\n\n<dataframe name="sales"')
            assert prompts[::2] == ["Show me the quarter", "Say something dangerous"]
            history = server.chat_requests[-1].json["messages"]
            assert [m["role"] for m in history] == ["user", "assistant"] * 2 + ["user"]
