"""The budget, cuts, prices and the spend limit as a user meets them: a real IPython shell."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from nbchat.testing import LoopbackServer, Reply

from ipython_shell import Shell, make_shell

USAGE = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000, "total_tokens": 1_500_000}


def write_prices(prices: object) -> Path:
    path = Path(os.environ["NBCHAT_HOME"]) / "prices.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prices), "utf-8")
    return path


def one_line_error(shell: Shell, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    result = shell.run(source)
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: ") and "\n" not in err and "Traceback" not in err, err
    return err


def final_html(shell: Shell) -> str:
    (output,) = shell.final_outputs()
    return str(output.data["text/html"])


def ask_many(shell: Shell, env: LoopbackServer, turns: int) -> None:
    for number in range(turns):
        env.enqueue(Reply(f"answer {number}: " + "a fairly long answer sentence. " * 6))
        assert shell.run(f"%%chat\nquestion {number}: " + "tell me more. " * 12).success


def test_a_budget_set_with_config_leaves_out_old_turns_and_the_footer_says_so(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run("%chat config context_budget=1000").success
    assert "context_budget: 1,000 tokens" in capsys.readouterr().out
    ask_many(shell, env, 12)
    body = env.chat_requests[-1].json["messages"]
    assert body[-1]["content"].startswith("question 11:")
    assert not any(m["content"].startswith("question 0:") for m in body)
    left_out = 11 - (len(body) - 1) // 2
    assert left_out > 0
    assert f"{left_out} earlier turns left out" in final_html(shell)


def test_the_footer_shows_estimated_tokens_when_the_server_sends_no_usage(
    shell: Shell, env: LoopbackServer
) -> None:
    env.enqueue(Reply("Hello.", include_usage_chunk=False))
    assert shell.run("%%chat\nhello").success
    placeholder = shell.publisher.messages[0].data["text/html"]
    assert "asking test-model · ~" in placeholder and "tokens sent" in placeholder
    html = final_html(shell)
    assert "tokens sent" in html and "→" not in html


def test_auto_gives_the_models_default_budget(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run("%chat config context_budget=500").success
    assert shell.run("%chat config context_budget=auto model=gpt-4o-mini").success
    out = capsys.readouterr().out
    assert "context_budget: auto: 96,000 tokens (the gpt-4o default)" in out


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("context_budget=10", "context_budget must be a whole number of tokens ≥ 256 or auto"),
        ("context_budget=lots", "got 'lots'"),
        ("context_budget=1.5", "got 1.5"),
        ("spend_limit=-1", "spend_limit must be a number of dollars ≥ 0 or none"),
        ("spend_limit=cheap", "got 'cheap'"),
        ("prices=/nowhere/prices.json", "prices file /nowhere/prices.json does not exist"),
        ("prices=3", "prices must be the path of a JSON file"),
    ],
)
def test_bad_budget_and_spending_settings_are_one_line(
    shell: Shell, capsys: pytest.CaptureFixture[str], assignment: str, words: str
) -> None:
    err = one_line_error(shell, f"%chat config {assignment}", capsys)
    assert words in err, err
    assert shell.run("%chat config").success
    out = capsys.readouterr().out
    assert "context_budget: auto" in out and "spend_limit: none" in out  # nothing changed


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("NBCHAT_CONTEXT_BUDGET", "big", "NBCHAT_CONTEXT_BUDGET='big' is not a whole number"),
        ("NBCHAT_CONTEXT_BUDGET", "12", "context_budget must be a whole number of tokens ≥ 256"),
        ("NBCHAT_SPEND_LIMIT", "ten", "NBCHAT_SPEND_LIMIT='ten' is not a number of dollars"),
    ],
)
def test_bad_environment_values_are_one_line(
    env: LoopbackServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    words: str,
) -> None:
    monkeypatch.setenv(variable, value)
    for shell in make_shell(rich=True):
        err = one_line_error(shell, "%%chat\nhello", capsys)
        assert words in err, err
    assert env.chat_requests == []


def test_environment_variables_set_the_budget_and_the_limit(
    env: LoopbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NBCHAT_CONTEXT_BUDGET", "3000")
    monkeypatch.setenv("NBCHAT_SPEND_LIMIT", "2.5")
    for shell in make_shell(rich=False):
        assert shell.run("%chat config").success
    out = capsys.readouterr().out
    assert "context_budget: 3,000 tokens" in out and "spend_limit: $2.50" in out


def test_the_user_sees_that_a_big_value_was_cut(shell: Shell, env: LoopbackServer) -> None:
    shell.run("big = 'x' * 324_000")
    assert shell.run("%chat config context_budget=50000").success
    answer = "It is all x.\n\n" + "".join(f"Paragraph {n} about x.\n\n" for n in range(60))
    env.enqueue(Reply(answer, chunk_size=8, delay=0.002))
    assert shell.run("%%chat\nWhat is in {big}?").success
    sent = env.chat_requests[-1].json["messages"][-1]["content"]
    assert sent.count("x") == 100_000 and "224,000 more characters cut" in sent
    html = final_html(shell)
    notice = "{big} was cut to 100,000 of 324,000 characters"
    assert notice in html and html.index(notice) < html.index("It is all x.")
    first = shell.publisher.messages[0]
    assert notice in first.data["text/html"]  # shown from the moment it is asked
    streamed = [m for m in shell.publisher.messages if m.kind != "clear" and not m.metadata]
    first_output = [m for m in streamed if m.display_id == first.display_id]
    assert len(streamed) > 3 and all(notice in m.data["text/html"] for m in first_output)
    later = [m.display_id for m in streamed if m.display_id != first.display_id]
    assert later and all(
        notice not in m.data["text/html"] for m in streamed if m.display_id in later
    )


def test_a_long_paste_gets_a_warning_with_its_tokens(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    paste = "2026-01-01 12:00:00 INFO worker started task 123456\n" * 3_000  # 156 KB
    err = one_line_error(shell, f"%%chat\nWhy?\n{paste}", capsys)
    assert "does not fit the context budget of 8,000 tokens" in err  # the unknown model's
    assert env.chat_requests == []
    assert shell.run("%chat config context_budget=100000").success
    env.enqueue(Reply("Nothing failed."))
    assert shell.run(f"%%chat\nWhy?\n{paste}").success
    assert "typed text is long: 156,005 characters, ~44,573 tokens sent" in final_html(shell)


def test_a_long_paste_is_noted_in_the_terminal_too(
    terminal: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert terminal.run("%chat config context_budget=100000").success
    env.enqueue(Reply("Fine."))
    assert terminal.run("%%chat\n" + "SELECT 1;\n" * 3_000).success
    out = capsys.readouterr().out
    assert "[The message's typed text is long: 30,000 characters" in out


def test_costs_show_in_the_footer_and_in_chat_usage(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_prices({"test-model": {"input": 2, "output": 8}, "other-": {"input": 1, "output": 1}})
    env.enqueue(Reply("Priced.", usage=USAGE, include_usage_chunk=True))
    assert shell.run("%%chat\nhello").success
    assert "$6.00" in final_html(shell)  # 1M in at $2 + 0.5M out at $8
    env.enqueue(Reply("Also priced.", model="other-model", usage=USAGE, include_usage_chunk=True))
    assert shell.run("%%chat -m other-model\nhello again").success
    capsys.readouterr()
    assert shell.run("%chat usage").success
    out = capsys.readouterr().out
    assert "test-model: 1,500,000 tokens · $6.00" in out
    assert "other-model: 1,500,000 tokens · $1.50" in out
    assert "Spent $7.50" in out


def test_the_spend_limit_refuses_with_one_line_and_nothing_is_sent(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    write_prices({"test-model": {"input": 2, "output": 8}})
    assert shell.run("%chat config spend_limit=5").success
    env.enqueue(Reply("Priced.", usage=USAGE, include_usage_chunk=True))
    assert shell.run("%%chat\nhello").success
    capsys.readouterr()
    err = one_line_error(shell, "%%chat\nhello again", capsys)
    assert "This session has spent $6.00, its spend limit is $5.00; nothing was sent" in err
    assert "%chat config spend_limit=10" in err
    assert len(env.chat_requests) == 1
    assert shell.run("%chat usage").success
    assert "Spent $6.00 of a $5.00 spend limit" in capsys.readouterr().out
    assert shell.run("%chat config spend_limit=10").success
    env.enqueue(Reply("Again."))
    assert shell.run("%%chat\nhello again").success
    assert len(env.chat_requests) == 2


def test_a_bad_price_file_is_one_line_at_the_ask_and_in_chat_usage(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_prices({"test-model": {"input": 2}})
    err = one_line_error(shell, "%%chat\nhello", capsys)
    assert f"prices file {path}: 'test-model' has no 'output' price" in err
    assert env.chat_requests == []
    assert shell.run("%chat usage").success
    assert "Costs unknown: prices file" in capsys.readouterr().out
