"""Real headless Chromium for tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Playwright never downloads a browser here; it drives the system one. Where Chromium is missing
the browser tests skip, except in CI (``CI`` set), where a missing browser is a failure: CI
installs it (``.ci/ensure-chromium``) and the browser tests must run there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
"""Screenshots the browser tests leave for a person to look at."""
WAIT_MS = 60_000
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_browser() -> None:
    """Skip (or, in CI, fail) when Chromium or Playwright is not available."""
    missing = None
    if not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is not installed (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)


@contextmanager
def chromium(profile_dir: Path) -> Iterator[Any]:
    """A fresh persistent browser context, closed afterwards."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
        )
        try:
            yield context
        finally:
            context.close()


@contextmanager
def explained(page: Any, jupyter: Any, notes: dict[str, Any], name: str) -> Iterator[None]:
    """On failure, add what was seen, what the page shows and the server log to the error, and
    save a screenshot of the whole page as ``test-artifacts/<name>-failure.png``."""
    try:
        yield
    except Exception as error:
        try:
            visible = page.locator("body").inner_text(timeout=5_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), timeout=5_000)
        except Exception as inner:  # the page itself may be what broke
            visible = f"(could not read the page: {inner})"
        raise AssertionError(
            f"{type(error).__name__}: {error}\n\n"
            f"--- notes ---\n{json.dumps(notes, indent=1, ensure_ascii=False)[:6000]}\n\n"
            f"--- visible page text ---\n{visible[-3000:]}\n\n"
            f"{jupyter.log_tail(3000)}"
        ) from error


def run_cell(page: Any, index: int, execution_count: int) -> Any:
    """Click into cell ``index``, run it with Control+Enter, wait for its ``[n]:`` prompt."""
    from playwright.sync_api import expect

    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    expect(cell.locator(".jp-InputPrompt")).to_have_text(f"[{execution_count}]:", timeout=WAIT_MS)
    return cell


# A watcher of the panel's transcript: every distinct text it showed, frame by frame.
WATCH = """() => {
  const states = (window.__nbchatStates = []);
  window.__nbchatWatching = true;
  const sample = () => {
    const box = document.querySelector('.nbchat-panel .nbchat-transcript');
    const text = box ? box.innerText : '';
    if (states[states.length - 1] !== text) states.push(text);
    if (window.__nbchatWatching) requestAnimationFrame(sample);
  };
  sample();
}"""
STOP_WATCHING = "() => { window.__nbchatWatching = false; return window.__nbchatStates; }"
