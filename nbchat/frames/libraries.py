"""numpy, pandas and polars, reached only when a summary needs them.

``import nbchat`` must stay cheap, so no module of this package imports a dataframe library
at its top. A pandas or polars object exists only once its library is loaded, so the library
is taken from :data:`sys.modules`; the one exception is numpy for a polars frame, since polars
runs without numpy loaded.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def numpy_module() -> Any:
    """numpy, as already loaded by pandas or numpy objects; polars runs without it, so for a
    polars frame it may have to be imported here, at summary time (polars' own ``to_numpy``
    would import it too)."""
    return sys.modules.get("numpy") or importlib.import_module("numpy")


def pandas_module() -> Any:
    """pandas, loaded already: only a pandas object is summarised with it."""
    return sys.modules["pandas"]


def polars_module() -> Any:
    """polars, loaded already: only a polars object is summarised with it."""
    return sys.modules["polars"]
