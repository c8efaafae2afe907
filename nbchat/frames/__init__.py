"""Dataframe summaries for prompts: what a model needs to know about a frame, in few tokens.

A model asked about ``df`` needs its shape, its columns and their types, and what the values
look like; it does not need the rows, which cost tokens and may be private. :func:`summarize`
writes that description as a small XML-like block holding a Markdown table, never longer than
a token budget, and :func:`list_frames` lists what a notebook namespace holds for a picker.

Three rules shape the code:

- **No heavy imports.** ``import nbchat`` must stay cheap, so this package never imports
  pandas, polars, numpy or pyarrow. Objects are recognised by their class's module and name and
  used through their own methods; numpy functions come from ``sys.modules["numpy"]``, which
  pandas and numpy objects imply (polars does not: summarising a polars frame imports numpy,
  which it then needs installed).
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

The package is split by job; the shared modules come first and the entry point last:

- :mod:`~nbchat.frames.tokens`: the offline token estimate budgets are counted with;
- :mod:`~nbchat.frames.text`: figures, times and names formatted, and escaped for the table;
- :mod:`~nbchat.frames.libraries`: numpy, pandas and polars, reached without importing them;
- :mod:`~nbchat.frames.model`: what a summary is made of (columns, facts, detail levels);
- :mod:`~nbchat.frames.sampling`: the uniform sample, and how figures from it are marked;
- :mod:`~nbchat.frames.stats`: figures from numpy arrays in as few passes as possible;
- :mod:`~nbchat.frames.cells`: figures written as table cells, and the sample-rows table;
- :mod:`~nbchat.frames.pandas_columns`: one pandas column's figures, as cheaply as its
  storage allows;
- :mod:`~nbchat.frames.pandas_frames`, :mod:`~nbchat.frames.polars_frames` and
  :mod:`~nbchat.frames.numpy_arrays`: each library's objects described in its own terms;
- :mod:`~nbchat.frames.layout`: the richest text that fits the budget;
- :mod:`~nbchat.frames.recognise`: which values are frames, and their labels for a picker;
- :mod:`~nbchat.frames.summary`: :func:`summarize`, tying a library module to the layout.

The names below are the API; the modules' own names are for the package alone.
"""

from __future__ import annotations

from .layout import MIN_BUDGET
from .recognise import frame_label, is_frame, list_frames
from .summary import summarize
from .tokens import estimate_tokens

__all__ = [
    "MIN_BUDGET",
    "estimate_tokens",
    "frame_label",
    "is_frame",
    "list_frames",
    "summarize",
]
