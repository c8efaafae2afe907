"""Access to the SSE conformance corpus, which lives next to the repository, never inside it.

The corpus is ``../shared/sse-corpus`` from the repository root (39 ``.sse`` captures, ``INDEX.md``
and ``expected.json``); the ``NBCHAT_SSE_CORPUS`` environment variable points elsewhere. It is read
once, at import (collection) time, because an autouse fixture clears every ``NBCHAT_*`` variable
while a test runs. When the corpus is missing the corpus tests *fail* with a message saying where
it was looked for: parametrizing over an empty directory would otherwise skip them silently.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from nbchat.sse import ServerSentEvent, SSEDecoder

__all__ = [
    "CAPTURE_COUNT",
    "CORPUS_DIR",
    "capture",
    "capture_named",
    "capture_names",
    "decode",
    "expected",
    "expected_tail_data",
    "pieces",
]

ENV_VAR = "NBCHAT_SSE_CORPUS"
CAPTURE_COUNT = 39
CORPUS_DIR = (
    Path(os.environ[ENV_VAR]).expanduser().resolve()
    if os.environ.get(ENV_VAR)
    else Path(__file__).resolve().parents[1].parent / "shared" / "sse-corpus"
)
"""Where the corpus is: ``$NBCHAT_SSE_CORPUS``, else ``../shared/sse-corpus``."""
_MISSING = "corpus-missing"


def _require_corpus() -> Path:
    if not (CORPUS_DIR / "expected.json").is_file():
        pytest.fail(
            f"SSE conformance corpus not found: {CORPUS_DIR} has no expected.json. It must sit "
            f"at ../shared/sse-corpus next to the repository, or {ENV_VAR} must point to it.",
            pytrace=False,
        )
    return CORPUS_DIR


def capture_names() -> list[str]:
    """The ``.sse`` file names, sorted, for ``parametrize``.

    A missing or empty corpus gives one placeholder name, so that the tests run and fail in
    :func:`capture` / :func:`expected` instead of being skipped for an empty parameter set.
    """
    names = sorted(p.name for p in CORPUS_DIR.glob("*.sse")) if CORPUS_DIR.is_dir() else []
    return names or [_MISSING]


def capture_named(prefix: str) -> str:
    """The file name of the one capture whose name starts with ``prefix`` (e.g. ``"01_"``)."""
    _require_corpus()
    matches = [name for name in capture_names() if name.startswith(prefix)]
    if len(matches) != 1:
        pytest.fail(f"{CORPUS_DIR} has {len(matches)} captures named {prefix}*", pytrace=False)
    return matches[0]


def capture(name: str) -> bytes:
    """The raw bytes of one capture."""
    return (_require_corpus() / name).read_bytes()


@cache
def _expected() -> dict[str, Any]:
    return json.loads((_require_corpus() / "expected.json").read_text(encoding="utf-8"))


def expected(name: str | None = None) -> Any:
    """``expected.json`` as a whole, or its entry for one capture."""
    table = _expected()
    if name is None:
        return table
    if name not in table:
        pytest.fail(f"{name} has no entry in expected.json", pytrace=False)
    return table[name]


def expected_tail_data(name: str) -> str | None:
    """The data of the event :meth:`SSEDecoder.close` should hand back for a capture.

    ``expected.json`` records ``undispatched_tail`` in two forms. When the last line has no line
    end at all (09), a strict reader never even reads it as a line, and the tail is that raw line,
    ``data: [DONE]``. When the line was read but no blank line followed (94), the tail is the data
    buffer, ``[DONE]``. ``close()`` reads the raw line, so both come back as ``[DONE]``.
    """
    tail = expected(name)["strict_whatwg"]["undispatched_tail"]
    if tail is None:
        return None
    raw = capture(name)
    if raw.endswith((b"\n", b"\r")):
        return tail
    assert raw.decode("utf-8").endswith(tail), f"{name}: the raw tail is not the last line"
    field, _, value = tail.partition(":")
    assert field == "data", f"{name}: unexpected raw tail {tail!r}"
    return value.removeprefix(" ")


def pieces(data: bytes, size: int | None) -> list[bytes]:
    """``data`` cut into reads of ``size`` bytes (``None``: one read)."""
    if size is None:
        return [data]
    return [data[i : i + size] for i in range(0, len(data), size)]


def decode(
    data: bytes, size: int | None = None
) -> tuple[list[ServerSentEvent], ServerSentEvent | None, SSEDecoder]:
    """Feed ``data`` to a fresh decoder in reads of ``size`` bytes, then close it.

    Returns the dispatched events, what ``close()`` handed back, and the decoder (for its
    ``comment_count``, ``retry`` and ``foreign_fields``).
    """
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in pieces(data, size):
        events.extend(decoder.feed(piece))
    return events, decoder.close(), decoder
