"""A real JupyterLab or Notebook 7 server for browser tests, started and stopped by a test.

``JupyterServer("lab" | "notebook", root_dir, env)`` runs ``python -m jupyterlab`` or
``python -m notebook`` with the tests' own interpreter on a free loopback port with a random
token, and waits until ``/api/status`` answers. The process environment is ``os.environ`` plus
``env``, except that ``HOME``, ``JUPYTER_*``, ``IPYTHONDIR`` and ``XDG_*`` point into a temp dir of
this server's own (unless ``env`` names them): whatever the server, or a kernel it starts (kernels
inherit its environment), would write lands there.

The news and update pop-ups are switched off by user settings written into that temp
``JUPYTER_CONFIG_DIR`` (``lab/user-settings/...``), which both JupyterLab and Notebook 7 read:
nothing is written into the virtualenv.

On exit the server gets SIGTERM, which makes Jupyter shut its kernels down; any kernel still
alive after that is killed, so no process outlives the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from processes import wait_ready

Kind = Literal["lab", "notebook"]

_MODULES: dict[str, str] = {"lab": "jupyterlab", "notebook": "notebook"}
_APPS: dict[str, str] = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0

# Plugin settings as a user would save them in Settings > Settings Editor.
USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No "Would you like to receive official Jupyter news?" toast, no update check.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def require_modules(*names: str) -> None:
    """Skip (or, in CI, fail) when JupyterLab or Notebook 7 is not installed."""
    import importlib.util

    import pytest

    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        message = f"not installed: {', '.join(missing)} (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {message}")
        pytest.skip(message)


def notebook_root(tmp_path: Path, kind: Kind, name: str, sources: list[str]) -> Path:
    """A server root holding notebook ``name`` with one code cell per source; skips (or, in
    CI, fails) first when the browser or ``kind``'s frontend is missing."""
    import nbformat

    from browser import require_browser

    require_browser()
    require_modules(_MODULES[kind])
    root = tmp_path / "root"
    root.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nbformat.write(notebook, root / name)
    return root


class JupyterServerError(RuntimeError):
    """The server did not start, or did not answer in time; the message has its log tail."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2 :].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


class JupyterServer:
    """A running JupyterLab (``kind="lab"``) or Notebook 7 (``kind="notebook"``) server."""

    def __init__(self, kind: Kind, root_dir: Path, env: Mapping[str, str] | None = None) -> None:
        if kind not in _MODULES:
            raise ValueError(f"kind must be 'lab' or 'notebook', got {kind!r}")
        self.kind = kind
        self.root_dir = Path(root_dir)
        self.extra_env = dict(env or {})
        self.token = secrets.token_hex(24)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._temp = tempfile.TemporaryDirectory(prefix=f"jupyter-{kind}-")
        self.state_dir = Path(self._temp.name)
        self.log_path = self.state_dir / "server.log"
        self._kernel_pids: set[int] = set()

    # -- environment ---------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        home = self.state_dir / "home"
        isolated = {
            "HOME": home,
            "JUPYTER_CONFIG_DIR": home / "jupyter-config",
            "JUPYTER_DATA_DIR": home / "jupyter-data",
            "JUPYTER_RUNTIME_DIR": home / "jupyter-runtime",
            "IPYTHONDIR": home / "ipython",
            "XDG_CONFIG_HOME": home / ".config",
            "XDG_DATA_HOME": home / ".local" / "share",
            "XDG_CACHE_HOME": home / ".cache",
            "XDG_STATE_HOME": home / ".local" / "state",
            "XDG_RUNTIME_DIR": home / "xdg-runtime",
        }
        # Each server gets a home of its own (the conftest already moved these away from the real
        # home; this keeps the helper safe on its own too). A test's own ``env`` wins.
        env = {**os.environ, **{name: str(path) for name, path in isolated.items()}}
        env.pop("JUPYTERLAB_SETTINGS_DIR", None)  # user settings live under JUPYTER_CONFIG_DIR
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        for name in ("HOME", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
            Path(env[name]).mkdir(parents=True, exist_ok=True)
        runtime = Path(env["XDG_RUNTIME_DIR"])
        runtime.mkdir(parents=True, exist_ok=True)
        runtime.chmod(0o700)
        return env

    def _write_user_settings(self, env: Mapping[str, str]) -> None:
        default = Path(env["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings"
        settings_dir = Path(env.get("JUPYTERLAB_SETTINGS_DIR") or default)
        for plugin, values in USER_SETTINGS.items():
            path = settings_dir / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2))

    def _command(self) -> list[str]:
        app = _APPS[self.kind]
        return [
            sys.executable,
            "-m",
            _MODULES[self.kind],
            "--allow-root",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app}.news_url=None",
            f"--{app}.extension_manager=readonly",
            f"--{app}.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> JupyterServer:
        env = self._environment()
        self._write_user_settings(env)
        for attempt in range(3):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                log.write(f"\n=== attempt {attempt + 1}: {' '.join(self._command())}\n".encode())
                log.flush()
                self.process = subprocess.Popen(
                    self._command(),
                    cwd=self.root_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
                return self
            except JupyterServerError:
                port_taken = "is already in use" in self.log_tail(4000)
                self.stop()
                if not port_taken:
                    raise
        raise JupyterServerError(f"no free port after 3 attempts\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        def answers() -> bool:
            self.api("status", timeout=2)
            return True

        wait_ready(
            self.process,
            answers,
            what=f"jupyter {self.kind}",
            timeout=_START_TIMEOUT,
            log_tail=self.log_tail,
            error=JupyterServerError,
        )

    def stop(self) -> None:
        """SIGTERM the server (Jupyter then shuts its kernels down); kill whatever is left."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            self._kernel_pids.update(_children(process.pid))
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT)
        # Kernels run in sessions of their own, so the server's process group does not hold
        # them: end any that the server failed to shut down.
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in self._kernel_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in self._kernel_pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._kernel_pids.clear()

    def __enter__(self) -> JupyterServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self._temp.cleanup()

    # -- talking to it -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query: str) -> str:
        """``path`` on this server with the token (and ``query``) in the query string.

        ``url("lab/tree/a.ipynb", reset="")`` gives ``.../lab/tree/a.ipynb?reset=&token=...``.
        """
        params = {**query, "token": self.token}
        return f"{self.base_url}/{path.lstrip('/')}?{urllib.parse.urlencode(params)}"

    def notebook_url(self, name: str) -> str:
        """Where the browser opens notebook ``name`` (relative to the root dir)."""
        quoted = urllib.parse.quote(name)
        if self.kind == "lab":
            return self.url(f"lab/tree/{quoted}", reset="")  # no saved workspace
        return self.url(f"notebooks/{quoted}")

    def api(self, path: str, *, timeout: float = 10) -> Any:
        """GET ``/api/<path>`` and return the JSON answer."""
        request = urllib.request.Request(
            f"{self.base_url}/api/{path.lstrip('/')}",
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.api("sessions"))

    def wait_idle(self, *, timeout: float = 60, sessions: int = 1) -> list[dict[str, Any]]:
        """Wait until at least ``sessions`` kernel sessions exist and all their kernels are idle."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = self.sessions()
            states = [s.get("kernel", {}).get("execution_state") for s in found]
            if len(found) >= sessions and all(state == "idle" for state in states):
                return found
            time.sleep(0.1)
        raise JupyterServerError(
            f"kernels not idle after {timeout:.0f} s: {json.dumps(found, indent=1)}\n"
            f"{self.log_tail()}"
        )

    def kernel_commands(self) -> list[list[str]]:
        """The command lines of the kernels this server runs now."""
        if self.process is None:
            return []
        return [
            command
            for command in map(_cmdline, _children(self.process.pid))
            if "ipykernel_launcher" in command
        ]

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the server's log (stdout and stderr), for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        tail = text[-chars:]
        return f"--- jupyter {self.kind} log (last {len(tail)} chars) ---\n{tail}"
