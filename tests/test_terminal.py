"""``%%chat`` in terminal IPython, typed into a real terminal (a tmux pane) and read off its
screen: a request that fails or is interrupted before any text leaves exactly one line.

Terminal IPython shows no HTML, so a reply is streamed to stdout; what the user sees when
nothing arrived is only the ``UsageError:`` line, never a traceback or an empty footer.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nbchat.testing import LoopbackServer, RawSSE, Reply, Status

# CI installs tmux (.ci/ensure-chromium); a missing tmux there is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None and os.environ.get("CI") != "true",
    reason="needs tmux (apt-get install tmux)",
)

WRONG_KEY = "sk-terminal-wrong-0123456789abcdefWRONG"
_PROMPT = re.compile(r"^In \[(\d+)\]:", re.MULTILINE)


class Terminal:
    """Terminal IPython in a detached tmux pane: keys go in, the screen comes out."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        # A short directory: a unix socket's path must fit in about 100 bytes.
        self._dir = tempfile.mkdtemp(prefix="nbchat-tmux-")
        self._socket = os.path.join(self._dir, "s")
        self._env = env
        self._cwd = cwd
        self.cells = 0

    def __enter__(self) -> Terminal:
        command = [
            sys.executable,
            "-m",
            "IPython",
            "--no-banner",
            "--colors=nocolor",
            "--HistoryManager.hist_file=:memory:",
        ]
        self._tmux(
            "new-session", "-d", "-x", "200", "-y", "60", "-c", str(self._cwd), shlex.join(command)
        )
        self._wait(lambda screen: self._prompts(screen) >= 1, "the first prompt")
        return self

    def __exit__(self, *exc_info: object) -> None:
        subprocess.run(
            ["tmux", "-S", self._socket, "kill-server"], env=self._env, capture_output=True
        )
        shutil.rmtree(self._dir, ignore_errors=True)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self._socket, "-f", "/dev/null", *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        """Everything the pane has shown, scrollback included, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-")

    @staticmethod
    def _prompts(screen: str) -> int:
        return len(_PROMPT.findall(screen))

    def _wait(self, ready: Callable[[str], bool], what: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout} s; the screen:\n{screen}")
            time.sleep(0.05)

    def type_cell(self, *lines: str) -> None:
        """Type a cell line by line. A cell magic runs once its text ends in a blank line,
        which takes two more Enters: the first only opens the blank line."""
        self.cells += 1
        for line in lines:
            self._tmux("send-keys", "-l", line)
            self._tmux("send-keys", "Enter")
        if lines[0].startswith("%%"):
            self._tmux("send-keys", "Enter", "Enter")

    def interrupt(self) -> None:
        """Ctrl-C, which the terminal turns into SIGINT for IPython."""
        self._tmux("send-keys", "C-c")

    def output(self) -> list[str]:
        """The lines the last typed cell printed, once the next prompt is up."""
        number = self.cells
        screen = self._wait(lambda s: self._prompts(s) > number, f"prompt after cell {number}")
        lines = screen.splitlines()
        starts = [i for i, line in enumerate(lines) if _PROMPT.match(line)]
        body = lines[starts[number - 1] + 1 : starts[number]]
        return [line for line in body if line.strip() and not line.lstrip().startswith("...:")]

    def run(self, *lines: str) -> list[str]:
        self.type_cell(*lines)
        return self.output()


def terminal_env(tmp_path: Path, **nbchat: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    home = tmp_path / "home"
    for name, where in {
        "HOME": home,
        "IPYTHONDIR": home / "ipython",
        "NBCHAT_HOME": home / "nbchat",
        "XDG_CONFIG_HOME": home / "config",
        "XDG_DATA_HOME": home / "data",
        "XDG_CACHE_HOME": home / "cache",
        "XDG_STATE_HOME": home / "state",
        "XDG_RUNTIME_DIR": home / "runtime",
    }.items():
        where.mkdir(parents=True, exist_ok=True)
        env[name] = str(where)
    env["NBCHAT_MAX_RETRIES"] = "0"
    env["NBCHAT_MODEL"] = "test-model"
    env.update(nbchat)
    return env


@pytest.fixture
def terminal_for(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """Opens terminal IPython with nbchat loaded and ``NBCHAT_*`` settings; closed after."""
    with contextlib.ExitStack() as opened:

        def open_terminal(**nbchat: str) -> Terminal:
            terminal = opened.enter_context(Terminal(terminal_env(tmp_path, **nbchat), tmp_path))
            assert terminal.run("%load_ext nbchat") == []
            return terminal

        yield open_terminal


def assert_one_usage_error(printed: list[str], *words: str) -> None:
    assert len(printed) == 1, "\n".join(printed)
    (line,) = printed
    assert line.startswith("UsageError: "), line
    for word in words:
        assert word in line, line


def test_closed_port_shows_one_line(
    terminal_for: Callable[..., Terminal], unused_port: int
) -> None:
    terminal = terminal_for()
    terminal.run(f"%chat config base_url=http://127.0.0.1:{unused_port}/v1")
    printed = terminal.run("%%chat", "hello")
    assert printed == [
        f"UsageError: Connection to 127.0.0.1:{unused_port} was refused "
        "(is the server running? tried once)"
    ]
    assert "Traceback" not in terminal.screen()


def test_unknown_host_shows_one_line(terminal_for: Callable[..., Terminal]) -> None:
    terminal = terminal_for(
        NBCHAT_BASE_URL="http://nbchat-no-such-host.invalid/v1", NBCHAT_API_KEY=WRONG_KEY
    )
    printed = terminal.run("%%chat", "hello")
    assert_one_usage_error(printed, "Cannot resolve host nbchat-no-such-host.invalid")
    screen = terminal.screen()
    assert "Traceback" not in screen and WRONG_KEY not in screen


def test_401_shows_one_line_without_the_key(
    terminal_for: Callable[..., Terminal], server: LoopbackServer
) -> None:
    server.require_key = "sk-the-right-one-000000000000000000"
    terminal = terminal_for(NBCHAT_BASE_URL=server.base_url, NBCHAT_API_KEY=WRONG_KEY)
    printed = terminal.run("%%chat", "hello")
    assert_one_usage_error(printed, "HTTP 401", "NBCHAT_API_KEY")
    screen = terminal.screen()
    assert "Traceback" not in screen and WRONG_KEY not in screen


def test_404_shows_one_line(terminal_for: Callable[..., Terminal], server: LoopbackServer) -> None:
    server.known_models = {"another-model"}
    terminal = terminal_for(NBCHAT_BASE_URL=server.base_url)
    printed = terminal.run("%%chat", "hello")
    assert_one_usage_error(printed, "HTTP 404", "'test-model'")
    assert "Traceback" not in terminal.screen()


def wait_for_request(server: LoopbackServer, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(server.chat_requests) < count:
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "slow",
    [
        pytest.param(Status(200, body={"choices": []}, delay=30), id="before-the-headers"),
        pytest.param(Reply("late", delay=30), id="before-the-first-event"),
    ],
)
def test_ctrl_c_before_the_first_byte_shows_one_line(
    terminal_for: Callable[..., Terminal], server: LoopbackServer, slow: Status | Reply
) -> None:
    server.enqueue(slow)
    terminal = terminal_for(NBCHAT_BASE_URL=server.base_url)
    terminal.type_cell("%%chat", "a slow question")
    wait_for_request(server, 1)
    time.sleep(0.2)
    terminal.interrupt()
    # The terminal itself echoes the key as ^C; everything after it is IPython's.
    printed = [line.removeprefix("^C") for line in terminal.output()]
    assert [line for line in printed if line] == [
        "UsageError: Interrupted before the reply began; the conversation is unchanged"
    ]
    assert "Traceback" not in terminal.screen()
    assert terminal.run("import nbchat; print(len(nbchat.get_session().history))") == ["0"]
    server.enqueue(Reply("still works"))
    assert terminal.run("%%chat", "again")[0] == "still works"


def test_a_reply_with_no_choices_shows_one_line(
    terminal_for: Callable[..., Terminal], server: LoopbackServer
) -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":0}}\n\n'
    server.enqueue(RawSSE(usage + b"data: [DONE]\n\n"))
    terminal = terminal_for(NBCHAT_BASE_URL=server.base_url)
    printed = terminal.run("%%chat", "hello")
    assert_one_usage_error(printed, "no text arrived")
    assert "Traceback" not in terminal.screen()
    assert terminal.run("import nbchat; print(len(nbchat.get_session().history))") == ["0"]


def test_a_tool_call_and_a_refusal_show_in_the_terminal(
    terminal_for: Callable[..., Terminal], server: LoopbackServer
) -> None:
    from corpus import capture

    server.enqueue(
        RawSSE(capture("03_openai_tool_call_streamed_args.sse")),
        RawSSE(capture("05_openai_refusal_deltas.sse")),
    )
    terminal = terminal_for(NBCHAT_BASE_URL=server.base_url)
    printed = "\n".join(terminal.run("%%chat", "What is the weather?"))
    assert "Tool call: get_weather" in printed and '"city": "New York City"' in printed
    printed = "\n".join(terminal.run("%%chat", "Something bad"))
    assert "The model refused" in printed and "I'm sorry, I can't assist" in printed
    assert "Traceback" not in terminal.screen()
