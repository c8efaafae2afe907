"""What showing a long streamed reply costs: render CPU, display updates, outputs, bytes.

Markdown replies of 10 KB, 100 KB and 1 MB (headings, paragraphs, lists, tables, code) arrive in
pieces of 5 bytes (about a token) at 100 pieces a second, on a simulated clock, so the figures do
not depend on how busy the machine is: only the CPU time is real. For each, nbchat's cell
display reports the most outputs the cell held at any moment (JupyterLab shows 50, then hides
the rest behind "Show more outputs") and the bytes sent over the final HTML's.

Both ways nbchat streams into a cell are measured: into outputs (any frontend; finished blocks
merged into at most ten outputs) and into one live widget (where a frontend draws widgets:
finished blocks sent once, the open tail resent).

For the 100 KB reply, two naive ways of doing the same are measured in the same run:

- *per chunk*: render the whole reply again for each piece and resend it in one output;
- *throttled*: the same at 15 updates a second.

The naive figures come from rendering 200 evenly spaced prefixes and scaling up (rendering all
20,000 would take half an hour).

    python benchmarks/render_stream.py
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
import time
from typing import Any

from nbchat.display import CellDisplay, UpdatePolicy
from nbchat.render import render_markdown
from nbchat.reply import Reply

PIECE_BYTES = 5  # about a token
RATE = 100.0  # pieces a second
SIZES = (10_000, 100_000, 1_000_000)
NAIVE_SIZE = 100_000


def make_reply(size: int, seed: int = 7) -> str:
    """A long, varied Markdown answer like a model writes."""
    rng = random.Random(seed)
    words = (
        "data",
        "frame",
        "column",
        "value",
        "model",
        "sample",
        "mean",
        "median",
        "variance",
        "test",
        "result",
        "index",
        "group",
        "filter",
        "merge",
        "plot",
        "axis",
        "figure",
        "memory",
        "speed",
        "type",
        "string",
        "number",
        "row",
    )

    def sentence() -> str:
        text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 18)))
        return text.capitalize() + rng.choice([".", ".", ".", ", with `df.head()`.", " **well**."])

    blocks: list[str] = []
    section = 0
    while sum(map(len, blocks)) < size:
        section += 1
        blocks.append(f"## {section}. {rng.choice(words).capitalize()} and {rng.choice(words)}")
        for _ in range(rng.randint(1, 3)):
            blocks.append(" ".join(sentence() for _ in range(rng.randint(2, 5))))
        kind = section % 4
        if kind == 0:
            blocks.append("\n".join(f"- {sentence()}" for _ in range(rng.randint(3, 6))))
        elif kind == 1:
            rows = [f"| {rng.choice(words)} | {rng.random():.3f} | {rng.randint(1, 999)} |"]
            rows = rows * 1 + [
                f"| {rng.choice(words)} | {rng.random():.3f} | {rng.randint(1, 999)} |"
                for _ in range(rng.randint(3, 8))
            ]
            blocks.append("| name | score | count |\n|---|---:|---:|\n" + "\n".join(rows))
        elif kind == 2:
            lines = [
                f"result_{i} = df.groupby('{rng.choice(words)}')['{rng.choice(words)}'].mean()"
                for i in range(rng.randint(4, 12))
            ]
            blocks.append("```python\nimport pandas as pd\n\n" + "\n".join(lines) + "\n```")
        else:
            blocks.append("\n".join(f"{i}. {sentence()}" for i in range(1, rng.randint(3, 6))))
    return "\n\n".join(blocks)[:size] + "\n"


def split(text: str, pieces: int) -> list[str]:
    step = len(text) / pieces
    cuts = [round(i * step) for i in range(pieces + 1)]
    return [text[a:b] for a, b in itertools.pairwise(cuts)]


class CountingSink:
    """Counts what a kernel would send to the page (messages, the bytes of their data) and the
    outputs the cell holds, applied the way a frontend applies them."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.html_bytes = 0
        self.outputs: set[str] = set()
        self.peak_outputs = 0
        self._clear_on_next = False

    def _count(self, data: dict[str, Any]) -> None:
        self.messages += 1
        self.bytes += len(json.dumps(data, ensure_ascii=False).encode())
        self.html_bytes += len(data.get("text/html", "").encode())

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._count(data)
        if self._clear_on_next:
            self.outputs.clear()
            self._clear_on_next = False
        self.outputs.add(display_id)
        self.peak_outputs = max(self.peak_outputs, len(self.outputs))

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._count(data)

    def clear(self, *, wait: bool) -> None:
        self.messages += 1
        if wait:
            self._clear_on_next = True
        else:
            self.outputs.clear()


class CountingLiveView:
    """A live widget that counts what it would send to the page, into ``sink``'s figures."""

    def __init__(self, sink: CountingSink) -> None:
        self.sink = sink

    def bundle(self) -> dict[str, Any]:
        return {"text/plain": "streaming", "application/vnd.jupyter.widget-view+json": {}}

    def update(self, *, append: str = "", tail: str | None = None, reset: bool = False) -> None:
        message = {"append": append, "tail": tail, "reset": reset}
        self.sink.messages += 1
        self.sink.bytes += len(json.dumps(message, ensure_ascii=False).encode())
        self.sink.html_bytes += len(append.encode()) + len((tail or "").encode())

    def close(self) -> None:
        self.sink.messages += 1


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_nbchat(pieces: list[str], *, live: bool = False) -> dict[str, float]:
    clock = SimulatedClock()
    sink = CountingSink()
    display = CellDisplay(
        sink,
        policy=UpdatePolicy(clock=clock),
        flush_when_quiet=False,
        live=(lambda: CountingLiveView(sink)) if live else None,
    )
    reply = Reply("benchmark", model="bench-model")
    cpu = time.process_time()
    display(reply)
    for piece in pieces:
        clock.now += 1 / RATE
        reply.receive({"choices": [{"index": 0, "delta": {"content": piece}}]})
        display(reply)
    reply.receive({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    reply.end("done")
    display(reply)
    cpu = time.process_time() - cpu
    return {
        "cpu": cpu,
        "updates": display.updates,
        "bytes": sink.bytes,
        "html_bytes": sink.html_bytes,
        "render": display.renderer.render_seconds,
        "peak_outputs": sink.peak_outputs,
    }


def run_naive(text: str, pieces: list[str], *, rate: float | None) -> dict[str, float]:
    """Re-render everything on each update (each chunk, or at ``rate`` a second)."""
    ends: list[int] = []
    position = 0
    next_update = 0.0
    for index, piece in enumerate(pieces):
        position += len(piece)
        now = index / RATE
        if rate is None or now >= next_update:
            ends.append(position)
            next_update = now + 1 / rate if rate else 0.0
    sample = ends[:: max(1, len(ends) // 200)]
    cpu, sizes = [], []
    for end in sample:
        started = time.process_time()
        html = render_markdown(text[:end])
        cpu.append(time.process_time() - started)
        sizes.append(len(html.encode()))
    return {
        "cpu": statistics.fmean(cpu) * len(ends),
        "updates": len(ends),
        "bytes": statistics.fmean(sizes) * len(ends),
        "html_bytes": statistics.fmean(sizes) * len(ends),
    }


def main() -> None:
    print(
        f"pieces of {PIECE_BYTES} bytes at {RATE:.0f} pieces/s (simulated clock); "
        "× final: bytes sent over the final HTML's"
    )
    header = f"{'reply':>9}{'final HTML':>12}{'render CPU':>12}{'% of stream':>12}"
    header += f"{'updates':>9}{'/s':>6}{'peak outputs':>14}{'HTML sent':>12}{'× final':>9}"
    header += f"{'all data':>12}{'× final':>9}"
    for live in (False, True):
        print("into one live widget:" if live else "into outputs:")
        print(header)
        for size in SIZES:
            report_size(size, live=live)
    print(
        "targets: ≤ 20 updates/s, ≤ 10 outputs, bytes sent ≤ 4× the final HTML, render CPU "
        "≤ 10% of the stream. 'All data' adds the final output's text/markdown and text/plain "
        "copies and JSON escaping."
    )
    text = make_reply(NAIVE_SIZE)
    pieces = split(text, len(text) // PIECE_BYTES)
    ours = run_nbchat(pieces)
    naive_throttled = run_naive(text, pieces, rate=15.0)
    naive_chunk = run_naive(text, pieces, rate=None)
    print(
        f"{NAIVE_SIZE:,} bytes, naively: every chunk re-rendered and resent costs "
        f"{naive_chunk['cpu']:,.0f} s of CPU and {naive_chunk['bytes'] / ours['bytes']:,.0f}× "
        f"the bytes nbchat sends into outputs; at 15 updates/s {naive_throttled['cpu']:,.0f} s "
        f"and {naive_throttled['bytes'] / ours['bytes']:,.0f}×"
    )


def report_size(size: int, *, live: bool) -> None:
    text = make_reply(size)
    pieces = split(text, len(text) // PIECE_BYTES)
    final_html = len(render_markdown(text).encode())
    seconds = len(pieces) / RATE
    ours = run_nbchat(pieces, live=live)
    print(
        f"{len(text.encode()):>9,}{final_html:>12,}{ours['cpu']:>11.2f}s"
        f"{100 * ours['cpu'] / seconds:>11.1f}%{ours['updates']:>9,.0f}"
        f"{ours['updates'] / seconds:>6.1f}{ours['peak_outputs']:>14,.0f}"
        f"{ours['html_bytes']:>12,.0f}{ours['html_bytes'] / final_html:>8.2f}×"
        f"{ours['bytes']:>12,.0f}{ours['bytes'] / final_html:>8.2f}×"
    )


if __name__ == "__main__":
    main()
