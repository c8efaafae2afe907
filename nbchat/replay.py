"""Record and replay: answer a request from a reply already received for the same request.

The ``replay`` setting (``%chat config replay=…``, ``NBCHAT_REPLAY``) has three modes:

``off``
    every request goes to the server (the default);
``reuse``
    a request whose fingerprint (:mod:`nbchat.fingerprint`) matches a recording is answered
    from it: no network, no cost, no key needed; any other request goes to the server;
``only``
    the server is never asked: a request with no recording fails with one line naming what
    differs from the nearest recording (:class:`~nbchat.errors.NoRecordingError`).

Recordings are the turns of the notebook's conversation that were answered completely (each
stores its request's identity) and the replies saved in the notebook's ``.ipynb``
(:mod:`nbchat.ipynb`). A recording is replayed as a :class:`ReplayStream`: its text cut into
chunks and handed to the reply exactly as a server's chunks are, so the cell, the panel and the
history follow a replayed reply through the same code as a live one. The replayed turn is kept
in the conversation like a live one, marked ``replayed``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import NoRecordingError
from .fingerprint import RequestKey
from .protocol import ChatResult, Choice
from .turn import Turn

__all__ = ["CHUNK_SIZE", "Recording", "Recordings", "ReplayStream"]

CHUNK_SIZE = 2048
"""Characters per replayed chunk: few enough chunks to be quick, more than one to stream."""
PACED_CHUNK_SIZE = 16
"""Characters per chunk when the original pace is kept: about four tokens."""
PACED_CHARACTERS_PER_SECOND = 160.0
"""The pace of a recording whose duration is unknown: about 40 tokens a second."""
_MOST_PACED_SECONDS = 120.0  # a paced replay never takes longer than this
_SHOWN_PROMPT = 40  # characters of a prompt quoted in a one-line difference


@dataclass(frozen=True, slots=True)
class Recording:
    """A reply received once, and the request it answered."""

    key: RequestKey
    text: str
    """The reply's Markdown (first choice)."""
    model: str
    """The model the server said answered."""
    finish_reason: str | None = "stop"
    source: str = "history"
    """Where it was found: ``history``, or the notebook file's name."""
    seconds: float | None = None
    """How long the reply took when it was recorded, when known (the saved notebook says)."""

    @classmethod
    def of_turn(cls, turn: Turn) -> Recording | None:
        """The turn as a recording, when it completed and knows its request."""
        if turn.request is None or turn.status != "complete" or turn.tool_calls or turn.refusal:
            return None
        return cls(turn.request, turn.reply, turn.model, turn.finish_reason, "history")

    def stream(self, *, paced: bool = False) -> ReplayStream:
        """Play it back: at once, or (``paced``) over as long as it took when recorded."""
        if not paced:
            return ReplayStream(self)
        seconds = self.seconds or len(self.text) / PACED_CHARACTERS_PER_SECOND
        chunks = max(1, -(-len(self.text) // PACED_CHUNK_SIZE))
        pause = min(seconds, _MOST_PACED_SECONDS) / chunks
        return ReplayStream(self, chunk_size=PACED_CHUNK_SIZE, pause=pause)

    def result(self) -> ChatResult:
        """The whole reply, as a non-streamed answer would be."""
        choice = Choice(index=0, text=self.text, finish_reason=self.finish_reason)
        return ChatResult(choices=(choice,), model=self.model)


class ReplayStream:
    """A recording played back as a ``ChatStream`` plays a server's: iterate for chunks, then
    read ``result``; :meth:`cancel` stops it from any thread (``result`` then stays None, and
    the reply keeps what it received, as with a live stream)."""

    def __init__(
        self, recording: Recording, *, chunk_size: int = CHUNK_SIZE, pause: float = 0.0
    ) -> None:
        self.recording = recording
        self.chunk_size = chunk_size
        self.pause = pause
        """Seconds between two chunks (0: none)."""
        self.result: ChatResult | None = None
        self._cancelled = threading.Event()

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def cancel(self) -> None:
        self._cancelled.set()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        recording = self.recording
        text = recording.text
        for start in range(0, len(text), self.chunk_size):
            if start and self.pause and self._cancelled.wait(self.pause):
                return
            if self._cancelled.is_set():
                return
            piece = text[start : start + self.chunk_size]
            yield {"model": recording.model, "choices": [{"index": 0, "delta": {"content": piece}}]}
        finish = {"index": 0, "delta": {}, "finish_reason": recording.finish_reason}
        yield {"model": recording.model, "choices": [finish]}
        self.result = recording.result()


class Recordings:
    """Every recording a session may replay, by fingerprint; the history's are looked up as
    they are at the time of asking (a turn just kept is a recording at once)."""

    def __init__(self) -> None:
        self._saved: dict[str, Recording] = {}

    def __len__(self) -> int:
        return len(self._saved)

    def add(self, recordings: Iterable[Recording]) -> None:
        """Add recordings (from a saved notebook); the first of one fingerprint stays."""
        for recording in recordings:
            self._saved.setdefault(recording.key.fingerprint, recording)

    def _all(self, turns: Iterable[Turn]) -> Iterator[Recording]:
        for turn in turns:
            recording = Recording.of_turn(turn)
            if recording is not None:
                yield recording
        yield from self._saved.values()

    def find(self, key: RequestKey, turns: Iterable[Turn] = ()) -> Recording | None:
        """The recording that answers ``key``: the latest turn's first, then the notebook's."""
        for turn in reversed(tuple(turns)):
            recording = Recording.of_turn(turn)
            if recording is not None and recording.key.fingerprint == key.fingerprint:
                return recording
        return self._saved.get(key.fingerprint)

    def missing(self, key: RequestKey, turns: Iterable[Turn] = ()) -> NoRecordingError:
        """The one-line error for a request no recording answers, naming what differs from the
        nearest recording (the one that differs in the fewest parts, latest first)."""
        best: tuple[list[str], Recording] | None = None
        for recording in self._all(turns):
            differences = _differences(key, recording.key)
            if best is None or len(differences) < len(best[0]):
                best = (differences, recording)
        hint = "run with replay=reuse (or off) to ask the server"
        if best is None:
            return NoRecordingError(
                "replay=only: no request was recorded yet, so none can be replayed",
                hint=f"{hint}; a saved notebook's replies are read when NBCHAT_NOTEBOOK names it",
            )
        differences, recording = best
        return NoRecordingError(
            f"replay=only: no recording of this request; the nearest ({recording.source}) "
            f"differs in {', '.join(differences) or 'nothing but its fingerprint'}",
            hint=hint,
        )


def _differences(asked: RequestKey, recorded: RequestKey) -> list[str]:
    """What differs between two requests, in words, most telling first."""
    differences = []
    if asked.prompt != recorded.prompt:
        differences.append(f"the prompt (recorded: {_quoted(recorded.prompt)})")
    if asked.model != recorded.model:
        differences.append(f"the model (recorded: {recorded.model!r}, now {asked.model!r})")
    for name in sorted(set(asked.params) | set(recorded.params)):
        if asked.params.get(name) != recorded.params.get(name):
            now, then = asked.params.get(name), recorded.params.get(name)
            differences.append(f"parameter {name} (recorded: {then!r}, now {now!r})")
    if asked.host != recorded.host:
        differences.append(f"the server (recorded: {recorded.host}, now {asked.host})")
    if asked.context != recorded.context:
        differences.append("the earlier messages (system prompt or conversation)")
    return differences


def _quoted(prompt: str) -> str:
    line = " ".join(prompt.split())
    return repr(line if len(line) <= _SHOWN_PROMPT else line[: _SHOWN_PROMPT - 1] + "…")
