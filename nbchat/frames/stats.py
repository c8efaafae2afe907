"""Figures from numpy arrays, in as few passes over the values as possible.

A summary is made while someone waits: :func:`scan` reads a column once for its nulls, min
and max, and :func:`unique_counts` sorts a sample once for its distinct count, frequencies and
median. pandas, polars and numpy columns all end up here as numpy arrays.
"""

from __future__ import annotations

import math
from typing import Any

from .libraries import numpy_module


def unique_counts(values: Any) -> tuple[Any, Any]:
    """The distinct values of a numpy sample, sorted, with how often each occurs.

    One sort then gives the distinct count, the frequencies the distinct estimate needs, the
    sample's min and max, and its median, where separate calls would sort or scan again.
    """
    uniques, counts = numpy_module().unique(values, return_counts=True)
    return uniques, counts


def middle_values(uniques: Any, counts: Any) -> tuple[Any, Any] | None:
    """The two middle values (equal for an odd count) of a sample given as sorted counts."""
    np = numpy_module()
    if not counts.size:
        return None
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    lower = uniques[np.searchsorted(cumulative, (total - 1) // 2, side="right")]
    upper = uniques[np.searchsorted(cumulative, total // 2, side="right")]
    return lower, upper


def mean_of_middle(middle: tuple[Any, Any] | None) -> float | None:
    """The median from the two middle values: either one when they agree, else their mean."""
    if middle is None:
        return None
    lower, upper = (python_number(value) for value in middle)
    if lower is None or upper is None:
        return None
    return lower if lower == upper else (lower + upper) / 2


def python_number(value: Any) -> float | None:
    """A numpy, pandas or polars scalar as a Python number; None when it is missing."""
    if value is None:
        return None
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, bool):
        return int(item)
    if isinstance(item, int):
        return item
    try:
        number = float(item)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


_SCAN_CHUNK = 1 << 16  # elements per step of a scan: small enough to stay in the L2 cache


def scan(values: Any) -> tuple[int, Any, Any]:
    """Null count, min and max of a numpy array, reading its memory once.

    Three separate reductions would stream a 10-million-row column from memory three times;
    walking it in cache-sized chunks and doing all three per chunk streams it once. Nulls are
    NaN for floats and NaT for datetimes and durations (compared as int64, where NaT is the
    smallest value); other dtypes have none. Min and max leave nulls out and are None when
    every value is null.
    """
    np = numpy_module()
    kind = values.dtype.kind
    flat = values.reshape(-1)
    if kind in "Mm":
        flat = flat.view("i8")
    nat, largest = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    nulls = 0
    lows: list[Any] = []
    highs: list[Any] = []
    for start in range(0, flat.size, _SCAN_CHUNK):
        chunk = flat[start : start + _SCAN_CHUNK]
        if kind == "f":
            missing = int(np.count_nonzero(np.isnan(chunk)))
            if missing < chunk.size:
                lows.append(np.fmin.reduce(chunk))
                highs.append(np.fmax.reduce(chunk))
        elif kind in "Mm":
            low = chunk.min()
            missing = 0
            if low == nat:  # NaT sorts first, so only a chunk holding one needs a mask
                present = chunk != nat
                missing = chunk.size - int(np.count_nonzero(present))
                low = chunk.min(where=present, initial=largest)
            if missing < chunk.size:
                lows.append(low)
                highs.append(chunk.max())
        else:
            missing = 0
            lows.append(chunk.min())
            highs.append(chunk.max())
        nulls += missing
    if not lows:
        return nulls, None, None
    low, high = min(lows), max(highs)
    if kind in "Mm":
        return nulls, np.int64(low).view(values.dtype), np.int64(high).view(values.dtype)
    return nulls, low, high
