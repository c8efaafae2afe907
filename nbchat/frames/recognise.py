"""Which values are frames, and the one-line labels a picker lists them by.

These run on every value of a notebook namespace, so they read only an object's class and
what it already knows (its shape, a lazy frame's schema): nothing is imported, no query run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .numpy_arrays import numpy_dtype_text
from .pandas_frames import pandas_dtype_text
from .polars_frames import polars_dtype_text
from .text import count_text, shape_text

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


def frame_kind(value: object) -> tuple[str, str] | None:
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
    return frame_kind(value) is not None


def frame_label(value: object) -> str:
    """A one-line description for a picker, e.g. ``pandas DataFrame · 10,000,000 × 20``.

    Reads only what the object already knows (its shape, a lazy frame's schema): it never
    runs a lazy query, so it is safe to call for every frame in a namespace.
    """
    kind = frame_kind(value)
    if kind is None:
        raise TypeError(unsupported_message(value))
    library, class_name = kind
    obj: Any = value
    prefix = f"{library} {class_name}"
    try:
        if class_name == "LazyFrame":
            return f"{prefix} · ? × {count_text(obj.collect_schema().len())}"
        if class_name == "Series":
            return f"{prefix} · {count_text(len(obj))} · {_dtype_text(library, obj.dtype)}"
        if library == "numpy":
            shape = shape_text(tuple(obj.shape))
            return f"{prefix} · {shape} · {_dtype_text(library, obj.dtype)}"
        rows, cols = obj.shape
        return f"{prefix} · {count_text(rows)} × {count_text(cols)}"
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


def unsupported_message(value: object) -> str:
    klass = type(value)
    return (
        f"cannot summarize a {klass.__module__}.{klass.__qualname__}: expected a pandas "
        "DataFrame or Series, a polars DataFrame, LazyFrame or Series, or a numpy array"
    )


def _dtype_text(library: str, dtype: Any) -> str:
    if library == "pandas":
        return pandas_dtype_text(dtype)
    if library == "polars":
        return polars_dtype_text(dtype)
    return "structured" if dtype.names else numpy_dtype_text(dtype)
