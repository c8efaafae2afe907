"""The entry point: :func:`summarize` hands a frame to its library's module, then to the layout.

The library modules and the layout meet only here, so neither depends on the other.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from .layout import fit
from .model import Described, Options
from .numpy_arrays import describe_numpy
from .pandas_frames import describe_pandas
from .polars_frames import describe_polars
from .recognise import frame_kind, unsupported_message

_DESCRIBERS: dict[str, Callable[[Any, str, str, Options], Described]] = {
    "pandas": describe_pandas,
    "polars": describe_polars,
    "numpy": describe_numpy,
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
    kind = frame_kind(value)
    if kind is None:
        raise TypeError(unsupported_message(value))
    if budget < 1 or sample_size < 1 or rows < 0:
        raise ValueError("budget and sample_size must be positive and rows not negative")
    library, class_name = kind
    options = Options(sample_size=sample_size, rows=rows, seed=seed)
    described = _DESCRIBERS[library](value, class_name, name, options)
    wanted = frozenset({keep} if isinstance(keep, str) else keep)
    return fit(described, budget, wanted, rows)
