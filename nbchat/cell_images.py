"""The images the last few cells displayed, so that ``--cell-image N`` can send one.

A plot shown inline reaches the notebook as an ``image/png`` (or ``image/jpeg``) display
output, published through the shell's display publisher; a cell whose value is an image has
it in ``Out[N]``. :class:`CellImages` listens at the publisher (wrapping its ``publish``, which
every display goes through, the figures matplotlib's inline backend flushes after the cell
included) and files what it saw under the cell's execution count when the cell ends
(``post_run_cell``). It keeps only a reference to the base64 text the publisher was given, and
only for the last :data:`KEEP_CELLS` cells, at most :data:`PER_CELL` images each and
:data:`MAX_TOTAL` in all, so memory stays bounded however many plots a notebook draws.

Nothing here imports IPython: the shell is whatever ``%load_ext`` was given.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ContextError

if TYPE_CHECKING:
    from .images import ImagePart

__all__ = [
    "KEEP_CELLS",
    "MAX_KEPT",
    "MAX_TOTAL",
    "PER_CELL",
    "CellImages",
    "capture",
    "install",
    "uninstall",
]

KEEP_CELLS = 8
"""Cells whose displayed images are kept (the most recent ones)."""
PER_CELL = 4
"""Images kept per cell (its last ones)."""
MAX_KEPT = 27 * 1024 * 1024
"""The longest base64 text of one image kept: 20 MiB of image, the most nbchat sends."""
MAX_TOTAL = 64 * 1024 * 1024
"""The most base64 text kept in all: older cells' images go first when it is passed."""
_MIMES = ("image/png", "image/jpeg")

log = logging.getLogger("nbchat")

_installed: dict[int, CellImages] = {}


class CellImages:
    """Displayed images by execution count, for the last :data:`KEEP_CELLS` cells."""

    def __init__(self) -> None:
        self._pending: list[str | bytes] = []
        self._cells: OrderedDict[int, list[str | bytes]] = OrderedDict()
        self.latest: int | None = None
        """The execution count of the last cell that finished."""
        self._publisher: Any = None
        self._wrapper: Callable[..., Any] | None = None

    def note(self, data: Mapping[str, Any]) -> None:
        """A display output was published: keep its image, if it has one."""
        for mime in _MIMES:
            image = data.get(mime)
            if isinstance(image, (str, bytes)) and 0 < len(image) <= MAX_KEPT:
                self._pending.append(image)
                del self._pending[:-PER_CELL]
                return

    def cell_ended(self, result: Any) -> None:
        """``post_run_cell``: file what the cell displayed under its execution count."""
        count = getattr(result, "execution_count", None)
        pending, self._pending = self._pending, []
        if not isinstance(count, int):
            return
        self.latest = count
        if pending:
            self._cells[count] = pending
            self._cells.move_to_end(count)
            while len(self._cells) > KEEP_CELLS or (
                len(self._cells) > 1 and self._kept_size() > MAX_TOTAL
            ):
                self._cells.popitem(last=False)

    def _kept_size(self) -> int:
        return sum(len(image) for images in self._cells.values() for image in images)

    def count(self, number: int) -> int:
        """The execution count ``number`` names: itself, or counted back from the latest cell
        when negative (-1 is the cell that ran last)."""
        if number >= 0:
            return number
        if self.latest is None:
            raise ContextError(
                f"--cell-image {number}: no cell has run yet",
                name=str(number),
                hint="run the cell that plots",
            )
        return self.latest + 1 + number

    def image(self, number: int, outputs: Mapping[int, Any] | None = None) -> ImagePart:
        """The last image cell ``number`` showed (or its ``Out[N]``, if that is an image)."""
        from .images import image_part, is_image, part_from_data

        count = self.count(number)
        name = f"cell {count}"
        kept = self._cells.get(count)
        if kept:
            return part_from_data(name, _decoded(kept[-1]))
        value = (outputs or {}).get(count)
        if value is not None and is_image(value):
            return image_part(name, value)
        seen = ", ".join(str(n) for n in self._cells) or "none"
        raise ContextError(
            f"--cell-image {number}: cell [{count}] showed no image nbchat kept",
            name=name,
            hint=f"the last {KEEP_CELLS} cells' images are kept; cells with images: {seen}",
        )

    # -- listening ------------------------------------------------------------------------

    def attach(self, shell: Any) -> None:
        publisher = getattr(shell, "display_pub", None)
        original = getattr(publisher, "publish", None)
        events = getattr(shell, "events", None)
        if publisher is None or original is None or events is None:
            return

        def publish(data: Any = None, *args: Any, **kwargs: Any) -> Any:
            if isinstance(data, Mapping) and not kwargs.get("update"):
                try:
                    self.note(data)
                except Exception:  # never let keeping an image break a display
                    log.debug("nbchat: keeping a displayed image failed", exc_info=True)
            return original(data, *args, **kwargs)

        publisher.publish = publish
        self._publisher, self._wrapper = publisher, publish
        events.register("post_run_cell", self.cell_ended)

    def detach(self, shell: Any) -> None:
        events = getattr(shell, "events", None)
        if events is not None and self.cell_ended in events.callbacks.get("post_run_cell", []):
            events.unregister("post_run_cell", self.cell_ended)
        publisher = self._publisher
        if publisher is not None and vars(publisher).get("publish") is self._wrapper:
            del publisher.publish  # the class's own method again
        self._publisher = self._wrapper = None


def _decoded(image: str | bytes) -> bytes:
    """A display's image as bytes: kernels carry base64 text, IPython may hand over bytes."""
    if isinstance(image, bytes):
        return image
    try:
        return base64.b64decode(image)
    except ValueError as error:
        raise ContextError(
            "a displayed image was not base64", name="--cell-image", hint="show it again"
        ) from error


def install(shell: Any) -> CellImages:
    """Start keeping ``shell``'s displayed images (once per shell)."""
    found = _installed.get(id(shell))
    if found is None:
        found = _installed[id(shell)] = CellImages()
        found.attach(shell)
    return found


def uninstall(shell: Any) -> None:
    found = _installed.pop(id(shell), None)
    if found is not None:
        found.detach(shell)


def capture(shell: Any) -> CellImages:
    """The images kept for ``shell``: installed at ``%load_ext``, or now if it was not."""
    return install(shell)
