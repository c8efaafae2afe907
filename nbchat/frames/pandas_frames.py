"""pandas DataFrames and Series as a summary: labels, dtype names, index and column notes.

What a frame says about itself (its column labels, its index, its dtypes' names) is read here
from pandas' metadata, and the frame is assembled into what the layout renders; each column's
figures, which have to read its values, come from :mod:`~nbchat.frames.pandas_columns`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .cells import rows_table
from .model import Column, Described, Options
from .pandas_columns import PandasColumn
from .sampling import Scale, pick_rows, sample_legend, sample_positions
from .text import (
    DTYPE_LIMIT,
    VALUE_LIMIT,
    count_text,
    escape_cell,
    escape_name,
    number_text,
    time_text,
)


def _label_text(label: object) -> str:
    if isinstance(label, tuple):
        return " / ".join(str(part) for part in label)
    return str(label)


def pandas_dtype_text(dtype: Any) -> str:
    class_name = type(dtype).__name__
    if class_name == "CategoricalDtype":
        categories = dtype.categories
        count = 0 if categories is None else len(categories)
        return f"category[n={count}{', ordered' if dtype.ordered else ''}]"
    if class_name == "StringDtype":
        na_value = dtype.na_value
        if isinstance(na_value, float) and math.isnan(na_value):
            return "str"
        return f"string[{dtype.storage}]"
    return str(dtype)


def _pandas_note_index(index: Any) -> str | None:
    """The index when it says something: anything but an unnamed 0, 1, 2, … range.

    First and last labels are shown, not min and max: they are free, and for the usual sorted
    time index they are the range.
    """
    class_name = type(index).__name__
    if class_name == "RangeIndex":
        if index.start == 0 and index.step == 1 and index.name is None:
            return None
        named = f' "{escape_name(str(index.name))}"' if index.name is not None else ""
        return (
            f"index: RangeIndex{named} from {count_text(index.start)} to {count_text(index.stop)} "
            f"step {count_text(index.step)}"
        )
    if class_name == "MultiIndex":
        levels = [
            f"{escape_name(str(name) if name is not None else f'level {i}', 40)} "
            f"({escape_cell(pandas_dtype_text(level.dtype), DTYPE_LIMIT)})"
            for i, (name, level) in enumerate(zip(index.names, index.levels, strict=True))
        ]
        more = f", … {len(levels) - 8} more" if len(levels) > 8 else ""
        return f"index: MultiIndex, {index.nlevels} levels: " + ", ".join(levels[:8]) + more
    named = f' "{escape_name(str(index.name))}"' if index.name is not None else ""
    text = f"index: {class_name}{named} {pandas_dtype_text(index.dtype)}"
    if len(index) and getattr(index.dtype, "kind", "O") in "iufM":
        first, last = index[0], index[-1]
        text += f", first {_index_value(first)}, last {_index_value(last)}"
    return text


def _index_value(value: object) -> str:
    if isinstance(value, float):
        return number_text(value)
    if hasattr(value, "isoformat"):
        return time_text(value)
    return escape_cell(str(value), VALUE_LIMIT)


def _pandas_column_notes(frame: Any, labels: Sequence[str]) -> list[str]:
    notes = []
    columns = frame.columns
    if type(columns).__name__ == "MultiIndex":
        names = ", ".join(
            escape_name(str(name) if name is not None else f"level {i}", 40)
            for i, name in enumerate(columns.names)
        )
        notes.append(
            f"columns: MultiIndex, {columns.nlevels} levels ({names}); labels shown as a / b"
        )
    repeated = [(label, n) for label, n in Counter(labels).items() if n > 1]
    if repeated:
        shown = ", ".join(f"{escape_name(label, 40)} ×{n}" for label, n in repeated[:5])
        more = f", … {len(repeated) - 5} more" if len(repeated) > 5 else ""
        notes.append(f"duplicate column names: {shown}{more}")
    return notes


def describe_pandas(obj: Any, class_name: str, name: str, options: Options) -> Described:
    is_series = class_name == "Series"
    total = len(obj)
    if is_series:
        labels = [_label_text(obj.name) if obj.name is not None else name]
        raw_labels: list[object] = [obj.name]
        dtypes = [obj.dtype]
    else:
        raw_labels = list(obj.columns)
        labels = [_label_text(label) for label in raw_labels]
        dtypes = list(obj.dtypes)
    positions = sample_positions(total, options.sample_size, options.seed)
    scale = Scale(total, len(positions))
    columns = [
        Column(label, pandas_dtype_text(dtype), frozenset({label, str(raw)}))
        for label, raw, dtype in zip(labels, raw_labels, dtypes, strict=True)
    ]

    def column(index: int) -> Any:
        return obj if is_series else obj.iloc[:, index]

    def sampled(index: int) -> Any:
        full = column(index)
        return full if scale.exact else full.iloc[positions]

    def load_facts(indices: Sequence[int]) -> None:
        for index in indices:
            if columns[index].facts is None:
                facts = PandasColumn(column(index), sampled(index), scale).build()
                columns[index].facts = facts

    def sample_rows() -> list[str]:
        picked = pick_rows(len(positions), options.rows, options.seed)
        chosen = positions[picked]
        values = [column(i).iloc[chosen].tolist() for i in range(len(columns))]
        return rows_table(labels, chosen.tolist(), values)

    attributes = [("name", name), ("library", "pandas"), ("type", class_name)]
    attributes.append(("rows", count_text(total)))
    if not is_series:
        attributes.append(("cols", count_text(len(columns))))
    notes = [note for note in [_pandas_note_index(obj.index)] if note]
    if not is_series:
        notes += _pandas_column_notes(obj, labels)
    return Described(
        tag="dataframe",
        attributes=attributes,
        notes=notes,
        legend=sample_legend(len(positions), total, options.seed),
        columns=columns,
        load_facts=load_facts,
        sample_rows=sample_rows,
    )
