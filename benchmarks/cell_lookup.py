"""What finding a notebook's conversation by its cell ids costs, next to loading one by path.

A store of ``--conversations`` conversations of ``--turns`` turns each (every turn with its own
cell id, as in a notebook) is made in a temporary directory. Timed in the same run: loading one
notebook's conversation by its path (what every kernel start does), the look-up of a renamed
notebook's first ``%%chat`` cell id, and of all the ids of a saved 200-cell notebook; each as
the median of ``--runs``. The look-ups should cost about one load or less: they use the
``turns_by_cell`` index and happen once per kernel, only for a path the store does not know.

    python benchmarks/cell_lookup.py [--conversations 2000] [--turns 25] [--runs 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from nbchat.catalog import holders
from nbchat.store import Change, HistoryStore
from nbchat.turn import Turn


def _median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, HistoryStore(Path(home) / "h.sqlite3") as store:
        for number in range(args.conversations):
            turns = tuple(
                Turn(f"question {i} " * 20, f"answer {i} " * 80, cell_id=f"nb{number}-cell{i}")
                for i in range(args.turns)
            )
            store.write(f"/work/nb{number}.ipynb", Change(None, new=True, turns=turns))
        middle = args.conversations // 2
        one = [f"nb{middle}-cell0"]
        many = [f"nb{middle}-cell{i}" for i in range(args.turns)] + [
            f"unsaved-{i}" for i in range(200 - args.turns)
        ]

        def lookup(ids: list[str]) -> Callable[[], object]:
            def run() -> object:
                with store.transaction(write=False) as db:
                    return holders(db, ids)

            return run

        load = _median_ms(lambda: store.latest(f"/work/nb{middle}.ipynb"), args.runs)
        first = _median_ms(lookup(one), args.runs)
        saved = _median_ms(lookup(many), args.runs)
    total = args.conversations * args.turns
    print(f"store: {args.conversations:,} conversations, {total:,} turns")
    print(f"load one conversation by path:   {load:7.3f} ms (baseline)")
    print(f"look up the first cell's id:     {first:7.3f} ms ({first / load:.2f}x the load)")
    print(f"look up a 200-cell notebook:     {saved:7.3f} ms ({saved / load:.2f}x the load)")


if __name__ == "__main__":
    main()
