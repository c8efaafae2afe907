"""How nbchat's costs grow with the length of a conversation and of a reply.

Conversations of 10, 1,000 and 10,000 turns (a few hundred characters each, kept in a real
history store in a temporary ``NBCHAT_HOME``), in a real IPython shell with nbchat loaded,
talking to the loopback server, which answers at once:

- *per-cell overhead*: a ``%%chat`` cell run again (its turn is replaced, so the length stays),
  as wall time and as the CPU time of the kernel's thread alone (the loopback server's parsing
  of the request runs on threads of its own);
- *request size*: the bytes of the body the server received;
- *commit*: writing one more turn to the store;
- *``%chat history``*: listing the conversation (printed to nowhere);
- *panel*: opening a chat panel on the conversation (it draws the latest turns only).

Each figure is also given as a ratio to the 10-turn one, measured in the same run: a ratio
near 1,000 at 10,000 turns is linear growth, far above it is worse.

Replies of 10 MB in three shapes (one long paragraph, many small blocks, one huge code block
whose fence never closes), streamed over the loopback server through the client into a cell
display that renders them as they come: the peak memory ``tracemalloc`` saw, as a ratio to the
reply's size.

    python benchmarks/scale.py            # everything (a few minutes)
    python benchmarks/scale.py --quick    # 10 / 100 / 1,000 turns, 1 MB replies
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

TURN_COUNTS = (10, 1_000, 10_000)
QUICK_TURN_COUNTS = (10, 100, 1_000)
REPLY_SIZE = 10_000_000
QUICK_REPLY_SIZE = 1_000_000
CELL_ROUNDS = 5
PROMPT = "How do I group the frame by region and take the median of each column? " * 2
ANSWER = (
    "Use `df.groupby('region').median(numeric_only=True)`; it returns one row per region "
    "and one column per numeric column. Add `.reset_index()` to keep region as a column. "
) * 2


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def median_of(rounds: int, run: Callable[[], None]) -> tuple[float, float]:
    """Median wall and main-thread CPU seconds of ``run``."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.thread_time()
        run()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus)


def quietly(run: Callable[[], Any]) -> Callable[[], None]:
    def silent() -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run()

    return silent


# --- conversations ---------------------------------------------------------------------------


def conversation_scale(counts: tuple[int, ...]) -> list[dict[str, float]]:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from nbchat.notebook import get_session, reset_session_for_tests
    from nbchat.testing import LoopbackServer, Reply
    from nbchat.turn import Turn

    rows: list[dict[str, float]] = []
    with (
        tempfile.TemporaryDirectory() as home,
        LoopbackServer(default_reply=Reply(text="Done.")) as server,
        environment(NBCHAT_HOME=home, NBCHAT_BASE_URL=server.base_url, NBCHAT_MODEL="gpt-4o-mini"),
    ):
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        shell = InteractiveShell.instance(config=config)
        shell.run_line_magic("load_ext", "nbchat")
        reset_session_for_tests()
        session = get_session()
        cell = "%%chat\nAnd the mean instead?"
        history = session.history
        for count in counts:
            while len(history) < count - 4:
                history.commit(Turn(prompt=PROMPT, reply=ANSWER, model="gpt-4o-mini"))
            commit_wall, _ = median_of(
                3,
                lambda: history.commit(Turn(prompt=PROMPT, reply=ANSWER, model="gpt-4o-mini")),
            )
            cell_id = f"bench-{count}"  # the last turn: its request carries all the others

            def run_cell(cell_id: str = cell_id) -> None:
                shell.run_cell(cell, cell_id=cell_id)

            quietly(run_cell)()  # its turn is added; running it again replaces it
            cell_wall, cell_cpu = median_of(CELL_ROUNDS, quietly(run_cell))
            request_bytes = len(server.last_request.body)
            history_wall, _ = median_of(3, quietly(lambda: shell.run_line_magic("chat", "history")))
            panel_wall, _ = median_of(3, lambda: open_panel(session))
            rows.append(
                {
                    "turns": len(history),
                    "cell_wall": cell_wall,
                    "cell_cpu": cell_cpu,
                    "request_bytes": request_bytes,
                    "commit": commit_wall,
                    "history": history_wall,
                    "panel": panel_wall,
                }
            )
        reset_session_for_tests()
        shell.run_line_magic("unload_ext", "nbchat")
        InteractiveShell.clear_instance()
    return rows


def open_panel(session: Any) -> None:
    from nbchat.panel import ChatPanel

    ChatPanel(session, namespace={}, load_models=False).close()


def report_conversations(rows: list[dict[str, float]]) -> None:
    base = rows[0]
    print("Conversation length (ratios to the first row, same run):")
    header = (
        f"{'turns':>7} | {'%%chat cell':>18} | {'cell CPU':>18} | {'request':>18} | "
        f"{'commit':>16} | {'%chat history':>18} | {'panel':>18}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:

        def cell(key: str, unit: str, scale: float = 1.0, row: dict[str, float] = row) -> str:
            ratio = row[key] / base[key] if base[key] else float("nan")
            return f"{row[key] * scale:>9.1f} {unit:<2} ×{ratio:<5.0f}"

        print(
            f"{int(row['turns']):>7} | {cell('cell_wall', 'ms', 1e3)} | "
            f"{cell('cell_cpu', 'ms', 1e3)} | {cell('request_bytes', 'KB', 1e-3)} | "
            f"{cell('commit', 'ms', 1e3):>16} | {cell('history', 'ms', 1e3)} | "
            f"{cell('panel', 'ms', 1e3)}"
        )
    print()


# --- long replies ----------------------------------------------------------------------------


def reply_shapes(size: int) -> dict[str, str]:
    sentence = "The median of each column is taken per group, and the frame is sorted. "
    paragraph = (sentence * (size // len(sentence) + 1))[:size]
    block = "A short paragraph about the result.\n\n- a point\n- another point\n\n"
    blocks = (block * (size // len(block) + 1))[:size]
    line = "total = frame.groupby('region')['sales'].median()  # per region\n"
    code = "```python\n" + (line * (size // len(line) + 1))[: size - 10]
    return {
        "one long paragraph": paragraph,
        "many small blocks": blocks,
        "one huge code block": code,
    }


def sse_body(text: str, piece: int = 2_000) -> bytes:
    """The reply as an OpenAI stream in pieces of ``piece`` characters."""
    events = []
    for start in range(0, len(text), piece):
        delta = {"content": text[start : start + piece]}
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        events.append(f"data: {json.dumps(chunk)}\n\n")
    done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    events.append(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n")
    return "".join(events).encode()


class NullSink:
    """A cell's outputs, dropped: the benchmark measures what nbchat holds, not a frontend."""

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        pass

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        pass

    def clear(self, *, wait: bool) -> None:
        pass


def reply_memory(size: int) -> list[tuple[str, int, float, float]]:
    from nbchat.config import Settings
    from nbchat.display import CellDisplay
    from nbchat.history import History
    from nbchat.session import ChatSession
    from nbchat.testing import LoopbackServer, RawSSE

    rows = []
    with LoopbackServer() as server:
        for shape, text in reply_shapes(size).items():
            body = sse_body(text)
            server.enqueue(RawSSE(body))
            session = ChatSession(
                Settings(base_url=server.base_url, model="gpt-4o-mini"), history=History()
            )
            display = CellDisplay(NullSink())
            began = time.perf_counter()
            tracemalloc.start()
            try:
                reply = session.ask("Write it all.", observer=display)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            seconds = time.perf_counter() - began
            if reply.status != "done" or len(reply.text) != len(text):
                raise RuntimeError(f"the {shape} reply ended {reply.status}")
            session.close()
            rows.append((shape, len(text.encode()), peak, seconds))
    return rows


def report_memory(rows: list[tuple[str, int, float, float]]) -> None:
    print("Peak memory while a long reply streams and renders (tracemalloc):")
    for shape, size, peak, seconds in rows:
        print(
            f"  {shape:<20} {size / 1e6:5.1f} MB reply: peak {peak / 1e6:7.1f} MB "
            f"= {peak / size:5.1f}× the reply  ({seconds:.1f} s under tracemalloc)"
        )
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    parser.add_argument("--only", choices=("turns", "memory"), help="run one half")
    args = parser.parse_args(argv)
    if args.only != "memory":
        report_conversations(conversation_scale(QUICK_TURN_COUNTS if args.quick else TURN_COUNTS))
    if args.only != "turns":
        report_memory(reply_memory(QUICK_REPLY_SIZE if args.quick else REPLY_SIZE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
