"""``%%chat`` in a real kernel, driven the way JupyterLab drives it (cell ids included)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbchat.testing import LoopbackServer, Reply

from kernel import Execution, KernelDriver, nbchat_kernel

SECRET = "sk-kernel-test-5f1e2d3c4b5a69788796SECRET"
NOTEBOOK = "analysis/report.ipynb"


@pytest.fixture
def kernel(server: LoopbackServer, tmp_path: Path) -> Iterator[KernelDriver]:
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME=NOTEBOOK) as driver:
        yield driver


def chat(kernel: KernelDriver, body: str, options: str = "", cell_id: str | None = None):
    return kernel.execute(f"%%chat {options}\n{body}", cell_id=cell_id)


def sent(server: LoopbackServer) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in server.last_request.json["messages"]]


def only_output(run: Execution) -> dict:
    outputs = run.final_outputs()
    assert len(outputs) == 1, run.describe()
    return outputs[0]


def test_updates_reach_the_page_before_the_reply_ends(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    text = "## 结果\n\n" + "这是一个很长的回答，逐字流式传输。" * 40 + "\n\n- 一\n- 二\n"
    server.enqueue(Reply(text, chunk_size=3, delay=0.004))
    run = chat(kernel, "请用中文回答", cell_id="cell-1")
    assert run.reply_status == "ok", run.describe()
    # A kernel of a Jupyter server streams into a live widget: updates are its messages.
    live = [m for m in run.messages if m.msg_type == "comm_msg"]
    assert len(live) >= 3, run.describe()
    last_live = max(m.time for m in live)
    assert last_live < run.reply_received_at
    assert any("这是一个很长的回答" in str(m.content["data"]["content"]) for m in live)
    final = only_output(run)
    assert final["data"]["text/plain"] == text
    assert final["data"]["text/markdown"] == text
    assert final["metadata"]["nbchat"]["model"] == "test-model"
    assert "<h2>结果</h2>" in final["data"]["text/html"]


def test_rerunning_a_cell_replaces_its_turn_in_the_kernel(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    server.enqueue(Reply("A1"), Reply("B1"), Reply("A2"), Reply("C1"))
    assert chat(kernel, "question A", cell_id="a").reply_status == "ok"
    assert chat(kernel, "question B", cell_id="b").reply_status == "ok"
    assert chat(kernel, "question A again", cell_id="a").reply_status == "ok"
    assert sent(server) == [("user", "question A again")]
    assert chat(kernel, "question C", cell_id="c").reply_status == "ok"
    # B was answered from A's old text: it is stale now, and left out until cell b runs again.
    assert sent(server) == [
        ("user", "question A again"),
        ("assistant", "A2"),
        ("user", "question C"),
    ]
    history = kernel.execute("import nbchat; print(len(nbchat.get_session().history))")
    assert history.stdout.strip() == "3"


def test_history_survives_a_kernel_restart(kernel: KernelDriver, server: LoopbackServer) -> None:
    server.enqueue(Reply("Paris."), Reply("About 2.1 million."))
    assert kernel.execute("%chat system Answer briefly.").reply_status == "ok"
    assert chat(kernel, "Capital of France?", cell_id="q1").reply_status == "ok"
    kernel.restart()
    assert kernel.execute("%load_ext nbchat").reply_status == "ok"
    listing = kernel.execute("%chat history")
    assert "Capital of France?" in listing.stdout and "Paris." in listing.stdout
    assert chat(kernel, "And its population?", cell_id="q2").reply_status == "ok"
    assert sent(server) == [
        ("system", "Answer briefly."),
        ("user", "Capital of France?"),
        ("assistant", "Paris."),
        ("user", "And its population?"),
    ]


def test_interrupt_stops_the_stream_and_keeps_the_partial_reply(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    server.enqueue(Reply("Partial answer. " * 30, chunk_size=6, stall_after=6, stall_seconds=30))
    running = kernel.start_execution("%%chat\nA long answer please", cell_id="slow")
    running.wait_for("comm_msg", timeout=20)
    running.pump(0.3)
    kernel.interrupt()
    run = running.result(timeout=20)
    assert run.reply_status == "error"
    assert run.stderr.startswith("UsageError: Interrupted")
    assert run.stderr.count("\n") <= 1 and "Traceback" not in run.stderr
    outputs = [o for o in run.final_outputs() if o["output_type"] == "display_data"]
    assert len(outputs) == 1
    assert outputs[0]["data"]["text/plain"].startswith("Partial answer.")
    assert "interrupted" in outputs[0]["data"]["text/html"]
    check = kernel.execute(
        "import nbchat; t = nbchat.get_session().history.last(); print(t.status, len(t.reply))"
    )
    status, length = check.stdout.split()
    assert status == "interrupted" and int(length) > 0
    server.enqueue(Reply("still works"))
    assert chat(kernel, "next", cell_id="after").reply_status == "ok"


def test_bad_input_is_one_line_in_the_notebook(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    for source in ("%%chat --temperature hot\nhi", "%chat frobnicate", "%%chat -t 7\nhi"):
        run = kernel.execute(source)
        assert run.reply_status == "error"
        assert run.stderr.startswith("UsageError: ")
        assert run.stderr.strip().count("\n") == 0, run.stderr
        assert not run.outputs_of_type("error"), run.describe()
    assert server.chat_requests == []


def test_key_typed_at_the_prompt_is_used_and_never_shown_or_stored(
    kernel: KernelDriver, server: LoopbackServer, tmp_path: Path
) -> None:
    key_run = kernel.execute("%chat key", allow_stdin=True, stdin_replies=[SECRET])
    assert key_run.reply_status == "ok", key_run.describe()
    assert key_run.input_requests and key_run.input_requests[0].password
    server.enqueue(Reply(f"I will not repeat {SECRET[:6]}"), Reply("ok"))
    runs = [
        key_run,
        chat(kernel, f"My key is {SECRET}, keep it safe", cell_id="k1"),
        kernel.execute("%chat config"),
        kernel.execute("%chat history"),
        kernel.execute("import nbchat; s = nbchat.get_session(); s; print(repr(s.settings))"),
        kernel.execute(f"%chat export {tmp_path / 'out.json'}"),
        chat(kernel, "again", cell_id="k2"),
    ]
    assert server.chat_requests[0].headers["authorization"] == f"Bearer {SECRET}"
    for run in runs:  # execute_input echoes the cell as typed: the user's own text
        produced = [m.content for m in run.messages if m.msg_type != "execute_input"]
        assert SECRET not in json.dumps(produced), run.describe()
    assert SECRET not in (tmp_path / "out.json").read_text()
    home = Path(kernel_home(kernel))
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert SECRET.encode() not in stored
    rows = sqlite3.connect(next(home.rglob("history.sqlite3"))).execute("select prompt from turns")
    assert any("[key removed]" in prompt for (prompt,) in rows)


def kernel_home(kernel: KernelDriver) -> str:
    return kernel.execute("import os; print(os.environ['NBCHAT_HOME'])").stdout.strip()


def test_code_option_asks_the_frontend_for_a_new_cell(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    server.enqueue(Reply("Try:\n\n```python\nimport math\nmath.pi\n```\n"))
    run = chat(kernel, "pi?", "--code -o answer", cell_id="code-cell")
    assert run.reply_status == "ok"
    (payload,) = run.reply["payload"]
    assert payload["source"] == "set_next_input"
    assert payload["text"] == "import math\nmath.pi"  # as %chat code 1 would put it
    assert payload["replace"] is False
    assert kernel.execute("print(answer.startswith('Try:'))").stdout.strip() == "True"
