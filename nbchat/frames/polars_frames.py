"""polars DataFrames, LazyFrames and Series, described with polars' own expressions.

polars keeps null counts with the data and gives min and max of the whole frame in one
``select``, which it may spread over cores, so those are exact; the rest come from the sample.
A LazyFrame is never run in full: its figures come from the first rows the query returns, and
the text says so.
"""

from __future__ import annotations

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
from .libraries import numpy_module, polars_module
from .model import Column, Described, Facts, Options, fill_facts
from .sampling import Scale, pick_rows, sample_legend, sample_positions
from .stats import mean_of_middle, middle_values, python_number, scan, unique_counts
from .text import count_text, escape_cell, share_text


def polars_dtype_text(dtype: Any) -> str:
    class_name = type(dtype).__name__
    if class_name == "Datetime":
        zone = f", {dtype.time_zone}" if dtype.time_zone else ""
        return f"Datetime[{dtype.time_unit}{zone}]"
    if class_name == "Duration":
        return f"Duration[{dtype.time_unit}]"
    if class_name == "Enum":
        return f"Enum[n={len(dtype.categories)}]"
    return str(dtype)


def _polars_kind(dtype: Any) -> str:
    class_name = type(dtype).__name__
    if class_name == "Boolean":
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or class_name == "Decimal":
        return "float"
    if class_name in ("Datetime", "Date", "Time"):
        return "datetime"
    if class_name == "Duration":
        return "timedelta"
    if class_name in ("String", "Categorical", "Enum"):
        return "string"
    if dtype.is_nested():
        return "nested"
    return {"Null": "null", "Object": "object"}.get(class_name, "other")


# polars numbers that numpy holds as they are (not decimals, not 128-bit integers)
_NUMPY_NUMBERS = frozenset(
    {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64"}
)


def _polars_exact_figures(frame: Any, names: Sequence[str], kinds: Sequence[str]) -> list[Any]:
    """Min, max, NaN and true counts over the whole frame, with as few passes as possible.

    Null counts need no pass at all: polars keeps them with the data. A numeric column
    without nulls is read by :func:`scan` through a zero-copy numpy view, which yields NaN
    count, min and max in one pass; the rest share one ``select``, where polars may spread the
    work over cores. NaN counts of float columns that also hold nulls are left to the sample.
    """
    pl = polars_module()
    figures: list[dict[str, Any]] = [{} for _ in names]
    expressions = []
    for index, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        column = frame.get_column(name)
        if type(column.dtype).__name__ in _NUMPY_NUMBERS and column.null_count() == 0:
            nans, low, high = scan(column.to_numpy())
            figures[index].update(min=low, max=high, nan=nans if kind == "float" else 0)
            continue
        expression = pl.col(name)
        if kind in ("int", "float", "datetime", "timedelta"):
            expressions += [
                expression.min().alias(f"{index}min"),
                expression.max().alias(f"{index}max"),
            ]
        if kind == "bool":
            expressions.append(expression.sum().alias(f"{index}true"))
    if expressions:
        row = frame.select(expressions).row(0, named=True)
        for key, value in row.items():
            digits = len(key) - len(key.lstrip("0123456789"))
            figures[int(key[:digits])][key[digits:]] = value
    return figures


class _PolarsColumn:
    """Facts of one polars column: exact figures from the frame, the rest from the sample."""

    def __init__(self, full: Any, sample: Any, scale: Scale, exact_figures: dict[str, Any]) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.figures = exact_figures
        self.kind = _polars_kind(full.dtype)
        self.facts = Facts()
        # figures computed on the whole frame are exact unless the "frame" is a query's head
        self.whole_mark = "~" if scale.partial else ""

    def build(self) -> Facts:
        total = len(self.full)
        nulls = self.full.null_count()
        self.facts.nulls = self.whole_mark + count_text(nulls)
        self.facts.counts_marked = bool(self.whole_mark)
        if total and nulls == total:
            self.facts.stats = ["all null"]
            return self.facts
        self.non_null = self.sample.drop_nulls()
        self.non_null_fraction = len(self.non_null) / len(self.sample) if len(self.sample) else 0
        return fill_facts(self.facts, getattr(self, f"_{self.kind}", None))

    def _value_counts(self) -> Any:
        return self.non_null.rename("value").value_counts(name="count")

    def _distinct(self) -> Any:
        counts = self._value_counts()
        dtype = self.full.dtype
        possible = 2 if self.kind == "bool" else None
        if type(dtype).__name__ == "Enum":
            possible = len(dtype.categories)
        self.facts.distinct = self.scale.distinct(
            counts["count"].to_numpy(), self.non_null_fraction, possible
        )
        return counts

    def _ends(self) -> tuple[object, object]:
        return self.figures.get("min"), self.figures.get("max")

    def _int(self) -> None:
        """Numbers: distinct count and median from one numpy sort of the sample."""
        values = self.non_null
        nan_in_sample = 0
        if self.kind == "float" and type(values.dtype).__name__ != "Decimal":
            without_nan = values.drop_nans()
            nan_in_sample = len(values) - len(without_nan)
            values = without_nan
        if type(values.dtype).__name__ not in _NUMPY_NUMBERS:  # decimals, 128-bit integers
            self._distinct()
            median = python_number(values.median()) if len(values) else None
        else:
            uniques, counts = unique_counts(values.to_numpy())
            self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction)
            median = mean_of_middle(middle_values(uniques, counts))
        low, high = self._ends()
        exact_ends = not self.whole_mark
        self.facts.stats = numeric_stats(
            python_number(low), median, python_number(high), exact_ends, self.scale
        )
        nans = self.figures.get("nan")
        if nans is not None:
            if nans:
                self.facts.stats.append(f"NaN {self.whole_mark}{count_text(int(nans))}")
        elif nan_in_sample:
            self.facts.stats.append(f"NaN {self.scale.count(nan_in_sample)}")
        self.facts.stats_marked = not self.scale.exact

    _float = _int

    def _bool(self) -> None:
        self._distinct()
        trues = int(self.figures.get("true") or 0)
        non_null = len(self.full) - self.full.null_count()
        if non_null:
            self.facts.stats = [f"true {self.whole_mark}{share_text(trues / non_null)}"]
            self.facts.stats_marked = bool(self.whole_mark)

    def _physical_counts(self) -> tuple[Any, Any]:
        """Sorted distinct values of the sample's integer representation (times as int64)."""
        uniques, counts = unique_counts(self.non_null.to_physical().to_numpy())
        self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction)
        return uniques, counts

    def _datetime(self) -> None:
        self._physical_counts()
        low, high = self._ends()
        if low is not None and high is not None:
            self.facts.stats = [range_text(low, high, self.whole_mark, self.whole_mark)]
            self.facts.stats_marked = bool(self.whole_mark)

    def _timedelta(self) -> None:
        uniques, counts = self._physical_counts()
        low, high = self._ends()
        middle = middle_values(uniques, counts)
        median: object = None
        if middle is not None:
            physical = (int(middle[0]) + int(middle[1])) // 2
            median = polars_module().Series([physical]).cast(self.non_null.dtype).item()
        self.facts.stats = duration_stats(low, median, high, self.whole_mark, self.scale.mark)
        self.facts.stats_marked = not self.scale.exact

    def _string(self) -> None:
        counts = self._distinct()
        # most frequent first, ties by value so that the text is the same on every run
        repeated = counts.filter(polars_module().col("count") >= 2)
        top = repeated.sort(["count", "value"], descending=[True, False]).head(TOP_VALUES)
        pairs = top.select("value", "count").rows()
        self.facts.top = top_text(pairs, self.scale, len(self.sample))
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and len(self.non_null):
            values = self.non_null.cast(polars_module().String)
            self.facts.stats = [length_text(values.str.len_chars().to_numpy(), self.scale)]
            self.facts.stats_marked = not self.scale.exact

    def _object(self) -> None:
        self.facts.stats = [types_text(self.non_null.to_list(), self.scale)]
        self.facts.stats_marked = not self.scale.exact

    def _other(self) -> None:
        try:
            self._distinct()
        except Exception:  # a dtype polars cannot count or sort (binary in some versions)
            self.facts.distinct = ""


def describe_polars(obj: Any, class_name: str, name: str, options: Options) -> Described:
    notes: list[str] = []
    legend = ""
    if class_name == "LazyFrame":
        frame, total, partial, notes = _polars_head(obj, options.sample_size)
        names, dtypes = _polars_schema(obj if frame is None else frame, notes)
        positions = None if frame is None else numpy_module().arange(total)
        rows_attribute = "?" if partial or frame is None else count_text(total)
        if partial:
            legend = (
                f"~ = computed on the first {count_text(total)} rows the query returned, not on a "
                "uniform sample; the query was not run in full"
            )
    else:
        frame = obj.to_frame() if class_name == "Series" else obj
        if class_name == "Series" and not obj.name:
            frame = frame.rename({obj.name: name})
        total = frame.height
        partial = False
        names = list(frame.columns)
        dtypes = list(frame.dtypes)
        positions = sample_positions(total, options.sample_size, options.seed)
        rows_attribute = count_text(total)
        legend = sample_legend(len(positions), total, options.seed)
    sampled = 0 if positions is None else len(positions)
    scale = Scale(total, sampled, partial=partial)
    sample = None
    if frame is not None and positions is not None:
        sample = frame if scale.exact or partial else frame[positions]
    columns = [
        Column(column, polars_dtype_text(dtype), frozenset({column}))
        for column, dtype in zip(names, dtypes, strict=True)
    ]
    kinds = [_polars_kind(dtype) for dtype in dtypes]

    def load_facts(indices: Sequence[int]) -> None:
        wanted = [i for i in indices if columns[i].facts is None]
        if not wanted:
            return
        if frame is None or sample is None:
            for index in wanted:
                columns[index].facts = Facts(nulls="?", distinct="?")
            return
        figures = _polars_exact_figures(
            frame, [names[i] for i in wanted], [kinds[i] for i in wanted]
        )
        for index, exact in zip(wanted, figures, strict=True):
            full = frame.to_series(index)
            column_sample = sample.to_series(index)
            columns[index].facts = _PolarsColumn(full, column_sample, scale, exact).build()

    def sample_rows() -> list[str]:
        if sample is None or positions is None:
            return []
        picked = pick_rows(len(positions), options.rows, options.seed)
        chosen = sample[picked]
        values = [chosen.to_series(i).to_list() for i in range(len(columns))]
        return rows_table(names, positions[picked].tolist(), values)

    attributes = [("name", name), ("library", "polars"), ("type", class_name)]
    attributes.append(("rows", rows_attribute))
    if class_name != "Series":
        attributes.append(("cols", count_text(len(columns))))
    return Described(
        tag="dataframe",
        attributes=attributes,
        notes=notes,
        legend=legend,
        columns=columns,
        load_facts=load_facts,
        sample_rows=sample_rows,
    )


def _polars_schema(frame: Any, notes: list[str]) -> tuple[list[str], list[Any]]:
    """Column names and dtypes, resolved without running the query; none if that fails."""
    try:
        schema = frame.collect_schema()
    except Exception as error:  # the user's query, whatever it raises
        notes.append(f"query: its schema could not be resolved ({_error_text(error)})")
        return [], []
    return list(schema.names()), list(schema.dtypes())


def _error_text(error: Exception) -> str:
    return escape_cell(f"{type(error).__name__}: {error}".splitlines()[0], 120)


def _polars_head(lazy: Any, size: int) -> tuple[Any, int, bool, list[str]]:
    """The first ``size`` rows of a lazy query, and what the summary may claim from them.

    Counting a query's rows can mean reading every file it scans, so it is not done: the
    figures come from the head, marked as such, unless the head is the whole result (fewer
    rows than asked for), in which case they are exact. A query that fails is reported in one
    line and the schema alone is shown.
    """
    try:
        head = lazy.head(size).collect()
    except Exception as error:  # the user's query, whatever it raises
        return None, 0, False, [f"query: failed when run for a preview ({_error_text(error)})"]
    if head.height < size:
        note = f"query: run in full for this summary (it returned {count_text(head.height)} rows)"
        return head, head.height, False, [note]
    note = f"query: rows not counted; figures come from its first {count_text(size)} rows"
    return head, head.height, True, [note]
