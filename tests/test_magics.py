"""``%%chat`` and ``%chat`` in a real IPython shell against the loopback server."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
from IPython.core.error import UsageError

import nbchat
from nbchat.testing import LoopbackServer, Reply, Status

from conftest import follow
from ipython_shell import Shell

SECRET = "sk-test-0123456789abcdefSECRET"


def chat(shell: Shell, body: str, options: str = "", *, cell_id: str | None = None):
    return shell.run(f"%%chat {options}\n{body}", cell_id=cell_id)


def assert_one_line_usage_error(result, capsys: pytest.CaptureFixture[str], *words: str) -> str:
    assert type(result.error_in_exec) is UsageError, repr(result.error_in_exec)
    err = capsys.readouterr().err.strip()
    assert err.startswith("UsageError: "), err
    assert "\n" not in err, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


# -- streaming and the final output ---------------------------------------------------------


def test_reply_streams_into_the_cell_before_it_ends(shell: Shell, env: LoopbackServer) -> None:
    text = "# Title\n\nFirst paragraph.\n\n" + "word " * 200 + "\n\n- a\n- b\n"
    env.enqueue(Reply(text, chunk_size=8, delay=0.005))
    result = chat(shell, "hello")
    assert result.success
    messages = shell.publisher.messages
    assert messages[0].kind == "display"
    assert "asking test-model" in messages[0].data["text/html"]
    streamed = [m for m in messages[1:] if m.kind in ("display", "update")]
    partial = [m for m in streamed if "metadata" not in m.metadata and "nbchat" not in m.metadata]
    assert len(partial) >= 3, "expected several live updates before the final output"
    assert any("First paragraph" in m.data.get("text/html", "") for m in partial)
    final = shell.final_outputs()
    assert len(final) == 1
    assert final[0].data["text/plain"] == text
    assert final[0].data["text/markdown"] == text
    assert "<h1>Title</h1>" in final[0].data["text/html"]
    assert final[0].metadata["nbchat"]["model"] == "test-model"
    assert final[0].metadata["nbchat"]["usage"]["total_tokens"] > 0


def test_final_plain_text_is_the_markdown_exactly_with_chinese(
    shell: Shell, env: LoopbackServer
) -> None:
    text = "你好，世界！\n\n| 列 | 值 |\n|---|---|\n| 一 | 二 |\n\n```python\nprint('你好')\n```\n"
    env.enqueue(Reply(text, chunk_size=1))
    assert chat(shell, "说中文").success
    (final,) = shell.final_outputs()
    assert final.data["text/plain"] == text
    assert "你好，世界！" in final.data["text/html"]
    assert nbchat.get_session().last_reply.text == text


def test_reasoning_is_folded_away_in_the_final_html(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("The answer is 4.", reasoning="2 plus 2 is 4, surely."))
    assert chat(shell, "2+2?").success
    (final,) = shell.final_outputs()
    html = final.data["text/html"]
    assert "<details" in html and "2 plus 2 is 4" in html
    assert html.index("<details") < html.index("The answer is 4.")
    assert final.data["text/plain"] == "The answer is 4."


def test_every_choice_is_shown_under_its_own_heading(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply(choices=["first answer", "second answer"]))
    assert chat(shell, "two please", "-n 2").success
    (final,) = shell.final_outputs()
    html = final.data["text/html"]
    assert "Choice 1" in html and "Choice 2" in html
    assert html.index("first answer") < html.index("second answer")
    assert env.last_request.json["n"] == 2


def test_terminal_ipython_streams_plain_text_to_stdout(
    terminal: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("plain **markdown** reply"))
    assert chat(terminal, "hi").success
    out = capsys.readouterr().out
    assert out.startswith("plain **markdown** reply")
    assert "test-model" in out


def test_no_stream_shows_the_whole_reply_at_once(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("all at once"))
    assert chat(shell, "hi", "--no-stream").success
    assert env.last_request.json["stream"] is False
    (final,) = shell.final_outputs()
    assert final.data["text/plain"] == "all at once"


# -- history that behaves like a notebook ----------------------------------------------------


def sent_messages(server: LoopbackServer) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in server.last_request.json["messages"]]


def test_rerunning_a_cell_replaces_its_turn(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("one"), Reply("two"), Reply("one again"))
    assert chat(shell, "first", cell_id="cell-a").success
    assert chat(shell, "second", cell_id="cell-b").success
    assert sent_messages(env) == [("user", "first"), ("assistant", "one"), ("user", "second")]
    assert chat(shell, "first, reworded", cell_id="cell-a").success
    assert sent_messages(env) == [("user", "first, reworded")]
    turns = list(nbchat.get_session().history)
    assert [(t.prompt, t.reply) for t in turns] == [
        ("first, reworded", "one again"),
        ("second", "two"),
    ]


def test_cells_without_an_id_append(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("a"), Reply("b"))
    assert chat(shell, "same").success
    assert chat(shell, "same").success
    assert len(nbchat.get_session().history) == 2
    assert sent_messages(env) == [("user", "same"), ("assistant", "a"), ("user", "same")]


def test_no_history_is_a_one_off_question(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("kept"), Reply("one-off"))
    assert chat(shell, "remember", cell_id="c1").success
    assert chat(shell, "quick", "--no-history", cell_id="c2").success
    assert sent_messages(env) == [("user", "quick")]
    assert [t.reply for t in nbchat.get_session().history] == ["kept"]


def test_new_starts_a_fresh_conversation(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("old"), Reply("fresh"))
    assert chat(shell, "before", cell_id="c1").success
    assert chat(shell, "after", "--new", cell_id="c2").success
    assert sent_messages(env) == [("user", "after")]
    assert [t.prompt for t in nbchat.get_session().history] == ["after"]


def test_failed_reply_leaves_history_as_it_was(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("kept"), Reply("lost half", chunk_size=2, drop_after=3))
    assert chat(shell, "first", cell_id="c1").success
    capsys.readouterr()
    result = chat(shell, "second", cell_id="c2")
    assert_one_line_usage_error(result, capsys, "broke")
    assert [t.prompt for t in nbchat.get_session().history] == ["first"]
    (final,) = shell.final_outputs()  # the partial text stays on screen, marked failed
    assert "failed" in final.data["text/html"]


def test_system_prompt_goes_first(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("ok"), Reply("ok"))
    shell.run("%chat system You are terse.")
    assert chat(shell, "hi").success
    assert sent_messages(env)[0] == ("system", "You are terse.")
    assert chat(shell, "hi", "-s 'Cell only'").success
    assert sent_messages(env)[0] == ("system", "Cell only")
    assert shell.run("%chat system Don't hedge; it's fine.").success
    assert nbchat.get_session().system == "Don't hedge; it's fine."
    assert shell.run('%chat system "Quoted prompt"').success
    assert nbchat.get_session().system == "Quoted prompt"
    assert shell.run("%chat system --clear").success
    assert nbchat.get_session().system is None


# -- interrupting -----------------------------------------------------------------------------


def test_ctrl_c_keeps_the_partial_reply_marked_interrupted(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("partial words " * 50, chunk_size=5, stall_after=4, stall_seconds=20))
    session = nbchat.get_session()

    def interrupt_when_text_arrives(reply: nbchat.Reply) -> None:
        if reply.status == "streaming" and reply.chunks == 3:
            os.kill(os.getpid(), signal.SIGINT)

    follow(session, interrupt_when_text_arrives)
    result = chat(shell, "long one", cell_id="c1")
    err = assert_one_line_usage_error(result, capsys, "Interrupted", "kept")
    assert "KeyboardInterrupt" not in err
    (turn,) = session.history
    assert turn.status == "interrupted"
    assert turn.reply and "partial words".startswith(turn.reply[:5])
    (final,) = shell.final_outputs()
    assert "interrupted" in final.data["text/html"]
    assert final.data["text/plain"] == turn.reply


def test_cancel_from_another_thread_stops_and_keeps_the_partial_reply(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("x" * 400, chunk_size=4, stall_after=5, stall_seconds=20))
    session = nbchat.get_session()
    started = threading.Event()
    follow(session, lambda r: started.set() if r.chunks >= 3 else None)
    stopper = threading.Thread(target=lambda: started.wait(10) and session.cancel())
    stopper.start()
    result = chat(shell, "go", cell_id="c9")
    stopper.join()
    assert_one_line_usage_error(result, capsys, "Interrupted")
    (turn,) = session.history
    assert turn.status == "interrupted" and turn.reply.startswith("xxxx")
    assert not session.busy


# -- {name} interpolation ----------------------------------------------------------------------


def test_defined_names_are_filled_and_other_braces_stay(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("ok"))
    shell.run("city = 'Lyon'\nnumbers = list(range(3))")
    body = 'Weather in {city}? {numbers} def f(): return {"a": {undefined}} {{city}}'
    assert chat(shell, body).success
    assert sent_messages(env)[-1][1] == (
        'Weather in Lyon? [0, 1, 2] def f(): return {"a": {undefined}} {city}'
    )


def test_huge_values_are_cut_with_a_marker(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("ok"))
    shell.run("big = list(range(1_000_000))")
    assert chat(shell, "look: {big}").success
    sent = sent_messages(env)[-1][1]
    assert len(sent) < 5_000
    assert "..." in sent or "cut" in sent


# -- options reach the payload -----------------------------------------------------------------


def test_every_option_reaches_the_payload(shell: Shell, env: LoopbackServer) -> None:
    env.enqueue(Reply("ok"))
    options = (
        "-m other-model -t 0.5 --top-p 0.9 -n 1 --stop END --stop STOP --max-tokens 77 "
        "--presence-penalty 0.25 --frequency-penalty -0.5 --logit-bias '{\"50256\": -100}' "
        '--user alice --param seed=7 --param \'response_format={"type": "text"}\''
    )
    assert chat(shell, "hi", options).success
    payload = env.last_request.json
    assert payload["model"] == "other-model"
    assert payload["temperature"] == 0.5
    assert payload["top_p"] == 0.9
    assert payload["n"] == 1
    assert payload["stop"] == ["END", "STOP"]
    assert payload["max_tokens"] == 77
    assert payload["presence_penalty"] == 0.25
    assert payload["frequency_penalty"] == -0.5
    assert payload["logit_bias"] == {"50256": -100}
    assert payload["user"] == "alice"
    assert payload["seed"] == 7
    assert payload["response_format"] == {"type": "text"}
    assert payload["stream"] is True


def test_out_stores_the_reply_and_code_fills_the_next_cell(
    shell: Shell, env: LoopbackServer
) -> None:
    reply = "Here:\n\n```python\nprint('hi')\n```\n\nand more\n\n```python\nsecond()\n```\n"
    env.enqueue(Reply(reply))
    assert chat(shell, "code please", "-o answer --code").success
    assert shell.ip.user_ns["answer"] == reply
    assert shell.ip.rl_next_input == "print('hi')"  # a terminal pre-fills the next prompt
    assert shell.run("%chat code 2").success
    assert shell.ip.rl_next_input == "second()"  # any block of the latest reply, on request


def test_code_and_chat_code_1_take_the_same_block(shell: Shell, env: LoopbackServer) -> None:
    reply = "Run this:\n\n    indented()\n\nor this:\n\n```python\nfenced()\n```\n"
    env.enqueue(Reply(reply))
    assert chat(shell, "code?", "--code").success
    by_option = shell.ip.rl_next_input
    shell.ip.rl_next_input = None
    assert shell.run("%chat code 1").success
    assert by_option == shell.ip.rl_next_input == "indented()"  # block 1, by one rule
    assert shell.run("%chat code 2").success
    assert shell.ip.rl_next_input == "fenced()"


def test_chat_code_takes_blocks_of_the_latest_reply(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_usage_error(shell.run("%chat code"), capsys, "no reply yet")
    env.enqueue(Reply("one\n\n```sql\nselect 1;\n```\n"), Reply("No code here."))
    assert chat(shell, "sql?", cell_id="a").success
    assert shell.run("%chat code").success
    assert shell.ip.rl_next_input == "select 1;"
    assert_one_line_usage_error(shell.run("%chat code 3"), capsys, "has 1 code block,")
    assert_one_line_usage_error(shell.run("%chat code two"), capsys, "number of a code block")
    assert chat(shell, "prose?", cell_id="b").success
    assert_one_line_usage_error(shell.run("%chat code"), capsys, "no code block")


def test_chat_panel_shows_a_panel_on_the_notebook_session(
    shell: Shell, env: LoopbackServer
) -> None:
    assert shell.run("%chat panel", cell_id="panel-cell").success
    views = [
        m
        for m in shell.publisher.messages  # type: ignore[union-attr]
        if "application/vnd.jupyter.widget-view+json" in m.data
    ]
    assert len(views) == 1
    env.enqueue(Reply("seen by the panel"))
    assert chat(shell, "hello").success
    panel_widget = shell.ip.magics_manager.registry["ChatMagics"].panels["panel-cell"]
    shown = views[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert shown == panel_widget.model_id  # the panel itself is the widget shown
    texts = []
    stack = [panel_widget]
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        if isinstance(getattr(widget, "value", None), str):
            texts.append(widget.value)
    assert any("seen by the panel" in text for text in texts)


def test_chat_panel_in_a_terminal_says_it_needs_a_notebook(
    terminal: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_one_line_usage_error(terminal.run("%chat panel"), capsys, "needs a notebook frontend")


def test_running_a_panel_cell_again_replaces_its_panel(shell: Shell, env: LoopbackServer) -> None:
    session = nbchat.get_session()
    before = session.events.count("reply_started")
    assert shell.run("%chat panel", cell_id="panel-cell").success
    assert shell.run("%chat panel", cell_id="panel-cell").success
    assert session.events.count("reply_started") == before + 1  # the first stopped following
    assert shell.run("%chat panel", cell_id="another-cell").success
    assert session.events.count("reply_started") == before + 2


# -- errors are one line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ("--bogus", ["unrecognized arguments", "--bogus"]),
        ("-t hot", ["-t", "invalid float"]),
        ("-t 3", ["temperature"]),
        ("--top-p 1.5", ["top_p"]),
        ("--logit-bias nope", ["--logit-bias", "JSON"]),
        ("--logit-bias '{\"a\": 1}'", ["logit_bias"]),
        ("--stop a --stop b --stop c --stop d --stop e", ["stop"]),
        ("--param nokey", ["KEY=VALUE"]),
        ("--param api_key=x", ["never a magic argument"]),
        ("-o 1abc", ["variable name"]),
        ("--df missing_frame", ["'missing_frame' is not defined"]),
        ("--df not_frame", ["not a pandas or polars dataframe"]),
        ("--df-tokens 5", ["--df-tokens"]),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    shell: Shell,
    env: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    options: str,
    words: list[str],
) -> None:
    shell.run("not_frame = {'a': 1}")
    capsys.readouterr()
    result = chat(shell, "hi", options)
    assert_one_line_usage_error(result, capsys, *words)
    assert env.chat_requests == []


def test_empty_cell_is_a_usage_error(shell: Shell, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_usage_error(chat(shell, "   "), capsys, "needs a question")


def test_missing_key_is_one_line_and_sends_nothing(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run("%chat config base_url=https://api.example.invalid/v1")
    capsys.readouterr()
    result = chat(shell, "hi")
    assert_one_line_usage_error(result, capsys, "No API key", "%chat key")
    assert shell.final_outputs() == []


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (Status(401, {"error": {"message": "Invalid key"}}), ["401", "Invalid key"]),
        (Status(404, {"error": {"message": "model nope does not exist"}}), ["nope"]),
        (Status(500, {"error": {"message": "boom"}}), ["500"]),
    ],
)
def test_api_errors_are_one_line(
    shell: Shell,
    env: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    status: Status,
    words: list[str],
) -> None:
    env.enqueue(status)
    result = chat(shell, "hi", "-m nope")
    assert_one_line_usage_error(result, capsys, *words)
    assert len(nbchat.get_session().history) == 0
    assert shell.final_outputs() == []


def test_connection_refused_is_one_line(
    shell: Shell, capsys: pytest.CaptureFixture[str], unused_port: int
) -> None:
    shell.run(f"%chat config base_url=http://127.0.0.1:{unused_port}/v1")
    capsys.readouterr()
    assert_one_line_usage_error(chat(shell, "hi"), capsys, "127.0.0.1")


def test_a_second_ask_while_one_streams_is_refused(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("slow " * 40, chunk_size=5, delay=0.02))
    session = nbchat.get_session()
    refusals: list[str] = []

    def try_again(reply: nbchat.Reply) -> None:
        if reply.status == "streaming" and reply.chunks == 2:
            try:
                session.ask("meanwhile")
            except nbchat.NbChatError as error:
                refusals.append(str(error))

    follow(session, try_again)
    assert chat(shell, "first").success
    assert refusals and "already streaming" in refusals[0]
    assert len(env.chat_requests) == 1


# -- %chat commands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("%chat", ["needs a command"]),
        ("%chat frobnicate", ["unknown command", "frobnicate"]),
        ("%chat reset now", ["takes no argument"]),
        ("%chat config temperature=9", ["temperature"]),
        ("%chat config nonsense=1", ["unknown setting", "param.nonsense"]),
        ("%chat config api_key=sk-abc", ["never a magic argument", "%chat key"]),
        ("%chat config connect_timeout=-1", ["connect_timeout"]),
        ("%chat key sk-abc", ["takes no argument"]),
        ("%chat export notes.txt", [".md or .json"]),
        ("%chat model a b", ["takes [MODEL_ID]", "'a b'"]),
        ("%chat panel now", ["takes [--side]", "'now'"]),
        ("%chat context", ["needs the name of a dataframe"]),
        ("%chat context undefined_frame", ["'undefined_frame' is not defined"]),
        ("%chat context __name__", ["not a pandas or polars dataframe"]),
        ("%chat context --rows=x df", ["--df-rows", "whole number"]),
    ],
)
def test_bad_commands_are_one_line_usage_errors(
    shell: Shell, capsys: pytest.CaptureFixture[str], line: str, words: list[str]
) -> None:
    assert_one_line_usage_error(shell.run(line), capsys, *words)


def test_config_shows_effective_settings_with_the_key_masked(
    shell: Shell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = nbchat.get_session()
    session.settings = session.settings.with_key(SECRET, source="NBCHAT_API_KEY")
    shell.run("%chat config temperature=0.2 max_tokens=100 param.seed=3")
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "…CRET (from NBCHAT_API_KEY)" in out
    assert "'temperature': 0.2" in out and "'seed': 3" in out
    assert session.settings.params == {"temperature": 0.2, "max_tokens": 100, "seed": 3}


def test_model_and_models_use_the_servers_list(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run("%chat models")
    out = capsys.readouterr().out
    assert "test-model" in out
    models = [line.strip(" *") for line in out.splitlines() if line.strip()]
    other = next(m for m in models if m != "test-model" and not m.startswith("("))
    assert shell.run(f"%chat model {other}").success
    assert nbchat.get_session().settings.model == other
    result = shell.run("%chat model no-such-model-xyz")
    assert_one_line_usage_error(result, capsys, "no model", "no-such-model-xyz")


def test_history_reset_usage_and_export(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    env.enqueue(Reply("first reply"), Reply("second reply"))
    chat(shell, "q1", cell_id="a")
    chat(shell, "q2", cell_id="b")
    capsys.readouterr()
    shell.run("%chat history")
    out = capsys.readouterr().out
    assert "q1" in out and "second reply" in out
    shell.run("%chat usage")
    assert "2 replies" in capsys.readouterr().out
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    shell.run(f"%chat export {md}")
    shell.run(f"%chat export {js}")
    assert "q2" in md.read_text() and "second reply" in md.read_text()
    data = json.loads(js.read_text())
    assert [m["content"] for m in data["messages"]] == ["q1", "first reply", "q2", "second reply"]
    shell.run("%chat reset")
    assert len(nbchat.get_session().history) == 0


def test_key_is_asked_without_echo_and_never_shown(
    shell: Shell,
    env: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import getpass

    prompts: list[str] = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt: prompts.append(prompt) or SECRET)
    assert shell.run("%chat key").success
    out = capsys.readouterr().out
    assert SECRET not in out and "…CRET" in out
    assert prompts and env.base_url in prompts[0]
    env.enqueue(Reply("ok"))
    assert chat(shell, "hi").success
    assert env.last_request.headers["authorization"] == f"Bearer {SECRET}"


def test_model_is_accepted_when_the_server_cannot_list_models(
    shell: Shell, unused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run(f"%chat config base_url=http://127.0.0.1:{unused_port}/v1")
    assert shell.run("%chat model my-local-model").success
    assert nbchat.get_session().settings.model == "my-local-model"


# -- dataframes in prompts ------------------------------------------------------------------


def test_a_dataframe_in_braces_becomes_its_summary(shell: Shell, env: LoopbackServer) -> None:
    shell.run(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'city': ['Paris-SECRET-ROW', 'Lyon'] * 500, 'revenue': range(1000)})"
    )
    env.enqueue(Reply("ok"))
    assert chat(shell, "What drives revenue in {sales}?").success
    sent = env.last_request.json["messages"][-1]["content"]
    assert sent.startswith('What drives revenue in <dataframe name="sales" library="pandas"')
    assert 'rows="1,000"' in sent or 'rows="1000"' in sent
    assert "| revenue | int64 |" in sent
    assert "Paris-SECRET-ROW 500" in sent  # a top value, counted, is a figure...
    assert "\n| 0 | Paris-SECRET-ROW" not in sent  # ...but no raw rows are sent unless asked


def test_df_attaches_summaries_and_chat_context_shows_exactly_them(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run(
        "import pandas as pd, polars as pl\n"
        "a = pd.DataFrame({'x': [1.5, None, 3.0]})\n"
        "b = pl.DataFrame({'y': ['u', 'v', None]})"
    )
    capsys.readouterr()
    assert shell.run("%chat context a b").success
    shown = capsys.readouterr().out
    env.enqueue(Reply("ok"))
    assert chat(shell, "Compare them.", "--df a --df b").success
    sent = env.last_request.json["messages"][-1]["content"]
    assert sent == "Compare them.\n\n" + shown.rstrip("\n")
    assert shown.count("<dataframe ") == 2 and 'library="polars"' in shown
    turn = nbchat.get_session().history.last()
    assert turn is not None and turn.prompt == sent


def test_columns_the_prompt_names_survive_in_a_wide_frame(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.run(
        "import numpy as np, pandas as pd\n"
        "wide = pd.DataFrame(np.arange(20 * 5000).reshape(20, 5000),"
        " columns=[f'col_{i}' for i in range(5000)])"
    )
    env.enqueue(Reply("ok"), Reply("ok"))
    assert chat(shell, "Why is col_4321 always larger than col_7? {wide}").success
    sent = env.last_request.json["messages"][-1]["content"]
    assert "| col_4321 | int64 | 0 | 20 |" in sent and "| col_7 | int64 |" in sent
    assert "more columns" in sent  # the rest collapsed to fit the budget
    assert chat(shell, "And col_99?", "--df wide --df-tokens 300").success
    sent = env.last_request.json["messages"][-1]["content"]
    assert "| col_99 | int64 |" in sent and "| col_4321 |" not in sent


def test_a_frame_its_library_cannot_describe_is_one_line(
    shell: Shell,
    env: LoopbackServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbchat.frames

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("exotic dtype\nwith a second line")

    monkeypatch.setattr(nbchat.frames, "summarize", broken)
    shell.run("import pandas as pd\nodd = pd.DataFrame({'a': [1]})")
    capsys.readouterr()
    for body, options in (("about {odd}", ""), ("about it", "--df odd")):
        assert_one_line_usage_error(
            chat(shell, body, options),
            capsys,
            "could not summarize 'odd'",
            "RuntimeError: exotic dtype with a second line",
        )
    assert env.chat_requests == []


def test_a_command_with_a_question_mark_shows_its_usage(
    shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shell.run("%chat context?").success
    out = capsys.readouterr().out
    assert out.startswith("%chat context") and "--df-tokens N" in out
    assert shell.run("%chat code --help").success
    assert "%chat code [N]" in capsys.readouterr().out


def test_a_system_prompt_keeps_its_question_mark(shell: Shell) -> None:
    assert shell.run("%chat system Are you brief?").success
    assert nbchat.get_session().system == "Are you brief?"


def test_bad_values_fail_the_same_way_on_a_cell_and_a_command(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.ip.user_ns["df"] = [1, 2]
    cell = assert_one_line_usage_error(chat(shell, "hi", "--df-tokens 5"), capsys, "--df-tokens")
    line = assert_one_line_usage_error(shell.run("%chat context df --df-tokens 5"), capsys)
    assert "takes a whole number ≥ 100, got '5'" in cell
    assert "takes a whole number ≥ 100, got '5'" in line
    assert not env.chat_requests  # nothing was sent


def test_every_command_is_parsed_and_handled() -> None:
    from nbchat.actions import HANDLERS
    from nbchat.commands import COMMANDS, parsers

    assert set(COMMANDS) == set(parsers()[1]) == set(HANDLERS)


def test_counts_read_as_english(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(Reply("one\n\n```sql\nselect 1;\n```\n"))
    assert chat(shell, "sql?", cell_id="a").success
    capsys.readouterr()
    assert shell.run("%chat usage").success
    assert capsys.readouterr().out.startswith("1 reply: ")
    assert_one_line_usage_error(shell.run("%chat code 2"), capsys, "has 1 code block, not 2")
    assert shell.run("%chat reset").success
    assert "the last one (1 turn) stays" in capsys.readouterr().out


def test_the_cell_magic_usage_reads_as_a_cell_magic() -> None:
    from nbchat.magics import ChatMagics

    assert "%%chat [-m MODEL]" in (ChatMagics.chat.__doc__ or "")
