"""How fast does a stream of chat-completion chunks go from the socket to assembled text?

Streams 20,000 OpenAI-shaped chunks from the loopback server and reads them three ways, in one
run, against the same server:

  (a) raw      requests ``iter_lines`` + ``json.loads``: the floor of what any client can do
  (b) nbchat   ``ChatClient.stream``: SSE decoding, UTF-8 safety, assembly of the reply
  (c) openai   the official Python SDK pointed at the same server

The server sends a pre-rendered body in 16 KiB network writes, so that it is not the bottleneck.
Each reader runs several rounds, interleaved, and the best round counts (the machine is shared;
the best is the least disturbed). Prints chunks/s and the ratio to the raw baseline.

Then one long event: a single 8 MB chunk (one line of JSON), read by nbchat once in 1 KiB
network writes and once in a single write. Reading a line must cost the same however the network
cuts it; a decoder that re-copies the unfinished line on every read is quadratic in its length
and shows here as a ratio far above 1. The server runs in a process of its own for this case:
in this one, its 8,000 writes would compete with the client for one GIL, and the figure would
measure the test server. The same bytes are then fed to ``SSEDecoder`` alone.

    .venv/bin/python benchmarks/stream_parse.py [--chunks 20000] [--rounds 5] [--long-mb 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from nbchat.client import ChatClient
from nbchat.config import Settings
from nbchat.protocol import ChatRequest
from nbchat.sse import SSEDecoder
from nbchat.testing import LoopbackServer, RawSSE

WORDS = [
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog;",
    "数据",
    "analysis",
    "with",
    "🐼",
    "pandas.",
]


def sse_body(chunks: int) -> tuple[bytes, str]:
    """An OpenAI-style stream of ``chunks`` content chunks, and the text it assembles to."""
    pieces = []
    parts = []
    for i in range(chunks):
        word = WORDS[i % len(WORDS)] + " "
        parts.append(word)
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-model",
            "system_fingerprint": "fp_bench",
            "choices": [
                {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}
            ],
        }
        pieces.append("data: " + json.dumps(chunk, ensure_ascii=False) + "\n\n")
    final = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    pieces.append("data: " + json.dumps(final) + "\n\ndata: [DONE]\n\n")
    return "".join(pieces).encode("utf-8"), "".join(parts)


def long_event_body(size: int) -> tuple[bytes, str]:
    """A stream whose reply is one content chunk of ``size`` bytes, and that reply's text."""
    text = ("0123456789abcdef" * (size // 16 + 1))[:size]
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(final)}\n\ndata: [DONE]\n\n"
    return body.encode("utf-8"), text


def read_raw(base_url: str) -> str:
    payload = {
        "model": "bench-model",
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
    }
    text = []
    with requests.post(
        f"{base_url}/chat/completions", json=payload, stream=True, timeout=60
    ) as response:
        for line in response.iter_lines():
            if line.startswith(b"data: "):
                data = line[6:]
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                for choice in chunk["choices"]:
                    text.append(choice["delta"].get("content") or "")
    return "".join(text)


def make_nbchat_reader(base_url: str) -> Callable[[str], str]:
    client = ChatClient(Settings(base_url=base_url, model="bench-model", include_usage=False))
    request_messages = [{"role": "user", "content": "go"}]

    def read_nbchat(_: str) -> str:
        with client.stream(ChatRequest("bench-model", request_messages)) as stream:
            for _chunk in stream:
                pass
        assert stream.result is not None
        return stream.result.text

    return read_nbchat


def make_openai_reader(base_url: str) -> Callable[[str], str] | None:
    try:
        import openai
    except ImportError:
        return None
    sdk = openai.OpenAI(base_url=base_url, api_key="unused-on-loopback", max_retries=0)

    def read_openai(_: str) -> str:
        text = []
        stream = sdk.chat.completions.create(
            model="bench-model", messages=[{"role": "user", "content": "go"}], stream=True
        )
        for chunk in stream:
            for choice in chunk.choices:
                text.append(choice.delta.content or "")
        return "".join(text)

    return read_openai


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--long-mb", type=float, default=8.0)
    args = parser.parse_args()
    chunk_rate(args.chunks, args.rounds)
    long_event(int(args.long_mb * 1e6), args.rounds)


def chunk_rate(chunks: int, rounds: int) -> None:

    body, expected_text = sse_body(chunks)
    with LoopbackServer() as server:
        readers: dict[str, Callable[[str], str]] = {
            "raw requests.iter_lines + json.loads": read_raw,
            "nbchat ChatClient.stream": make_nbchat_reader(server.base_url),
        }
        openai_reader = make_openai_reader(server.base_url)
        if openai_reader is not None:
            readers["openai SDK"] = openai_reader
        timings: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(rounds):
            for name, reader in readers.items():
                server.enqueue(RawSSE(body, piece_size=16 * 1024))
                started = time.perf_counter()
                text = reader(server.base_url)
                timings[name].append(time.perf_counter() - started)
                if text != expected_text:
                    raise SystemExit(f"{name} assembled the wrong text")

    print(
        f"{chunks:,} chunks ({len(body) / 1e6:.1f} MB) over loopback, best of "
        f"{rounds} rounds (median in brackets)"
    )
    baseline = chunks / min(timings["raw requests.iter_lines + json.loads"])
    for name, seconds in timings.items():
        best = chunks / min(seconds)
        median = chunks / statistics.median(seconds)
        print(f"  {name:<40} {best:>10,.0f} chunks/s ({median:,.0f})  {best / baseline:5.2f}x raw")


def long_event(size: int, rounds: int) -> None:
    """One event of ``size`` bytes, in 1 KiB writes against the same bytes in one write."""
    body, expected_text = long_event_body(size)
    pieces = {"one write": len(body), "1 KiB writes": 1024}
    timings: dict[str, list[float]] = {name: [] for name in pieces}
    with serving_elsewhere(size, rounds, list(pieces.values())) as base_url:
        read = make_nbchat_reader(base_url)
        for _ in range(rounds):
            for name in pieces:
                started = time.perf_counter()
                text = read(base_url)
                timings[name].append(time.perf_counter() - started)
                if text != expected_text:
                    raise SystemExit(f"nbchat assembled the wrong text from {name}")
    print(f"one {len(body) / 1e6:.1f} MB event, nbchat ChatClient.stream, best of {rounds} rounds")
    report(timings)
    decoded: dict[str, list[float]] = {"one read": [], "1 KiB reads": []}
    for _ in range(rounds):
        for name, size in zip(decoded, (len(body), 1024), strict=True):
            reads = [body[start : start + size] for start in range(0, len(body), size)]
            decoder, started = SSEDecoder(), time.perf_counter()
            for read in reads:
                decoder.feed(read)
            decoded[name].append(time.perf_counter() - started)
    print("the same bytes fed to SSEDecoder alone")
    report(decoded)


_SERVE = """
import sys
sys.path.insert(0, {folder!r})
from stream_parse import long_event_body
from nbchat.testing import LoopbackServer, RawSSE
body, _ = long_event_body({size})
with LoopbackServer() as server:
    for _ in range({rounds}):
        for piece_size in {piece_sizes!r}:
            server.enqueue(RawSSE(body, piece_size=piece_size))
    print(server.base_url, flush=True)
    sys.stdin.read()  # serve until the benchmark is done
"""


class serving_elsewhere:
    """A loopback server in another process, with the long event enqueued ``rounds`` times in
    each of ``piece_sizes``, in the order the benchmark reads them."""

    def __init__(self, size: int, rounds: int, piece_sizes: list[int]) -> None:
        code = _SERVE.format(
            folder=str(Path(__file__).parent), size=size, rounds=rounds, piece_sizes=piece_sizes
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def __enter__(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def __exit__(self, *exc_info: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


def report(timings: dict[str, list[float]]) -> None:
    """Each best time, and its ratio to the first's."""
    baseline = min(next(iter(timings.values())))
    for name, seconds in timings.items():
        best = min(seconds)
        print(f"  {name:<40} {best * 1e3:>10,.0f} ms  {best / baseline:5.2f}x in one piece")


if __name__ == "__main__":
    main()
