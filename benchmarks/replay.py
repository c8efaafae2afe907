"""What replay costs and saves: a replayed 10 KB reply against a live one, loading a 1,000-turn
conversation, and the bytes each reply's metadata adds to a saved notebook.

- *live*: a 10 KB Markdown reply streamed by the loopback server (20-byte chunks, no delay)
  into a cell display, as a kernel shows it; *replayed*: the same request answered from its
  recording. Both are timed in the asking thread (wall clock and that thread's CPU time: the
  server's threads run in this process too and are not counted), median of the runs.
- *load*: a 1,000-turn conversation read from the history store (a new store and History, as a
  restarted kernel makes), and from a saved ``.ipynb`` (reading its replies, and rebuilding the
  conversation into a fresh store).
- *metadata*: the JSON (as nbformat writes it, ``indent=1``) of the ``nbchat`` metadata of one
  reply, against the five fields saved before (model, status, finish_reason, usage, seconds).

    python benchmarks/replay.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from render_stream import make_reply

from nbchat.config import Settings
from nbchat.display import CellDisplay
from nbchat.history import History
from nbchat.ipynb import follow_saved_notebook, read_saved_replies
from nbchat.render import render_markdown
from nbchat.session import ChatSession
from nbchat.store import Change, HistoryStore
from nbchat.testing import LoopbackServer
from nbchat.testing import Reply as Scripted
from nbchat.turn import Turn

RUNS = 7
TURNS = 1_000
MODEL = "gpt-4o-mini"


class Sink:
    """Keeps what a cell would show (the last output's data and metadata)."""

    def __init__(self) -> None:
        self.last: tuple[dict[str, Any], dict[str, Any]] = ({}, {})

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.last = (data, metadata)

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self.last = (data, metadata)

    def clear(self, *, wait: bool) -> None:
        pass


def timed(action: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[float, float]:
    """(wall ms, this thread's CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.thread_time()
    action(*args, **kwargs)
    return (time.perf_counter() - wall) * 1e3, (time.thread_time() - cpu) * 1e3


def median(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def reply_costs(text: str) -> tuple[tuple[float, float], tuple[float, float], Sink]:
    live_runs, replay_runs = [], []
    sink = Sink()
    with LoopbackServer() as server:
        settings = Settings(base_url=server.base_url, model=MODEL, max_retries=0, replay="reuse")
        session = ChatSession(settings)
        for run in range(RUNS):
            server.enqueue(Scripted(text, chunk_size=20))
            cell = f"live-{run}"
            prompt = f"Write the report, version {run}"
            live_runs.append(timed(session.ask, prompt, cell_id=cell, observer=CellDisplay(sink)))
            replay_runs.append(
                timed(session.ask, prompt, cell_id=cell, observer=CellDisplay(Sink()))
            )
            assert session.last_reply is not None
            assert session.last_reply.replayed
        session.close()
    return median(live_runs), median(replay_runs), sink


def conversation(turns: int) -> list[Turn]:
    answer = make_reply(600, seed=3)
    return [
        Turn(prompt=f"Question {n}?", reply=answer, cell_id=f"cell-{n}", model=MODEL)
        for n in range(turns)
    ]


def load_from_store(folder: Path) -> tuple[float, float]:
    path = folder / "store.sqlite3"
    with HistoryStore(path) as store:
        store.write("big.ipynb", Change(None, turns=tuple(conversation(TURNS))))
    samples = []
    for _ in range(RUNS):
        with HistoryStore(path) as store:
            samples.append(timed(History, store, "big.ipynb"))
    return median(samples)


def quiet(line: str) -> None:
    """Where the rebuilt-conversation line goes while timing."""


def saved_notebook(folder: Path, sink: Sink) -> Path:
    """A notebook of 1,000 ``%%chat`` cells, each with a reply as nbchat saves it."""
    data, metadata = sink.last
    answer = make_reply(600, seed=3)
    data = {**data, "text/html": render_markdown(answer), "text/plain": answer}
    cells = []
    for n in range(TURNS):
        meta = json.loads(json.dumps(metadata))
        meta["nbchat"].update(cell_id=f"cell-{n}", prompt=f"Question {n}?")
        output = {
            "output_type": "display_data",
            "metadata": meta,
            "data": {**data, "text/markdown": answer},
        }
        cells.append(
            {
                "cell_type": "code",
                "id": f"cell-{n}",
                "metadata": {},
                "source": "%%chat",
                "execution_count": n,
                "outputs": [output],
            }
        )
    path = folder / "big.ipynb"
    path.write_text(
        json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)
    )
    return path


def load_from_ipynb(path: Path, folder: Path) -> tuple[tuple[float, float], tuple[float, float]]:
    reads = [timed(read_saved_replies, path) for _ in range(RUNS)]
    rebuilds = []
    for run in range(3):
        store = HistoryStore(folder / f"rebuild-{run}.sqlite3")
        session = ChatSession(
            Settings(base_url="http://127.0.0.1:9/v1"), history=History(store, "x")
        )
        env = {"NBCHAT_NOTEBOOK": str(path)}
        rebuilds.append(timed(follow_saved_notebook, session, {}, env, cells_named=True, say=quiet))
        assert len(session.history) == TURNS
        store.close()
    return median(reads), median(rebuilds)


def metadata_bytes(metadata: dict[str, Any]) -> tuple[int, int, int]:
    meta = metadata["nbchat"]
    before = {k: meta[k] for k in ("model", "status", "finish_reason", "usage", "seconds")}
    now = len(json.dumps({"nbchat": meta}, indent=1))
    old = len(json.dumps({"nbchat": before}, indent=1))
    return now, old, len(json.dumps(meta["prompt"]))


def main() -> None:
    text = make_reply(10_000)
    live, replayed, sink = reply_costs(text)
    print(f"A {len(text):,}-character reply shown in a cell (median of {RUNS}, asking thread):")
    print(f"  live on loopback   {live[0]:8.1f} ms wall   {live[1]:7.1f} ms CPU")
    print(f"  replayed           {replayed[0]:8.1f} ms wall   {replayed[1]:7.1f} ms CPU")
    print("  (target: a replayed 10 KB reply shown in ≤ 20 ms)")
    wall, cpu = replayed[0] / live[0], replayed[1] / live[1]
    print(f"  replayed / live    {wall:8.2f} × wall    {cpu:7.2f} × CPU")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        store = load_from_store(folder)
        path = saved_notebook(folder, sink)
        read, rebuild = load_from_ipynb(path, folder)
        size = path.stat().st_size
    print(f"Loading a {TURNS:,}-turn conversation:")
    print(f"  from the store         {store[0]:8.1f} ms wall   {store[1]:7.1f} ms CPU")
    print(f"  from a {size / 2**20:.1f} MiB .ipynb:")
    print(f"    its replies read       {read[0]:8.1f} ms wall   {read[1]:7.1f} ms CPU")
    print(f"    read, rebuilt, stored  {rebuild[0]:8.1f} ms wall   {rebuild[1]:7.1f} ms CPU")
    now, old, prompt = metadata_bytes(sink.last[1])
    print("Output metadata of one reply, as saved (indent=1):")
    print(f"  {now} bytes now, {old} before: {now - old} added, of which the prompt {prompt}")


if __name__ == "__main__":
    main()
