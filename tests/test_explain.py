"""``%chat explain`` and ``%%chat --error`` in real IPython shells against the loopback server."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.error import UsageError

from nbchat.frames import estimate_tokens
from nbchat.notebook import get_session
from nbchat.prompt import Attachment
from nbchat.testing import LoopbackServer, Reply

from ipython_shell import Shell

BUDGET = 3 * 1000  # three times the default per-summary budget


def sent_message(server: LoopbackServer) -> str:
    content = server.last_request.json["messages"][-1]["content"]
    assert isinstance(content, str)
    return content


def error_attachment() -> tuple[str, Attachment]:
    """The last turn's error context, as the history keeps it, and its attachment."""
    turn = get_session().history.last()
    assert turn is not None
    errors = [a for a in turn.attachments if a.name == "error"]
    assert len(errors) == 1, turn.attachments
    return turn.prompt[errors[0].start : errors[0].end], errors[0]


def explain(shell: Shell, server: LoopbackServer, line: str = "") -> str:
    server.enqueue(Reply("Divide by something else."))
    result = shell.run(f"%chat explain {line}".rstrip())
    assert result.success, result.error_in_exec
    return sent_message(server)


def assert_no_machinery(text: str) -> None:
    for word in ("site-packages", "interactiveshell", "IPython/core", "nbchat/", "run_code"):
        assert word not in text, (word, text)


def test_no_exception_yet_is_one_line_and_sends_nothing(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run("x = 1")
    result = shell.run("%chat explain")
    assert type(result.error_in_exec) is UsageError
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: ") and "\n" not in err, err
    assert "no cell has raised an exception yet" in err
    assert env.requests == []
    assert type(shell.run("%%chat --error\nwhy?").error_in_exec) is UsageError


def test_explain_sends_the_cell_its_user_frames_and_its_variables(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.run("def ratio(a, b):\n    return a / b\n")  # cell 1
    shell.ip.user_ns["sales"] = pd.DataFrame({"units": [1, 2, 3], "region": ["a", "b", "a"]})
    shell.run("total = len(sales)\nzero = 0\nshare = ratio(total, zero)")  # cell 2 fails
    shell.run("unrelated = 5")
    text = explain(shell, env)
    assert text.startswith("Explain this error and how to fix it.")
    assert '<error type="ZeroDivisionError" cell="2">' in text
    assert "ZeroDivisionError: division by zero" in text
    frames = text.split("Traceback (your code only):\n")[1].split("ZeroDivisionError:")[0]
    assert frames.splitlines() == [
        "  In[2], line 3",
        "    share = ratio(total, zero)",
        "  In[1], line 2, in ratio",
        "    return a / b",
    ]
    assert "The cell that failed, In[2]:\n```python\ntotal = len(sales)\nzero = 0\n" in text
    assert '<dataframe name="sales" library="pandas"' in text
    assert "zero (int) = 0" in text and "total (int) = 3" in text
    assert "unrelated" not in text and "ratio (" not in text  # not named, or a function
    assert_no_machinery(text)
    context, attachment = error_attachment()
    assert estimate_tokens(context) <= BUDGET
    assert attachment.label == "error · ZeroDivisionError in In[2]"
    final = shell.final_outputs()
    assert final[-1].data["text/plain"] == "Divide by something else."


def test_the_turn_is_in_the_conversation_and_folded_in_the_transcript(
    shell: Shell, env: LoopbackServer
) -> None:
    from nbchat import views
    from nbchat.prompt import Prompt

    shell.run("1 / 0")
    explain(shell, env, "why did this fail?")
    turn = get_session().history.last()
    assert turn is not None and turn.reply == "Divide by something else."
    assert turn.prompt.startswith("why did this fail?\n\n<error")
    html = views.prompt_html(Prompt(turn.prompt, turn.attachments))
    assert "attached: error · ZeroDivisionError in In[1]</summary>" in html
    assert html.count("<details") == 1
    env.enqueue(Reply("again"))
    shell.run("%%chat\nand now?")
    history = [m["content"] for m in env.last_request.json["messages"]]
    assert any("ZeroDivisionError" in m for m in history[:-1])


def test_an_exception_inside_a_library_names_the_library_not_its_frames(
    shell: Shell, env: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpers.py").write_text("def pick(frame, column):\n    return frame[column]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    shell.run("import helpers")
    shell.ip.user_ns["sales"] = pd.DataFrame({"units": [1, 2]})
    shell.run("picked = helpers.pick(sales, 'price')")
    text = explain(shell, env)
    assert "KeyError: 'price'" in text
    assert text.count("Traceback (your code only):") == 1
    lines = text.split("Traceback (your code only):\n")[1].split("KeyError:")[0].splitlines()
    assert lines[:4] == [
        "  In[2], line 1",
        "    picked = helpers.pick(sales, 'price')",
        "  helpers.py, line 2, in pick",
        "    return frame[column]",
    ]
    assert len(lines) == 5 and lines[4].startswith("  … frames inside libraries: ")
    assert " in pandas" in lines[4]
    assert_no_machinery(text)
    # pandas raises its KeyError from another, raised in its own code only
    assert re.search(
        r"Raised outside your code:\n  … frames inside libraries: \d+ in pandas\n", text
    )
    assert "The above exception was the direct cause of the following exception:" in text
    assert "pandas/core" not in text


def test_a_syntax_error_shows_the_line_and_the_caret(shell: Shell, env: LoopbackServer) -> None:
    shell.run("rows = [1, 2]")
    shell.run("total = sum(rows\nprint(total")
    text = explain(shell, env)
    assert '<error type="SyntaxError" cell="2">' in text
    assert "  In[2], line 2\n    print(total\n         ^\n" in text
    assert "SyntaxError: '(' was never closed" in text
    assert "rows (list) = [1, 2]" in text  # named in the cell, found without parsing it
    assert "Traceback" not in text
    assert_no_machinery(text)


def test_a_chained_exception_sends_both_in_order(shell: Shell, env: LoopbackServer) -> None:
    shell.run(
        "settings = {'port': 1}\n"
        "try:\n"
        "    settings['host']\n"
        "except KeyError as missing:\n"
        "    raise ValueError('the config has no host') from missing\n"
    )
    text = explain(shell, env)
    first, second = text.index("KeyError: 'host'"), text.index("ValueError: the config has no host")
    between = text[first:second]
    assert "The above exception was the direct cause of the following exception:" in between
    assert '<error type="ValueError" cell="1">' in text
    assert text.count("  In[1], line") == 2


def test_huge_values_and_messages_are_cut_visibly_within_the_budget(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.ip.user_ns["blob"] = "word " * 200_000
    shell.ip.user_ns["numbers"] = list(range(1_000_000))
    shell.run("raise ValueError(blob + str(numbers[:5]))")
    text = explain(shell, env)
    context, attachment = error_attachment()
    assert estimate_tokens(context) <= BUDGET
    assert "characters cut]" in context
    assert "blob (str) = 'word word" in context
    assert "numbers (list) = [0, 1, 2" in context
    assert attachment.label.endswith(" · cut")
    assert len(text) < 40_000


def test_the_budget_follows_the_tokens_option(shell: Shell, env: LoopbackServer) -> None:
    shell.ip.user_ns["wide"] = pd.DataFrame({f"column_{i}": range(3) for i in range(300)})
    shell.run("wide.loc[0, 'missing_column'] + wide.nothing")
    explain(shell, env, "--tokens 200 what is wrong?")
    context, _ = error_attachment()
    assert estimate_tokens(context) <= 600
    assert get_session().history.last().prompt.startswith("what is wrong?")  # type: ignore[union-attr]


def test_a_usage_error_does_not_replace_the_exception_to_explain(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.run("int('seven')")
    assert type(shell.run("%chat no-such-command").error_in_exec) is UsageError
    text = explain(shell, env)
    assert "ValueError: invalid literal for int() with base 10: 'seven'" in text


def test_an_exception_from_before_nbchat_was_loaded_is_found(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.run("%unload_ext nbchat")
    shell.run("{}['gone']")
    shell.run("%load_ext nbchat")
    text = explain(shell, env)
    assert "KeyError: 'gone'" in text and '<error type="KeyError" cell="2">' in text


def test_error_option_on_a_chat_cell_attaches_the_same_context(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.run("[1, 2][5]")
    env.enqueue(Reply("ok"))
    assert shell.run("%%chat --error\nIs this an off-by-one?").success
    text = sent_message(env)
    assert text.startswith('Is this an off-by-one?\n\n<error type="IndexError" cell="1">')


def test_explain_works_in_terminal_ipython(
    terminal: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    terminal.run("def fail():\n    raise RuntimeError('boom')\n")
    terminal.run("fail()")
    capsys.readouterr()
    text = explain(terminal, env)
    assert "  In[2], line 1\n    fail()\n  In[1], line 2, in fail\n" in text
    assert "RuntimeError: boom" in text
    assert "Divide by something else." in capsys.readouterr().out


def test_explain_help_and_question_marks(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run("%chat explain?")
    assert "--tokens" in capsys.readouterr().out
    shell.run("1 / 0")
    text = explain(shell, env, "why didn't this work? it's odd")
    assert text.startswith("why didn't this work? it's odd\n\n")


def test_recursion_is_shown_short(shell: Shell, env: LoopbackServer) -> None:
    shell.run("def down(n):\n    return down(n + 1)\n")
    shell.run("down(0)")
    text = explain(shell, env)
    assert "RecursionError" in text
    assert "[the frame above repeated" in text
    assert text.count("in down") < 5
    assert sys.getrecursionlimit() > 100


def test_key_shaped_values_are_masked_in_the_error_context(
    shell: Shell, env: LoopbackServer
) -> None:
    key = "sk-proj-" + "Q7" * 20
    shell.ip.user_ns["token"] = key
    shell.run(f"headers = {{'Authorization': token}}\nsecond = '{key}'\nheaders['missing']")
    text = explain(shell, env)
    assert key not in text and key not in env.last_request.body.decode()
    assert "token (str) = '[key removed]'" in text
    assert "second = '[key removed]'" in text  # the cell's source too


@pytest.mark.parametrize("tokens", [100, 400, 1000])
def test_many_variables_never_exceed_the_budget(
    shell: Shell, env: LoopbackServer, tokens: int
) -> None:
    for number in range(4):
        shell.ip.user_ns[f"frame_{number}"] = pd.DataFrame(
            {f"column_{i}": range(50) for i in range(80)}
        )
    names = [f"frame_{n}" for n in range(4)] + [f"text_{n}" for n in range(8)]
    for number in range(8):
        shell.ip.user_ns[f"text_{number}"] = f"value {number} " * 3_000
    shell.run(" + ".join(f"len({name})" for name in names) + " + undefined_name")
    explain(shell, env, f"--tokens {tokens}")
    context, attachment = error_attachment()
    assert estimate_tokens(context) <= 3 * tokens
    assert "NameError: name 'undefined_name' is not defined" in context
    if tokens == 100:
        assert "(not shown, over the budget: " in context
        assert attachment.label.endswith(" · cut")


def test_an_exception_whose_str_fails_is_still_described() -> None:
    from nbchat.tracebacks import LastError, error_context

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    try:
        raise Broken()
    except Broken as error:
        context = error_context(LastError(error, None), {})
    assert "Broken: <str() failed: RuntimeError>" in context.text
    assert context.label == "error · Broken"


def test_an_indentation_error_is_a_syntax_error(shell: Shell, env: LoopbackServer) -> None:
    shell.run("if True:\nprint('x')")
    text = explain(shell, env)
    assert '<error type="IndentationError" cell="1">' in text
    assert "  In[1], line 2\n    print('x')\n" in text
