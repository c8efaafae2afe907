"""The panel's keyboard, Regenerate, side area and lost kernel, in real JupyterLab and Notebook 7.

Headless Chromium types into the panel the way a person does; the kernel talks to the loopback
server. One browser session per frontend checks, in order:

1. Shift+Enter adds a line and sends nothing (nor runs a cell); Enter while an input method is
   composing sends nothing; Enter sends, and the reply streams in;
2. Regenerate asks the same message again with only the turns before it, and the new reply
   takes the old one's place instead of being added below it;
3. after Kernel > Restart Kernel, the panel says in the page that it lost its kernel.

``%chat panel --side`` is checked in JupyterLab, where ``sidecar`` puts the panel in the main
area beside the notebook, outside its cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbchat.testing import LoopbackServer
from nbchat.testing.script import Reply

from browser import ARTIFACTS, STOP_WATCHING, WAIT_MS, WATCH, chromium, explained, run_cell
from jupyter_app import JupyterServer, Kind, notebook_root

NOTEBOOK = "keys.ipynb"
FIRST = "The first answer. " + " ".join(f"a{i}" for i in range(60)) + " End of the first."
SECOND = "A second answer, regenerated. " + " ".join(f"b{i}" for i in range(60)) + " Fin."
LOST = "This panel lost its kernel: run %chat panel again"


def open_notebook(page: Any, jupyter: JupyterServer, cells: int) -> None:
    page.goto(jupyter.notebook_url(NOTEBOOK))
    page.locator(".jp-Notebook .jp-Cell").nth(cells - 1).wait_for()
    jupyter.wait_idle(timeout=WAIT_MS / 1000)


def wait_until_idle(page: Any) -> None:
    """Until Send is enabled again: the reply is over."""
    page.locator(".nbchat-panel button.jupyter-button:has-text('Send'):not([disabled])").wait_for()


def compose_with_ime(page: Any, text: str) -> Any:
    """Start an input method composition of ``text`` in the focused box, as a Japanese IME
    does before the user confirms it; returns the DevTools session that drives it."""
    devtools = page.context.new_cdp_session(page)
    devtools.send(
        "Input.imeSetComposition",
        {"text": text, "selectionStart": len(text), "selectionEnd": len(text)},
    )
    return devtools


def press_enter_composing(devtools: Any) -> None:
    """Enter as it reaches the page while an input method composes: keyCode 229."""
    for kind in ("rawKeyDown", "keyUp"):
        devtools.send(
            "Input.dispatchKeyEvent",
            {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 229},
        )


@pytest.mark.parametrize("kind", ["lab", "notebook"], ids=["jupyterlab", "notebook7"])
def test_enter_sends_regenerate_replaces_and_a_restart_is_said(
    kind: Kind, server: LoopbackServer, tmp_path: Path
) -> None:
    root = notebook_root(tmp_path, kind, NOTEBOOK, ["%load_ext nbchat", "%chat panel"])
    server.enqueue(
        Reply(FIRST, chunk_size=4, delay=0.02),
        Reply(SECOND, chunk_size=4, delay=0.02),
    )
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}

    with JupyterServer(kind, root, env) as jupyter, chromium(tmp_path / "chromium") as browser:
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1100, "height": 1300})
        with explained(page, jupyter, notes, f"panel-keys-{kind}"):
            open_notebook(page, jupyter, 2)
            run_cell(page, 0, 1)
            run_cell(page, 1, 2)
            panel = page.locator(".nbchat-panel")
            box = panel.locator(".nbchat-input textarea")
            box.wait_for()
            assert "Enter sends" in (box.get_attribute("placeholder") or "")

            # 1. Shift+Enter is a new line; Enter while composing is the IME's; Enter sends.
            box.click()
            page.keyboard.type("first line")
            page.keyboard.press("Shift+Enter")
            page.keyboard.type("second line")
            devtools = compose_with_ime(page, "にほん")
            press_enter_composing(devtools)
            devtools.send("Input.insertText", {"text": "にほん"})  # the user confirms it
            page.wait_for_timeout(500)  # time for a wrong send to reach the server
            notes["box"] = box.input_value()
            assert box.input_value() == "first line\nsecond lineにほん"
            assert server.chat_requests == []
            assert page.locator(".jp-Notebook .jp-Cell").count() == 2  # no cell was run/added
            page.evaluate(WATCH)
            page.keyboard.press("Enter")
            panel.locator(".nbchat-transcript", has_text="End of the first.").wait_for()
            wait_until_idle(page)
            states = page.evaluate(STOP_WATCHING)
            notes["states"] = [s[-60:] for s in states]
            assert any("a10 " in s and "End of the first." not in s for s in states)
            assert box.input_value() == ""
            (asked,) = server.chat_requests
            assert asked.json["messages"] == [
                {"role": "user", "content": "first line\nsecond lineにほん"}
            ]

            # 2. Regenerate replaces the reply in place.
            panel.locator("button.nbchat-again", has_text="Regenerate").click()
            panel.locator(".nbchat-transcript", has_text="Fin.").wait_for()
            wait_until_idle(page)
            text = panel.locator(".nbchat-transcript").inner_text()
            notes["after regenerate"] = text[-300:]
            assert "End of the first." not in text
            assert text.count("second lineにほん") == 1
            assert panel.locator(".nbchat-turn").count() == 1
            assert server.chat_requests[1].json["messages"] == asked.json["messages"]
            ARTIFACTS.mkdir(exist_ok=True)
            panel.screenshot(path=str(ARTIFACTS / f"panel-keys-{kind}.png"))

            # 3. A restarted kernel leaves the panel dead: it says so.
            lost = panel.locator(".nbchat-lost")
            assert not lost.is_visible()
            page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").click()
            page.locator(".lm-Menu-itemLabel", has_text="Restart Kernel…").click()
            page.locator(".jp-Dialog button.jp-mod-accept").click()
            lost.wait_for(state="visible")
            assert lost.inner_text() == LOST
            box.click()
            page.keyboard.type("anyone?")
            page.keyboard.press("Enter")
            page.wait_for_timeout(300)
            assert len(server.chat_requests) == 2  # nothing went
            panel.screenshot(path=str(ARTIFACTS / f"panel-lost-kernel-{kind}.png"))


def test_side_opens_the_panel_beside_the_notebook(server: LoopbackServer, tmp_path: Path) -> None:
    root = notebook_root(tmp_path, "lab", NOTEBOOK, ["%load_ext nbchat", "%chat panel --side"])
    server.enqueue(Reply(FIRST, chunk_size=8, delay=0.01))
    env = {"NBCHAT_BASE_URL": server.base_url, "NBCHAT_MODEL": "test-model"}
    notes: dict[str, Any] = {}

    with JupyterServer("lab", root, env) as jupyter, chromium(tmp_path / "chromium") as browser:
        page = browser.new_page()
        page.set_default_timeout(WAIT_MS)
        page.set_viewport_size({"width": 1400, "height": 1000})
        with explained(page, jupyter, notes, "panel-side-lab"):
            open_notebook(page, jupyter, 2)
            run_cell(page, 0, 1)
            run_cell(page, 1, 2)
            panel = page.locator(".jupyterlab-sidecar .nbchat-panel")
            panel.wait_for()
            assert page.locator(".jp-Notebook .nbchat-panel").count() == 0  # not in a cell
            assert page.locator(".nbchat-panel").count() == 1
            notebook_box = page.locator(".jp-NotebookPanel").bounding_box()
            panel_box = panel.bounding_box()
            notes["boxes"] = {"notebook": notebook_box, "panel": panel_box}
            assert panel_box["x"] >= notebook_box["x"] + notebook_box["width"] - 1  # beside it
            box = panel.locator(".nbchat-input textarea")
            box.click()
            page.keyboard.type("From the side")
            page.keyboard.press("Enter")  # at once: the last keystroke is still syncing
            panel.locator(".nbchat-transcript", has_text="End of the first.").wait_for()
            assert box.input_value() == ""  # the message left the box
            assert server.chat_requests[0].json["messages"][-1]["content"] == "From the side"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "panel-side-lab.png"))
