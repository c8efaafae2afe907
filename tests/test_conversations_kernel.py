"""Conversations in real kernels: they follow a renamed notebook, a copy gets its own, stale
turns are marked and left out, old conversations are listed and reopened, exports come back.

Each kernel is started the way Jupyter Server starts one (``JPY_SESSION_NAME`` = the notebook's
path) and sent cell ids in ``execute_request`` metadata, as JupyterLab sends them. The history
store is the test's own (``NBCHAT_HOME`` in a temporary home, see conftest).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nbchat.testing import LoopbackServer, Reply

from kernel import Execution, KernelDriver, nbchat_kernel


def save_notebook(path: Path, cell_ids: list[str], *, with_ids: bool = True) -> None:
    """A saved .ipynb whose cells carry these ids (nbformat 4.5), or none (4.4)."""
    cells = []
    for cell_id in cell_ids:
        cell = {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": "%%chat\n…",
        }
        if with_ids:
            cell["id"] = cell_id
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5 if with_ids else 4,
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")


def chat(kernel: KernelDriver, body: str, cell_id: str) -> Execution:
    run = kernel.execute(f"%%chat\n{body}", cell_id=cell_id)
    assert run.reply_status == "ok", run.describe()
    return run


def sent(server: LoopbackServer) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in server.last_request.json["messages"]]


def command(kernel: KernelDriver, line: str) -> Execution:
    run = kernel.execute(line)
    assert run.reply_status == "ok", run.describe()
    return run


def footer(run: Execution) -> str:
    (output,) = [o for o in run.final_outputs() if o["output_type"] == "display_data"]
    html = output["data"]["text/html"]
    return re.findall(r'class="nbchat-footer"[^>]*>([^<]*)<', html)[-1]


def test_a_renamed_notebook_keeps_its_conversation_after_a_restart(
    server: LoopbackServer, tmp_path: Path
) -> None:
    old, new = tmp_path / "Untitled.ipynb", tmp_path / "analysis.ipynb"
    save_notebook(old, ["a", "b"])
    server.enqueue(Reply("Paris."), Reply("2.1 million."), Reply("Yes."))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(old)) as kernel:
        chat(kernel, "Capital of France?", "a")
        chat(kernel, "Its population?", "b")
    old.rename(new)  # JupyterLab's rename on first save; the kernel starts again on the new path
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(new)) as kernel:
        listing = command(kernel, "%chat history")
        assert listing.stderr.strip() == (
            "nbchat: continuing the conversation of Untitled.ipynb (2 turns), found by its cell ids"
        )
        assert "Capital of France?" in listing.stdout and "2.1 million." in listing.stdout
        chat(kernel, "Is it big?", "c")
        assert sent(server) == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "Its population?"),
            ("assistant", "2.1 million."),
            ("user", "Is it big?"),
        ]
        kernel.restart()  # now the new path is known: no second line, the same conversation
        assert kernel.execute("%load_ext nbchat").reply_status == "ok"
        again = command(kernel, "%chat history")
        assert again.stderr == "" and "Is it big?" in again.stdout


def test_a_moved_notebook_saved_without_ids_is_found_by_its_first_chat_cell(
    server: LoopbackServer, tmp_path: Path
) -> None:
    old = tmp_path / "draft.ipynb"
    (tmp_path / "reports").mkdir()
    new = tmp_path / "reports" / "draft.ipynb"
    save_notebook(old, ["a"])
    server.enqueue(Reply("Paris."), Reply("Yes."))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(old)) as kernel:
        chat(kernel, "Capital of France?", "a")
    old.unlink()
    save_notebook(new, ["a"], with_ids=False)  # the saved file cannot say which cells it has
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(new)) as kernel:
        assert command(kernel, "%chat history").stdout.strip() == "The conversation is empty."
        run = chat(kernel, "Capital of France, again?", "a")
        assert f"continuing the conversation of {old} (1 turn)" in run.stderr
        assert sent(server) == [("user", "Capital of France, again?")]  # a's own turn: replaced
        count = command(kernel, "import nbchat; print(len(nbchat.get_session().history))")
        assert count.stdout.strip() == "1"


def test_a_copied_notebook_gets_its_own_copy_and_the_original_keeps_its_conversation(
    server: LoopbackServer, tmp_path: Path
) -> None:
    original, copy = tmp_path / "report.ipynb", tmp_path / "report-Copy1.ipynb"
    save_notebook(original, ["a", "b"])
    server.enqueue(Reply("Paris."), Reply("2.1 million."), Reply("Lyon."), Reply("Rhône."))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(original)) as kernel:
        chat(kernel, "Capital of France?", "a")
        chat(kernel, "Its population?", "b")
        ids = command(kernel, "import nbchat; print(nbchat.get_session().history.conversation_id)")
        original_id = int(ids.stdout)
    copy.write_bytes(original.read_bytes())  # File → Duplicate: the same cell ids
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(copy)) as kernel:
        listing = command(kernel, "%chat history")
        line = listing.stderr.strip()
        assert line.startswith("nbchat: this notebook is a copy of report.ipynb"), line
        assert "a copy of that one's 2 turns; report.ipynb keeps its own" in line
        assert "Its population?" in listing.stdout
        chat(kernel, "Second city?", "c")
        assert [content for _, content in sent(server)][-3:] == [
            "Its population?",
            "2.1 million.",
            "Second city?",
        ]
        listed = command(kernel, "%chat conversations").stdout
        assert f"copy of {original_id}" in listed
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(original)) as kernel:
        listing = command(kernel, "%chat history")
        assert listing.stderr == ""
        assert "Second city?" not in listing.stdout  # nothing merged back
        chat(kernel, "Its river?", "d")
        assert [content for _, content in sent(server)] == [
            "Capital of France?",
            "Paris.",
            "Its population?",
            "2.1 million.",
            "Its river?",
        ]


def test_stale_turns_are_marked_left_out_and_refreshed_by_running_their_cell(
    server: LoopbackServer, tmp_path: Path
) -> None:
    notebook = tmp_path / "stale.ipynb"
    server.enqueue(*(Reply(text) for text in ("A1", "B1", "C1", "A2", "D1", "B2")))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(notebook)) as kernel:
        chat(kernel, "question A", "a")
        chat(kernel, "question B", "b")
        chat(kernel, "question C", "c")
        chat(kernel, "question A, edited", "a")
        listing = command(kernel, "%chat history").stdout
        lines = listing.splitlines()
        assert "(stale)" not in lines[1]  # a's reply
        assert "(stale)" in lines[3] and "(stale)" in lines[5], listing
        assert "2 stale turns: answered before an earlier cell changed" in listing
        run = chat(kernel, "question D", "d")
        assert sent(server) == [
            ("user", "question A, edited"),
            ("assistant", "A2"),
            ("user", "question D"),
        ]
        assert "2 stale turns left out" in footer(run)
        preview = command(kernel, "%chat history --sent").stdout
        assert "carries 4 messages before its prompt (model test-model; 2 stale turns" in preview
        assert "question B" not in preview and "question D" in preview
        rerun = chat(kernel, "question B", "b")  # the same text, asked afresh
        assert sent(server) == [
            ("user", "question A, edited"),
            ("assistant", "A2"),
            ("user", "question B"),
        ]
        assert "stale" not in footer(rerun)
        kernel.restart()  # the marks are stored
        assert kernel.execute("%load_ext nbchat").reply_status == "ok"
        preview = command(kernel, "%chat history --sent").stdout
        assert "; 1 stale turn left out" in preview
        blocks = re.findall(r"── \d+\. (\w+)\n(.*)", preview)
        assert blocks == [
            ("user", "question A, edited"),
            ("assistant", "A2"),
            ("user", "question B"),
            ("assistant", "B2"),
            ("user", "question D"),
            ("assistant", "D1"),
        ]


def test_reset_says_how_to_undo_it_and_open_brings_a_conversation_back(
    server: LoopbackServer, tmp_path: Path
) -> None:
    notebook = tmp_path / "undo.ipynb"
    server.enqueue(Reply("Paris."), Reply("Berlin."), Reply("Madrid."))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(notebook)) as kernel:
        chat(kernel, "Capital of France?", "a")
        reset = command(kernel, "%chat reset").stdout
        match = re.search(r"`%chat open (\d+)` brings it back", reset)
        assert match, reset
        first = int(match.group(1))
        chat(kernel, "Capital of Germany?", "b")
        listed = command(kernel, "%chat conversations").stdout
        rows = [line for line in listed.splitlines() if re.match(r"[* ] +\d+ ", line)]
        assert len(rows) == 2, listed
        assert rows[0].startswith("*") and "Capital of Germany?" in rows[0]
        assert f" {first}  " in rows[1] and "1 turn" in rows[1] and "test-model" in rows[1]
        second = int(rows[0].split()[1])
        opened = command(kernel, f"%chat open {first}").stdout
        assert opened.strip() == (
            f"Continuing conversation {first} (1 turn); `%chat open {second}` brings it back."
        )
        kernel.restart()  # the opened conversation is the notebook's current one now
        assert kernel.execute("%load_ext nbchat").reply_status == "ok"
        chat(kernel, "And of Spain?", "c")
        assert sent(server) == [
            ("user", "Capital of France?"),
            ("assistant", "Paris."),
            ("user", "And of Spain?"),
        ]
        missing = kernel.execute("%chat open 999")
        assert missing.reply_status == "error"
        assert missing.stderr.strip() == (
            "UsageError: there is no conversation 999 (%chat conversations lists them)"
        )


def test_an_export_imports_back_with_its_marks_and_a_foreign_file_is_one_line(
    server: LoopbackServer, tmp_path: Path
) -> None:
    notebook = tmp_path / "roundtrip.ipynb"
    server.enqueue(*(Reply(text) for text in ("A1", "B1", "A2", "C1")))
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=str(notebook)) as kernel:
        command(kernel, "%chat system Be brief.")
        chat(kernel, "question A", "a")
        chat(kernel, "question B", "b")
        chat(kernel, "question A, edited", "a")
        command(kernel, f"%chat export {tmp_path / 'conversation.json'}")
        exported = json.loads((tmp_path / "conversation.json").read_text("utf-8"))
        assert exported["format"] == "nbchat.conversation" and exported["version"] == 1
        assert [(t["prompt"], t["stale"]) for t in exported["turns"]] == [
            ("question A, edited", False),
            ("question B", True),
        ]
        assert "question B" not in [m["content"] for m in exported["messages"]]
        command(kernel, "%chat reset")
        (tmp_path / "foreign.json").write_text('{"format": "other-tool", "turns": []}')
        refused = kernel.execute(f"%chat import {tmp_path / 'foreign.json'}")
        assert refused.reply_status == "error"
        assert refused.stderr.strip() == (
            "UsageError: %chat import: foreign.json is not an nbchat export: its format is"
            " 'other-tool', not 'nbchat.conversation' (nothing changed)"
        )
        imported = command(kernel, f"%chat import {tmp_path / 'conversation.json'}").stdout
        match = re.fullmatch(
            r"Imported 2 turns from conversation\.json as conversation (\d+)\.\n", imported
        )
        assert match, imported
        listing = command(kernel, "%chat history").stdout
        assert "system: Be brief." in listing and "(stale)" in listing
        chat(kernel, "question C", "c")
        assert sent(server) == [
            ("system", "Be brief."),
            ("user", "question A, edited"),
            ("assistant", "A2"),
            ("user", "question C"),
        ]
        listed = command(kernel, "%chat conversations").stdout
        assert "(imported)" in listed
