"""Open JupyterLab on nbchat's notebooks, talking to the offline loopback server.

    python notebooks/run_lab.py [--long] [JUPYTER LAB OPTIONS ...]

For trying nbchat before having an API key: the loopback server starts on a free port, and
JupyterLab (and so every kernel it starts) gets ``NBCHAT_BASE_URL`` pointing at it, without any
``NBCHAT_API_KEY`` of yours. Every reply is canned and says so; put ``/long`` in a message (or
pass ``--long``) for a long one. The conversations go to a temporary ``NBCHAT_HOME``, not to your
history file. When JupyterLab exits (File > Shut Down, or Ctrl-C twice in this terminal), the
server stops. Other options go to ``jupyter lab`` as they are, e.g. ``--no-browser --port 8899``.
``make lab`` runs this in the notebooks' own virtualenv.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from nbchat.config import Settings
from nbchat.testing import LoopbackServer, canned_reply
from nbchat.testing.server import DEFAULT_MODELS

HERE = Path(__file__).resolve().parent
_DELAY = 0.01  # seconds between streamed pieces, as `python -m nbchat.testing.server` waits


def lab_environment(base_url: str, home: str) -> dict[str, str]:
    """This process's environment, pointed at the loopback server and a throw-away history."""
    env = dict(os.environ)
    env.pop("NBCHAT_API_KEY", None)  # a real key has no business with the loopback server
    env["NBCHAT_BASE_URL"] = base_url
    env["NBCHAT_HOME"] = home
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="JupyterLab on nbchat's notebooks, with the offline loopback server.",
        epilog="Any other option is passed to `jupyter lab`.",
    )
    parser.add_argument("--long", action="store_true", help="make every canned reply long")
    args, lab_args = parser.parse_known_args(argv)

    model = Settings.from_env().model  # NBCHAT_MODEL, if set, is one the server accepts
    server = LoopbackServer(models=list(dict.fromkeys([*DEFAULT_MODELS, model])))
    long = args.long
    server.default_reply = lambda request: canned_reply(request, delay=_DELAY, long=long)
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={HERE}", *lab_args]
    if os.geteuid() == 0 and "--allow-root" not in lab_args:
        command.append("--allow-root")  # containers often run as root; JupyterLab refuses it
    with server, tempfile.TemporaryDirectory(prefix="nbchat-lab-") as home:
        print(f"nbchat loopback server on {server.base_url}: every reply is canned.", flush=True)
        print(f"Starting JupyterLab with NBCHAT_BASE_URL={server.base_url}", flush=True)
        lab = subprocess.Popen(command, env=lab_environment(server.base_url, home))  # noqa: S603

        def forward(signum: int, frame: FrameType | None) -> None:
            lab.send_signal(signum)

        # Ctrl-C reaches JupyterLab too (one process group): it asks, or quits on the second.
        # This process waits for it either way, and passes a SIGTERM on.
        previous: dict[int, Any] = {
            signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
            signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        }
        try:
            code = lab.wait()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if lab.poll() is None:
                lab.terminate()
                lab.wait()
    print("JupyterLab has exited; the loopback server is stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
