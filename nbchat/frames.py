"""Dataframe summaries for prompts: what a model needs to know about a frame, in few tokens.

A model asked about ``df`` needs its shape, its columns and their types, and what the values
look like; it does not need the rows, which cost tokens and may be private. :func:`summarize`
writes that description as a small XML-like block holding a Markdown table, never longer than
a token budget, and :func:`list_frames` lists what a notebook namespace holds for a picker.

Three rules shape the code:

- **No heavy imports.** ``import nbchat`` must stay cheap, so this module never imports pandas,
  polars, numpy or pyarrow. Objects are recognised by their class's module and name and used
  through their own methods; numpy functions come from ``sys.modules["numpy"]``, which pandas
  and numpy objects imply (polars does not: summarising a polars frame imports numpy, which it
  then needs installed).
- **Fast on big frames.** A summary is made while someone waits for a reply, so no value of a
  10-million-row frame is read more than a few times. Figures are *exact* where the library
  keeps them or one vectorised pass gives them (null counts of most dtypes; min and max of
  numbers and times held in numpy arrays or in polars); everything else (medians, distinct
  counts, frequent values, null counts of object columns, min and max of pandas' masked and
  Arrow numbers) comes from one uniform random sample of rows, drawn with a fixed seed so that
  the same frame gives the same text.
- **Honest figures.** Every figure taken from the sample is marked ``~`` and a legend line says
  what the sample was; when the sample is the whole frame nothing is marked, because nothing is
  estimated. A polars LazyFrame is never run in full: its figures come from the first rows the
  query returns, and the text says so.

The budget is counted with :func:`estimate_tokens`, an offline estimate that errs on the high
side, so a summary that fits by its count fits a real tokenizer too. A summary of a frame with
20 columns, three of them kept (``keep=``) under a small budget, looks like::

    <dataframe name="sales" library="pandas" type="DataFrame" rows="10,000,000" cols="20">
    index: DatetimeIndex "day" datetime64[us, UTC], first 2020-01-01, last 2024-12-31
    ~ = estimated from a uniform random sample of 100,000 of 10,000,000 rows (seed 0)
    | column | dtype | nulls | distinct | summary |
    |-|-|-|-|-|
    | price | float64 | 99,965 | ~9,900,000 | min 0.01 · median ~99.9 · max 999.9 |
    | city | str | 0 | ~1,000 | top: Paris ~1.2%, Lyon ~1.1%, Nice ~0.9% |
    | segment | category[n=10] | 0 | 10 | top: retail ~31%, online ~12% |
    more columns: qty(int64), ok(bool), customer_id(int64)
    … 14 more columns not shown
    </dataframe>

Cells are escaped (``\\|``, ``\\n``, ``&lt;``) so no name or value can break the table or close
the element; numpy arrays use an ``<array …>`` element of the same shape.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = [
    "MIN_BUDGET",
    "estimate_tokens",
    "frame_label",
    "is_frame",
    "list_frames",
    "summarize",
]

MIN_BUDGET = 60
"""The smallest budget always honoured; below it the minimal form is returned as it is."""

_SUPPORTED = frozenset(
    {
        ("pandas", "DataFrame"),
        ("pandas", "Series"),
        ("polars", "DataFrame"),
        ("polars", "LazyFrame"),
        ("polars", "Series"),
        ("numpy", "ndarray"),
    }
)

_NAME_LIMIT = 80  # characters of a frame or column name kept
_VALUE_LIMIT = 40  # characters of a frequent value kept
_ROW_VALUE_LIMIT = 24  # characters of a value in the sample-rows table
_DTYPE_LIMIT = 48  # characters of a (nested) dtype kept
_TOP_VALUES = 5
_ARRAY_COLUMNS = 50  # a 2-D array with at most this many columns is summarised per column
_EXACT_ARRAY_SIZE = 20_000_000  # elements of an array scanned whole for exact figures
_LINE_WIDTH = 100  # characters of a compact column-list line


# --- recognising frames ------------------------------------------------------------------------


def _frame_kind(value: object) -> tuple[str, str] | None:
    """(library, class name) of a supported object, looking through subclasses too.

    Subclasses count (a GeoDataFrame is a pandas DataFrame, a masked array a numpy array);
    only the class's module and name are read, so nothing is imported.
    """
    for klass in type(value).__mro__:
        library = str(getattr(klass, "__module__", "")).partition(".")[0]
        if (library, klass.__name__) in _SUPPORTED:
            return library, klass.__name__
    return None


def is_frame(value: object) -> bool:
    """Whether :func:`summarize` can describe ``value``.

    True for pandas DataFrame and Series, polars DataFrame, LazyFrame and Series, and numpy
    arrays (subclasses included). Importing none of those libraries, it is safe to call on every
    value of a notebook namespace.
    """
    return _frame_kind(value) is not None


def _count(n: int) -> str:
    return f"{n:,}"


def frame_label(value: object) -> str:
    """A one-line description for a picker, e.g. ``pandas DataFrame · 10,000,000 × 20``.

    Reads only what the object already knows (its shape, a lazy frame's schema): it never
    runs a lazy query, so it is safe to call for every frame in a namespace.
    """
    kind = _frame_kind(value)
    if kind is None:
        raise TypeError(_unsupported_message(value))
    library, class_name = kind
    obj: Any = value
    prefix = f"{library} {class_name}"
    try:
        if class_name == "LazyFrame":
            return f"{prefix} · ? × {_count(obj.collect_schema().len())}"
        if class_name == "Series":
            return f"{prefix} · {_count(len(obj))} · {_dtype_text(library, obj.dtype)}"
        if library == "numpy":
            return f"{prefix} · {_shape_text(tuple(obj.shape))} · {_dtype_text(library, obj.dtype)}"
        rows, cols = obj.shape
        return f"{prefix} · {_count(rows)} × {_count(cols)}"
    except Exception:  # a broken lazy plan still gets a line in the picker
        return f"{prefix} · ?"


def list_frames(namespace: Mapping[str, object]) -> list[tuple[str, str]]:
    """``(name, label)`` for each frame in a user namespace, sorted by name.

    Names starting with ``_`` are skipped: IPython keeps its output history there (``_``,
    ``__``, ``_1`` …), and private helpers are not what a user means to pick.
    """
    found = [
        (name, frame_label(value))
        for name, value in namespace.items()
        if not name.startswith("_") and is_frame(value)
    ]
    return sorted(found)


def _unsupported_message(value: object) -> str:
    klass = type(value)
    return (
        f"cannot summarize a {klass.__module__}.{klass.__qualname__}: expected a pandas "
        "DataFrame or Series, a polars DataFrame, LazyFrame or Series, or a numpy array"
    )


# --- counting tokens ---------------------------------------------------------------------------

_TOKEN_PIECES = re.compile(
    r"(?P<letters>[A-Za-z]+)|(?P<digits>[0-9]+)|(?P<before_digit> +(?=[0-9]))|(?P<spaces> +)"
    r"|(?P<ascii>[\x00-\x7f])|(?P<other>[^\x00-\x7f])"
)
_WORD_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_CHEAP_SYMBOLS = frozenset("·…×→–")  # one token each in the common BPE vocabularies
# Words that cl100k and o200k both spend one token on, lowercase or capitalised, alone or after
# a space, "_", "(", "|" or "~" (checked against both vocabularies): this module's own words,
# dtype names and common column-name parts. Any other letters pay the random-string rate.
_ONE_TOKEN_WORDS = frozenset(  # a word list reads better as text than as 226 literals
    """
    a account actual address age all amount area array as at audio b balance batch binary
    birth bool boolean brand browser c category channel city class click close code col
    color column columns come comment complex cost count country created currency customer
    data date day delivery description device discount distance duplicate duration email
    end enum error event fail failed false feature features file first flag float for
    frame from full gender group has height high hour id image in income index info int
    interval is item its job key label labels lang language last lat lazy len length level
    levels library link list lon longitude loss low market max median member meta method
    middle min model month more name names not note null num number object of on open
    order ordered page path payment period phone platform postal preview price product
    profit qty quantity query random rate rating ratio region return returned returns
    review reviews role row rows run salary sales sample score second seed segment series
    session sex shape size source speed start state status step stock store str street
    string struct success tag tags target tax team test text the time timestamp title to
    top total train transaction true type types uint uniform unit units updated url user
    valid value values version video view week weight when width x y year z zip zone
    """.split()  # noqa: SIM905
)


@lru_cache(maxsize=65_536)
def _letter_tokens(run: str) -> int:
    """Tokens for a run of ASCII letters, split where the case changes (``camelCase``)."""
    total = 0
    for part in _WORD_PARTS.findall(run):
        if (part.islower() or part.istitle()) and part.lower() in _ONE_TOKEN_WORDS:
            total += 1
        elif part.isupper() and len(part) > 1:
            total += -(-len(part) * 7 // 10)
        else:
            total += -(-len(part) * 3 // 5)
    return total


def estimate_tokens(text: str) -> int:
    """An offline token count that errs high against byte-level BPE tokenizers.

    The text is cut into pieces, each costed at or above what cl100k and o200k spend on it:

    - letters, split where the case changes: a known word (:data:`_ONE_TOKEN_WORDS`) costs
      one; other lowercase or capitalised letters 0.6 a letter, and capitals 0.7 a letter,
      rounded up: what random codes and hashes cost, where words cost far less (about 0.25);
    - a run of digits: one token per three digits, as those tokenizers group digits;
    - spaces: none for a single space before a word or a symbol (it joins it), one for a space
      before a digit (the tokenizers keep it apart), and one more per four in longer runs;
    - any other ASCII character (punctuation, ``|``, newline): one;
    - a non-ASCII character: one per UTF-8 byte, the most a byte-level BPE can spend, except
      the few symbols this module writes (``· … × → –``), which cost one.

    On summaries of typical frames this counts about 1.4 times what those tokenizers do, on
    ones full of random letter codes or numbers about 1.1 times; a single random string of
    letters can cost a little more than its estimate, a whole summary does not.

    No piece spans a newline, so the estimate of lines joined by newlines is the sum of the
    lines' estimates plus one per newline; the budget search relies on that.
    """
    total = 0
    for match in _TOKEN_PIECES.finditer(text):
        kind, piece = match.lastgroup, match[0]
        if kind == "letters":
            total += _letter_tokens(piece)
        elif kind == "digits":
            total += -(-len(piece) // 3)
        elif kind == "before_digit":
            total += 1 + (len(piece) + 2) // 4
        elif kind == "spaces":
            total += (len(piece) + 2) // 4
        elif kind == "ascii" or piece in _CHEAP_SYMBOLS:
            total += 1
        else:
            total += len(piece.encode("utf-8"))
    return total


# --- formatting --------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f\\|]")
_CONTROL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "|": "\\|"}
_XML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_name(text: str, limit: int) -> str:
    """A long name cut in the middle: its end (``…_2023_v2``) tells similar names apart."""
    if len(text) <= limit:
        return text
    head = max(1, (limit - 1) * 2 // 3)
    tail = max(0, limit - 1 - head)
    return text[:head] + "…" + (text[len(text) - tail :] if tail else "")


def _escape_name(text: str, limit: int = _NAME_LIMIT) -> str:
    return _escape_cell(_cut_name(text, limit), limit)


def _escape_cell(text: str, limit: int) -> str:
    """Text safe inside a table cell of the block: one line, no bare ``|``, no markup.

    Backslashes, newlines and other control characters are written as escapes and ``|`` as
    ``\\|``, so a value cannot end its cell or its row; ``&``, ``<``, ``>`` and ``"`` become
    entities, so no value can close the surrounding element or an attribute. The text is cut
    first, so the limit counts what the reader sees.
    """
    cut = _cut(text, limit)
    escaped = _CONTROL.sub(lambda m: _CONTROL_NAMES.get(m[0], f"\\x{ord(m[0]):02x}"), cut)
    return escaped.translate(_XML)


def _quote_if_needed(text: str) -> str:
    """Quote values a list would misread: empty, padded with spaces, or holding ``, ``."""
    if not text or text != text.strip() or ", " in text or text.startswith('"'):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def _num(value: float) -> str:
    """A figure to about four significant digits, readable: ``12,350``, ``0.01235``, ``1.2e+09``.

    Python integers below a quadrillion keep every digit, with separators, because an exact
    integer (a min, a max, an id) is worth its digits.
    """
    if isinstance(value, int) and abs(value) < 10**15:
        return f"{value:,}"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    magnitude = abs(number)
    if number.is_integer() and magnitude < 1e6:
        return f"{int(number):,}"
    if 1e-4 <= magnitude < 1e9:
        rounded = float(f"{number:.4g}")
        return f"{int(rounded):,}" if rounded.is_integer() else f"{rounded:.4g}"
    return f"{number:.4g}"


def _rough(value: float) -> str:
    """An estimated count to two significant figures: more digits would be false precision."""
    if value < 100:
        return f"{round(value):,}"
    digits = math.floor(math.log10(value)) - 1
    return f"{round(value, -digits):,.0f}"


def _share(fraction: float) -> str:
    percent = 100 * fraction
    text = f"{percent:.1f}".removesuffix(".0") if percent >= 10 else f"{percent:.2g}"
    return text + "%"


def _shape_text(shape: Sequence[int]) -> str:
    if not shape:
        return "scalar"
    parts = [_count(n) for n in shape]
    if len(parts) > 4:
        return " × ".join([*parts[:2], "…", parts[-1]]) + f" ({len(shape)} dims)"
    return " × ".join(parts)


_OFFSET = re.compile(r"(?:[+-]\d\d:?\d\d|Z)$")


def _time_text(value: object) -> str:
    """A datetime as a reader writes it: ``2024-01-01``, ``2024-01-14 21:19``, no offset.

    Zero seconds, zero fractions and a midnight time of day are left out; the time zone is
    in the dtype, so the offset would add tokens and nothing else.
    """
    text = str(value).replace("T", " ")
    text = _OFFSET.sub("", text)
    text = re.sub(r"\.0+$", "", text)
    text = text.removesuffix(" 00:00:00")
    return re.sub(r"( \d\d:\d\d):00$", r"\1", text)


# --- what a summary is made of -----------------------------------------------------------------

# How much of a column a table row shows; lower levels are what the budget falls back to.
_NAMES = 0  # name(dtype) in the compact list
_COUNTS = 1  # + nulls and distinct values
_STATS = 2  # + min/median/max, ranges, shares
_TOP_1 = 3  # + the most frequent value
_TOP_3 = 4  # + the three most frequent values
_FULL = 5  # + the five most frequent values
_TOP_COUNT = {_TOP_1: 1, _TOP_3: 3, _FULL: 5}
_TABLE_LEVELS = (_FULL, _TOP_3, _TOP_1, _STATS, _COUNTS)


@dataclass
class _Facts:
    """What one column's table row says, already formatted and marked."""

    nulls: str = ""
    distinct: str = ""
    stats: list[str] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    counts_marked: bool = False
    stats_marked: bool = False
    top_marked: bool = False

    def summary(self, level: int) -> str:
        parts = list(self.stats) if level >= _STATS else []
        if level >= _TOP_1 and self.top:
            parts.append("top: " + ", ".join(self.top[: _TOP_COUNT[level]]))
        return " · ".join(parts)

    def marked(self, level: int) -> bool:
        return (
            (level >= _COUNTS and self.counts_marked)
            or (level >= _STATS and self.stats_marked)
            or (level >= _TOP_1 and self.top_marked)
        )


@dataclass
class _Column:
    label: str
    dtype: str
    keys: frozenset[str]
    facts: _Facts | None = None

    def row(self, level: int, with_summary: bool) -> str:
        facts = self.facts or _Facts()
        cells = [
            _escape_name(self.label),
            _escape_cell(self.dtype, _DTYPE_LIMIT),
            facts.nulls,
            facts.distinct,
        ]
        if with_summary:
            cells.append(facts.summary(level))
        return "| " + " | ".join(cells) + " |"

    def compact(self) -> str:
        name = _escape_name(_quote_if_needed(self.label))
        return f"{name}({_escape_cell(self.dtype, _DTYPE_LIMIT)})"


@dataclass
class _Described:
    """A frame as the renderer sees it: fixed lines, columns, and how to get more facts."""

    tag: str
    attributes: list[tuple[str, str]]
    notes: list[str]
    legend: str
    columns: list[_Column]
    load_facts: Callable[[Sequence[int]], None]
    sample_rows: Callable[[], list[str]]


@dataclass
class _Options:
    sample_size: int
    rows: int
    seed: int


# --- sampling ----------------------------------------------------------------------------------


def _numpy() -> Any:
    """numpy, as already loaded by pandas or numpy objects; polars runs without it, so for a
    polars frame it may have to be imported here, at summary time (polars' own ``to_numpy``
    would import it too)."""
    return sys.modules.get("numpy") or importlib.import_module("numpy")


def _sample_positions(total: int, size: int, seed: int) -> Any:
    """Sorted row positions of a uniform sample without replacement (all rows if few).

    ``Generator.choice(..., replace=False)`` takes a few milliseconds even for 10 million rows
    (it does not shuffle them all); sorting keeps the take cache-friendly and rows in order.
    """
    np = _numpy()
    if total <= size:
        return np.arange(total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size, replace=False))


def _pick_rows(sample_length: int, rows: int, seed: int) -> Any:
    """Which sampled rows to show: a random subset of the sample, in frame order."""
    np = _numpy()
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
    np = _numpy()
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


def _sorted_counts(values: Any) -> tuple[Any, Any]:
    """The distinct values of a numpy sample, sorted, with how often each occurs.

    One sort then gives the distinct count, the frequencies the distinct estimate needs, the
    sample's min and max, and its median, where separate calls would sort or scan again.
    """
    uniques, counts = _numpy().unique(values, return_counts=True)
    return uniques, counts


def _middle(uniques: Any, counts: Any) -> tuple[Any, Any] | None:
    """The two middle values (equal for an odd count) of a sample given as sorted counts."""
    np = _numpy()
    if not counts.size:
        return None
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    lower = uniques[np.searchsorted(cumulative, (total - 1) // 2, side="right")]
    upper = uniques[np.searchsorted(cumulative, total // 2, side="right")]
    return lower, upper


def _mean_of_middle(middle: tuple[Any, Any] | None) -> float | None:
    """The median from the two middle values: either one when they agree, else their mean."""
    if middle is None:
        return None
    lower, upper = (_python_number(value) for value in middle)
    if lower is None or upper is None:
        return None
    return lower if lower == upper else (lower + upper) / 2


class _Scale:
    """How figures from the sample relate to the frame: exact, or estimated and marked."""

    def __init__(self, total: int, sampled: int, *, partial: bool = False) -> None:
        self.total = total
        self.sampled = sampled
        self.partial = partial
        self.exact = sampled >= total and not partial
        self.mark = "" if self.exact else "~"

    def count(self, in_sample: int) -> str:
        if self.exact:
            return _count(in_sample)
        if self.sampled == 0:
            return "~0"
        return "~" + _rough(in_sample * self.total / self.sampled)

    def distinct(self, counts: Any, non_null_fraction: float, possible: int | None = None) -> str:
        """Distinct values from the sample's frequency counts, exact when the sample is the
        frame or when it already holds every value the dtype allows (both booleans, all
        categories)."""
        seen = int(_numpy().asarray(counts).size)
        if self.exact or (possible is not None and seen >= possible and not self.partial):
            return _count(seen)
        population = max(non_null_fraction * self.total, float(_numpy().asarray(counts).sum()))
        return "~" + _rough(_estimate_distinct(counts, population))

    def value(self, value: float) -> str:
        return self.mark + _num(value)

    def share(self, part: int, whole: int) -> str:
        return self.mark + _share(part / whole) if whole else "0%"


def _top_text(pairs: Iterable[tuple[object, int]], scale: _Scale, sampled: int) -> list[str]:
    """``["a ~12%", "b ~3.1%"]`` from (value, count in sample) pairs, most frequent first.

    Only values seen at least twice are listed: a value seen once in a sample is not
    "frequent", and listing it would leak a raw row for nothing. Exact summaries show counts;
    estimated ones show shares of all rows, since a count cannot be scaled up honestly.
    """
    shown: list[str] = []
    for value, count in pairs:
        if count < 2 or len(shown) == _TOP_VALUES:
            break
        text = _escape_cell(_quote_if_needed(_value_text(value)), _VALUE_LIMIT)
        figure = _count(count) if scale.exact else scale.share(count, sampled)
        shown.append(f"{text} {figure}")
    return shown


def _value_text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return _num(value) if not math.isnan(value) else "NaN"
    if isinstance(value, bytes):
        return repr(value)
    return str(value)


def _length_text(lengths: Any, scale: _Scale) -> str:
    np = _numpy()
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        return ""
    low, high = int(lengths.min()), int(lengths.max())
    if low == high:
        return f"len {scale.value(low)}"
    return f"len {scale.value(low)}–{scale.value(high)}"


def _types_text(values: Iterable[object], scale: _Scale) -> str:
    counts = Counter(type(v).__name__ for v in values if v is not None)
    total = sum(counts.values())
    if not total:
        return ""
    parts = [f"{name} {scale.share(n, total)}" for name, n in counts.most_common(_TOP_VALUES)]
    more = len(counts) - _TOP_VALUES
    return "types: " + ", ".join(parts) + (f", +{more} more" if more > 0 else "")


def _range_text(low: object, high: object, low_mark: str, high_mark: str) -> str:
    return f"{low_mark}{_time_text(low)} → {high_mark}{_time_text(high)}"


def _numeric_stats(
    low: float | None, median: float | None, high: float | None, exact_ends: bool, scale: _Scale
) -> list[str]:
    end_mark = "" if exact_ends else scale.mark
    stats = []
    if low is not None:
        stats.append(f"min {end_mark}{_num(low)}")
    if median is not None:
        stats.append(f"median {scale.value(median)}")
    if high is not None:
        stats.append(f"max {end_mark}{_num(high)}")
    return stats


def _python_number(value: Any) -> float | None:
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


def _cell_value(value: object) -> str:
    """A raw value for the sample-rows table: missing values of every library read ``null``."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return "null"
    if isinstance(value, float):
        return "null" if math.isnan(value) else f"{value:.6g}"
    if hasattr(value, "isoformat") and not isinstance(value, str):
        return _time_text(value)
    return _value_text(value)


def _rows_table(
    labels: Sequence[str], positions: Sequence[int], columns: Sequence[Sequence[object]]
) -> list[str]:
    """The opt-in raw rows: a small pipe table keyed by each row's position in the frame."""
    if not positions:
        return []
    head = ["row", *(_escape_name(label, _ROW_VALUE_LIMIT) for label in labels)]
    lines = [
        f"sample rows ({len(positions)} picked at random from the sample, in frame order):",
        "| " + " | ".join(head) + " |",
        "|" + "-|" * len(head),
    ]
    for index, position in enumerate(positions):
        cells = [_count(int(position))]
        cells += [_escape_cell(_cell_value(column[index]), _ROW_VALUE_LIMIT) for column in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _legend(sampled: int, total: int, seed: int) -> str:
    return (
        f"~ = estimated from a uniform random sample of {_count(sampled)} of {_count(total)} "
        f"rows (seed {seed})"
    )


# --- pandas ------------------------------------------------------------------------------------


def _pandas() -> Any:
    return sys.modules["pandas"]


def _label_text(label: object) -> str:
    if isinstance(label, tuple):
        return " / ".join(str(part) for part in label)
    return str(label)


def _pandas_dtype_text(dtype: Any) -> str:
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


def _pandas_kind(dtype: Any) -> str:
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


def _pandas_cheap_nulls(dtype: Any) -> bool:
    """Whether counting a pandas column's nulls is one fast vectorised pass.

    True for numpy dtypes other than object (a NaN/NaT test), masked dtypes (a mask), Arrow
    storage (a validity bitmap) and categoricals (negative codes). Object columns, including
    Python-stored strings, need a test per Python object: those are estimated.
    """
    np = _numpy()
    if isinstance(dtype, np.dtype):
        return bool(dtype.kind != "O")
    class_name = type(dtype).__name__
    if class_name == "StringDtype":
        return bool(dtype.storage == "pyarrow")
    return class_name in ("ArrowDtype", "CategoricalDtype", "DatetimeTZDtype") or hasattr(
        dtype, "numpy_dtype"
    )


def _pandas_arrow_backed(dtype: Any) -> bool:
    class_name = type(dtype).__name__
    return class_name == "ArrowDtype" or (
        class_name == "StringDtype" and dtype.storage == "pyarrow"
    )


def _pandas_note_index(index: Any) -> str | None:
    """The index when it says something: anything but an unnamed 0, 1, 2, … range.

    First and last labels are shown, not min and max: they are free, and for the usual sorted
    time index they are the range.
    """
    class_name = type(index).__name__
    if class_name == "RangeIndex":
        if index.start == 0 and index.step == 1 and index.name is None:
            return None
        named = f' "{_escape_name(str(index.name))}"' if index.name is not None else ""
        return (
            f"index: RangeIndex{named} from {_count(index.start)} to {_count(index.stop)} "
            f"step {_count(index.step)}"
        )
    if class_name == "MultiIndex":
        levels = [
            f"{_escape_name(str(name) if name is not None else f'level {i}', 40)} "
            f"({_escape_cell(_pandas_dtype_text(level.dtype), _DTYPE_LIMIT)})"
            for i, (name, level) in enumerate(zip(index.names, index.levels, strict=True))
        ]
        more = f", … {len(levels) - 8} more" if len(levels) > 8 else ""
        return f"index: MultiIndex, {index.nlevels} levels: " + ", ".join(levels[:8]) + more
    named = f' "{_escape_name(str(index.name))}"' if index.name is not None else ""
    text = f"index: {class_name}{named} {_pandas_dtype_text(index.dtype)}"
    if len(index) and getattr(index.dtype, "kind", "O") in "iufM":
        first, last = index[0], index[-1]
        text += f", first {_index_value(first)}, last {_index_value(last)}"
    return text


def _index_value(value: object) -> str:
    if isinstance(value, float):
        return _num(value)
    if hasattr(value, "isoformat"):
        return _time_text(value)
    return _escape_cell(str(value), _VALUE_LIMIT)


def _pandas_column_notes(frame: Any, labels: Sequence[str]) -> list[str]:
    notes = []
    columns = frame.columns
    if type(columns).__name__ == "MultiIndex":
        names = ", ".join(
            _escape_name(str(name) if name is not None else f"level {i}", 40)
            for i, name in enumerate(columns.names)
        )
        notes.append(
            f"columns: MultiIndex, {columns.nlevels} levels ({names}); labels shown as a / b"
        )
    repeated = [(label, n) for label, n in Counter(labels).items() if n > 1]
    if repeated:
        shown = ", ".join(f"{_escape_name(label, 40)} ×{n}" for label, n in repeated[:5])
        more = f", … {len(repeated) - 5} more" if len(repeated) > 5 else ""
        notes.append(f"duplicate column names: {shown}{more}")
    return notes


_SCAN_CHUNK = 1 << 16  # elements per step of a scan: small enough to stay in the L2 cache


def _scan(values: Any) -> tuple[int, Any, Any]:
    """Null count, min and max of a numpy array, reading its memory once.

    Three separate reductions would stream a 10-million-row column from memory three times;
    walking it in cache-sized chunks and doing all three per chunk streams it once. Nulls are
    NaN for floats and NaT for datetimes and durations (compared as int64, where NaT is the
    smallest value); other dtypes have none. Min and max leave nulls out and are None when
    every value is null.
    """
    np = _numpy()
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


class _PandasColumn:
    """Facts of one pandas column: exact where one pass is cheap, the rest from the sample."""

    def __init__(self, full: Any, sample: Any, scale: _Scale) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.dtype = full.dtype
        self.kind = _pandas_kind(self.dtype)
        self.facts = _Facts()
        self.ends: tuple[Any, Any] | None = None  # exact (min, max) from a scan
        self.unit = "ns"  # of int64 times, as the sample's numpy view has them
        self.storage = self._numpy_storage()

    def _numpy_storage(self) -> Any | None:
        """The column's numpy array when it has one that a scan can read without a copy."""
        np = _numpy()
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
            nulls, low, high = _scan(self.storage)
            self.ends = None if low is None else (low, high)
            return nulls
        if _pandas_arrow_backed(self.dtype):
            arrow = _arrow_null_count(self.full.array)
            if arrow is not None:
                return arrow
        if _pandas_cheap_nulls(self.dtype):
            return int(self.full.isna().sum())
        return None

    def build(self) -> _Facts:
        nulls = self._exact_nulls()
        if nulls is None:
            self.facts.nulls = self.scale.count(int(self.sample.isna().sum()))
            self.facts.counts_marked = True
        else:
            self.facts.nulls = _count(nulls)
        self.non_null = self.sample.dropna()
        if len(self.full) and nulls == len(self.full):
            self.facts.stats = ["all null"]
            return self.facts
        self.non_null_fraction = len(self.non_null) / len(self.sample) if len(self.sample) else 0
        handler = getattr(self, f"_{self.kind}", None)
        if handler is not None:
            handler()
        self.facts.counts_marked = self.facts.counts_marked or self.facts.distinct.startswith("~")
        return self.facts

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
        np = _numpy()
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
            uniques, counts = _sorted_counts(values)
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
        middle = _middle(uniques, counts)
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
        median = _mean_of_middle(middle)
        self.facts.stats = _numeric_stats(
            _python_number(low), median, _python_number(high), exact, self.scale
        )
        self.facts.stats_marked = not self.scale.exact

    def _numeric_fallback(self) -> None:
        """Numbers numpy cannot hold (decimals): pandas' own reductions on the sample."""
        values = self.non_null
        if not len(values):
            return
        self.facts.stats = _numeric_stats(
            _python_number(values.min()),
            _python_number(values.median()),
            _python_number(values.max()),
            self.scale.exact,
            self.scale,
        )
        self.facts.stats_marked = not self.scale.exact

    _int = _numeric
    _float = _numeric

    def _bool(self) -> None:
        self._count_distinct()
        if self.storage is not None:
            share = int(_numpy().count_nonzero(self.storage)) / len(self.storage)
            self.facts.stats = [f"true {_share(share)}"]
        elif len(self.non_null):
            trues = int(self.non_null.astype(bool).sum())
            self.facts.stats = [f"true {self.scale.share(trues, len(self.non_null))}"]
            self.facts.stats_marked = not self.scale.exact

    def _datetime(self) -> None:
        found = self._ends_and_middle()
        if found is None:
            self._temporal_fallback()
            return
        low, high, _, exact = found
        pd = _pandas()
        tz = getattr(self.dtype, "tz", None)
        stamps = [pd.Timestamp(int(_numpy().int64(end)), unit=self.unit) for end in (low, high)]
        if tz is not None:  # the int64 values are UTC wall times
            stamps = [stamp.tz_localize("UTC").tz_convert(tz) for stamp in stamps]
        mark = "" if exact else self.scale.mark
        self.facts.stats = [_range_text(stamps[0], stamps[1], mark, mark)]
        self.facts.stats_marked = bool(mark)

    def _timedelta(self) -> None:
        found = self._ends_and_middle()
        if found is None:
            self._temporal_fallback()
            return
        low, high, middle, exact = found
        pd = _pandas()
        unit = self.unit
        low, high = (pd.Timedelta(int(_numpy().int64(end)), unit=unit) for end in (low, high))
        median = pd.Timedelta((int(middle[0]) + int(middle[1])) // 2, unit=unit)
        mark = "" if exact else self.scale.mark
        self.facts.stats = [f"min {mark}{low}", f"median {self.scale.mark}{median}"]
        self.facts.stats.append(f"max {mark}{high}")
        self.facts.stats_marked = not self.scale.exact

    def _temporal_fallback(self) -> None:
        """Times numpy cannot hold (Arrow dates, periods): pandas' own min and max."""
        if not len(self.non_null):
            return
        low, high = self.non_null.min(), self.non_null.max()
        mark = self.scale.mark
        self.facts.stats = [_range_text(low, high, mark, mark)]
        self.facts.stats_marked = not self.scale.exact

    def _string(self) -> None:
        counts = self._value_counts()
        if counts is None:
            return
        self._distinct_from(counts.to_numpy())
        pairs = zip(counts.index.tolist(), counts.to_numpy().tolist(), strict=True)
        self.facts.top = _top_text(pairs, self.scale, len(self.sample))
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and len(self.non_null):
            lengths = self.non_null.astype(str).str.len().to_numpy()
            self.facts.stats = [_length_text(lengths, self.scale)]
            self.facts.stats_marked = not self.scale.exact

    _categorical = _string

    def _object(self) -> None:
        values = self.non_null.tolist()
        if all(isinstance(value, str) for value in values):
            self._string()
            return
        self.facts.stats = [_types_text(values, self.scale)]
        self.facts.stats_marked = not self.scale.exact
        self._count_distinct()

    _other = _count_distinct


def _describe_pandas(obj: Any, class_name: str, name: str, options: _Options) -> _Described:
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
    positions = _sample_positions(total, options.sample_size, options.seed)
    scale = _Scale(total, len(positions))
    columns = [
        _Column(label, _pandas_dtype_text(dtype), frozenset({label, str(raw)}))
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
                facts = _PandasColumn(column(index), sampled(index), scale).build()
                columns[index].facts = facts

    def sample_rows() -> list[str]:
        picked = _pick_rows(len(positions), options.rows, options.seed)
        chosen = positions[picked]
        values = [column(i).iloc[chosen].tolist() for i in range(len(columns))]
        return _rows_table(labels, chosen.tolist(), values)

    attributes = [("name", name), ("library", "pandas"), ("type", class_name)]
    attributes.append(("rows", _count(total)))
    if not is_series:
        attributes.append(("cols", _count(len(columns))))
    notes = [note for note in [_pandas_note_index(obj.index)] if note]
    if not is_series:
        notes += _pandas_column_notes(obj, labels)
    return _Described(
        tag="dataframe",
        attributes=attributes,
        notes=notes,
        legend=_legend(len(positions), total, options.seed),
        columns=columns,
        load_facts=load_facts,
        sample_rows=sample_rows,
    )


# --- polars ------------------------------------------------------------------------------------


def _polars() -> Any:
    return sys.modules["polars"]


def _polars_dtype_text(dtype: Any) -> str:
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
    without nulls is read by :func:`_scan` through a zero-copy numpy view, which yields NaN
    count, min and max in one pass; the rest share one ``select``, where polars may spread the
    work over cores. NaN counts of float columns that also hold nulls are left to the sample.
    """
    pl = _polars()
    figures: list[dict[str, Any]] = [{} for _ in names]
    expressions = []
    for index, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        column = frame.get_column(name)
        if type(column.dtype).__name__ in _NUMPY_NUMBERS and column.null_count() == 0:
            nans, low, high = _scan(column.to_numpy())
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

    def __init__(
        self, full: Any, sample: Any, scale: _Scale, exact_figures: dict[str, Any]
    ) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.figures = exact_figures
        self.kind = _polars_kind(full.dtype)
        self.facts = _Facts()
        # figures computed on the whole frame are exact unless the "frame" is a query's head
        self.whole_mark = "~" if scale.partial else ""

    def build(self) -> _Facts:
        total = len(self.full)
        nulls = self.full.null_count()
        self.facts.nulls = self.whole_mark + _count(nulls)
        self.facts.counts_marked = bool(self.whole_mark)
        if total and nulls == total:
            self.facts.stats = ["all null"]
            return self.facts
        self.non_null = self.sample.drop_nulls()
        self.non_null_fraction = len(self.non_null) / len(self.sample) if len(self.sample) else 0
        handler = getattr(self, f"_{self.kind}", None)
        if handler is not None:
            handler()
        self.facts.counts_marked = self.facts.counts_marked or self.facts.distinct.startswith("~")
        return self.facts

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
            median = _python_number(values.median()) if len(values) else None
        else:
            uniques, counts = _sorted_counts(values.to_numpy())
            self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction)
            median = _mean_of_middle(_middle(uniques, counts))
        low, high = self._ends()
        exact_ends = not self.whole_mark
        self.facts.stats = _numeric_stats(
            _python_number(low), median, _python_number(high), exact_ends, self.scale
        )
        nans = self.figures.get("nan")
        if nans is not None:
            if nans:
                self.facts.stats.append(f"NaN {self.whole_mark}{_count(int(nans))}")
        elif nan_in_sample:
            self.facts.stats.append(f"NaN {self.scale.count(nan_in_sample)}")
        self.facts.stats_marked = not self.scale.exact

    _float = _int

    def _bool(self) -> None:
        self._distinct()
        trues = int(self.figures.get("true") or 0)
        non_null = len(self.full) - self.full.null_count()
        if non_null:
            self.facts.stats = [f"true {self.whole_mark}{_share(trues / non_null)}"]
            self.facts.stats_marked = bool(self.whole_mark)

    def _physical_counts(self) -> tuple[Any, Any]:
        """Sorted distinct values of the sample's integer representation (times as int64)."""
        uniques, counts = _sorted_counts(self.non_null.to_physical().to_numpy())
        self.facts.distinct = self.scale.distinct(counts, self.non_null_fraction)
        return uniques, counts

    def _datetime(self) -> None:
        self._physical_counts()
        low, high = self._ends()
        if low is not None and high is not None:
            self.facts.stats = [_range_text(low, high, self.whole_mark, self.whole_mark)]
            self.facts.stats_marked = bool(self.whole_mark)

    def _timedelta(self) -> None:
        uniques, counts = self._physical_counts()
        low, high = self._ends()
        middle = _middle(uniques, counts)
        median: object = None
        if middle is not None:
            physical = (int(middle[0]) + int(middle[1])) // 2
            median = _polars().Series([physical]).cast(self.non_null.dtype).item()
        mark = self.whole_mark
        self.facts.stats = [f"min {mark}{low}", f"median {self.scale.mark}{median}"]
        self.facts.stats.append(f"max {mark}{high}")
        self.facts.stats_marked = not self.scale.exact

    def _string(self) -> None:
        counts = self._distinct()
        # most frequent first, ties by value so that the text is the same on every run
        repeated = counts.filter(_polars().col("count") >= 2)
        top = repeated.sort(["count", "value"], descending=[True, False]).head(_TOP_VALUES)
        pairs = top.select("value", "count").rows()
        self.facts.top = _top_text(pairs, self.scale, len(self.sample))
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and len(self.non_null):
            values = self.non_null.cast(_polars().String)
            self.facts.stats = [_length_text(values.str.len_chars().to_numpy(), self.scale)]
            self.facts.stats_marked = not self.scale.exact

    def _object(self) -> None:
        self.facts.stats = [_types_text(self.non_null.to_list(), self.scale)]
        self.facts.stats_marked = not self.scale.exact

    def _other(self) -> None:
        try:
            self._distinct()
        except Exception:  # a dtype polars cannot count or sort (binary in some versions)
            self.facts.distinct = ""


def _describe_polars(obj: Any, class_name: str, name: str, options: _Options) -> _Described:
    notes: list[str] = []
    legend = ""
    if class_name == "LazyFrame":
        frame, total, partial, notes = _polars_head(obj, options.sample_size)
        names, dtypes = _polars_schema(obj if frame is None else frame, notes)
        positions = None if frame is None else _numpy().arange(total)
        rows_attribute = "?" if partial or frame is None else _count(total)
        if partial:
            legend = (
                f"~ = computed on the first {_count(total)} rows the query returned, not on a "
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
        positions = _sample_positions(total, options.sample_size, options.seed)
        rows_attribute = _count(total)
        legend = _legend(len(positions), total, options.seed)
    sampled = 0 if positions is None else len(positions)
    scale = _Scale(total, sampled, partial=partial)
    sample = None
    if frame is not None and positions is not None:
        sample = frame if scale.exact or partial else frame[positions]
    columns = [
        _Column(column, _polars_dtype_text(dtype), frozenset({column}))
        for column, dtype in zip(names, dtypes, strict=True)
    ]
    kinds = [_polars_kind(dtype) for dtype in dtypes]

    def load_facts(indices: Sequence[int]) -> None:
        wanted = [i for i in indices if columns[i].facts is None]
        if not wanted:
            return
        if frame is None or sample is None:
            for index in wanted:
                columns[index].facts = _Facts(nulls="?", distinct="?")
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
        picked = _pick_rows(len(positions), options.rows, options.seed)
        chosen = sample[picked]
        values = [chosen.to_series(i).to_list() for i in range(len(columns))]
        return _rows_table(names, positions[picked].tolist(), values)

    attributes = [("name", name), ("library", "polars"), ("type", class_name)]
    attributes.append(("rows", rows_attribute))
    if class_name != "Series":
        attributes.append(("cols", _count(len(columns))))
    return _Described(
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
    return _escape_cell(f"{type(error).__name__}: {error}".splitlines()[0], 120)


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
        note = f"query: run in full for this summary (it returned {_count(head.height)} rows)"
        return head, head.height, False, [note]
    note = f"query: rows not counted; figures come from its first {_count(size)} rows"
    return head, head.height, True, [note]


# --- numpy -------------------------------------------------------------------------------------


class _NumpyColumn:
    """Facts of one array column (or of all the elements of an array, flattened)."""

    def __init__(self, full: Any, sample: Any, scale: _Scale, exact_pass: bool) -> None:
        self.full = full
        self.sample = sample
        self.scale = scale
        self.kind = full.dtype.kind
        # the whole array is read when it is small enough; a scan covers numbers and times
        self.exact_pass = exact_pass and not scale.exact
        self.ends: tuple[Any, Any] | None = None
        self.facts = _Facts()

    def _exact_nulls(self) -> int | None:
        np = _numpy()
        if self.scale.exact:
            return int(np.count_nonzero(self._missing(self.sample)))
        if self.kind not in "fcMmO":
            return 0
        if self.exact_pass and self.kind in "fMm":
            nulls, low, high = _scan(self.full)
            self.ends = None if low is None else (low, high)
            return nulls
        if self.exact_pass and self.kind == "c":
            return int(np.count_nonzero(np.isnan(self.full)))
        return None

    def build(self) -> _Facts:
        np = _numpy()
        missing = self._missing(self.sample)
        nulls = self._exact_nulls()
        if nulls is None:
            self.facts.nulls = self.scale.count(int(np.count_nonzero(missing)))
            self.facts.counts_marked = True
        else:
            self.facts.nulls = _count(nulls)
        if self.full.size and nulls == self.full.size:
            self.facts.stats = ["all null"]
            return self.facts
        self.values = self.sample[~missing] if missing.any() else self.sample
        self.non_null_fraction = self.values.size / self.sample.size if self.sample.size else 0
        self.sorted: tuple[Any, Any] | None = None
        if self.kind in "biufMmUS":
            self.sorted = _sorted_counts(self.values)
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
        if handler is not None:
            handler()
        self.facts.counts_marked = self.facts.counts_marked or self.facts.distinct.startswith("~")
        return self.facts

    def _missing(self, values: Any) -> Any:
        np = _numpy()
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
            _, low, high = _scan(self.full)
            self.ends = (low, high)
        if self.ends is not None:
            return self.ends[0], self.ends[1], True
        if not self.values.size:
            return None
        return self.values.min(), self.values.max(), self.scale.exact

    def _numeric(self) -> None:
        ends = self._ends()
        low, high, exact = ends if ends is not None else (None, None, True)
        median = _mean_of_middle(_middle(*self.sorted)) if self.sorted else None
        self.facts.stats = _numeric_stats(
            _python_number(low), median, _python_number(high), exact, self.scale
        )
        self.facts.stats_marked = not self.scale.exact

    def _bool(self) -> None:
        np = _numpy()
        source = self.full if self.exact_pass else self.values
        if source.size:
            share = int(np.count_nonzero(source)) / source.size
            mark = "" if self.exact_pass else self.scale.mark
            self.facts.stats = [f"true {mark}{_share(share)}"]
            self.facts.stats_marked = bool(mark)

    def _temporal(self) -> None:
        np = _numpy()
        ends = self._ends()
        if ends is None:
            return
        low, high, exact = ends
        mark = "" if exact else self.scale.mark
        if self.kind == "M":
            self.facts.stats = [_range_text(low, high, mark, mark)]
        else:
            median = np.int64(np.median(self.values.view("i8"))).view(self.full.dtype)
            self.facts.stats = [f"min {mark}{low}", f"median {self.scale.mark}{median}"]
            self.facts.stats.append(f"max {mark}{high}")
        self.facts.stats_marked = not self.scale.exact

    def _strings(self) -> None:
        np = _numpy()
        uniques, counts = self.sorted or _sorted_counts(self.values)
        order = np.argsort(-counts, kind="stable")
        pairs = [(_decode(uniques[i]), int(counts[i])) for i in order[: _TOP_VALUES + 1]]
        self.facts.top = _top_text(pairs, self.scale, self.sample.size)
        self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
        if not self.facts.top and self.values.size:
            lengths = np.strings.str_len(self.values)
            self.facts.stats = [_length_text(lengths, self.scale)]
            self.facts.stats_marked = not self.scale.exact

    def _object(self) -> None:
        values = self.values.tolist()
        if values and all(isinstance(value, str) for value in values):
            counts = Counter(values)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            self.facts.distinct = self.scale.distinct(
                [n for _, n in ordered], self.non_null_fraction
            )
            self.facts.top = _top_text(ordered, self.scale, self.sample.size)
            self.facts.top_marked = bool(self.facts.top) and not self.scale.exact
            if not self.facts.top:
                self.facts.stats = [_length_text([len(v) for v in values], self.scale)]
                self.facts.stats_marked = not self.scale.exact
            return
        self.facts.stats = [_types_text(values, self.scale)]
        self.facts.stats_marked = not self.scale.exact


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _decode(value: Any) -> object:
    item = value.item() if hasattr(value, "item") else value
    return item.decode("utf-8", "replace") if isinstance(item, bytes) else item


def _numpy_dtype_text(dtype: Any) -> str:
    """``<U5`` as ``U5``: the byte order says nothing to a reader and ``|`` breaks tables."""
    return str(dtype).lstrip("<>|=")


def _unmasked(array: Any) -> Any:
    """A masked array as a plain one whose masked entries are nulls (NaN, NaT or None).

    Integers and booleans have no null, so they become float64 (exact up to 2**53); other
    dtypes become objects. An ordinary array is returned as it is, without a copy.
    """
    np = _numpy()
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


def _describe_numpy(obj: Any, class_name: str, name: str, options: _Options) -> _Described:
    """An array as a table: fields of a record array, columns of a narrow 2-D array, or else
    one column of all its elements."""
    np = _numpy()
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

    positions = _sample_positions(total, options.sample_size, options.seed)
    scale = _Scale(total, len(positions))

    def sampled_column(index: int) -> Any:
        full = full_column(index)
        if full.ndim > 1:
            return full[np.unravel_index(positions, full.shape)]
        return full if scale.exact else full[positions]

    columns = [
        _Column(label, _numpy_dtype_text(full_column(i).dtype), frozenset({label}))
        for i, label in enumerate(labels)
    ]

    def load_facts(indices: Sequence[int]) -> None:
        for index in indices:
            if columns[index].facts is None:
                column = _NumpyColumn(full_column(index), sampled_column(index), scale, exact_pass)
                columns[index].facts = column.build()

    def sample_rows() -> list[str]:
        picked = _pick_rows(len(positions), options.rows, options.seed)
        values = [sampled_column(i)[picked].tolist() for i in range(len(columns))]
        return _rows_table(labels, positions[picked].tolist(), values)

    dtype = "structured" if array.dtype.names else _numpy_dtype_text(obj.dtype)
    if array is not obj:
        dtype += ", masked"
    attributes = [("name", name), ("library", "numpy"), ("type", class_name)]
    attributes += [("shape", _shape_text(array.shape)), ("dtype", dtype)]
    legend = _legend(len(positions), total, options.seed)
    if len(labels) == 1 and array.ndim > 1:
        legend = legend.replace(" rows ", " elements ")
    return _Described(
        tag="array",
        attributes=attributes,
        notes=[],
        legend=legend,
        columns=columns,
        load_facts=load_facts,
        sample_rows=sample_rows,
    )


# --- laying out within the budget --------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """One way of writing the summary; the budget search tries richer plans first."""

    keep_level: int
    other_level: int
    keep_shown: int
    others_shown: int
    with_notes: bool = True
    with_rows: bool = False


class _Layout:
    """Writes a plan's lines and counts their tokens, remembering each line's count.

    Lines are counted one by one because :func:`estimate_tokens` is additive over lines:
    trying many plans then costs a dictionary look-up per unchanged line.
    """

    def __init__(self, described: _Described, keep: Sequence[int], others: Sequence[int]) -> None:
        self.described = described
        self.keep = list(keep)
        self.others = list(others)
        self.name_limit = _NAME_LIMIT
        self._costs: dict[str, int] = {}
        self._rows: list[str] | None = None

    def cost(self, lines: Sequence[str]) -> int:
        total = len(lines) - 1
        for line in lines:
            cost = self._costs.get(line)
            if cost is None:
                cost = self._costs[line] = estimate_tokens(line)
            total += cost
        return total

    def open_tag(self) -> str:
        described = self.described
        parts = [described.tag]
        for key, value in described.attributes:
            limit = self.name_limit if key == "name" else _NAME_LIMIT
            parts.append(f'{key}="{_escape_name(value, limit)}"')
        return "<" + " ".join(parts) + ">"

    def lines(self, plan: _Plan) -> list[str]:
        described = self.described
        columns = described.columns
        kept = self.keep[: plan.keep_shown]
        shown_others = self.others[: plan.others_shown]
        table: list[tuple[_Column, int]] = []
        if plan.keep_level >= _COUNTS or plan.other_level >= _COUNTS:
            in_table = set(kept) if plan.keep_level >= _COUNTS else set()
            if plan.other_level >= _COUNTS:
                in_table.update(shown_others)
            levels = dict.fromkeys(kept, plan.keep_level)
            table = [(columns[i], levels.get(i, plan.other_level)) for i in sorted(in_table)]
        compact = [columns[i] for i in kept] if plan.keep_level == _NAMES else []
        if plan.other_level == _NAMES:
            compact += [columns[i] for i in shown_others]
        hidden = len(columns) - len(kept) - len(shown_others)

        lines = [self.open_tag()]
        if plan.with_notes:
            lines += described.notes
        if described.legend and any(c.facts and c.facts.marked(lv) for c, lv in table):
            lines.append(described.legend)
        lines += _table_lines(table)
        lines += _compact_lines(compact, after_table=bool(table))
        if hidden:
            more = " more" if table or compact else ""
            lines.append(f"… {_count(hidden)}{more} columns not shown")
        if plan.with_rows:
            lines += self.sample_rows()
        lines.append(f"</{described.tag}>")
        return lines

    def sample_rows(self) -> list[str]:
        if self._rows is None:
            self._rows = self.described.sample_rows()
        return self._rows

    def table_lower_bound(self) -> int:
        """Fewest tokens any plan with a table row for every column can take."""
        rows = [
            f"| {_escape_name(c.label)} | {_escape_cell(c.dtype, _DTYPE_LIMIT)} |"
            for c in self.described.columns
        ]
        fixed = [self.open_tag(), f"</{self.described.tag}>"]
        return self.cost(fixed) + sum(estimate_tokens(row) + 1 for row in rows)


def _table_lines(table: Sequence[tuple[_Column, int]]) -> list[str]:
    if not table:
        return []
    with_summary = any(c.facts and c.facts.summary(level) for c, level in table)
    if with_summary:
        head = ["| column | dtype | nulls | distinct | summary |", "|-|-|-|-|-|"]
    else:
        head = ["| column | dtype | nulls | distinct |", "|-|-|-|-|"]
    return head + [column.row(level, with_summary) for column, level in table]


def _compact_lines(columns: Sequence[_Column], *, after_table: bool) -> list[str]:
    """``name(dtype)`` items packed into lines, a trailing comma where a line continues."""
    if not columns:
        return []
    lines: list[str] = []
    current = "more columns: " if after_table else "columns: "
    fresh = True
    for column in columns:
        item = column.compact()
        if not fresh and len(current) + len(item) + 2 > _LINE_WIDTH:
            lines.append(current + ",")
            current, fresh = item, False
            continue
        current = current + item if fresh else current + ", " + item
        fresh = False
    lines.append(current)
    return lines


def _largest_fitting(
    layout: _Layout, make: Callable[[int], _Plan], high: int, budget: int
) -> list[str] | None:
    """The lines of ``make(k)`` for the largest ``k`` in ``0..high`` that fits the budget.

    A binary search: more items cost more tokens, give or take the digits of the "… N more"
    marker, and only a plan that was counted and fits is ever returned.
    """
    best: list[str] | None = None
    low = 0
    while low <= high:
        middle = (low + high) // 2
        lines = layout.lines(make(middle))
        if layout.cost(lines) <= budget:
            best, low = lines, middle + 1
        else:
            high = middle - 1
    return best


def _fit(described: _Described, budget: int, keep: frozenset[str], rows: int) -> str:
    """The richest plan that fits the budget, degrading in a fixed order.

    First the sample rows go, then frequent values, then statistics, then each column's table
    row becomes ``name(dtype)`` in a list that is cut with an explicit marker. Columns named in
    ``keep`` keep their full row until nothing else is left to give up; after them the notes
    go, and last the frame's name in the opening tag is shortened.
    """
    columns = described.columns
    keep_indices = [i for i, column in enumerate(columns) if column.keys & keep]
    kept = set(keep_indices)
    others = [i for i in range(len(columns)) if i not in kept]
    layout = _Layout(described, keep_indices, others)
    described.load_facts(keep_indices)
    n_keep, n_others = len(keep_indices), len(others)

    def fits(plan: _Plan) -> list[str] | None:
        lines = layout.lines(plan)
        return lines if layout.cost(lines) <= budget else None

    def done(lines: list[str]) -> str:
        text = "\n".join(lines)  # counted whole once more: the promise is about this text
        return text if estimate_tokens(text) <= budget else _minimal(layout, budget)

    plans: list[_Plan] = []
    if layout.table_lower_bound() <= budget:  # else skip computing what cannot be shown
        described.load_facts(others)
        if rows:
            plans.append(_Plan(_FULL, _FULL, n_keep, n_others, with_rows=True))
        plans += [_Plan(_FULL, level, n_keep, n_others) for level in _TABLE_LEVELS]
    plans.append(_Plan(_FULL, _NAMES, n_keep, n_others))
    for plan in plans:
        lines = fits(plan)
        if lines is not None:
            return done(lines)
    found = _largest_fitting(layout, lambda k: _Plan(_FULL, _NAMES, n_keep, k), n_others, budget)
    if found is not None:
        return done(found)
    for level in _TABLE_LEVELS:
        lines = fits(_Plan(level, _NAMES, n_keep, 0, with_notes=False))
        if lines is not None:
            return done(lines)
    found = _largest_fitting(
        layout, lambda k: _Plan(_NAMES, _NAMES, k, 0, with_notes=False), n_keep, budget
    )
    if found is not None:
        return done(found)
    return _minimal(layout, budget)


def _minimal(layout: _Layout, budget: int) -> str:
    """The tags alone, shrunk until they fit: the count of columns left out goes first (the
    tag says how many there are), then the name is shortened, then attributes other than
    name, library and type go from the last; returned as it is if even that is over."""
    lines = layout.lines(_Plan(_NAMES, _NAMES, 0, 0, with_notes=False))
    close = lines[-1]
    if layout.cost(lines) <= budget:
        return "\n".join(lines)
    attributes = layout.described.attributes
    while layout.cost([layout.open_tag(), close]) > budget:
        if layout.name_limit > 2:
            layout.name_limit = max(2, layout.name_limit // 2)
        elif len(attributes) > 3:
            attributes.pop()
        elif layout.name_limit > 1:
            layout.name_limit = 1
        else:
            break
    return layout.open_tag() + "\n" + close


# --- the entry point ---------------------------------------------------------------------------

_DESCRIBERS: dict[str, Callable[[Any, str, str, _Options], _Described]] = {
    "pandas": _describe_pandas,
    "polars": _describe_polars,
    "numpy": _describe_numpy,
}


def summarize(
    value: object,
    name: str,
    *,
    budget: int = 1000,
    sample_size: int = 100_000,
    rows: int = 0,
    keep: Collection[str] = (),
    seed: int = 0,
) -> str:
    """Describe a frame or array for a prompt, in at most ``budget`` estimated tokens.

    ``name`` is what the user calls it. Figures come from the whole frame where that is cheap
    and from one uniform sample of ``sample_size`` rows (seed ``seed``) otherwise, marked
    ``~``. ``rows=N`` adds N raw rows picked from the sample; none are shown by default, since
    rows may be private and cost tokens. Columns named in ``keep`` keep their full table row
    whatever else the budget takes away. ``estimate_tokens`` of the result is at most
    ``budget`` for any budget of at least :data:`MIN_BUDGET`.

    Raises :class:`TypeError` for anything :func:`is_frame` rejects.
    """
    kind = _frame_kind(value)
    if kind is None:
        raise TypeError(_unsupported_message(value))
    if budget < 1 or sample_size < 1 or rows < 0:
        raise ValueError("budget and sample_size must be positive and rows not negative")
    library, class_name = kind
    options = _Options(sample_size=sample_size, rows=rows, seed=seed)
    described = _DESCRIBERS[library](value, class_name, name, options)
    wanted = frozenset({keep} if isinstance(keep, str) else keep)
    return _fit(described, budget, wanted, rows)


def _dtype_text(library: str, dtype: Any) -> str:
    if library == "pandas":
        return _pandas_dtype_text(dtype)
    if library == "polars":
        return _polars_dtype_text(dtype)
    return "structured" if dtype.names else _numpy_dtype_text(dtype)
