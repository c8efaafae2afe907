"""What building the ``%chat explain`` context adds to building a request.

A real IPython shell with nbchat loaded runs cells that fail in three ways: in a function of an
earlier cell (small variables), deep in pandas on a 1,000,000-row frame the cell names, and in
a recursion that ends in ``RecursionError`` (thousands of frames to walk). For each, the
request ``%chat explain`` sends (``compose(..., error=...)`` then ``build_request``) is timed
against the plain request for the same question, interleaved in the same loop so that a noisy
machine slows both alike. The pandas case is also timed against ``--df`` of the same frame,
since its summary is what that costs already.

    python benchmarks/explain_context.py [--runs 30]

Target: at most 20 ms on top of the plain request (the pandas case: on top of ``--df``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

TARGET_MS = 20.0
QUESTION = "Explain this error and how to fix it."


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "nbchat")
    return shell


def _median_ms(function: Callable[[], object], samples: list[float]) -> None:
    started = time.perf_counter()
    function()
    samples.append((time.perf_counter() - started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    os.environ["NBCHAT_HOME"] = tempfile.mkdtemp(prefix="nbchat-bench-")
    os.environ["NBCHAT_BASE_URL"] = "http://127.0.0.1:9/v1"  # never contacted
    sys.setrecursionlimit(3_000)

    import nbchat
    from nbchat.frames import estimate_tokens
    from nbchat.prompt import compose

    shell = _shell()
    magics = nbchat._extension_magics[id(shell)]
    session = nbchat.get_session()
    namespace = shell.user_ns

    def errors_of(*cells: str) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):  # the tracebacks the shell prints
            for cell in cells:
                shell.run_cell(cell, store_history=True)
        return magics.errors.latest()

    cases: dict[str, tuple[Any, tuple[str, ...]]] = {}
    cases["function of an earlier cell"] = (
        errors_of(
            "def ratio(a, b):\n    return a / b\n",
            "rows = list(range(1000))\nlabel = 'totals'\nzero = 0\nshare = ratio(len(rows), zero)",
        ),
        (),
    )
    cases["RecursionError, ~3,000 frames"] = (
        errors_of("def down(n):\n    return down(n + 1)\n", "depth = 0\ndown(depth)"),
        (),
    )
    try:
        import numpy as np
        import pandas as pd
    except ImportError:
        print("(pandas not installed: the pandas case is skipped)")
    else:
        rng = np.random.default_rng(0)
        namespace["sales"] = pd.DataFrame(
            {
                "units": rng.integers(0, 20, 1_000_000),
                "price": rng.normal(25, 5, 1_000_000),
                "region": pd.Categorical(rng.choice(["n", "s", "e", "w"], 1_000_000)),
            }
        )
        cases["KeyError deep in pandas, 1M-row frame"] = (
            errors_of("sales['revenue'].sum()"),
            ("sales",),
        )

    def plain() -> object:
        return session.build_request(compose(QUESTION, namespace))

    print(f"median of {runs} runs; the plain request for the same question is the baseline")
    worst_on_top = 0.0
    for name, (last, frames) in cases.items():

        def explained(last: Any = last) -> object:
            return session.build_request(compose(QUESTION, namespace, error=last))

        def with_df(frames: tuple[str, ...] = frames) -> object:
            return session.build_request(compose(QUESTION, namespace, frames=frames))

        samples: dict[str, list[float]] = {"plain": [], "explain": [], "--df": []}
        for _ in range(runs):
            _median_ms(plain, samples["plain"])
            _median_ms(explained, samples["explain"])
            if frames:
                _median_ms(with_df, samples["--df"])
        base = statistics.median(samples["plain"])
        explain_ms = statistics.median(samples["explain"])
        baseline = statistics.median(samples["--df"]) if frames else base
        on_top = explain_ms - baseline
        worst_on_top = max(worst_on_top, on_top)
        context = compose(QUESTION, namespace, error=last).text
        print(f"{name}:")
        print(f"  plain request        {base:8.2f} ms")
        if frames:
            print(f"  --df {frames[0]:<15} {baseline:8.2f} ms")
        print(f"  %chat explain        {explain_ms:8.2f} ms   +{on_top:.2f} ms on top")
        print(f"  context              {estimate_tokens(context):,} estimated tokens (≤ 3,000)")
    verdict = "met" if worst_on_top <= TARGET_MS else "MISSED"
    print(f"worst: +{worst_on_top:.2f} ms on top (target ≤ {TARGET_MS:.0f} ms: {verdict})")


if __name__ == "__main__":
    main()
