"""A long reply stays within a few outputs, as a frontend counts them.

JupyterLab shows the first 50 outputs of a cell and hides the rest behind "Show more outputs",
where they stop updating. A reply of 200 Markdown blocks streams from the loopback server into
``%%chat``: in a real kernel, the outputs a frontend would hold are counted after every iopub
message (no frontend is attached: the reply streams into at most ten outputs); in a real
JupyterLab, which draws widgets, the reply streams into one live widget, and the cell is
watched on every animation frame while it streams.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbchat.testing import LoopbackServer, Reply

from browser import chromium, explained, run_cell
from jupyter_app import JupyterServer, notebook_root
from kernel import Execution, KernelDriver, nbchat_kernel

MOST_OUTPUTS = 10
BLOCKS = 200


def long_reply(blocks: int = BLOCKS) -> str:
    """Sections of headings, paragraphs, lists and code, like a tutorial a model writes."""
    parts = []
    for i in range(blocks):
        kind = i % 4
        if kind == 0:
            parts.append(f"## Step {i}")
        elif kind == 1:
            parts.append(f"Step {i} explains one idea in a sentence or two, then moves on.")
        elif kind == 2:
            parts.append(f"- point {i}\n- another point")
        else:
            parts.append(f"```python\nvalue_{i} = {i} * 2\n```")
    return "\n\n".join(parts) + "\n\nThe end.\n"


def live_outputs(run: Execution) -> list[int]:
    """How many outputs the frontend holds after each iopub message: ``display_data`` adds
    one, ``update_display_data`` only changes the one shown under its display id,
    ``clear_output`` clears at once or, with ``wait``, when the next output is added."""
    held = 0
    clear_next = False
    counts = []
    for message in run.messages:
        if message.msg_type == "clear_output":
            if message.content.get("wait"):
                clear_next = True
            else:
                held, clear_next = 0, False
        elif message.msg_type in ("display_data", "execute_result", "stream", "error"):
            if clear_next:
                held, clear_next = 0, False
            held += 1
        counts.append(held)
    return counts


@pytest.fixture
def kernel(server: LoopbackServer, tmp_path: Path) -> Iterator[KernelDriver]:
    with nbchat_kernel(server.base_url, tmp_path) as driver:
        yield driver


def test_a_long_reply_never_holds_more_than_ten_outputs_in_a_kernel(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    text = long_reply()
    server.enqueue(Reply(text, chunk_size=6, delay=0.002))  # about 1,300 chunks in 4 s
    run = kernel.execute("%%chat\nWrite a tutorial", cell_id="tutorial")
    assert run.reply_status == "ok", run.describe()[:3000]
    counts = live_outputs(run)
    shown = run.outputs_of_type("display_data")
    assert max(counts) <= MOST_OUTPUTS, (max(counts), len(shown))
    assert len(shown) >= 5, len(shown)  # finished blocks did move out of the open tail
    assert len(run.outputs_of_type("update_display_data")) >= 10  # it was drawn as it came
    (final,) = run.final_outputs()
    assert final["data"]["text/plain"] == text
    assert final["data"]["text/html"].count("<h2>") == BLOCKS // 4


LIVE_CELL = """(index) => {
  const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
  const seen = {outputs: 0, trimmed: 0, frames: 0, emptied: 0, emptyHeight: 0, live: []};
  window.__nbchatSeen = seen;
  window.__nbchatWatching = true;
  const sample = () => {
    const children = cell.querySelectorAll('.jp-OutputArea-child');
    seen.frames += 1;
    seen.outputs = Math.max(seen.outputs, children.length);
    seen.trimmed += cell.querySelectorAll('.jp-TrimmedOutputs').length;
    const live = cell.querySelector('.nbchat-live');
    const shown = live ? live.innerText.length : 0;
    if (shown && shown !== seen.live[seen.live.length - 1]) seen.live.push(shown);
    for (const child of children) {
      const output = child.querySelector('.jp-OutputArea-output');
      if (output && !output.innerHTML.trim()) {
        seen.emptied += 1;
        seen.emptyHeight = Math.max(seen.emptyHeight, child.getBoundingClientRect().height);
      }
    }
    if (window.__nbchatWatching) requestAnimationFrame(sample);
  };
  sample();
}"""

STOP = "() => { window.__nbchatWatching = false; return window.__nbchatSeen; }"


def test_jupyterlab_streams_a_long_reply_into_one_live_output(
    server: LoopbackServer, tmp_path: Path
) -> None:
    root = notebook_root(tmp_path, "lab", "long.ipynb", ["%load_ext nbchat", "%%chat\nTeach me"])
    server.enqueue(Reply(long_reply(), chunk_size=6, delay=0.003))  # about 4 s
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}
    with JupyterServer("lab", root, env) as jupyter, chromium(tmp_path / "chromium") as browser:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        with explained(page, jupyter, notes, "output-limit-lab"):
            page.goto(jupyter.notebook_url("long.ipynb"))
            page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for()
            jupyter.wait_idle(timeout=60)
            run_cell(page, 0, 1)
            page.evaluate(LIVE_CELL, 1)
            cell = run_cell(page, 1, 2)
            cell.locator(".nbchat-footer").wait_for()
            seen = notes["seen"] = page.evaluate(STOP)
            assert seen["frames"] > 30, seen
            assert seen["trimmed"] == 0, seen
            # JupyterLab draws widgets: the reply streams into one widget, not into outputs.
            assert seen["outputs"] == 1, seen
            assert len(seen["live"]) > 10, seen  # it grew as it came…
            assert seen["live"] == sorted(seen["live"]), seen  # …and never lost text
            assert seen["emptyHeight"] < 2, seen
            assert cell.locator(".jp-OutputArea-child").count() == 1
            assert "The end." in cell.locator(".nbchat-reply").inner_text()


def test_under_a_jupyter_server_a_long_reply_streams_into_one_widget(
    server: LoopbackServer, tmp_path: Path
) -> None:
    text = long_reply()
    server.enqueue(Reply(text, chunk_size=6, delay=0.002))
    # A Jupyter server names the notebook in the kernel's environment: a frontend that draws
    # widgets is attached.
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME="tutorial.ipynb") as kernel:
        run = kernel.execute("%%chat\nWrite a tutorial", cell_id="tutorial")
    assert run.reply_status == "ok", run.describe()[:3000]
    assert max(live_outputs(run)) == 1
    kinds = [m.msg_type for m in run.messages]
    assert kinds.count("comm_open") == kinds.count("comm_close") >= 1, kinds  # none left
    assert "update_display_data" not in kinds  # nothing resent as an output
    updates = [
        m.content["data"]["content"]
        for m in run.messages
        if m.msg_type == "comm_msg" and m.content["data"].get("method") == "custom"
    ]
    assert len(updates) >= 10  # drawn as it came
    appended = "".join(update.get("append", "") for update in updates)
    last_tail = [update["tail"] for update in updates if "tail" in update][-1]
    (final,) = run.final_outputs()
    assert final["data"]["text/plain"] == text
    assert final["data"]["text/html"].count("<h2>") == BLOCKS // 4
    # Each finished block crossed once. The last ones may still have been open in the tail, or
    # have come after the last draw: the final output shows them.
    sent = [appended.count(f"<h2>Step {step}</h2>") for step in range(0, BLOCKS, 4)]
    shown = [n + last_tail.count(f"<h2>Step {4 * i}</h2>") for i, n in enumerate(sent)]
    assert max(shown) == 1 and sum(sent) >= len(sent) - 3, sent
    assert shown == sorted(shown, reverse=True), shown  # what was drawn is a beginning
