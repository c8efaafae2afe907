"""What showing a long streamed reply costs: render CPU, display updates, bytes to the page.

A 100 KB Markdown reply (headings, paragraphs, lists, tables, code) arrives in 20,000 pieces at
100 pieces a second, on a simulated clock, so the figures do not depend on how busy the machine
is: only the CPU time is real. nbchat's cell display is measured next to two naive ways of doing
the same, in the same run:

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

PIECES = 20_000
RATE = 100.0  # pieces (≈ tokens) a second
TARGET_BYTES = 100_000


def make_reply(size: int = TARGET_BYTES, seed: int = 7) -> str:
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
    """Counts what a kernel would send to the page: messages and the bytes of their data."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.html_bytes = 0

    def _count(self, data: dict[str, Any]) -> None:
        self.messages += 1
        self.bytes += len(json.dumps(data, ensure_ascii=False).encode())
        self.html_bytes += len(data.get("text/html", "").encode())

    def show(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._count(data)

    def replace(self, data: dict[str, Any], metadata: dict[str, Any], display_id: str) -> None:
        self._count(data)

    def clear(self, *, wait: bool) -> None:
        self.messages += 1


class SimulatedClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_nbchat(pieces: list[str]) -> dict[str, float]:
    clock = SimulatedClock()
    sink = CountingSink()
    display = CellDisplay(sink, policy=UpdatePolicy(clock=clock), flush_when_quiet=False)
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
    text = make_reply()
    pieces = split(text, PIECES)
    final_html = len(render_markdown(text).encode())
    stream_seconds = PIECES / RATE
    ours = run_nbchat(pieces)
    naive_throttled = run_naive(text, pieces, rate=15.0)
    naive_chunk = run_naive(text, pieces, rate=None)
    print(
        f"reply: {len(text.encode()):,} bytes of Markdown in {PIECES:,} pieces, "
        f"{stream_seconds:.0f} s at {RATE:.0f} pieces/s (simulated clock); "
        f"final HTML {final_html:,} bytes"
    )
    header = f"{'':<22}{'render CPU':>11}{'% of stream':>12}{'updates':>9}{'/s':>6}"
    header += f"{'HTML sent':>15}{'× final':>11}{'all data sent':>16}{'× final':>11}"
    print(header)
    for name, figures in (
        ("nbchat CellDisplay", ours),
        ("naive, 15 updates/s", naive_throttled),
        ("naive, every chunk", naive_chunk),
    ):
        print(
            f"{name:<22}{figures['cpu']:>10.2f}s{100 * figures['cpu'] / stream_seconds:>11.1f}%"
            f"{figures['updates']:>9,.0f}{figures['updates'] / stream_seconds:>6.1f}"
            f"{figures['html_bytes']:>15,.0f}{figures['html_bytes'] / final_html:>10.2f}×"
            f"{figures['bytes']:>16,.0f}{figures['bytes'] / final_html:>10.2f}×"
        )
    print(
        "targets: ≤ 20 updates/s, HTML sent ≤ 3× the final HTML, render CPU ≤ 10% of the "
        f"stream. 'All data' adds the final output's text/markdown and text/plain copies and "
        f"JSON escaping. nbchat's Markdown rendering itself: {ours['render']:.2f} s"
    )
    print(
        f"naive per-chunk sends {naive_chunk['bytes'] / max(ours['bytes'], 1):,.0f}× "
        f"the bytes nbchat sends; naive at 15/s "
        f"{naive_throttled['bytes'] / max(ours['bytes'], 1):,.0f}×"
    )


if __name__ == "__main__":
    main()
