"""What describing a big dataframe for a prompt costs: time and tokens.

A 10,000,000 × 20 frame of mixed columns (integers, floats with NaN, strings with about 1,000
distinct values, categoricals, datetimes with and without a time zone, booleans, a nullable
integer and a duration) is built with numpy in pandas and in polars. ``nbchat.frames.summarize``
is timed on each next to the library's own ``describe`` in the same run, and its output is
counted with ``estimate_tokens``. A 10,000 × 500 frame shows what the budget does to a wide one.

    python benchmarks/frame_summary.py [--rows 10000000] [--runs 5]

Targets: at most 250 ms per 10-million-row summary, at most 1,000 tokens for every summary.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

from nbchat.frames import estimate_tokens, summarize

SUMMARY_TARGET_MS = 250.0
TOKEN_TARGET = 1000


def _strings(rng: np.random.Generator, rows: int, distinct: int, prefix: str) -> pa.Array:
    """``rows`` strings drawn from ``distinct`` values, built in Arrow without Python objects."""
    codes = pa.array(rng.integers(0, distinct, rows).astype(np.int32))
    words = pa.array([f"{prefix}_{i:04d}" for i in range(distinct)])
    return pa.DictionaryArray.from_arrays(codes, words).cast(pa.large_string())


def build_columns(rows: int, seed: int = 1) -> dict[str, Any]:
    """The raw material shared by both frames: numpy arrays and Arrow string arrays."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(4):
        columns[f"int_{i}"] = rng.integers(-1_000, 10 ** (3 + i), rows)
    for i in range(4):
        values = rng.normal(100 * (i + 1), 25, rows)
        values[rng.random(rows) < 0.01] = np.nan
        columns[f"float_{i}"] = values
    columns["ratio"] = rng.random(rows, dtype=np.float32)
    for i, name in enumerate(("city", "product", "customer")):
        columns[name] = _strings(rng, rows, 1_000 * (i + 1), name)
    columns["segment"] = rng.integers(0, 10, rows)
    columns["channel"] = rng.integers(0, 50, rows)
    seconds = rng.integers(1_500_000_000, 1_700_000_000, rows)
    columns["created_at"] = seconds * 1_000_000
    columns["shipped_at"] = (seconds + rng.integers(0, 86_400 * 30, rows)) * 1_000_000
    columns["is_member"] = rng.random(rows) < 0.3
    columns["returned"] = rng.random(rows) < 0.02
    columns["rating"] = (rng.integers(1, 6, rows), rng.random(rows) < 0.2)
    columns["delivery"] = rng.integers(0, 86_400 * 10, rows) * 1_000_000
    return columns


def pandas_frame(columns: dict[str, Any]) -> pd.DataFrame:
    data: dict[str, Any] = {}
    for name, values in columns.items():
        if name in ("city", "product", "customer"):
            data[name] = pd.Series(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
        elif name in ("segment", "channel"):
            labels = [f"{name}_{i}" for i in range(values.max() + 1)]
            data[name] = pd.Categorical.from_codes(values.astype(np.int8), labels)
        elif name == "created_at":
            data[name] = pd.DatetimeIndex(values.view("M8[us]")).tz_localize("UTC")
        elif name == "shipped_at":
            data[name] = values.view("M8[us]")
        elif name == "rating":
            data[name] = pd.arrays.IntegerArray(values[0], values[1])
        elif name == "delivery":
            data[name] = values.view("m8[us]")
        else:
            data[name] = values
    return pd.DataFrame(data, copy=False)


def polars_frame(columns: dict[str, Any]) -> pl.DataFrame:
    series: list[pl.Series] = []
    for name, values in columns.items():
        if name in ("city", "product", "customer"):
            series.append(pl.Series(name, values))
        elif name in ("segment", "channel"):
            labels = pl.Series([f"{name}_{i}" for i in range(values.max() + 1)])
            series.append(labels.gather(values).alias(name).cast(pl.Categorical))
        elif name == "created_at":
            series.append(pl.Series(name, values).cast(pl.Datetime("us", "UTC")))
        elif name == "shipped_at":
            series.append(pl.Series(name, values).cast(pl.Datetime("us")))
        elif name == "rating":
            series.append(pl.Series(name, pa.array(values[0], mask=values[1])))
        elif name == "delivery":
            series.append(pl.Series(name, values).cast(pl.Duration("us")))
        else:
            series.append(pl.Series(name, values))
    return pl.DataFrame(series)


def timed(function: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Best and median wall time in milliseconds, and the last result."""
    times = []
    result: object = None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    rows, runs = arguments.rows, arguments.runs

    started = time.perf_counter()
    columns = build_columns(rows)
    frames = {"pandas": pandas_frame(columns), "polars": polars_frame(columns)}
    built = time.perf_counter() - started
    print(f"built {rows:,} × {len(columns)} in pandas and polars in {built:.1f} s")

    describes: dict[str, Callable[[], object]] = {
        "pandas": lambda: frames["pandas"].describe(include="all"),
        "polars": lambda: frames["polars"].describe(),
    }
    header = f"{'':<8}{'summarize best':>16}{'median':>9}{'tokens':>8}{'describe best':>15}"
    print(header + f"{'median':>9}{'describe ÷ summarize':>22}")
    results = {}
    for library, frame in frames.items():
        best, median, text = timed(lambda frame=frame: summarize(frame, "sales"), runs)
        tokens = estimate_tokens(str(text))
        described_best, described_median, _ = timed(describes[library], max(1, runs // 2))
        results[library] = (best, median, tokens, str(text))
        print(
            f"{library:<8}{best:>14.0f}ms{median:>7.0f}ms{tokens:>8,}{described_best:>13.0f}ms"
            f"{described_median:>7.0f}ms{described_median / median:>21.1f}×"
        )

    wide_rng = np.random.default_rng(2)
    wide = pd.DataFrame(
        wide_rng.normal(size=(10_000, 500)), columns=[f"feature_{i}" for i in range(500)]
    )
    wide_best, _, wide_text = timed(lambda: summarize(wide, "wide"), max(1, runs // 2))
    wide_tokens = estimate_tokens(str(wide_text))
    print(f"pandas 10,000 × 500: {wide_tokens:,} tokens in {wide_best:.0f} ms")

    slowest = max(median for _, median, _, _ in results.values())
    most_tokens = max([wide_tokens, *(tokens for _, _, tokens, _ in results.values())])
    verdict = "met" if slowest <= SUMMARY_TARGET_MS and most_tokens <= TOKEN_TARGET else "MISSED"
    print(
        f"targets: ≤ {SUMMARY_TARGET_MS:.0f} ms per {rows:,}-row summary (slowest median "
        f"{slowest:.0f} ms), ≤ {TOKEN_TARGET:,} tokens (largest {most_tokens:,}): {verdict}"
    )
    for library, (_, _, _, text) in results.items():
        print(f"\n{library} summary:\n{text}")


if __name__ == "__main__":
    main()
