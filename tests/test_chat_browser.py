"""``%%chat`` in a real JupyterLab and a real Notebook 7, watched in headless Chromium.

A notebook with ``%load_ext nbchat`` and a ``%%chat`` cell is opened in the browser and run
with the keyboard, the way a person runs it; the kernel talks to the loopback server, which
streams a scripted Markdown reply slowly. The test samples what the cell shows on every
animation frame (what a person would see), then checks the order of what was seen: the reply
growing in the cell, then one final output with a rendered table, highlighted code and the
footer. A screenshot of the output goes to ``test-artifacts/chat-<kind>.png``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from nbchat.testing import LoopbackServer
from nbchat.testing.script import Reply

from browser import ARTIFACTS, chromium, explained, run_cell
from jupyter_app import JupyterServer, Kind, notebook_root

NOTEBOOK = "chat.ipynb"
PROMPT = "Show me a table and some code"
WAIT_MS = 60_000

HEADING = "Monthly sales report"
LAST_SENTENCE = "That is all for this month."
REPLY = f"""\
## {HEADING}

Here are the **first quarter's** figures, one row per month, and a small Python function
that computes the growth from one month to the next. The numbers are made up for this test,
but the shapes are the ones a real model sends back.

| month | sales | growth |
|---|---:|---:|
| January | 1,200 | — |
| February | 1,350 | 12.5 % |
| March | 1,500 | 11.1 % |

```python
def growth(previous: float, current: float) -> float:
    \"\"\"Growth from one month to the next, in percent.\"\"\"
    return (current - previous) / previous * 100


print(f"{{growth(1350, 1500):.1f}} %")
```

{LAST_SENTENCE}
"""
FOOTER = re.compile(r"test-model · \d+ → \d+ tokens · \d+\.\d s")

# Samples the second cell once per animation frame, i.e. as often as the page can paint, and
# keeps each state that differs from the one before.
WATCH_CELL = """(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const states = (window.__nbchatStates = []);
  window.__nbchatWatching = true;
  const sample = () => {
    const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
    const state = {
      t: Math.round(performance.now()),
      outputs: outputs.length,
      mimes: outputs.map((o) => o.getAttribute('data-mime-type')),
      text: outputs.map((o) => o.innerText).join('\\n'),
      height: Math.round(outputs.reduce((h, o) => h + o.getBoundingClientRect().height, 0)),
    };
    const last = states[states.length - 1];
    if (!last || last.text !== state.text || last.outputs !== state.outputs) states.push(state);
    if (window.__nbchatWatching) requestAnimationFrame(sample);
  };
  sample();
}"""

STOP_WATCHING = "() => { window.__nbchatWatching = false; return window.__nbchatStates; }"

FINAL_OUTPUT = """(cell) => {
  const outputs = [...cell.querySelectorAll('.jp-OutputArea-output')];
  const reply = cell.querySelector('.nbchat-reply');
  return {
    outputs: outputs.length,
    mimes: outputs.map((o) => o.getAttribute('data-mime-type')),
    tables: cell.querySelectorAll('.nbchat-reply table').length,
    table_cells: [...cell.querySelectorAll('.nbchat-reply td')].map((td) => td.innerText),
    highlighted_spans: cell.querySelectorAll('.nbchat-reply pre span[style]').length,
    code: [...cell.querySelectorAll('.nbchat-reply pre')].map((p) => p.innerText).join(''),
    footer: [...cell.querySelectorAll('.nbchat-footer')].map((f) => f.innerText),
    text: reply ? reply.innerText : null,
  };
}"""

ERROR_OUTPUTS = (
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
)


def label(state: dict[str, Any]) -> str:
    """What a person would say the cell shows in one sampled state."""
    text = state["text"]
    if state["outputs"] == 0:
        return "empty"
    if not text.strip():
        return "blank output"  # an output with nothing in it yet: a flicker
    if "asking test-model" in text:
        return "asking"
    if FOOTER.search(text):
        return "final"
    if LAST_SENTENCE in text:
        return "all text, no footer"
    return "streaming"


def collapse(labels: list[str]) -> list[str]:
    """``labels`` with runs of the same label merged."""
    return [name for i, name in enumerate(labels) if i == 0 or labels[i - 1] != name]


@pytest.mark.parametrize("kind", ["lab", "notebook"], ids=["jupyterlab", "notebook7"])
def test_chat_streams_into_the_cell_and_ends_as_one_rendered_output(
    kind: Kind, server: LoopbackServer, tmp_path: Path
) -> None:
    root = notebook_root(tmp_path, kind, NOTEBOOK, ["%load_ext nbchat", f"%%chat\n{PROMPT}"])
    server.enqueue(Reply(REPLY, chunk_size=3, delay=0.015))  # ~250 chunks: about 4 s
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}

    with (
        JupyterServer(kind, root, env) as jupyter,
        chromium(tmp_path / "chromium") as browser,
    ):
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1100, "height": 1400})
        with explained(page, jupyter, notes, f"chat-{kind}"):
            page.goto(jupyter.notebook_url(NOTEBOOK))
            page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for()
            sessions = jupyter.wait_idle(timeout=WAIT_MS / 1000)
            notes["sessions"] = sessions
            kernels = jupyter.kernel_commands()
            assert [command[0] for command in kernels] == [sys.executable], kernels

            load_cell = run_cell(page, 0, 1)
            assert load_cell.locator(".jp-OutputArea-output").count() == 0, load_cell.inner_text()

            page.evaluate(WATCH_CELL, 1)
            chat_cell = run_cell(page, 1, 2)
            chat_cell.locator(".nbchat-footer").wait_for()
            jupyter.wait_idle(timeout=WAIT_MS / 1000)
            page.wait_for_timeout(200)  # a few more frames, to see nothing moves afterwards
            states = page.evaluate(STOP_WATCHING)
            labels = [label(state) for state in states]
            notes["seen"] = collapse(labels)
            notes["states"] = [
                f"{name}: {s['outputs']} outputs, {s['height']} px, …{s['text'][-60:]!r}"
                for s, name in zip(states, labels, strict=True)
            ]

            # What was seen, in order: the reply growing, then the finished output, and
            # nothing in between that a person would see blink.
            seen = notes["seen"]
            assert seen[-1] == "final", seen
            assert "streaming" in seen, seen
            # (A live widget's output may be blank for the frame or two its module takes to
            # load, before anything was shown: growing, not blinking.)
            order = ["empty", "blank output", "asking", "streaming", "all text, no footer"]
            order.append("final")
            assert all(name in order for name in seen), seen
            ranks = [order.index(name) for name in seen]
            assert ranks == sorted(ranks), seen
            partial = [
                s
                for s, name in zip(states, labels, strict=True)
                if name == "streaming" and HEADING in s["text"] and "1,350" in s["text"]
            ]
            assert partial, "never saw the heading and table while the last sentence was missing"

            final = chat_cell.evaluate(FINAL_OUTPUT)
            notes["final"] = final
            assert final["outputs"] == 1, final
            assert final["mimes"] == ["text/html"], final  # the HTML of the bundle is shown
            assert final["tables"] == 1, final
            assert final["table_cells"][:3] == ["January", "1,200", "—"], final
            assert final["highlighted_spans"] >= 10, final
            assert "def growth(previous: float, current: float) -> float:" in final["code"]
            assert len(final["footer"]) == 1 and FOOTER.fullmatch(final["footer"][0]), final
            assert final["text"].startswith(HEADING), final
            assert LAST_SENTENCE in final["text"], final
            assert page.locator(ERROR_OUTPUTS).count() == 0

            assert len(server.chat_requests) == 1
            request = server.chat_requests[0].json
            assert request["model"] == "test-model"
            assert request["messages"][-1]["content"] == PROMPT

            ARTIFACTS.mkdir(exist_ok=True)
            chat_cell.locator(".jp-Cell-outputArea").screenshot(
                path=str(ARTIFACTS / f"chat-{kind}.png")
            )
