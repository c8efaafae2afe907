"""Dataframe summaries: exact where promised, marked where estimated, always within budget."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from nbchat.frames import (
    MIN_BUDGET,
    estimate_tokens,
    frame_label,
    is_frame,
    list_frames,
    summarize,
)

CITIES = ["Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Lille"]


# --- reading a summary back --------------------------------------------------------------------


def cells(line: str) -> list[str]:
    """The cells of a table row, honouring ``\\|`` and ``\\\\`` escapes."""
    found: list[str] = []
    current = ""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\" and index + 1 < len(line):
            current += line[index : index + 2]
            index += 2
            continue
        if char == "|":
            found.append(current.strip())
            current = ""
        else:
            current += char
        index += 1
    return found[1:]


def column_rows(text: str) -> dict[str, list[list[str]]]:
    """Column name → its table rows' cells after the name (a list: names may repeat)."""
    lines = text.splitlines()
    rows: dict[str, list[list[str]]] = {}
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("| column | dtype"))
    except StopIteration:
        return rows
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, *rest = cells(line)
        rows.setdefault(name, []).append(rest)
    return rows


def row_of(text: str, name: str) -> list[str]:
    rows = column_rows(text)
    assert name in rows, f"no table row for {name!r} in:\n{text}"
    return rows[name][0]


def sample_rows_table(text: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("sample rows ("))
    table = [cells(lines[start + 1])]  # the header; the separator row follows it
    for line in lines[start + 3 :]:
        if not line.startswith("|"):
            break
        table.append(cells(line))
    return table


# --- frames ------------------------------------------------------------------------------------


def mixed_pandas(rows: int, seed: int = 0) -> pd.DataFrame:
    """Every common dtype, with nulls; price has planted, easily formatted extremes."""
    rng = np.random.default_rng(seed)
    price = rng.integers(100, 99_900, rows) / 100
    price[rng.random(rows) < 0.05] = np.nan
    price[rows // 3] = 0.5
    price[rows // 2] = 999.5
    score = np.where(rng.random(rows) < 0.1, None, rng.integers(0, 10, rows))
    note = np.where(rng.random(rows) < 0.2, None, rng.choice(["x", "y"], rows))
    return pd.DataFrame(
        {
            "qty": rng.integers(-50, 500, rows),
            "price": price,
            "city": pd.Series(rng.choice(CITIES, rows), dtype="str"),
            "grade": pd.Categorical(rng.choice(list("abc"), rows), categories=list("abcd")),
            "when": pd.date_range("2024-01-01", periods=rows, freq="min", tz="Europe/Paris"),
            "flag": rng.random(rows) < 0.25,
            "score": pd.array(score, dtype="Int64"),
            "note": pd.Series(note, dtype=object),
        }
    )


def mixed_polars(rows: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ratio = rng.random(rows)
    ratio[rng.random(rows) < 0.03] = np.nan
    amount = pl.Series("amount", rng.integers(0, 1_000, rows))
    nulls = pl.Series(rng.random(rows) < 0.1)
    return pl.DataFrame(
        {
            "amount": pl.select(pl.when(nulls).then(None).otherwise(amount)).to_series(),
            "ratio": ratio,
            "city": rng.choice(CITIES, rows),
            "kind": pl.Series(rng.choice(["u", "v"], rows), dtype=pl.Enum(["u", "v", "w"])),
            "label": pl.Series(rng.choice(["p", "q", "r"], rows), dtype=pl.Categorical),
            "at": pl.Series(np.arange(rows) * 60_000_000).cast(pl.Datetime("us", "Asia/Tokyo")),
            "ok": rng.random(rows) < 0.5,
            "tags": [[i % 3, i % 5] for i in range(rows)],
            "point": [{"x": i, "y": -i} for i in range(rows)],
            "nothing": pl.Series([None] * rows, dtype=pl.Null),
        }
    )


def wide_pandas(columns: int, rows: int = 5, name_length: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(columns)
    names = [f"col_{i}" + "x" * max(0, name_length - 8) for i in range(columns)]
    return pd.DataFrame(rng.normal(size=(rows, columns)), columns=names)


def failing_lazy() -> pl.LazyFrame:
    def fail(frame: pl.DataFrame) -> pl.DataFrame:
        raise ValueError("boom: this query must not run")

    return pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).lazy().map_batches(fail)


# --- recognising frames ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame({"a": [1]}),
        pd.Series([1]),
        pl.DataFrame({"a": [1]}),
        pl.DataFrame({"a": [1]}).lazy(),
        pl.Series([1]),
        np.zeros(3),
        np.ma.masked_array([1.0, 2.0], mask=[0, 1]),
    ],
)
def test_supported_values_are_frames(value: object) -> None:
    assert is_frame(value)


@pytest.mark.parametrize(
    "value", [None, 1, "text", [1, 2], {"a": [1]}, np.float64(1.0), pd.Index([1]), pd.Timestamp(0)]
)
def test_other_values_are_not_frames_and_cannot_be_summarized(value: object) -> None:
    assert not is_frame(value)
    with pytest.raises(TypeError) as raised:
        summarize(value, "x")
    message = str(raised.value)
    assert "\n" not in message
    assert type(value).__name__ in message


def test_bad_arguments_are_refused() -> None:
    frame = pd.DataFrame({"a": [1]})
    for kwargs in ({"budget": 0}, {"sample_size": 0}, {"rows": -1}):
        with pytest.raises(ValueError, match="budget"):
            summarize(frame, "f", **kwargs)


def test_a_polars_frame_is_summarized_where_numpy_was_never_imported() -> None:
    code = (
        "import sys, polars as pl\n"
        "from nbchat.frames import summarize\n"
        "assert 'numpy' not in sys.modules\n"
        "print(summarize(pl.DataFrame({'a': [1, 2, 3]}), 'df'))"
    )
    text = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert row_of(text, "a") == ["Int64", "0", "3", "min 1 · median 2 · max 3"]


def test_importing_frames_loads_no_dataframe_library() -> None:
    code = (
        "import sys, nbchat.frames\n"
        "heavy = ('pandas', 'polars', 'numpy', 'pyarrow')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


# --- labels and the picker list ----------------------------------------------------------------


def test_frame_labels_give_library_type_and_shape() -> None:
    assert frame_label(pd.DataFrame(np.zeros((1234, 3)))) == "pandas DataFrame · 1,234 × 3"
    assert frame_label(pd.Series([1.5, 2.5])) == "pandas Series · 2 · float64"
    assert frame_label(pl.DataFrame({"a": range(5)})) == "polars DataFrame · 5 × 1"
    assert frame_label(pl.Series([1, 2, 3])) == "polars Series · 3 · Int64"
    assert frame_label(np.zeros((10, 2, 3), dtype="int32")) == "numpy ndarray · 10 × 2 × 3 · int32"
    assert frame_label(pl.DataFrame({"a": [1], "b": [2]}).lazy()) == "polars LazyFrame · ? × 2"


def test_frame_label_never_runs_a_lazy_query() -> None:
    calls: list[int] = []

    def spy(frame: pl.DataFrame) -> pl.DataFrame:
        calls.append(1)
        return frame

    lazy = pl.DataFrame({"a": [1, 2]}).lazy().map_batches(spy)
    assert frame_label(lazy) == "polars LazyFrame · ? × 1"
    assert frame_label(failing_lazy()) == "polars LazyFrame · ? × 2"
    assert calls == []


def test_list_frames_skips_private_names_and_other_values() -> None:
    namespace = {
        "sales": pd.DataFrame({"a": [1, 2]}),
        "arr": np.arange(3),
        "lazy": pl.DataFrame({"a": [1]}).lazy(),
        "_": pd.DataFrame({"a": [1]}),
        "_7": pd.DataFrame({"a": [1]}),
        "__": pl.DataFrame({"a": [1]}),
        "_private": np.zeros(2),
        "number": 3,
        "text": "df",
        "In": ["df"],
    }
    assert list_frames(namespace) == [
        ("arr", "numpy ndarray · 3 · int64"),
        ("lazy", "polars LazyFrame · ? × 1"),
        ("sales", "pandas DataFrame · 2 × 1"),
    ]


# --- what the summary says: pandas -------------------------------------------------------------


def test_small_pandas_frame_is_described_exactly_and_unmarked() -> None:
    frame = mixed_pandas(500)
    text = summarize(frame, "sales", budget=10_000)
    assert text.splitlines()[0] == (
        '<dataframe name="sales" library="pandas" type="DataFrame" rows="500" cols="8">'
    )
    assert text.splitlines()[-1] == "</dataframe>"
    assert "~" not in text
    qty = row_of(text, "qty")
    assert qty[:3] == ["int64", "0", f"{frame.qty.nunique():,}"]
    median = frame.qty.median()
    median_text = f"{median:g}" if median % 1 else f"{int(median):,}"
    assert qty[3] == f"min {frame.qty.min():,} · median {median_text} · max {frame.qty.max():,}"
    price = row_of(text, "price")
    assert price[1] == str(frame.price.isna().sum())
    assert price[3].startswith("min 0.5 · median ") and price[3].endswith(" · max 999.5")
    city = row_of(text, "city")
    counts = frame.city.value_counts()
    top = ", ".join(f"{value} {count}" for value, count in counts.head(5).items())
    assert city == ["str", "0", str(frame.city.nunique()), f"top: {top}"]
    grade = row_of(text, "grade")
    assert grade[0] == "category[n=4]"  # unused categories count: they come from the dtype
    assert grade[2] == "3"
    flag = row_of(text, "flag")
    assert flag[3] == f"true {100 * frame.flag.mean():.1f}%".replace(".0%", "%")
    score = row_of(text, "score")
    assert score[:2] == ["Int64", str(frame.score.isna().sum())]
    note = row_of(text, "note")
    assert note[1] == str(frame.note.isna().sum())
    assert note[3].startswith("top: ")


def test_large_pandas_frame_marks_estimates_and_keeps_cheap_figures_exact() -> None:
    frame = mixed_pandas(20_000)
    text = summarize(frame, "sales", sample_size=2_000, budget=10_000)
    assert "~ = estimated from a uniform random sample of 2,000 of 20,000 rows (seed 0)" in text
    qty = row_of(text, "qty")
    assert qty[1] == "0"
    assert qty[2].startswith("~")
    assert f"min {frame.qty.min():,} · median ~" in qty[3]
    assert qty[3].endswith(f" · max {frame.qty.max():,}")
    price = row_of(text, "price")
    assert price[1] == f"{frame.price.isna().sum():,}"  # exact: one vectorised pass
    assert price[3].startswith("min 0.5 · median ~") and price[3].endswith(" · max 999.5")
    when = row_of(text, "when")
    assert when[0] == "datetime64[us, Europe/Paris]"
    last = frame.when.max().strftime("%Y-%m-%d %H:%M")
    assert when[3] == f"2024-01-01 → {last}"  # local wall times; the zone is in the dtype
    city = row_of(text, "city")
    assert city[1] == "0"
    assert city[2].startswith("~")
    assert re.fullmatch(r"top: (\w+ ~\d+(\.\d+)?%, ){4}\w+ ~\d+(\.\d+)?%", city[3])
    grade = row_of(text, "grade")
    assert grade[2] == "~3"  # three of four categories seen: the fourth may be rare
    assert row_of(summarize(frame[["flag"]], "f", sample_size=2_000), "flag")[2] == "2"
    note = row_of(text, "note")
    assert note[1].startswith("~")  # object columns: estimated, not scanned
    assert row_of(text, "flag")[2] == "2"


def test_pandas_dtypes_are_named_as_pandas_names_them() -> None:
    frame = pd.DataFrame(
        {
            "i": np.array([1, 2, 3], dtype="int32"),
            "I": pd.array([1, None, 3], dtype="Int64"),
            "b": pd.array([True, None, False], dtype="boolean"),
            "F": pd.array([1.5, None, 2.5], dtype="Float64"),
            "s": pd.Series(["a", None, "c"], dtype="str"),
            "sa": pd.array(["a", None, "a"], dtype="string[pyarrow]"),
            "sp": pd.array(["a", None, "a"], dtype="string[python]"),
            "c": pd.Categorical(["x", "y", "x"], ordered=True),
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-03"]).tz_localize("UTC"),
            "d": pd.to_timedelta([1, 2, None], unit="s").astype("timedelta64[ns]"),
        }
    )
    text = summarize(frame, "types")
    dtypes = {name: rows[0][0] for name, rows in column_rows(text).items()}
    assert dtypes == {
        "i": "int32",
        "I": "Int64",
        "b": "boolean",
        "F": "Float64",
        "s": "str",
        "sa": "string[pyarrow]",
        "sp": "string[python]",
        "c": "category[n=2, ordered]",
        "t": "datetime64[us, UTC]",
        "d": "timedelta64[ns]",
    }
    nulls = {name: rows[0][1] for name, rows in column_rows(text).items()}
    assert nulls == {name: str(frame[name].isna().sum()) for name in frame.columns}


def test_arrow_backed_times_keep_their_unit() -> None:
    import pyarrow as pa

    stamps = pd.Series(
        pd.to_datetime(["2024-01-01 12:00", "2024-03-05 06:30", None]),
        dtype=pd.ArrowDtype(pa.timestamp("ms")),
    )
    waits = pd.Series(pd.to_timedelta([1, 3, 90], unit="s"), dtype=pd.ArrowDtype(pa.duration("ms")))
    text = summarize(pd.DataFrame({"at": stamps, "wait": waits}), "arrow")
    assert row_of(text, "at")[1:] == ["1", "2", "2024-01-01 12:00 → 2024-03-05 06:30"]
    assert row_of(text, "wait")[3] == (
        "min 0 days 00:00:01 · median 0 days 00:00:03 · max 0 days 00:01:30"
    )


def test_pandas_index_is_described_unless_it_is_the_default_range() -> None:
    plain = summarize(pd.DataFrame({"v": [1, 2]}), "plain")
    assert "index:" not in plain
    dated = pd.DataFrame(
        {"v": range(3)},
        index=pd.date_range("2024-05-01", periods=3, tz="Asia/Tokyo", name="day"),
    )
    line = next(x for x in summarize(dated, "d").splitlines() if x.startswith("index:"))
    assert line == (
        'index: DatetimeIndex "day" datetime64[us, Asia/Tokyo], first 2024-05-01, last 2024-05-03'
    )
    levels = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["letter", None])
    text = summarize(pd.DataFrame({"v": range(4)}, index=levels), "m")
    assert "index: MultiIndex, 2 levels: letter (str), level 1 (int64)" in text


def test_multiindex_columns_are_labelled_by_their_path() -> None:
    columns = pd.MultiIndex.from_product([["A", "B"], ["x", "y"]], names=["top", "low"])
    frame = pd.DataFrame(np.arange(12).reshape(3, 4), columns=columns)
    text = summarize(frame, "m", keep=["B / y"], budget=10_000)
    assert "columns: MultiIndex, 2 levels (top, low)" in text
    assert set(column_rows(text)) == {"A / x", "A / y", "B / x", "B / y"}
    assert row_of(text, "B / y")[3] == "min 3 · median 7 · max 11"


def test_odd_frames_still_read_correctly() -> None:
    empty = summarize(pd.DataFrame({"a": pd.Series([], dtype="int64")}), "empty")
    assert 'rows="0"' in empty and row_of(empty, "a")[:3] == ["int64", "0", "0"]
    one = summarize(pd.DataFrame({"a": [7], "b": ["z"]}), "one")
    assert row_of(one, "a")[3] == "min 7 · median 7 · max 7"
    nulls = pd.DataFrame(
        {"f": [np.nan] * 4, "o": [None] * 4, "s": pd.Series([None] * 4, dtype="str")}
    )
    text = summarize(nulls, "nulls")
    for name in ("f", "o", "s"):
        assert row_of(text, name)[1] == "4" and row_of(text, name)[3] == "all null"
    duplicated = pd.DataFrame([[1, 2, 3]], columns=["a", "a", "b"])
    text = summarize(duplicated, "dup")
    assert "duplicate column names: a ×2" in text
    assert [row[2] for row in column_rows(text)["a"]] == ["1", "1"]
    assert "min 1" in column_rows(text)["a"][0][3] and "min 2" in column_rows(text)["a"][1][3]
    odd_names = pd.DataFrame({0: [1], 2.5: [2], ("x", "y"): [3], None: [4]})
    text = summarize(odd_names, "odd", keep=["0"])
    assert set(column_rows(text)) == {"0", "2.5", "x / y", "None"}


def test_object_columns_report_the_types_they_hold() -> None:
    frame = pd.DataFrame({"mixed": [1, "a", 2.5, None, [1]]})
    summary = row_of(summarize(frame, "o"), "mixed")[3]
    assert summary == "types: int 25%, str 25%, float 25%, list 25%"


# --- what the summary says: polars -------------------------------------------------------------


def test_polars_frame_keeps_exact_counts_and_marks_the_rest() -> None:
    frame = mixed_polars(20_000)
    text = summarize(frame, "events", sample_size=2_000, budget=10_000)
    assert '<dataframe name="events" library="polars" type="DataFrame" rows="20,000"' in text
    amount = row_of(text, "amount")
    assert amount[:2] == ["Int64", f"{frame['amount'].null_count():,}"]
    assert amount[3].startswith(f"min {frame['amount'].min()} · median ~")
    assert amount[3].endswith(f" · max {frame['amount'].max()}")
    ratio = row_of(text, "ratio")
    assert ratio[1] == "0"
    assert ratio[3].endswith(f" · NaN {frame['ratio'].is_nan().sum():,}")  # NaN is not null
    assert row_of(text, "kind")[0] == "Enum[n=3]"
    assert row_of(text, "kind")[2] == "~2"  # two of three categories seen: more may exist
    assert row_of(text, "label")[0] == "Categorical"
    at = row_of(text, "at")
    assert at[0] == "Datetime[us, Asia/Tokyo]"
    assert at[3].startswith("1970-01-01 09:00 → ")
    assert row_of(text, "tags") == ["List(Int64)", "0", "", ""]
    assert row_of(text, "point")[0].startswith("Struct(")
    assert row_of(text, "nothing") == ["Null", "20,000", "", "all null"]
    assert row_of(text, "ok")[3] == f"true {100 * frame['ok'].mean():.1f}%".replace(".0%", "%")


def test_polars_array_and_series() -> None:
    frame = pl.DataFrame({"a": pl.Series([[1, 2], [3, 4]], dtype=pl.Array(pl.Int64, 2))})
    assert row_of(summarize(frame, "arr"), "a")[0] == "Array(Int64, shape=(2,))"
    named = summarize(pl.Series("price", [1.0, None, 3.0]), "s")
    assert '<dataframe name="s" library="polars" type="Series" rows="3">' in named
    assert row_of(named, "price")[:3] == ["Float64", "1", "2"]
    unnamed = summarize(pl.Series([4, 5, 6]), "numbers")
    assert row_of(unnamed, "numbers")[3] == "min 4 · median 5 · max 6"
    assert row_of(summarize(pd.Series(["a", "a", "b"]), "letters"), "letters")[3] == "top: a 2"


def test_lazy_frame_summary_comes_from_the_head_and_says_so() -> None:
    lazy = pl.DataFrame({"n": range(1_000), "s": ["a", "b"] * 500}).lazy()
    text = summarize(lazy, "query", sample_size=100)
    assert 'rows="?"' in text
    assert "query: rows not counted; figures come from its first 100 rows" in text
    assert "first 100 rows the query returned, not on a uniform sample" in text
    n = row_of(text, "n")
    assert n[1] == "~0" and n[3] == "min ~0 · median ~49.5 · max ~99"
    small = summarize(pl.DataFrame({"n": [1, 2, 3]}).lazy(), "small")
    assert 'rows="3"' in small and "~" not in small


def test_lazy_query_without_a_schema_is_reported_not_raised() -> None:
    lazy = pl.LazyFrame({"a": [1]}).select(pl.col("missing"))
    assert frame_label(lazy) == "polars LazyFrame · ?"
    text = summarize(lazy, "bad")
    assert "query: its schema could not be resolved (ColumnNotFoundError: " in text
    assert 'cols="0"' in text


def test_failing_lazy_query_is_reported_in_one_line_with_its_schema() -> None:
    text = summarize(failing_lazy(), "broken", rows=3)
    lines = text.splitlines()
    failure = [line for line in lines if line.startswith("query: failed")]
    assert failure == [
        "query: failed when run for a preview (ValueError: boom: this query must not run)"
    ]
    assert row_of(text, "a")[0] == "Int64" and row_of(text, "b")[0] == "String"


# --- what the summary says: numpy --------------------------------------------------------------


def test_narrow_array_is_summarized_per_column_with_exact_nan_counts() -> None:
    rng = np.random.default_rng(1)
    array = rng.normal(size=(300, 3))
    array[rng.random((300, 3)) < 0.1] = np.nan
    text = summarize(array, "matrix")
    assert (
        '<array name="matrix" library="numpy" type="ndarray" shape="300 × 3" dtype="float64">'
        in text
    )
    for column in range(3):
        assert row_of(text, str(column))[1] == str(np.isnan(array[:, column]).sum())
    wide = summarize(np.arange(1_000).reshape(10, 100), "wide")
    assert row_of(wide, "all values")[3] == "min 0 · median 499.5 · max 999"


def test_other_arrays() -> None:
    records = np.array([(1, 2.5), (3, np.nan)], dtype=[("id", "i8"), ("v", "f8")])
    text = summarize(records, "records")
    assert row_of(text, "id")[3] == "min 1 · median 2 · max 3"
    assert row_of(text, "v")[1] == "1"
    words = summarize(np.array(["a", "b", "a", "a"]), "words")
    assert row_of(words, "values") == ["U1", "0", "2", "top: a 3"]
    masked = summarize(np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]), "m")
    assert row_of(masked, "values")[1] == "1" and 'dtype="int64, masked"' in masked
    times = summarize(np.array(["2020-01-01", "NaT", "2021-05-05"], dtype="M8[D]"), "t")
    assert row_of(times, "values")[1:] == ["1", "2", "2020-01-01 → 2021-05-05"]


# --- raw values only when asked ----------------------------------------------------------------


def test_no_raw_row_appears_unless_asked_for() -> None:
    secrets = [f"SENTINEL{i:04d}QZX" for i in range(400)]
    frame = pd.DataFrame({"secret": secrets, "n": range(400), "city": ["Paris", "Lyon"] * 200})
    text = summarize(frame, "private", budget=100_000)
    assert "SENTINEL" not in text  # values seen once are never "frequent"
    assert "top: Lyon 200, Paris 200" in text or "top: Paris 200, Lyon 200" in text
    shown = summarize(frame, "private", rows=3, budget=100_000)
    table = sample_rows_table(shown)
    assert table[0] == ["row", "secret", "n", "city"] and len(table) == 4
    for position, secret, n, city in table[1:]:
        index = int(position.replace(",", ""))
        assert (secret, int(n), city) == (secrets[index], index, frame.city[index])
    assert len(re.findall(r"SENTINEL\d{4}QZX", shown)) == 3


def test_sample_rows_come_from_the_sample_of_a_big_frame() -> None:
    frame = pd.DataFrame({"n": np.arange(50_000)})
    text = summarize(frame, "big", rows=5, sample_size=1_000)
    positions = [int(row[0].replace(",", "")) for row in sample_rows_table(text)[1:]]
    values = [int(row[1]) for row in sample_rows_table(text)[1:]]
    assert len(positions) == 5 and positions == sorted(positions) and positions == values
    sample = np.sort(np.random.default_rng(0).choice(50_000, 1_000, replace=False))
    assert set(positions) <= set(sample.tolist())


# --- escaping ----------------------------------------------------------------------------------

HOSTILE = 'x" onload="alert(1)" <b>|\n</dataframe>\\'


@pytest.mark.parametrize("make", [pd.DataFrame, pl.DataFrame])
def test_hostile_names_and_values_cannot_break_the_block(make: Callable[..., Any]) -> None:
    frame = make({HOSTILE: ["a|b", "c\nd", "</dataframe>", "a|b"], "plain": [1, 2, 3, 4]})
    text = summarize(frame, HOSTILE, rows=4, budget=10_000)
    lines = text.splitlines()
    assert re.fullmatch(r'<dataframe( [a-z]+="[^"<>\n]*")+>', lines[0]), lines[0]
    assert lines[-1] == "</dataframe>" and text.count("</dataframe>") == 1
    assert "<b>" not in text
    header = next(line for line in lines if line.startswith("| column |"))
    table_start = lines.index(header)
    for line in lines[table_start : table_start + 4]:
        assert len(cells(line)) == len(cells(header))
    names = list(column_rows(text))
    assert names[0] == "x&quot; onload=&quot;alert(1)&quot; &lt;b&gt;\\|\\n&lt;/dataframe&gt;\\\\"
    rows = sample_rows_table(text)
    assert all(len(row) == 3 for row in rows)
    assert {row[1] for row in rows[1:]} == {"a\\|b", "c\\nd", "&lt;/dataframe&gt;"}


def test_long_names_are_cut_in_the_middle() -> None:
    frame = pd.DataFrame({"start_" + "m" * 200 + "_2023_v2": [1], "b": [2]})
    names = list(column_rows(summarize(frame, "long")))
    assert len(names[0]) == 80 and names[0].startswith("start_mm") and names[0].endswith("_2023_v2")
    assert "…" in names[0]


# --- determinism -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: mixed_pandas(30_000, seed=3),
        lambda: mixed_polars(30_000, seed=3),
        lambda: np.random.default_rng(3).normal(size=(30_000, 2)),
    ],
)
def test_same_seed_gives_the_same_text(make: Callable[[], Any]) -> None:
    first = summarize(make(), "f", sample_size=1_000, rows=3)
    assert summarize(make(), "f", sample_size=1_000, rows=3) == first
    other = summarize(make(), "f", sample_size=1_000, rows=3, seed=1)
    assert "(seed 1)" in other and other != first


# --- the budget --------------------------------------------------------------------------------

BUDGET_FRAMES: dict[str, Callable[[], Any]] = {
    "mixed pandas": lambda: mixed_pandas(3_000),
    "mixed polars": lambda: mixed_polars(3_000),
    "500 columns": lambda: wide_pandas(500, rows=50),
    "5,000 columns": lambda: wide_pandas(5_000),
    "long names": lambda: wide_pandas(60, name_length=300),
    "unicode": lambda: pd.DataFrame(
        {f"列{i}_données_🙂": ["東京", "Zürich", "😀"] * 10 for i in range(40)}
    ),
    "array": lambda: np.arange(30_000, dtype=float).reshape(1_000, 30),
    "array of 12 dimensions": lambda: np.zeros((2,) * 12, dtype="complex64"),
    "series": lambda: pd.Series(np.arange(10_000), name="n" * 500),
    "lazy": lambda: mixed_polars(500).lazy(),
    "failing lazy": failing_lazy,
}


@pytest.fixture(scope="module")
def budget_frames() -> dict[str, Any]:
    return {name: make() for name, make in BUDGET_FRAMES.items()}


@pytest.mark.parametrize("name", list(BUDGET_FRAMES))
@pytest.mark.parametrize("budget", [MIN_BUDGET, 100, 300, 1_000, 4_000])
def test_the_budget_is_never_exceeded(
    name: str, budget: int, budget_frames: dict[str, Any]
) -> None:
    frame = budget_frames[name]
    frame_name = "数据" * 60 if budget == MIN_BUDGET else name
    for rows, keep in ((0, ()), (5, ("col_3", "price", "city"))):
        text = summarize(frame, frame_name, budget=budget, rows=rows, keep=keep)
        assert estimate_tokens(text) <= budget, text
        assert text.splitlines()[0].startswith(("<dataframe name=", "<array name="))
        assert text.splitlines()[-1] in ("</dataframe>", "</array>")


def test_budget_gives_up_rows_then_frequent_values_then_statistics() -> None:
    frame = mixed_pandas(2_000)
    seen: list[tuple[bool, bool, bool, bool]] = []
    for budget in range(1_500, MIN_BUDGET - 1, -20):
        text = summarize(frame, "sales", budget=budget, rows=5)
        features = (
            "sample rows (" in text,
            "top: " in text,
            "median" in text,
            "| column |" in text,
        )
        for richer, poorer in itertools.pairwise(features):
            assert poorer or not richer, (budget, features)
        if seen:
            assert all(now <= before for now, before in zip(features, seen[-1], strict=True))
        seen.append(features)
    assert seen[0] == (True, True, True, True) and seen[-1] == (False, False, False, False)


def test_compact_list_is_cut_with_an_honest_count() -> None:
    frame = wide_pandas(5_000)
    text = summarize(frame, "wide", budget=1_000)
    listed = re.findall(r"col_\d+\(float64\)", text)
    marker = re.search(r"… ([\d,]+) more columns not shown", text)
    assert marker and listed
    assert len(listed) + int(marker[1].replace(",", "")) == 5_000
    assert listed == [f"col_{i}(float64)" for i in range(len(listed))]


@pytest.mark.parametrize("budget", [300, 1_000])
def test_kept_columns_keep_full_rows_even_among_5000(budget: int) -> None:
    frame = wide_pandas(5_000)
    text = summarize(frame, "wide", budget=budget, keep=["col_4321", "col_17"])
    assert estimate_tokens(text) <= budget
    for name in ("col_17", "col_4321"):
        dtype, nulls, distinct, summary = row_of(text, name)
        assert (dtype, nulls, distinct) == ("float64", "0", str(frame[name].nunique()))
        assert summary.startswith("min ") and " · median " in summary and " · max " in summary
    assert set(column_rows(text)) == {"col_17", "col_4321"}


def test_tiny_budget_keeps_the_opening_tag_and_says_what_is_missing() -> None:
    text = summarize(mixed_pandas(100), "sales", budget=MIN_BUDGET, keep=["price"])
    assert text == (
        '<dataframe name="sales" library="pandas" type="DataFrame" rows="100" cols="8">\n'
        "… 8 columns not shown\n"
        "</dataframe>"
    )
    assert "columns: price(float64)" in summarize(
        mixed_pandas(100), "sales", budget=80, keep=["price"]
    )


# --- counting tokens ---------------------------------------------------------------------------

# The most tokens cl100k_base or o200k_base spend on each text, counted with their vocabularies.
TOKENIZED = [
    ("| price | float64 | 1,024 | ~98,000 | min 0.01 · median ~12.5 · max 999.9 |", 34),
    ('<dataframe name="sales" library="pandas" type="DataFrame" rows="10,000,000" cols="20">', 28),
    ("1234567890 0.000123 -9.87e+12 3,141,592 007 42", 26),
    ("| column | dtype | nulls | distinct | summary |\n|-|-|-|-|-|", 18),
    ("customer_id, order_date, total_amount_usd, is_returned, CamelCaseName, HTTPServerError", 22),
    ("xq7Zk2Pw9LmN, 3f2a9c1e7b4d0a8f, QZXJVKWY, zqxjvkwpl, AbCdEfGhIj", 52),
    ("Zürich, Köln, São Paulo, 東京都, Москва, 😀🎉, naïve café", 28),
    ("a&amp;b &lt;tag&gt; \\| \\n \\x00 &quot;x&quot; {'k': [1, 2]}", 30),
    ("    indented    spaces 42    7\ttab", 11),
    ("2024-03-01 09:00:00 → 2024-03-31 23:59:59 · 0 days 00:00:01", 36),
    ("top: Paris ~1.2%, Lyon ~1.1%, Marseille ~0.98%, Saint-Étienne ~0.5%", 30),
    ("… 4,895 more columns not shown", 9),
    (
        "more columns: feature_0(float64), feature_1(float64), label(category[n=3]), "
        "ts(Datetime[us, UTC])",
        29,
    ),
    ("~ = estimated from a uniform random sample of 100,000 of 10,000,000 rows (seed 0)", 26),
]


@pytest.mark.parametrize(("text", "tokens"), TOKENIZED)
def test_token_estimate_never_undercounts_real_tokenizers(text: str, tokens: int) -> None:
    assert estimate_tokens(text) >= tokens


def test_token_estimate_adds_up_over_lines() -> None:
    lines = [text for text, _ in TOKENIZED if "\n" not in text]
    assert estimate_tokens("\n".join(lines)) == sum(map(estimate_tokens, lines)) + len(lines) - 1
    assert estimate_tokens("") == 0
