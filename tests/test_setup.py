"""Setting up as the README says: the extras give what the notebooks and their runners import,
the README's client example runs, and ``make lab`` opens JupyterLab on the offline server and
stops the server when JupyterLab exits."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import pty
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from nbchat.testing import LoopbackServer, Reply

from jupyter_app import _children

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
README = (ROOT / "README.md").read_text(encoding="utf-8")


# ---- the extras -----------------------------------------------------------------------------


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(extra: str | None) -> set[str]:
    """The distributions nbchat's installed metadata names, for ``extra`` (None: the base)."""
    names = set()
    for line in importlib.metadata.requires("nbchat") or []:
        name = re.match(r"[A-Za-z0-9._-]+", line)
        given = re.search(r"""extra\s*==\s*["']([^"']+)["']""", line)
        assert name is not None, line
        if (given.group(1) if given else None) == extra:
            names.add(canonical(name.group(0)))
    return names


def third_party_imports(source: str) -> set[str]:
    """Top-level modules imported by ``source``, less the standard library and nbchat."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"__future__", "nbchat"}


def distributions(modules: set[str]) -> set[str]:
    """The installed distributions that provide ``modules``."""
    provided = importlib.metadata.packages_distributions()
    missing = modules - provided.keys()
    assert not missing, f"not provided by any installed distribution: {missing}"
    return {canonical(dist) for module in modules for dist in provided[module]}


def notebook_source(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    lines = [
        line
        for cell in notebook.cells
        if cell.cell_type == "code" and not cell.source.startswith("%%")  # a prompt, not Python
        for line in cell.source.splitlines()
        if not line.lstrip().startswith(("%", "!"))  # line magics and shell commands
    ]
    return "\n".join(lines)


def test_the_lab_extra_gives_a_notebook_and_what_the_runners_import() -> None:
    lab = requirements("lab")
    assert {"jupyterlab", "ipykernel"} <= lab
    for runner in ("run_headless.py", "run_lab.py"):
        imported = third_party_imports((NOTEBOOKS / runner).read_text(encoding="utf-8"))
        assert distributions(imported) <= requirements(None) | lab, runner


def test_the_notebooks_import_only_what_lab_and_examples_give() -> None:
    given = requirements(None) | requirements("lab") | requirements("examples")
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        assert distributions(third_party_imports(notebook_source(path))) <= given, path.name
    assert "pyarrow" in requirements("examples")  # pl.from_pandas needs it for these dtypes


def test_the_package_itself_needs_no_jupyter_server_nor_dataframes() -> None:
    heavy = {"jupyterlab", "notebook", "nbclient", "nbconvert", "pandas", "polars", "pyarrow"}
    assert not requirements(None) & heavy


def test_make_quickstart_builds_its_own_venv_without_the_test_tools() -> None:
    dry_run = subprocess.run(
        ["make", "-n", "-B", "quickstart", "lab"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    installs = [line for line in dry_run.splitlines() if " pip install " in line]
    assert installs and all(".venv-notebooks/bin/python" in line for line in installs)
    assert any('-e ".[lab,examples]"' in line for line in installs)
    assert "[test]" not in dry_run
    assert ".venv-notebooks/bin/python notebooks/run_headless.py" in dry_run
    assert ".venv-notebooks/bin/python notebooks/run_lab.py" in dry_run


def test_readme_installs_the_lab_extra() -> None:
    install = README[README.index("## Install") :].split("```")[1]
    assert "pip install -e '.[lab]'" in install


# ---- the README's client example ------------------------------------------------------------


def readme_client_example() -> str:
    section = README[README.index("## Using the client from Python") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_client_example_prints_each_piece_once(server: LoopbackServer) -> None:
    text = "Hello · Bonjour · 你好, in pieces of three characters."
    server.enqueue(Reply(text=text, chunk_size=3))
    finished = subprocess.run(
        [sys.executable, "-c", readme_client_example()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NBCHAT_BASE_URL": server.base_url},
    )
    assert finished.returncode == 0, finished.stderr
    first_line, rest = finished.stdout.split("\n", 1)
    assert first_line == text  # streamed piece by piece, each piece printed once
    assert "\r" not in finished.stdout
    assert rest.startswith("Usage(prompt_tokens=")  # then the usage
    assert server.last_request.json["seed"] == 7


# ---- make lab -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def api(port: int, token: str, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/{path}",
        method=method,
        headers={"Authorization": f"token {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def environment_of(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def wait_for_lab(process: subprocess.Popen[bytes], port: int, token: str, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the launcher exited early:\n{log.read_text()[-4000:]}"
        try:
            api(port, token, "status")
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise AssertionError(f"JupyterLab did not answer in 90 s:\n{log.read_text()[-4000:]}")


def wait_until(ready: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.1)


@pytest.mark.parametrize("exit_by", ["shut-down", "ctrl-c twice", "sigterm"])
def test_make_lab_runs_jupyterlab_on_the_offline_server_and_stops_it(
    tmp_path: Path, exit_by: str
) -> None:
    port, token = free_port(), secrets.token_hex(8)
    own_history = tmp_path / "my-nbchat-home"
    env = {**os.environ, "NBCHAT_API_KEY": "sk-not-for-the-lab", "NBCHAT_HOME": str(own_history)}
    out, log = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [
        sys.executable,
        str(NOTEBOOKS / "run_lab.py"),
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
    ]
    terminal, terminal_side = pty.openpty()  # stdin is a terminal, as when typed in one
    with out.open("wb") as stdout, log.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=terminal_side,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    os.close(terminal_side)
    try:
        wait_for_lab(process, port, token, log)
        (lab_pid,) = _children(process.pid)
        base_url = re.search(r"NBCHAT_BASE_URL=(\S+)", out.read_text())
        assert base_url is not None, out.read_text()
        url = base_url.group(1)

        # JupyterLab shows notebooks/, and it and its kernels are pointed at the server.
        names = {item["name"] for item in api(port, token, "contents")["content"]}
        assert {"quickstart.ipynb", "panel.ipynb", "dataframes.ipynb"} <= names
        lab_env = environment_of(lab_pid)
        assert lab_env["NBCHAT_BASE_URL"] == url
        assert "NBCHAT_API_KEY" not in lab_env
        temporary_home = Path(lab_env["NBCHAT_HOME"])
        assert temporary_home != own_history and temporary_home.is_dir()
        with urllib.request.urlopen(f"{url}/models", timeout=5) as response:
            listed = [model["id"] for model in json.loads(response.read())["data"]]
        assert "gpt-4o-mini" in listed

        if exit_by == "shut-down":  # File > Shut Down in JupyterLab
            api(port, token, "shutdown", method="POST")
        elif exit_by == "ctrl-c twice":  # each goes to the whole process group
            os.killpg(process.pid, signal.SIGINT)
            asked = "Shut down this Jupyter server"
            wait_until(lambda: asked in out.read_text(), "question after the first Ctrl-C")
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-4000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        os.close(terminal)

    assert out.read_text().endswith("the loopback server is stopped.\n")
    host, server_port = url.removeprefix("http://").removesuffix("/v1").split(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(server_port)), timeout=2).close()
    assert not temporary_home.exists()
    assert not own_history.exists()
