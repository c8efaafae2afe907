"""``%chat explain``, ``--cells`` and ``{Out[n]}`` in a real kernel, driven as JupyterLab does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbchat.frames import estimate_tokens
from nbchat.testing import LoopbackServer, Reply

from kernel import KernelDriver, nbchat_kernel


@pytest.fixture
def kernel(server: LoopbackServer, tmp_path: Path) -> Iterator[KernelDriver]:
    with nbchat_kernel(server.base_url, tmp_path, JPY_SESSION_NAME="errors.ipynb") as driver:
        yield driver


def sent_message(server: LoopbackServer) -> str:
    content = server.last_request.json["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def attachment_of(kernel: KernelDriver, name: str) -> str:
    """The text of the last turn's attachment ``name``, read back in the kernel."""
    code = (
        "import json, nbchat\n"
        "turn = nbchat.get_session().history.last()\n"
        f"print(json.dumps([turn.prompt[a.start:a.end] for a in turn.attachments "
        f"if a.name == {name!r}]))"
    )
    run = kernel.execute(code)
    found = json.loads(run.stdout)
    assert len(found) == 1, run.describe()
    return str(found[0])


def test_explain_sends_the_failing_cell_its_user_frames_and_its_frames(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    setup = kernel.execute(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'units': [3, 0, 2], 'price': [9.5, 4.0, 0.5]})\n"
        "def unit_price(frame):\n"
        "    return frame['revenue'] / frame['units']\n",
        cell_id="setup",
    )
    assert setup.reply_status == "ok", setup.describe()
    failing = kernel.execute("per_unit = unit_price(sales)\nper_unit.max()", cell_id="failing")
    assert failing.reply_status == "error"
    number = failing.execution_count
    answer = "There is no `revenue` column.\n\n" + "Use `price * units` instead. " * 30
    server.enqueue(Reply(answer, chunk_size=3, delay=0.003))
    run = kernel.execute("%chat explain", cell_id="explain")
    assert run.reply_status == "ok", run.describe()
    text = sent_message(server)
    assert f'<error type="KeyError" cell="{number}">' in text
    frames = text.split("Traceback (your code only):\n")[1].split("KeyError: 'revenue'")[0]
    assert frames.splitlines()[:4] == [
        f"  In[{number}], line 1",
        "    per_unit = unit_price(sales)",
        f"  In[{number - 1}], line 4, in unit_price",
        "    return frame['revenue'] / frame['units']",
    ]
    assert frames.splitlines()[4].startswith("  … frames inside libraries: ")
    assert f"The cell that failed, In[{number}]:\n```python\nper_unit = unit_price(sales)\n" in text
    assert '<dataframe name="sales" library="pandas" type="DataFrame" rows="3" cols="2">' in text
    for machinery in ("ipykernel", "site-packages", "interactiveshell", "/tmp/ipykernel_"):
        assert machinery not in text, machinery
    context = attachment_of(kernel, "error")
    assert estimate_tokens(context) <= 3000
    # A kernel of a Jupyter server streams into a live widget: updates are its messages.
    live = [m for m in run.messages if m.msg_type == "comm_msg"]
    assert live, run.describe()  # the reply streamed into the cell
    final = run.final_outputs()[-1]
    assert final["data"]["text/plain"] == answer


def test_cells_and_out_fields_send_what_the_user_saw(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    shown = kernel.execute("totals = {f'region_{i}': i * 1.5 for i in range(30)}\ntotals")
    seen = shown.final_outputs()[-1]["data"]["text/plain"]
    assert "\n" in seen  # the kernel showed IPython's pretty form
    number = shown.execution_count
    server.enqueue(Reply("ok"), Reply("ok"))
    assert kernel.execute("%%chat --cells -1:\nsummarise this").reply_status == "ok"
    text = sent_message(server)
    assert f"In[{number}]:\n```python\ntotals = " in text
    assert f"Out[{number}]:\n```\n{seen}\n```" in text
    run = kernel.execute(f"%%chat\nWhich is largest in {{Out[{number}]}}?")
    assert run.reply_status == "ok", run.describe()
    assert sent_message(server) == f"Which is largest in Out[{number}]:\n```\n{seen}\n```?"


def test_no_error_yet_is_one_line_in_the_notebook(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    run = kernel.execute("%chat explain")
    assert run.reply_status == "error"
    assert run.stderr.strip().startswith("UsageError: no cell has raised an exception yet")
    assert "\n" not in run.stderr.strip()
    assert server.requests == []
