"""The notebooks in ``notebooks/`` run end to end in a real kernel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbchat.testing import LoopbackServer

from kernel import run_notebook

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "notebooks" / "quickstart.ipynb"


def chat_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in notebook.cells if c.cell_type == "code" and c.source.startswith("%%chat")]


def test_quickstart_runs_against_the_loopback_server(
    server: LoopbackServer, tmp_path: Path
) -> None:
    env = {"NBCHAT_BASE_URL": server.base_url}  # canned replies, for a model the server lists
    notebook = run_notebook(QUICKSTART, env=env, cwd=tmp_path)
    cells = chat_cells(notebook)
    assert cells
    for cell in cells:
        (output,) = cell.outputs
        assert output.output_type == "display_data"
        assert output.data["text/plain"] == output.data["text/markdown"]
        assert "canned" in output.data["text/plain"]
    requests = [r.json for r in server.chat_requests]
    assert len(requests) == len(cells)
    follow_up = [m["content"] for m in requests[1]["messages"]]
    assert follow_up[0] == "Explain in two sentences what a p-value is."
    assert len(follow_up) == 3  # question, its reply, the follow-up
    one_off = requests[-1]
    assert len(one_off["messages"]) == 1  # --no-history
    assert "['age', 'income', 'city']" in one_off["messages"][0]["content"]
    assert (tmp_path / "conversation.md").exists()


def test_headless_runner_says_replies_are_canned_and_leaves_the_history_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The history file where a user's own is: under HOME (a temp dir, see conftest), found
    # through the Jupyter data dir, as when neither NBCHAT_HOME nor JUPYTER_DATA_DIR is set.
    monkeypatch.delenv("NBCHAT_HOME")
    monkeypatch.delenv("JUPYTER_DATA_DIR")
    home = Path(os.environ["HOME"])
    out = tmp_path / "out"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "notebooks" / "run_headless.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "NBCHAT_MODEL": "my-own-model"},  # accepted by its canned server
    )
    assert finished.returncode == 0, finished.stderr
    assert "canned" in finished.stdout
    html = (out / "quickstart.html").read_text()
    assert "This run used canned replies" in html
    executed = nbformat.read(out / "quickstart.ipynb", as_version=4)
    assert all(cell.outputs for cell in chat_cells(executed))
    assert "`my-own-model`" in chat_cells(executed)[0].outputs[0].data["text/markdown"]
    assert sorted(p.name for p in out.iterdir()) == [
        "conversation.md",
        *(
            f"{name}.{ext}"
            for name in ("dataframes", "panel", "quickstart")
            for ext in ("html", "ipynb")
        ),
    ]
    assert list(home.rglob("*.sqlite3*")) == []  # no history file was written in HOME


def test_panel_notebook_shares_one_conversation_with_chat_cells(
    server: LoopbackServer, tmp_path: Path
) -> None:
    env = {"NBCHAT_BASE_URL": server.base_url}
    notebook = run_notebook(ROOT / "notebooks" / "panel.ipynb", env=env, cwd=tmp_path)
    requests = [r.json["messages"] for r in server.chat_requests]
    assert [len(messages) for messages in requests] == [1, 3, 5]
    panel_question = "Give me a pandas one-liner for a column's median."
    assert requests[1][-1]["content"] == panel_question  # asked in the panel...
    assert requests[2][2]["content"] == panel_question  # ...and sent again by the next cell
    assert requests[2][-1]["content"] == "And how would I do the same with polars?"
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    widget_views = [
        o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widget_views) == 1  # %chat panel shows a panel
    texts = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "gpt-4o-mini ·" in texts and "tokens" in texts  # the panel's status line
    assert "Traceback" not in texts


def test_dataframes_notebook_sends_summaries_not_data(
    server: LoopbackServer, tmp_path: Path
) -> None:
    from nbchat.frames import estimate_tokens

    env = {"NBCHAT_BASE_URL": server.base_url}
    notebook = run_notebook(ROOT / "notebooks" / "dataframes.ipynb", env=env, cwd=tmp_path)
    sent = [r.json["messages"][-1]["content"] for r in server.chat_requests]
    assert len(sent) == 3
    summaries = [re.findall(r"<dataframe .*?</dataframe>", text, re.DOTALL) for text in sent]
    assert [len(found) for found in summaries] == [1, 1, 1]
    for (summary,) in summaries:
        assert 'rows="250,000" cols="6"' in summary
        assert "| unit_price |" in summary and "| returned |" in summary
        assert estimate_tokens(summary) <= 1000
    assert sent[0].startswith("Here is a year of sales: <dataframe")  # {sales}, in its place
    assert "sample rows" not in sent[0] + sent[1]  # no rows unless asked...
    assert "sample rows" in sent[2] and 'library="polars"' in sent[2]  # ...--df-rows 3 asks
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.source.startswith("%chat context")
        for output in cell.outputs
    )
    assert printed.count("<dataframe ") == 2 and 'type="LazyFrame"' in printed
    assert summaries[0][0] in printed  # %chat context shows exactly what {sales} sent
