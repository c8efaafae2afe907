"""How fast does a stream of chat-completion chunks go from the socket to assembled text?

Streams 20,000 OpenAI-shaped chunks from the loopback server and reads them three ways, in one
run, against the same server:

  (a) raw      requests ``iter_lines`` + ``json.loads``: the floor of what any client can do
  (b) nbchat   ``ChatClient.stream``: SSE decoding, UTF-8 safety, assembly of the reply
  (c) openai   the official Python SDK pointed at the same server

The server sends a pre-rendered body in 16 KiB network writes, so that it is not the bottleneck.
Each reader runs several rounds, interleaved, and the best round counts (the machine is shared;
the best is the least disturbed). Prints chunks/s and the ratio to the raw baseline.

    .venv/bin/python benchmarks/stream_parse.py [--chunks 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import requests

from nbchat.client import ChatClient
from nbchat.config import Settings
from nbchat.protocol import ChatRequest
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
    args = parser.parse_args()

    body, expected_text = sse_body(args.chunks)
    with LoopbackServer() as server:
        readers: dict[str, Callable[[str], str]] = {
            "raw requests.iter_lines + json.loads": read_raw,
            "nbchat ChatClient.stream": make_nbchat_reader(server.base_url),
        }
        openai_reader = make_openai_reader(server.base_url)
        if openai_reader is not None:
            readers["openai SDK"] = openai_reader
        timings: dict[str, list[float]] = {name: [] for name in readers}
        for _ in range(args.rounds):
            for name, reader in readers.items():
                server.enqueue(RawSSE(body, piece_size=16 * 1024))
                started = time.perf_counter()
                text = reader(server.base_url)
                timings[name].append(time.perf_counter() - started)
                if text != expected_text:
                    raise SystemExit(f"{name} assembled the wrong text")

    print(
        f"{args.chunks:,} chunks ({len(body) / 1e6:.1f} MB) over loopback, best of "
        f"{args.rounds} rounds (median in brackets)"
    )
    baseline = args.chunks / min(timings["raw requests.iter_lines + json.loads"])
    for name, seconds in timings.items():
        best = args.chunks / min(seconds)
        median = args.chunks / statistics.median(seconds)
        print(f"  {name:<40} {best:>10,.0f} chunks/s ({median:,.0f})  {best / baseline:5.2f}x raw")


if __name__ == "__main__":
    main()
