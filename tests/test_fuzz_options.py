"""Whatever is typed, in a real IPython shell: every ``%chat config KEY=VALUE``, every setting's
environment variable, every ``%%chat`` option and every ``%chat`` command's arguments either
works or ends as exactly one ``UsageError`` line. Never another exception, never a traceback,
and a refused input leaves the conversation and the settings as they were.

Values come from hypothesis (bounded example counts) mixed with the ones that broke things
before: NaN and infinities, 400-digit numbers, digits ``int()`` refuses (``²``), unbalanced
quotes, escape sequences, key-shaped words, URLs of every shape.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from nbchat import secrets
from nbchat.actions import _REQUEST_FIELDS, _SETTING_FIELDS
from nbchat.commands import COMMANDS
from nbchat.config import Settings
from nbchat.notebook import get_session, reset_session_for_tests
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer

from ipython_shell import Shell, make_shell

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MODEL = "gpt-4o-mini"  # the loopback server lists it, so a plain question gets a reply

LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
"""What ends a line for IPython: a line magic's arguments cannot hold one."""

WEIRD = [
    *("NaN", "nan", "-nan", "inf", "-inf", "Infinity", "-Infinity", "1e400", "-1e999"),
    *("1" * 400, "-" + "9" * 400, "1e-400", "²", "٣", "0x1f", "1_0", "0", "-0", "-1", "1"),
    *("2", "0.5", "101", "86401", "", "''", '""', "'", '"', "'unbalanced", '"unbalanced'),
    *("a=b", "=", "==", "=1", "--", "-", "-x", "--x", "-h", "--help", "?", "{", "}", "[", "]"),
    *("{}", "[]", "null", "true", "false", '{"a": 1}', "[1, 2]", '{"50256": -100}', "\\"),
    *("\x1b[2J", "\x1b]52;c;aGk=\x07", "\u202e", "\x00", "\t", "\x7f", "\x9b"),
    *("sk-" + "A1b2" * 10, "Bearer abc", "sk-proj-" + "x" * 40),
    *("http://", "https://example.invalid/v1", "ftp://x", "http://127.0.0.1:0/v1"),
    *("http://[::1", "http://a:b@c/v1", "http://h:99999/v1", "https://h/v1?x=1", "http://h#f"),
    *("~", "/", ".", "..", "%", "%%", "$HOME", "{x}", "{{", "}}", "a?", "é", "中文", "🙂"),
]


def _no_line_break(text: str) -> str:
    return "".join(" " if c in LINE_BREAKS else c for c in text)


WORD = st.one_of(
    st.sampled_from(WEIRD),
    st.text(max_size=12),
    st.integers().map(str),
    st.floats().map(repr),
).map(_no_line_break)


def words(max_size: int = 4) -> st.SearchStrategy[str]:
    return st.lists(WORD, max_size=max_size).map(" ".join)


@dataclass
class Before:
    """What a refused input must leave as it was."""

    turns: list[tuple[str, str, str | None]]
    system: str | None
    settings: Settings

    @classmethod
    def of(cls, session: ChatSession) -> Before:
        turns = [(t.prompt, t.reply, t.cell_id) for t in session.history]
        return cls(turns, session.system, session.settings)


def run_checked(shell: Shell, source: str) -> BaseException | None:
    """Run ``source`` as a cell; it worked, or it raised one one-line ``UsageError``."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        result = shell.run(source)
    printed = out.getvalue() + err.getvalue()
    assert result.error_before_exec is None, (source, repr(result.error_before_exec))
    error = result.error_in_exec
    if error is not None:
        assert type(error) is UsageError, (source, repr(error))
        assert "\n" not in str(error) and str(error).strip(), (source, str(error))
    assert "Traceback" not in printed, (source, printed)
    return error


def check_refusal_changes_nothing(shell: Shell, source: str) -> None:
    session = get_session()
    before = Before.of(session)
    error = run_checked(shell, source)
    if error is not None:
        assert Before.of(session) == before, source


@pytest.fixture(autouse=True)
def forget_fuzzed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every key nbchat is given is masked in its echoes for the rest of the process; the
    fuzzed ones ("1", "a") would mask those characters in every later test's messages."""
    monkeypatch.setattr(secrets, "_ECHO_KEYS", secrets._ECHO_KEYS)


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def shell(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shell]:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", MODEL)
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "5")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    yield from make_shell(rich=False)


@pytest.fixture
def fresh_settings(shell: Shell) -> Settings:
    """The settings each example starts from (an earlier example may have changed them)."""
    return get_session().settings


def restore(baseline: Settings) -> None:
    session = get_session()
    if session.settings != baseline or session.settings.params != baseline.params:
        session.settings = baseline


# --- %chat config KEY=VALUE ------------------------------------------------------------------

CONFIG_KEYS = st.one_of(
    st.sampled_from([*_SETTING_FIELDS, *_REQUEST_FIELDS, "param.seed", "param.x", "api_key"]),
    WORD.map(lambda w: w.replace("=", "")),
)
ASSIGNMENT = st.tuples(CONFIG_KEYS, WORD).map(lambda kv: f"{kv[0]}={kv[1]}")


@FUZZ
@given(assignments=st.lists(ASSIGNMENT, min_size=1, max_size=3))
@example(assignments=["temperature=" + "1" * 400])  # once an OverflowError in the range check
@example(assignments=["base_url=http://[::1"])
def test_any_config_assignment_works_or_is_one_usage_error(
    shell: Shell, fresh_settings: Settings, assignments: list[str]
) -> None:
    try:
        check_refusal_changes_nothing(shell, "%chat config " + " ".join(assignments))
    finally:
        restore(fresh_settings)


# --- the settings' environment variables ------------------------------------------------------

ENV_NAMES = [
    "NBCHAT_API_KEY",
    "NBCHAT_MODEL",
    "NBCHAT_CONNECT_TIMEOUT",
    "NBCHAT_READ_TIMEOUT",
    "NBCHAT_MAX_RETRIES",
    "NBCHAT_CONTEXT_TOKENS",
    "NBCHAT_CONTEXT_ROWS",
]
"""Variables that keep the loopback base URL, so that a question can be sent."""
URL_ENV_NAMES = ["NBCHAT_BASE_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"]

ENV_VALUE = WORD.map(lambda w: w.replace("\x00", ""))  # the environment cannot hold NUL


@FUZZ
@given(
    values=st.dictionaries(st.sampled_from(ENV_NAMES + URL_ENV_NAMES), ENV_VALUE, min_size=1),
)
@example(values={"NBCHAT_BASE_URL": "http://[::1"})  # urlsplit's ValueError, once a traceback
@example(values={"NBCHAT_MAX_RETRIES": "²"})
def test_any_environment_value_shows_settings_or_is_one_usage_error(
    shell: Shell, values: dict[str, str]
) -> None:
    with environment(values):
        run_checked(shell, "%chat config")
        run_checked(shell, "%chat history")


@FUZZ
@given(values=st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUE, min_size=1))
@example(values={"NBCHAT_API_KEY": "中文"})  # no header can carry it: once a UnicodeEncodeError
def test_any_environment_value_asks_or_is_one_usage_error(
    shell: Shell, values: dict[str, str]
) -> None:
    with environment(values):
        run_checked(shell, "%%chat --no-history\nhi")


class environment:
    """The variables set for the block, on a session made anew from them."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for name, value in self.values.items():
            self.saved[name] = os.environ.get(name)
            os.environ[name] = value
        reset_session_for_tests()

    def __exit__(self, *exc_info: Any) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_session_for_tests()


# --- %%chat options -----------------------------------------------------------------------------

CHAT_OPTIONS = [
    *("-m", "--model", "-s", "--system", "-t", "--temperature", "--top-p", "-n", "--stop"),
    *("--max-tokens", "--presence-penalty", "--frequency-penalty", "--logit-bias", "--user"),
    *("--param", "--no-stream", "--new", "--no-history", "--df", "--df-rows", "--df-tokens"),
    *("--code", "-o", "--out", "--bogus", "-z"),
]
FLAGS = {"--no-stream", "--new", "--no-history", "--code"}


def _option(pair: tuple[str, str]) -> str:
    name, value = pair
    return name if name in FLAGS else f"{name} {value}"


OPTION = st.tuples(st.sampled_from(CHAT_OPTIONS), WORD).map(_option)
BODY = st.one_of(st.just("hi"), st.text(max_size=30), st.sampled_from(["{x}", "{{}}", " "]))


@FUZZ
@given(options=st.lists(OPTION, max_size=4), extra=words(2), body=BODY)
def test_any_chat_options_ask_or_are_one_usage_error(
    shell: Shell, fresh_settings: Settings, options: list[str], extra: str, body: str
) -> None:
    line = _no_line_break(" ".join([*options, extra]))
    try:
        check_refusal_changes_nothing(shell, f"%%chat {line}\n{body}")
    finally:
        restore(fresh_settings)


# --- %chat commands -----------------------------------------------------------------------------

FUZZED_COMMANDS = [name for name in COMMANDS if name not in ("key", "export")]
# `key` reads the terminal (getpass); `export` writes files, so it gets paths of its own below.


@FUZZ
@given(
    command=st.one_of(st.sampled_from([*FUZZED_COMMANDS, "help", "?", ""]), WORD),
    arguments=words(),
    asking=st.booleans(),
)
def test_any_command_arguments_work_or_are_one_usage_error(
    shell: Shell, fresh_settings: Settings, command: str, arguments: str, asking: bool
) -> None:
    if command.strip() == "key":
        return
    line = f"%chat {command} {arguments}" + ("?" if asking else "")
    try:
        check_refusal_changes_nothing(shell, line)
    finally:
        restore(fresh_settings)


FILE_NAME = st.text(
    st.characters(blacklist_characters="/" + LINE_BREAKS, blacklist_categories=("Cs",)),
    max_size=12,
)


@FUZZ
@given(
    name=FILE_NAME,
    ending=st.sampled_from([".md", ".json", ".txt", "", ".MD"]),
    extra=st.sampled_from(["", "--force", "--bogus", "x", "'"]),
)
def test_any_export_path_writes_or_is_one_usage_error(
    shell: Shell, tmp_path: Path, name: str, ending: str, extra: str
) -> None:
    path = str(tmp_path / f"{name}{ending}")
    quoted = "'" + path.replace("'", "'\"'\"'") + "'"
    check_refusal_changes_nothing(shell, f"%chat export {quoted} {extra}")
