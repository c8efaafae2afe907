"""What the context budget adds to building a request over a long conversation.

A 300-turn conversation (each turn a 300-character question and a 2,000-character Markdown
answer, one in ten with non-ASCII text) is built into a request the way ``ChatSession``
built it before the budget (system prompt, every turn, the message: no estimate, nothing left
out) and by ``ChatSession.build_request`` today, in the same run: with a budget that keeps
every turn (each one is estimated) and with a 4,000-token budget (most are left out).

    python benchmarks/request_building.py [--turns 300] [--runs 200]

Target: at most 20 ms on top of the build without the budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from nbchat.config import Settings
from nbchat.history import History, Turn
from nbchat.protocol import ChatRequest, Message
from nbchat.session import ChatSession

TARGET_MS = 20.0
SYSTEM = "You are a careful assistant for data analysis in a Jupyter notebook."
QUESTION = "How do I group the sales frame by month and region, and plot the revenue? " * 4
ANSWER = (
    "Group by a monthly period, then unstack the regions:\n\n```python\n"
    "monthly = sales.groupby([sales.date.dt.to_period('M'), 'region']).revenue.sum()\n"
    "monthly.unstack('region').plot()\n```\n\n"
    + "Each line of the plot is a region; the x axis is the month. "
    * 28
)
ACCENTED = "Les ventes par mois et par région : répartition, écarts, tendances. "


def conversation(turns: int) -> History:
    history = History()
    for number in range(turns):
        extra = ACCENTED * 3 if number % 10 == 0 else ""
        history.commit(Turn(prompt=f"{number}. {QUESTION}{extra}", reply=ANSWER, model="m"))
    return history


def build_without_budget(session: ChatSession, prompt: str) -> ChatRequest:
    """The request as ``build_request`` made it before the context budget."""
    messages: list[Message] = [{"role": "system", "content": SYSTEM}]
    for turn in session.history.before(None):
        messages.extend(turn.messages())
    messages.append({"role": "user", "content": prompt})
    return ChatRequest.build(session.settings.model, messages, session.settings.params)


def median_ms(build: Callable[[], ChatRequest], runs: int) -> float:
    build()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        build()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    history = conversation(args.turns)
    base = Settings(base_url="http://127.0.0.1:9/v1", model="test-model")
    whole = ChatSession(replace(base, context_budget=10_000_000), history=history)
    small = ChatSession(replace(base, context_budget=4_000), history=history)
    for session in (whole, small):
        session.system = SYSTEM
    prompt = "And by week?"

    before = median_ms(lambda: build_without_budget(whole, prompt), args.runs)
    kept_all = median_ms(lambda: whole.build_request(prompt), args.runs)
    trimmed = median_ms(lambda: small.build_request(prompt), args.runs)
    request = small.build_request(prompt)
    everything = whole.build_request(prompt)
    print(f"{args.turns} turns, median of {args.runs} builds")
    print(f"  without the budget:            {before:7.2f} ms")
    print(
        f"  budget keeping every turn:     {kept_all:7.2f} ms  ({kept_all - before:+.2f} ms, "
        f"~{everything.estimated_prompt_tokens:,} tokens)"
    )
    print(
        f"  4,000-token budget:            {trimmed:7.2f} ms  ({trimmed - before:+.2f} ms, "
        f"{request.turns_left_out} turns left out, ~{request.estimated_prompt_tokens:,} tokens)"
    )
    worst = max(kept_all, trimmed) - before
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(
        f"  on top of the build without it: {worst:.2f} ms, {verdict} the {TARGET_MS:.0f} ms target"
    )


if __name__ == "__main__":
    main()
