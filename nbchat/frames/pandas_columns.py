"""One pandas column's facts, taken as cheaply as its storage allows.

pandas holds a column in one of several ways (numpy arrays, masked arrays, Arrow arrays,
categoricals, Python objects), and what is cheap to read exactly depends on which: this module
takes exact figures wherever the storage gives them in one pass or for free, and the rest from
the sample. The frame around the columns (labels, index, dtype names) is
:mod:`~nbchat.frames.pandas_frames`' job.
"""

from __future__ import annotations

from typing import Any

from .cells import duration_stats, length_text, numeric_stats, range_text, top_text, types_text
from .libraries import numpy_module, pandas_module
from .model import Facts, fill_facts
from .sampling import Scale
from .stats import mean_of_middle, middle_values, python_number, scan, unique_counts
from .text import count_text, share_text


def pandas_kind(dtype: Any) -> str:
    """What a pandas dtype holds, as far as the summary cares."""
    class_name = type(dtype).__name__
    if class_name == "CategoricalDtype":
        return "categorical"
    if class_name == "StringDtype":
        return "string"
    if class_name == "ArrowDtype":
        arrow = str(dtype.pyarrow_dtype)
        if arrow.startswith(("list", "large_list", "fixed_size_list", "struct", "map")):
            return "nested"
        if arrow.startswith("dictionary"):
            return "categorical"
        if arrow.startswith(("binary", "large_binary", "fixed_size_binary")):
            return "other"
    kind = getattr(dtype, "kind", "O")
    return {
        "b": "bool",
        "i": "int",
        "u": "int",
        "f": "float",
        "M": "datetime",
        "m": "timedelta",
        "U": "string",
        "S": "other",
        "O": "object",
    }.get(kind, "other")


def _cheap_nulls(dtype: Any) -> bool:
    """Whether counting a pandas column's nulls is one fast vectorised pass.

    True for numpy dtypes other than object (a NaN/NaT test), masked dtypes (a mask), Arrow
    storage (a validity bitmap) and categoricals (negative codes). Object columns, including
    Python-stored strings, need a test per Python object: those are estimated.
    """
    np = numpy_module()
    if isinstance(dtype, np.dtype):
        return bool(dtype.kind != "O")
    class_name = type(dtype).__name__
    if class_name == "StringDtype":
        return bool(dtype.storage == "pyarrow")
    return class_name in ("ArrowDtype", "CategoricalDtype", "DatetimeTZDtype") or hasattr(
        dtype, "numpy_dtype"
    )


def _arrow_backed(dtype: Any) -> bool:
    class_name = type(dtype).__name__
    return class_name == "ArrowDtype" or (
        class_name == "StringDtype" and dtype.storage == "pyarrow"
    )


def _arrow_null_count(array: Any) -> int | None:
    """Nulls of an Arrow-backed pandas array from Arrow's metadata, without a pass.

    ``__arrow_array__`` is Arrow's interchange protocol: it hands over the stored chunks
    without copying, and Arrow keeps each chunk's null count.
    """
    to_arrow = getattr(array, "__arrow_array__", None)
    if to_arrow is None:
        return None
    try:
        return int(to_arrow().null_count)
    except Exception:  # an extension type Arrow cannot take as it is
        return None


class PandasColumn:
    """Facts of one pandas column: exact where one pass is cheap, the rest from the sample."""

    def __init__(self, full: Any, sample: Any, scale: Scale) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.dtype = full.dtype
        self.kind = pandas_kind(self.dtype)
        self.facts = Facts()
        self.ends: tuple[Any, Any] | None = None  # exact (min, max) from a scan
        self.unit = "ns"  # of int64 times, as the sample's numpy view has them
        self.storage = self._numpy_storage()

    def _numpy_storage(self) -> Any | None:
        """The column's numpy array when it has one that a scan can read without a copy."""
        np = numpy_module()
        if self.scale.exact or self.kind not in ("int", "float", "datetime", "timedelta", "bool"):
            return None
        if isinstance(self.dtype, np.dtype):
            return self.full.to_numpy()
        if type(self.dtype).__name__ == "DatetimeTZDtype":  # a view as UTC wall times
            return self.full.to_numpy(dtype=f"datetime64[{self.dtype.unit}]")
        return None

    def _exact_nulls(self) -> int | None:
        if self.scale.exact:
            return int(self.sample.isna().sum())
        if self.storage is not None:
            if self.kind == "bool":
                return 0
            nulls, low, high = scan(self.storage)
            self.ends = None if low is None else (low, high)
            return nulls
        if _arrow_backed(self.dtype):
            arrow = _arrow_null_count(self.full.array)
            if arrow is not None:
                return arrow
        if _cheap_nulls(self.dtype):
            return int(self.full.isna().sum())
        return None

    def build(self) -> Facts:
        nulls = self._exact_nulls()
        if nulls is None:
            self.facts.nulls = self.scale.count(int(self.sample.isna().sum()))
            self.facts.counts_marked = True
        else:
            self.facts.nulls = count_text(nulls)
        self.non_null = self.sample.dropna()
        if len(self.full) and nulls == len(self.full):
            self.facts.stats = ["all null"]
            return self.facts
        self.non_null_fraction = len(self.non_null) / len(self.sample) if len(self.sample) else 0
        return fill_facts(self.facts, getattr(self, f"_{self.kind}", None))

    def _distinct_from(self, counts: Any) -> None:
        self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction, self._possible())

    def _possible(self) -> int | None:
        """How many distinct values the dtype allows, when that is small and known."""
        if self.kind == "bool":
            return 2
        if type(self.dtype).__name__ == "CategoricalDtype" and self.dtype.categories is not None:
            return len(self.dtype.categories)
        return None

    def _value_counts(self) -> Any | None:
        try:
            counts = self.non_null.value_counts()
        except TypeError:  # unhashable objects (lists, dicts)
            return None
        return counts[counts > 0]

    def _numpy_sample(self) -> Any | None:
        """The sample's non-null values as a numpy array of numbers or int64 times, if it is one."""
        np = numpy_module()
        if type(self.dtype).__name__ == "DatetimeTZDtype":
            values = self.non_null.to_numpy(dtype=f"datetime64[{self.dtype.unit}]")
        else:
            values = self.non_null.to_numpy()
        if not isinstance(values, np.ndarray):
            return None
        if values.dtype.kind in "Mm":
            self.unit = str(np.datetime_data(values.dtype)[0])
            return values.view("i8")
        return values if values.dtype.kind in "biuf" else None

    def _count_distinct(self) -> tuple[Any, Any] | None:
        """Distinct values from the sample; returns the sorted counts when numpy made them."""
        values = self._numpy_sample() if self.kind != "object" else None
        if values is not None:
            uniques, counts = unique_counts(values)
            self._distinct_from(counts)
            return uniques, counts
        counts = self._value_counts()
        if counts is not None:
            self._distinct_from(counts.to_numpy())
        return None

    def _ends_and_middle(self) -> tuple[Any, Any, Any, bool] | None:
        """(min, max, median, exact ends) as numpy scalars (int64 for times), or None."""
        sorted_counts = self._count_distinct()
        if sorted_counts is None:
            return None
        uniques, counts = sorted_counts
        if not counts.size:
            return None
        middle = middle_values(uniques, counts)
        if self.ends is not None:
            low, high, exact = self.ends[0], self.ends[1], True
        else:
            low, high, exact = uniques[0], uniques[-1], self.scale.exact
        return low, high, middle, exact

    def _numeric(self) -> None:
        found = self._ends_and_middle()
        if found is None:
            self._numeric_fallback()
            return
        low, high, middle, exact = found
        median = mean_of_middle(middle)
        self.facts.stats = numeric_stats(
            python_number(low), median, python_number(high), exact, self.scale
        )
        self.facts.stats_marked = not self.scale.exact

    def _numeric_fallback(self) -> None:
        """Numbers numpy cannot hold (decimals): pandas' own reductions on the sample."""
        values = self.non_null
        if not len(values):
            return
        self.facts.stats = numeric_stats(
            python_number(values.min()),
            python_number(values.median()),
            python_number(values.max()),
            self.scale.exact,
            self.scale,
        )
        self.facts.stats_marked = not self.scale.exact

    _int = _numeric
    _float = _numeric

    def _bool(self) -> None:
        self._count_distinct()
        if self.storage is not None:
            share = int(numpy_module().count_nonzero(self.storage)) / len(self.storage)
            self.facts.stats = [f"true {share_text(share)}"]
        elif len(self.non_null):
            trues = int(self.non_null.astype(bool).sum())
            self.facts.stats = [f"true {self.scale.share(trues, len(self.non_null))}"]
            self.facts.stats_marked = not self.scale.exact

    def _temporal(self) -> None:
        """Times read through their int64 view: a range for datetimes; min, median and max for
        durations, whose median is meaningful (a datetime's rarely is)."""
        found = self._ends_and_middle()
        if found is None:
            self._temporal_fallback()
            return
        low, high, middle, exact = found
        pd = pandas_module()
        ends = [int(numpy_module().int64(end)) for end in (low, high)]
        mark = "" if exact else self.scale.mark
        if self.kind == "timedelta":
            shortest, longest = (pd.Timedelta(end, unit=self.unit) for end in ends)
            median = pd.Timedelta((int(middle[0]) + int(middle[1])) // 2, unit=self.unit)
            self.facts.stats = duration_stats(shortest, median, longest, mark, self.scale.mark)
            self.facts.stats_marked = not self.scale.exact
            return
        stamps = [pd.Timestamp(end, unit=self.unit) for end in ends]
        tz = getattr(self.dtype, "tz", None)
        if tz is not None:  # the int64 values are UTC wall times
            stamps = [stamp.tz_localize("UTC").tz_convert(tz) for stamp in stamps]
        self.facts.stats = [range_text(stamps[0], stamps[1], mark, mark)]
        self.facts.stats_marked = bool(mark)

    _datetime = _temporal
    _timedelta = _temporal

    def _temporal_fallback(self) -> None:
        """Times numpy cannot hold (Arrow dates, periods): pandas' own min and max."""
        if not len(self.non_null):
            return
        low, high = self.non_null.min(), self.non_null.max()
        mark = self.scale.mark
        self.facts.stats = [range_text(low, high, mark, mark)]
        self.facts.stats_marked = not self.scale.exact

    def _string(self) -> None:
        counts = self._value_counts()
        if counts is None:
            return
        self._distinct_from(counts.to_numpy())
        pairs = zip(counts.index.tolist(), counts.to_numpy().tolist(), strict=True)
        self.facts.top = top_text(pairs, self.scale, len(self.sample))
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and len(self.non_null):
            lengths = self.non_null.astype(str).str.len().to_numpy()
            self.facts.stats = [length_text(lengths, self.scale)]
            self.facts.stats_marked = not self.scale.exact

    _categorical = _string

    def _object(self) -> None:
        values = self.non_null.tolist()
        if all(isinstance(value, str) for value in values):
            self._string()
            return
        self.facts.stats = [types_text(values, self.scale)]
        self.facts.stats_marked = not self.scale.exact
        self._count_distinct()

    _other = _count_distinct
