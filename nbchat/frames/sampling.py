"""The one uniform sample of rows, and how figures taken from it are marked.

Medians, distinct counts and frequent values of a big frame come from one sample of rows,
drawn with a fixed seed so that the same frame gives the same text. :class:`Scale` carries
what the sample is against the frame, so that every figure from it is written exact or marked
``~`` by the same rule, and :func:`sample_legend` says what the sample was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .libraries import numpy_module
from .text import count_text, number_text, rough_text, share_text


def sample_positions(total: int, size: int, seed: int) -> Any:
    """Sorted row positions of a uniform sample without replacement (all rows if few).

    ``Generator.choice(..., replace=False)`` takes a few milliseconds even for 10 million rows
    (it does not shuffle them all); sorting keeps the take cache-friendly and rows in order.
    """
    np = numpy_module()
    if total <= size:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size, replace=False))


def pick_rows(sample_length: int, rows: int, seed: int) -> Any:
    """Which sampled rows to show: a random subset of the sample, in frame order."""
    np = numpy_module()
    rng = np.random.default_rng([seed, 1])
    count = min(rows, sample_length)
    return np.sort(rng.choice(sample_length, count, replace=False))


def _estimate_distinct(counts: Sequence[int] | Any, population: float) -> float:
    """Distinct values in a column from the frequency counts of its sample.

    Chao and Lin's estimator for sampling without replacement: the sample's distinct count
    plus a term driven by values seen once (f1) against values seen twice (f2). A sample where
    every value repeats says the distinct count is reached; one where every value is unique
    says the column is (nearly) a key; in between it extrapolates. Clamped to what is possible.
    """
    np = numpy_module()
    counts = np.asarray(counts)
    seen = int(counts.size)
    sampled = int(counts.sum())
    if seen == 0 or sampled >= population:
        return float(seen)
    f1 = int(np.count_nonzero(counts == 1))
    f2 = int(np.count_nonzero(counts == 2))
    if f1 == 0:
        return float(seen)
    q = sampled / population
    denominator = 2 * f2 * sampled / max(sampled - 1, 1) + q / (1 - q) * f1
    estimate = seen + f1 * f1 / denominator
    return float(min(max(estimate, seen), population))


class Scale:
    """How figures from the sample relate to the frame: exact, or estimated and marked."""

    def __init__(self, total: int, sampled: int, *, partial: bool = False) -> None:
        self.total = total
        self.sampled = sampled
        self.partial = partial
        self.exact = sampled >= total and not partial
        self.mark = "" if self.exact else "~"

    def count(self, in_sample: int) -> str:
        if self.exact:
            return count_text(in_sample)
        if self.sampled == 0:
            return "~0"
        return "~" + rough_text(in_sample * self.total / self.sampled)

    def distinct(self, counts: Any, non_null_fraction: float, possible: int | None = None) -> str:
        """Distinct values from the sample's frequency counts, exact when the sample is the
        frame or when it already holds every value the dtype allows (both booleans, all
        categories)."""
        seen = int(numpy_module().asarray(counts).size)
        if self.exact or (possible is not None and seen >= possible and not self.partial):
            return count_text(seen)
        population = max(
            non_null_fraction * self.total, float(numpy_module().asarray(counts).sum())
        )
        return "~" + rough_text(_estimate_distinct(counts, population))

    def value(self, value: float) -> str:
        return self.mark + number_text(value)

    def share(self, part: int, whole: int) -> str:
        return self.mark + share_text(part / whole) if whole else "0%"


def sample_legend(sampled: int, total: int, seed: int) -> str:
    return (
        f"~ = estimated from a uniform random sample of {count_text(sampled)} of "
        f"{count_text(total)} rows (seed {seed})"
    )
