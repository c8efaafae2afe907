"""Cells and outputs as context: ``--cell``, ``--cells``, ``{In[n]}``, ``{Out[n]}``, ``{_}``."""

from __future__ import annotations

import pandas as pd
import pytest
from IPython.core.error import UsageError

from nbchat import views
from nbchat.cells import CellRange
from nbchat.excerpt import excerpt, fence
from nbchat.frames import estimate_tokens
from nbchat.notebook import get_session
from nbchat.prompt import Prompt, compose
from nbchat.testing import LoopbackServer, Reply

from ipython_shell import Shell


def ask(shell: Shell, server: LoopbackServer, options: str, body: str) -> str:
    server.enqueue(Reply("ok"))
    result = shell.run(f"%%chat {options}\n{body}")
    assert result.success, result.error_in_exec
    content = server.last_request.json["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def shown_as(shell: Shell, value: object) -> str:
    """What the notebook showed for ``value``: the shell's own text/plain."""
    data, _ = shell.ip.display_formatter.format(value)
    return str(data["text/plain"])


def one_line_error(result, capsys: pytest.CaptureFixture[str]) -> str:
    assert type(result.error_in_exec) is UsageError, result.error_in_exec
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: ") and "\n" not in err, err
    return err


def run_cells(shell: Shell) -> None:
    shell.run("prices = {'apple': [1.25, 1.5, 1.75] * 10, 'pear': list(range(40))}")  # 1
    shell.run("prices")  # 2: a long dict, pretty-printed over many lines
    shell.run("print('side effect')\nlen(prices)")  # 3
    shell.run("x = 5")  # 4: no output


def test_cells_range_sends_sources_and_outputs_as_the_user_saw_them(
    shell: Shell, env: LoopbackServer
) -> None:
    run_cells(shell)
    text = ask(shell, env, "--cells -3:", "What do these cells do?")
    prices = shell.ip.user_ns["prices"]
    assert text.startswith("What do these cells do?\n\nIn[2]:\n```python\nprices\n```\n\nOut[2]:\n")
    assert fence(shown_as(shell, prices)) in text
    assert "\n" in shown_as(shell, prices)  # IPython's pretty form, not repr()
    assert (
        "In[3]:\n```python\nprint('side effect')\nlen(prices)\n```\n\nOut[3]:\n```\n2\n```" in text
    )
    assert text.endswith("In[4]:\n```python\nx = 5\n```")
    assert "In[1]" not in text
    turn = get_session().history.last()
    assert turn is not None
    labels = [a.label for a in turn.attachments]
    assert labels == [
        "In[2] · 1 line",
        "Out[2] · dict",
        "In[3] · 2 lines",
        "Out[3] · int",
        "In[4] · 1 line",
    ]
    html = views.prompt_html(Prompt(turn.prompt, turn.attachments))
    assert html.count("<details") == 5 and "attached: Out[2] · dict" in html


def test_slices_count_like_python_and_skip_chat_cells(shell: Shell, env: LoopbackServer) -> None:
    run_cells(shell)  # cells 1-4
    env.enqueue(Reply("ok"))
    shell.run("%%chat\nfirst question")  # cell 5: a chat cell, left out of ranges
    text = ask(shell, env, "--cells 2:4", "q")  # cell 6
    assert "In[2]:" in text and "In[3]:" in text and "In[4]" not in text
    text = ask(shell, env, "--cells=-4:-2", "q")  # cell 7: cells 3 and 4; 5 is a chat cell
    assert "In[3]:" in text and "In[4]:" in text and "first question" not in text
    text = ask(shell, env, "--cell 5 --cell 1", "q")  # named singly: kept, in the order named
    assert text.index("In[5]:") < text.index("In[1]:")
    assert "%%chat\nfirst question" in text


def test_a_single_cell_counts_back_from_the_previous_one(shell: Shell, env: LoopbackServer) -> None:
    run_cells(shell)
    text = ask(shell, env, "--cell -1", "what is x?")
    assert text == "what is x?\n\nIn[4]:\n```python\nx = 5\n```"


def test_in_and_out_fields_fill_from_the_history(shell: Shell, env: LoopbackServer) -> None:
    run_cells(shell)
    text = ask(shell, env, "", "Why is {Out[3]} the result of {In[3]}?")
    assert text.startswith("Why is Out[3]:\n```\n2\n``` the result of In[3]:\n```python\nprint(")
    turn = get_session().history.last()
    assert turn is not None
    assert [a.name for a in turn.attachments] == ["Out[3]", "In[3]"]


def test_underscore_is_the_last_output_as_shown(shell: Shell, env: LoopbackServer) -> None:
    shell.run("sorted({3, 1, 2})")
    text = ask(shell, env, "", "Explain {_} please")
    assert text == "Explain Out[1]:\n```\n[1, 2, 3]\n``` please"


def test_names_and_literal_braces_still_work_beside_cells(
    shell: Shell, env: LoopbackServer
) -> None:
    run_cells(shell)
    text = ask(shell, env, "", "x is {x}; code {'a': 1} and {{In[2]}} stay; {In[-1]}")
    assert text.startswith("x is 5; code {'a': 1} and {In[2]} stay; In[4]:")


def test_cell_fields_outside_ipython_stay_as_typed() -> None:
    prompt = compose("show {In[2]} and {Out[2]}", {"x": 1})
    assert prompt.text == "show {In[2]} and {Out[2]}" and prompt.attachments == ()


def test_a_displayed_dataframe_goes_as_its_summary(shell: Shell, env: LoopbackServer) -> None:
    shell.ip.user_ns["sales"] = pd.DataFrame({"units": range(100), "region": ["a", "b"] * 50})
    shell.run("sales.head(50)")
    text = ask(shell, env, "--cell 1", "What columns?")
    assert '<dataframe name="Out[1]" library="pandas" type="DataFrame" rows="50" cols="2">' in text
    assert "| units | int64 |" in text
    turn = get_session().history.last()
    assert turn is not None
    assert turn.attachments[-1].label == "Out[1] · pandas DataFrame · 50 × 2"


def test_a_huge_output_is_cut_visibly_within_the_budget(shell: Shell, env: LoopbackServer) -> None:
    shell.run("'row ' * 500_000")
    text = ask(shell, env, "--cell 1 --df-tokens 300", "What is this?")
    turn = get_session().history.last()
    assert turn is not None
    out = turn.attachments[-1]
    piece = turn.prompt[out.start : out.end]
    assert out.label == "Out[1] · str · cut"
    assert "characters cut]" in piece
    assert estimate_tokens(piece) <= 300
    assert len(text) < 10_000


def test_unknown_cell_numbers_are_one_line_naming_those_that_exist(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cells(shell)
    err = one_line_error(shell.run("%%chat --cell 42\nq"), capsys)
    assert "--cell: there is no cell 42 (cells 1–4 have run)" in err
    err = one_line_error(shell.run("%%chat --cells -9:\nq"), capsys)
    assert "there is no cell -9 (cells 1–5 have run)" in err
    err = one_line_error(shell.run("%%chat\nwhat is {Out[4]}?"), capsys)
    assert "{Out[4]}: cell 4 showed no output (cells with one: 2–3)" in err
    err = one_line_error(shell.run("%%chat\nwhat is {In[99]}?"), capsys)
    assert "{In[99]}: there is no cell 99" in err
    err = one_line_error(shell.run("%%chat --cells abc\nq"), capsys)
    assert "--cells" in err and "'abc'" in err
    err = one_line_error(shell.run("%%chat --cell 2:4\nq"), capsys)
    assert "--cells 2:4" in err
    assert env.requests == []


def test_a_range_of_too_many_cells_is_refused(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for number in range(25):
        shell.run(f"v{number} = {number}")
    err = one_line_error(shell.run("%%chat --cells :\nq"), capsys)
    assert "names 25 cells; at most 20 go in one message" in err


def test_no_output_yet_for_underscore_is_one_line(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    err = one_line_error(shell.run("%%chat\nwhat is {_}?"), capsys)
    assert "{_}: no cell has shown an output yet" in err


@pytest.mark.parametrize(
    ("typed", "single", "expected"),
    [
        ("5", True, (5, None, True)),
        ("-1", True, (-1, None, True)),
        ("-3:", False, (-3, None, False)),
        ("3:5", False, (3, 5, False)),
        (":2", False, (None, 2, False)),
        ("7", False, (7, None, True)),
    ],
)
def test_cell_ranges_parse(typed: str, single: bool, expected: tuple[object, ...]) -> None:
    spec = CellRange.parse(typed, single=single)
    assert (spec.start, spec.stop, spec.single) == expected


@pytest.mark.parametrize("typed", ["", "x", "0", "1:0", "1:2:3", "--3"])
def test_bad_cell_ranges_are_refused(typed: str) -> None:
    with pytest.raises(ValueError, match=r"takes|counts cells from 1"):
        CellRange.parse(typed)


def test_excerpts_fit_their_budget_and_say_what_was_cut() -> None:
    many_lines = "\n".join(f"value_{i} = {i * 7919}" for i in range(20_000))
    for text in (many_lines, "z" * 1_000_000, "短い" * 50_000, "ok"):
        for budget in (100, 250, 1000):
            shown = excerpt(text, budget)
            assert estimate_tokens(shown.text) <= budget
            assert shown.cut == (shown.text != text)
            if shown.cut:
                assert "cut]" in shown.text.splitlines()[-1]


def test_fences_outgrow_backticks_inside() -> None:
    assert fence("a ```b``` c", "python") == "````python\na ```b``` c\n````"


def test_key_shaped_text_in_cells_and_outputs_is_masked(shell: Shell, env: LoopbackServer) -> None:
    key = "sk-live-" + "Z9" * 20
    shell.run(f"key = '{key}'\nkey")
    text = ask(shell, env, "--cell 1", "what is this?")
    assert key not in env.last_request.body.decode()
    assert "key = '[key removed]'" in text and "Out[1]:\n```\n'[key removed]'\n```" in text
