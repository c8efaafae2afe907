"""The kernel harness itself: a real ipykernel, driven the way JupyterLab drives it."""

from __future__ import annotations

import gc
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from kernel import Execution, IopubMessage, KernelDriver, run_notebook

PROBE = "NBCHAT_HARNESS_PROBE"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelDriver]:
    with KernelDriver({PROBE: "from-the-test"}, tmp_path) as driver:
        yield driver


def test_kernel_runs_our_python_in_cwd_with_env_and_receives_the_cell_id(
    kernel: KernelDriver, tmp_path: Path
) -> None:
    setup = kernel.execute(
        "get_ipython().events.register('pre_run_cell', lambda info: print('cell:', info.cell_id))"
    )
    assert setup.reply_status == "ok", setup.describe()

    run = kernel.execute(
        "import os, sys\n"
        f"print(sys.executable, os.getcwd(), os.environ['HOME'], os.environ[{PROBE!r}])",
        cell_id="cell-7f3a",
    )

    assert run.reply_status == "ok", run.describe()
    assert run.stdout.splitlines() == [
        "cell: cell-7f3a",
        f"{sys.executable} {tmp_path} {os.environ['HOME']} from-the-test",
    ]
    assert run.msg_types[0] == "status" and run.messages[0].content["execution_state"] == "busy"
    assert run.msg_types[-1] == "status" and run.messages[-1].content["execution_state"] == "idle"
    assert run.reply_received_at is not None and run.execution_count == 2
    assert kernel.execute("pass").stdout == "cell: None\n"  # no cellId sent, none seen


def test_display_updates_stream_before_the_reply_and_the_last_one_stays(
    kernel: KernelDriver,
) -> None:
    seen: list[IopubMessage] = []
    run = kernel.execute(
        "import time\n"
        "h = display({'text/markdown': 'start'}, raw=True, display_id=True)\n"
        "for i in range(5):\n"
        "    time.sleep(0.01)\n"
        "    h.update({'text/markdown': f'part {i}'}, raw=True)\n"
        "time.sleep(0.05)\n"  # margin: ipykernel does not order iopub against the shell reply
        "print('done')\n",
        on_message=seen.append,
    )

    assert run.reply_status == "ok", run.describe()
    assert seen == run.messages
    updates = run.outputs_of_type("update_display_data")
    assert [u["data"]["text/markdown"] for u in updates] == [f"part {i}" for i in range(5)]
    (shown,) = run.outputs_of_type("display_data")
    assert {u["transient"]["display_id"] for u in updates} == {shown["transient"]["display_id"]}
    assert run.reply_received_at is not None
    times = [m.time for m in run.messages if m.msg_type == "update_display_data"]
    assert times == sorted(times) and times[-1] <= run.reply_received_at
    assert run.final_outputs() == [
        {"output_type": "display_data", "data": {"text/markdown": "part 4"}, "metadata": {}},
        {"output_type": "stream", "name": "stdout", "text": "done\n"},
    ]


def test_clear_output_now_and_on_next_output(kernel: KernelDriver) -> None:
    run = kernel.execute(
        "from IPython.display import clear_output\n"
        "print('gone')\n"
        "clear_output()\n"
        "print('kept until next output')\n"
        "clear_output(wait=True)\n"
        "print('last')\n"
        "clear_output(wait=True)\n"  # nothing follows: the outputs stay
    )

    assert run.reply_status == "ok", run.describe()
    assert [c["wait"] for c in run.outputs_of_type("clear_output")] == [False, True, True]
    assert run.final_outputs() == [{"output_type": "stream", "name": "stdout", "text": "last\n"}]


def test_final_outputs_follow_jupyterlab_rules() -> None:
    def message(kind: str, **content: object) -> IopubMessage:
        return IopubMessage(0.0, kind, dict(content), {})

    def display(kind: str, text: str, display_id: str) -> IopubMessage:
        return message(
            kind, data={"text/plain": text}, metadata={}, transient={"display_id": display_id}
        )

    run = Execution(msg_id="m", code="", cell_id=None, sent_at=0.0)
    run.messages += [
        message("stream", name="stdout", text="a"),
        message("stream", name="stderr", text="warn"),
        message("stream", name="stdout", text="b"),
        message("stream", name="stdout", text="c"),
        display("display_data", "one", "d1"),
        display("display_data", "also one", "d1"),
        message("clear_output", wait=True),
        display("update_display_data", "two", "d1"),  # an update does not trigger the clear
    ]
    assert run.final_outputs() == [
        {"output_type": "stream", "name": "stdout", "text": "a"},
        {"output_type": "stream", "name": "stderr", "text": "warn"},
        {"output_type": "stream", "name": "stdout", "text": "bc"},
        {"output_type": "display_data", "data": {"text/plain": "two"}, "metadata": {}},
        {"output_type": "display_data", "data": {"text/plain": "two"}, "metadata": {}},
    ]
    run.messages += [
        message("error", ename="E", evalue="v", traceback=["t"]),
        display("update_display_data", "three", "d1"),  # its output was cleared: no effect
    ]
    assert run.final_outputs() == [
        {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]}
    ]


def test_an_exception_gives_an_error_reply(kernel: KernelDriver) -> None:
    run = kernel.execute("print('before')\n1 / 0")

    assert run.reply_status == "error"
    assert run.error is not None and run.error["ename"] == "ZeroDivisionError"
    assert run.stdout == "before\n"
    assert run.final_outputs()[-1]["output_type"] == "error"
    assert kernel.execute("'still fine'").reply_status == "ok"


def test_interrupt_stops_a_running_cell(kernel: KernelDriver) -> None:
    running = kernel.start_execution(
        "import time\nprint('sleeping', flush=True)\ntime.sleep(30)\nprint('woke up')"
    )
    running.wait_for(lambda m: m.msg_type == "stream" and "sleeping" in m.content["text"])
    kernel.interrupt()
    run = running.result(timeout=20)

    assert run.reply_status == "error", run.describe()
    assert run.error is not None and run.error["ename"] == "KeyboardInterrupt"
    assert "woke up" not in run.stdout
    assert kernel.execute("1 + 1").outputs_of_type("execute_result")[0]["data"] == {
        "text/plain": "2"
    }


def test_getpass_is_answered_on_stdin(kernel: KernelDriver) -> None:
    run = kernel.execute(
        "import getpass\nsecret = getpass.getpass('API key: ')\nprint(len(secret), secret[::-1])",
        allow_stdin=True,
        stdin_replies=["sk-123"],
    )

    assert run.reply_status == "ok", run.describe()
    (request,) = run.input_requests
    assert (request.prompt, request.password, request.answer) == ("API key: ", True, "sk-123")
    assert "6 321-ks" in run.stdout


def test_an_unanswered_prompt_fails_fast_and_the_kernel_recovers(kernel: KernelDriver) -> None:
    with pytest.raises(AssertionError, match="unanswered input_request 'Name: '"):
        kernel.execute("input('Name: ')", allow_stdin=True)
    assert kernel.execute("'next'").reply_status == "ok"


def test_restart_keeps_the_environment_and_forgets_the_namespace(kernel: KernelDriver) -> None:
    before = kernel.pid
    assert kernel.execute("x = 1").reply_status == "ok"

    kernel.restart()

    assert kernel.pid != before
    forgotten = kernel.execute("x").error
    assert forgotten is not None and forgotten["ename"] == "NameError"
    probe = kernel.execute(f"import os; print(os.environ[{PROBE!r}])")
    assert probe.stdout == "from-the-test\n"


def test_leaving_the_context_shuts_the_kernel_down_even_on_failure(tmp_path: Path) -> None:
    pids: list[int | None] = []

    def failing_test() -> None:
        with KernelDriver({}, tmp_path) as driver:
            pids.append(driver.pid)
            raise RuntimeError("test failed")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="test failed"):
            failing_test()
        gc.collect()

    (pid,) = pids
    assert pid is not None
    with pytest.raises(ProcessLookupError):  # gone, and reaped (a zombie would still answer)
        os.kill(pid, 0)
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_run_notebook_executes_with_env_and_cwd(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(f"import os, sys\nprint(os.environ[{PROBE!r}], os.getcwd())"),
        nbformat.v4.new_code_cell("sys.executable"),
    ]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(notebook, path)
    workdir = tmp_path / "work"
    workdir.mkdir()

    executed = run_notebook(path, env={PROBE: "notebook"}, cwd=workdir, timeout=60)

    first, second = executed.cells
    assert first.outputs[0]["text"] == f"notebook {workdir}\n"
    assert second.outputs[0]["data"]["text/plain"] == repr(sys.executable)
