"""A chat notebook run live, saved, then re-run offline from its own saved replies, in real
kernels: nbclient, ``jupyter nbconvert --execute`` and a kernel driven as JupyterLab drives it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbchat.testing import LoopbackServer

from kernel import nbchat_kernel, run_notebook

MODEL = "gpt-4o-mini"  # one the loopback server lists
SECRET = "sk-replay-kernel-9f8e7d6c5b4a3928SECRET"
CELLS = [
    "%load_ext nbchat",
    "%%chat -o rivers\nName three rivers of Europe.",
    "%%chat\nWhich of these is the longest?\n\n{rivers}",
    "%%chat -t 0.2\nAnd in one word?",
]


def chat_markdowns(notebook: nbformat.NotebookNode) -> list[str]:
    found = []
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%chat"):
            (output,) = [o for o in cell.outputs if "text/markdown" in o.get("data", {})]
            found.append(output.data["text/markdown"])
    return found


@pytest.fixture
def recorded(server: LoopbackServer, tmp_path: Path) -> tuple[Path, str]:
    """The notebook run against the live loopback server (with a key set) and saved."""
    source = nbformat.v4.new_notebook()
    source.cells = [nbformat.v4.new_code_cell(text) for text in CELLS]
    path = tmp_path / "chat.ipynb"
    nbformat.write(source, path)
    env = {
        "NBCHAT_BASE_URL": server.base_url,
        "NBCHAT_MODEL": MODEL,
        "NBCHAT_API_KEY": SECRET,
        "NBCHAT_HOME": str(tmp_path / "live-home"),
    }
    executed = run_notebook(path, env=env, cwd=tmp_path)
    nbformat.write(executed, path)
    assert len(server.chat_requests) == 3
    assert len(server.chat_requests[2].json["messages"]) == 5  # it carries the earlier turns
    return path, server.base_url


def offline_env(base_url: str, tmp_path: Path, notebook: str) -> dict[str, str]:
    return {
        "NBCHAT_BASE_URL": base_url,
        "NBCHAT_MODEL": MODEL,
        "NBCHAT_REPLAY": "only",
        "NBCHAT_NOTEBOOK": notebook,
        "NBCHAT_HOME": str(tmp_path / "fresh-home"),
    }


def test_the_saved_notebook_holds_each_request_and_never_the_key(
    recorded: tuple[Path, str],
) -> None:
    path, _ = recorded
    text = path.read_text("utf-8")
    assert SECRET not in text and SECRET[-10:] not in text
    saved = json.loads(text)
    metas = [
        output["metadata"]["nbchat"]
        for cell in saved["cells"]
        for output in cell.get("outputs", [])
        if "nbchat" in output.get("metadata", {})
    ]
    assert [m["prompt"].splitlines()[0] for m in metas] == [
        "Name three rivers of Europe.",
        "Which of these is the longest?",
        "And in one word?",
    ]
    assert metas[2]["params"] == {"temperature": 0.2}
    assert len({m["fingerprint"] for m in metas}) == 3


def test_rerun_offline_with_nbclient_gives_identical_markdown(
    recorded: tuple[Path, str], server: LoopbackServer, tmp_path: Path
) -> None:
    path, base_url = recorded
    live = chat_markdowns(nbformat.read(path, as_version=4))
    server.stop()
    replayed = run_notebook(path, env=offline_env(base_url, tmp_path, str(path)), cwd=tmp_path)
    assert chat_markdowns(replayed) == live
    html = [o.data["text/html"] for c in replayed.cells for o in c.outputs if "data" in o]
    assert all("replayed" in page for page in html)


def test_rerun_offline_with_nbconvert_gives_identical_markdown(
    recorded: tuple[Path, str], server: LoopbackServer, tmp_path: Path
) -> None:
    path, base_url = recorded
    live = chat_markdowns(nbformat.read(path, as_version=4))
    server.stop()
    command = [sys.executable, "-m", "nbconvert", "--execute", "--to", "notebook"]
    finished = subprocess.run(
        [*command, "--output", "replayed.ipynb", path.name],
        cwd=tmp_path,
        env={**os.environ, **offline_env(base_url, tmp_path, path.name)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    replayed = nbformat.read(tmp_path / "replayed.ipynb", as_version=4)
    assert chat_markdowns(replayed) == live
    metas = [o.metadata["nbchat"] for c in replayed.cells for o in c.outputs if "data" in o]
    assert [m.get("replayed") for m in metas] == [True, True, True]


def test_a_changed_prompt_under_only_fails_with_one_line(
    recorded: tuple[Path, str], server: LoopbackServer, tmp_path: Path
) -> None:
    path, base_url = recorded
    server.stop()
    env = offline_env(base_url, tmp_path, str(path))
    with nbchat_kernel(base_url, tmp_path, **env) as kernel:
        run = kernel.execute("%%chat -o rivers\nName four rivers of Europe.")
    assert run.error is not None and run.error["ename"] == "UsageError"
    line = run.error["evalue"]
    assert "\n" not in line
    assert "replay=only" in line and "the prompt (recorded: 'Name three rivers of Europe.')" in line


def test_a_fresh_store_rebuilds_the_conversation_from_the_saved_notebook(
    recorded: tuple[Path, str], server: LoopbackServer, tmp_path: Path
) -> None:
    path, base_url = recorded
    saved = nbformat.read(path, as_version=4)
    ids = [cell.id for cell in saved.cells]
    env = {"JPY_SESSION_NAME": f"work/{path.name}", "NBCHAT_HOME": str(tmp_path / "colleague")}
    with nbchat_kernel(base_url, tmp_path, NBCHAT_MODEL=MODEL, **env) as kernel:
        shown = kernel.execute("%chat history", cell_id=ids[0])
        assert "the conversation (3 turns) was rebuilt from chat.ipynb" in shown.stdout
        assert "Name three rivers" in shown.stdout and "And in one word?" in shown.stdout
        asked = kernel.execute("%%chat\nThanks! Any more?", cell_id="new-cell")
        assert asked.reply_status == "ok", asked.describe()
    assert len(server.chat_requests[-1].json["messages"]) == 7  # 3 rebuilt turns + the new one
