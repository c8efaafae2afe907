"""numpy arrays, described as tables: fields of a record array, columns of a narrow 2-D array,
or else one column of all the elements.

Masked entries count as nulls. An array small enough is read whole for exact null counts, min
and max; the other figures come from the sample, as for frames.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .cells import (
    TOP_VALUES,
    duration_stats,
    length_text,
    numeric_stats,
    range_text,
    rows_table,
    top_text,
    types_text,
)
from .libraries import numpy_module
from .model import Column, Described, Facts, Options, fill_facts
from .sampling import Scale, pick_rows, sample_legend, sample_positions
from .stats import mean_of_middle, middle_values, python_number, scan, unique_counts
from .text import count_text, shape_text, share_text

_ARRAY_COLUMNS = 50  # a 2-D array with at most this many columns is summarised per column
_EXACT_ARRAY_SIZE = 20_000_000  # elements of an array scanned whole for exact figures


class _NumpyColumn:
    """Facts of one array column (or of all the elements of an array, flattened)."""

    def __init__(self, full: Any, sample: Any, scale: Scale, exact_pass: bool) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.kind = full.dtype.kind
        # the whole array is read when it is small enough; a scan covers numbers and times
        self.exact_pass = exact_pass and not scale.exact
        self.ends: tuple[Any, Any] | None = None
        self.facts = Facts()

    def _exact_nulls(self) -> int | None:
        np = numpy_module()
        if self.scale.exact:
            return int(np.count_nonzero(self._missing(self.sample)))
        if self.kind not in "fcMmO":
            return 0
        if self.exact_pass and self.kind in "fMm":
            nulls, low, high = scan(self.full)
            self.ends = None if low is None else (low, high)
            return nulls
        if self.exact_pass and self.kind == "c":
            return int(np.count_nonzero(np.isnan(self.full)))
        return None

    def build(self) -> Facts:
        np = numpy_module()
        missing = self._missing(self.sample)
        nulls = self._exact_nulls()
        if nulls is None:
            self.facts.nulls = self.scale.count(int(np.count_nonzero(missing)))
            self.facts.counts_marked = True
        else:
            self.facts.nulls = count_text(nulls)
        if self.full.size and nulls == self.full.size:
            self.facts.stats = ["all null"]
            return self.facts
        self.values = self.sample[~missing] if missing.any() else self.sample
        self.non_null_fraction = self.values.size / self.sample.size if self.sample.size else 0
        self.sorted: tuple[Any, Any] | None = None
        if self.kind in "biufMmUS":
            self.sorted = unique_counts(self.values)
            counts = self.sorted[1]
            possible = 2 if self.kind == "b" else None
            self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction, possible)
        handler = {
            "b": self._bool,
            "i": self._numeric,
            "u": self._numeric,
            "f": self._numeric,
            "M": self._temporal,
            "m": self._temporal,
            "U": self._strings,
            "S": self._strings,
            "O": self._object,
        }.get(self.kind)
        return fill_facts(self.facts, handler)

    def _missing(self, values: Any) -> Any:
        np = numpy_module()
        if self.kind in "fc":
            return np.isnan(values)
        if self.kind in "Mm":
            return np.isnat(values)
        if self.kind == "O":
            return np.frompyfunc(_is_missing, 1, 1)(values).astype(bool)
        return np.zeros(values.shape, dtype=bool)

    def _ends(self) -> tuple[Any, Any, bool] | None:
        """(min, max, exact): from a scan of the whole array when allowed, else the sample."""
        if self.ends is None and self.exact_pass and self.kind in "iu":
            _, low, high = scan(self.full)
            self.ends = (low, high)
        if self.ends is not None:
            return self.ends[0], self.ends[1], True
        if not self.values.size:
            return None
        return self.values.min(), self.values.max(), self.scale.exact

    def _numeric(self) -> None:
        ends = self._ends()
        low, high, exact = ends if ends is not None else (None, None, True)
        median = mean_of_middle(middle_values(*self.sorted)) if self.sorted else None
        self.facts.stats = numeric_stats(
            python_number(low), median, python_number(high), exact, self.scale
        )
        self.facts.stats_marked = not self.scale.exact

    def _bool(self) -> None:
        np = numpy_module()
        source = self.full if self.exact_pass else self.values
        if source.size:
            share = int(np.count_nonzero(source)) / source.size
            mark = "" if self.exact_pass else self.scale.mark
            self.facts.stats = [f"true {mark}{share_text(share)}"]
            self.facts.stats_marked = bool(mark)

    def _temporal(self) -> None:
        np = numpy_module()
        ends = self._ends()
        if ends is None:
            return
        low, high, exact = ends
        mark = "" if exact else self.scale.mark
        if self.kind == "M":
            self.facts.stats = [range_text(low, high, mark, mark)]
        else:
            median = np.int64(np.median(self.values.view("i8"))).view(self.full.dtype)
            self.facts.stats = duration_stats(low, median, high, mark, self.scale.mark)
        self.facts.stats_marked = not self.scale.exact

    def _strings(self) -> None:
        np = numpy_module()
        uniques, counts = self.sorted or unique_counts(self.values)
        order = np.argsort(-counts, kind="stable")
        pairs = [(_decode(uniques[i]), int(counts[i])) for i in order[: TOP_VALUES + 1]]
        self.facts.top = top_text(pairs, self.scale, self.sample.size)
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and self.values.size:
            lengths = np.strings.str_len(self.values)
            self.facts.stats = [length_text(lengths, self.scale)]
            self.facts.stats_marked = not self.scale.exact

    def _object(self) -> None:
        values = self.values.tolist()
        if values and all(isinstance(value, str) for value in values):
            counts = Counter(values)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            self.facts.distinct = self.scale.distinct(
                [n for _, n in ordered], self.non_null_fraction
            )
            self.facts.top = top_text(ordered, self.scale, self.sample.size)
            self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
            if not self.facts.top:
                self.facts.stats = [length_text([len(v) for v in values], self.scale)]
                self.facts.stats_marked = not self.scale.exact
            return
        self.facts.stats = [types_text(values, self.scale)]
        self.facts.stats_marked = not self.scale.exact


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _decode(value: Any) -> object:
    item = value.item() if hasattr(value, "item") else value
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else item


def numpy_dtype_text(dtype: Any) -> str:
    """``<U5`` as ``U5``: the byte order says nothing to a reader and ``|`` breaks tables."""
    return str(dtype).lstrip("<>|=")


def _unmasked(array: Any) -> Any:
    """A masked array as a plain one whose masked entries are nulls (NaN, NaT or None).

    Integers and booleans have no null, so they become float64 (exact up to 2**53); other
    dtypes become objects. An ordinary array is returned as it is, without a copy.
    """
    np = numpy_module()
    if not isinstance(array, np.ma.MaskedArray):
        return array
    kind = array.dtype.kind
    if kind in "fc":
        return array.filled(np.nan)
    if kind in "Mm":
        return array.filled(np.array("NaT", dtype=array.dtype))
    if kind in "iub":
        return array.astype("float64").filled(np.nan)
    return array.astype(object).filled(None)


def describe_numpy(obj: Any, class_name: str, name: str, options: Options) -> Described:
    """An array as a table: fields of a record array, columns of a narrow 2-D array, or else
    one column of all its elements."""
    np = numpy_module()
    array = _unmasked(obj)
    exact_pass = array.size <= _EXACT_ARRAY_SIZE
    if array.dtype.names:
        flat = array.reshape(-1) if array.ndim != 1 else array
        labels = list(array.dtype.names)
        total = flat.shape[0]

        def full_column(index: int) -> Any:
            return flat[labels[index]]

    elif array.ndim == 2 and array.shape[1] <= _ARRAY_COLUMNS:
        labels = [str(j) for j in range(array.shape[1])]
        total = array.shape[0]

        def full_column(index: int) -> Any:
            return array[:, index]

    else:
        labels = ["values" if array.ndim <= 1 else "all values"]
        total = array.size

        def full_column(index: int) -> Any:
            return array.reshape(-1) if array.ndim <= 1 else array

    positions = sample_positions(total, options.sample_size, options.seed)
    scale = Scale(total, len(positions))

    def sampled_column(index: int) -> Any:
        full = full_column(index)
        if full.ndim > 1:
            return full[np.unravel_index(positions, full.shape)]
        return full if scale.exact else full[positions]

    columns = [
        Column(label, numpy_dtype_text(full_column(i).dtype), frozenset({label}))
        for i, label in enumerate(labels)
    ]

    def load_facts(indices: Sequence[int]) -> None:
        for index in indices:
            if columns[index].facts is None:
                column = _NumpyColumn(full_column(index), sampled_column(index), scale, exact_pass)
                columns[index].facts = column.build()

    def sample_rows() -> list[str]:
        picked = pick_rows(len(positions), options.rows, options.seed)
        values = [sampled_column(i)[picked].tolist() for i in range(len(columns))]
        return rows_table(labels, positions[picked].tolist(), values)

    dtype = "structured" if array.dtype.names else numpy_dtype_text(obj.dtype)
    if array is not obj:
        dtype += ", masked"
    attributes = [("name", name), ("library", "numpy"), ("type", class_name)]
    attributes += [("shape", shape_text(array.shape)), ("dtype", dtype)]
    legend = sample_legend(len(positions), total, options.seed)
    if len(labels) == 1 and array.ndim > 1:
        legend = legend.replace(" rows ", " elements ")
    return Described(
        tag="array",
        attributes=attributes,
        notes=[],
        legend=legend,
        columns=columns,
        load_facts=load_facts,
        sample_rows=sample_rows,
    )
