"""Waiting for a server the tests started as a subprocess (JupyterLab, LiteLLM's proxy)."""

from __future__ import annotations

import subprocess
import time
import urllib.error
from collections.abc import Callable


def wait_ready(
    process: subprocess.Popen[bytes] | None,
    answers: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    log_tail: Callable[[], str],
    error: type[Exception],
) -> None:
    """Poll ``answers()`` until it is true; raise ``error`` (with the log's tail) when the
    process exits first or ``timeout`` seconds pass. Connection errors count as "not yet"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process is not None
        if process.poll() is not None:
            raise error(f"{what} exited with {process.returncode} while starting\n{log_tail()}")
        try:
            if answers():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise error(f"{what} did not answer in {timeout:.0f} s\n{log_tail()}")
