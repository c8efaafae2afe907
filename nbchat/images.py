"""Plots and images in a prompt: what the user made, as an ``image_url`` content part.

A matplotlib ``Figure``, a PIL ``Image``, an ``IPython.display.Image`` holding PNG or JPEG
bytes, or such bytes themselves become an :class:`ImagePart`: base64 PNG or JPEG at most
:data:`MAX_SIDE` pixels on its longest side, with its size and an estimate of what it costs in
tokens. The user message then goes as a list of content parts, its text first and each image
after it, in the OpenAI vision format that gateways follow::

    [{"type": "text", "text": "…"},
     {"type": "image_url", "image_url": {"url": "data:image/png;base64,…"}}]

Objects are recognised by the module their type comes from, and shrunk through their own API
(``Figure.savefig`` at a lower dpi, PIL's ``thumbnail``), so nbchat never imports matplotlib or
PIL: they are objects the user made, with the library already loaded. Raw PNG or JPEG bytes are
measured from their header and sent as they are; when they are larger than :data:`MAX_SIDE`
nothing here could shrink them, so the user is told so in one line.

The token estimate is OpenAI's published rule for ``detail: "high"`` (:func:`estimate_tokens`):
other providers count differently, so it is shown with a ``~``.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ContextError, UndefinedNameError

__all__ = [
    "MAX_BYTES",
    "MAX_SIDE",
    "ImagePart",
    "estimate_tokens",
    "image_attachment",
    "image_part",
    "image_size",
    "is_image",
    "part_from_data",
    "user_content",
]

MAX_SIDE = 1024
"""Pixels on the longest side of an image sent: figures and PIL images are shrunk to fit."""
MAX_BYTES = 20 * 1024 * 1024
"""The most bytes of one image sent (OpenAI's limit per image)."""
_MIMES = frozenset({"image/png", "image/jpeg"})
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HINT = "give a matplotlib Figure, a PIL Image, an IPython.display.Image or PNG/JPEG bytes"


@dataclass(frozen=True, slots=True)
class ImagePart:
    """One image of a user message, ready to send and to show."""

    name: str
    """What it was called: the variable, or ``cell 12`` for a cell's output."""
    mime: str
    """``image/png`` or ``image/jpeg``."""
    data: str
    """The image, base64 (no line breaks)."""
    width: int
    height: int
    estimated_tokens: int
    """What the model is likely to count for it (:func:`estimate_tokens`)."""
    detail: str | None = None
    """``low``, ``high`` or ``auto`` when asked for; None leaves it to the server."""

    def __post_init__(self) -> None:
        # Only nbchat makes these, but they are read back from the store too: whatever a
        # transcript puts in a data: URL must be an image of a known type, base64 and nothing else.
        if self.mime not in _MIMES:
            raise ValueError(f"an image part is PNG or JPEG, not {self.mime!r}")
        if not _BASE64.fullmatch(self.data) or not self.data:
            raise ValueError("an image part's data must be base64")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"an image has a size, not {self.width}×{self.height}")

    @property
    def label(self) -> str:
        """``fig · 800×600 · ~765 tokens``: what a transcript and the text say of it."""
        return f"{self.name} · {self.width}×{self.height} · ~{self.estimated_tokens:,} tokens"

    @property
    def marker(self) -> str:
        """The text that stands for the image in the message: ``[image: fig · 800×600 · …]``."""
        return f"[image: {self.label}]"

    @property
    def url(self) -> str:
        return f"data:{self.mime};base64,{self.data}"

    def content_part(self) -> dict[str, Any]:
        """The part as sent: ``{"type": "image_url", "image_url": {"url": …}}``."""
        image_url: dict[str, str] = {"url": self.url}
        if self.detail is not None:
            image_url["detail"] = self.detail
        return {"type": "image_url", "image_url": image_url}

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "mime": self.mime,
            "data": self.data,
            "width": self.width,
            "height": self.height,
            "estimated_tokens": self.estimated_tokens,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, object]) -> ImagePart:
        """The part :meth:`to_json` wrote; a ``ValueError`` for anything else."""
        name, mime, data = raw.get("name"), raw.get("mime"), raw.get("data")
        width, height, tokens = raw.get("width"), raw.get("height"), raw.get("estimated_tokens")
        detail = raw.get("detail")
        if not (isinstance(name, str) and isinstance(mime, str) and isinstance(data, str)):
            raise ValueError("an image part needs a name, a mime type and data")
        if not (isinstance(width, int) and isinstance(height, int) and isinstance(tokens, int)):
            raise ValueError("an image part needs a width, a height and a token estimate")
        if detail is not None and not isinstance(detail, str):
            raise ValueError("an image part's detail is a string")
        return cls(name, mime, data, width, height, tokens, detail)


def user_content(text: str, images: Sequence[ImagePart]) -> str | list[dict[str, Any]]:
    """A user message's ``content``: the text alone, or the text then each image as parts."""
    if not images:
        return text
    return [{"type": "text", "text": text}, *(image.content_part() for image in images)]


def estimate_tokens(width: int, height: int, detail: str | None = None) -> int:
    """OpenAI's count for an image: 85 for ``low``; otherwise fit it in 2048×2048, shrink its
    shortest side to 768, and add 170 for each 512-pixel tile it covers to the 85."""
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _module(value: object) -> str:
    return type(value).__module__ or ""


def _is_figure(value: object) -> bool:
    return _module(value).startswith("matplotlib") and callable(getattr(value, "savefig", None))


def _is_pil(value: object) -> bool:
    return _module(value).startswith("PIL") and callable(getattr(value, "thumbnail", None))


def _is_ipython_image(value: object) -> bool:
    return _module(value).startswith("IPython") and type(value).__name__ == "Image"


def _is_image_bytes(value: object) -> bool:
    return isinstance(value, (bytes, bytearray)) and _mime_of(bytes(value[:8])) is not None


def is_image(value: object) -> bool:
    """Whether ``value`` goes into a prompt as an image (see the module's docstring)."""
    return _is_figure(value) or _is_pil(value) or _is_ipython_image(value) or _is_image_bytes(value)


def _mime_of(head: bytes) -> str | None:
    if head.startswith(_PNG_SIGNATURE):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's or a JPEG's header, without decoding it; None when the
    bytes are neither (or the header is cut short)."""
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return (int(width), int(height)) if width and height else None
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    return None


_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, progressive, …); C4, C8 and CC are other segments."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_FRAMES and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return (int(width), int(height)) if width and height else None
        position += 2 + length
    return None


def part_from_data(name: str, data: bytes, *, detail: str | None = None) -> ImagePart:
    """``data`` (PNG or JPEG bytes) as a part, sent as it is; a :class:`ContextError` when it
    is neither, or larger than nbchat can send without an image library to shrink it."""
    mime = _mime_of(data[:8])
    size = image_size(data)
    if mime is None or size is None:
        raise ContextError(
            f"{name!r} is not a PNG or JPEG image nbchat can read", name=name, hint=_HINT
        )
    width, height = size
    kind = "PNG" if mime == "image/png" else "JPEG"
    if max(width, height) > MAX_SIDE or len(data) > MAX_BYTES:
        raise ContextError(
            f"{name!r} is a {width}×{height} {kind} of {len(data):,} bytes, over the "
            f"{MAX_SIDE} px (and {MAX_BYTES // 2**20} MiB) nbchat sends, and raw image bytes "
            "cannot be shrunk here",
            hint="open it with PIL (PIL.Image.open(io.BytesIO(data))), which nbchat shrinks, "
            "or save it smaller",
            name=name,
        )
    encoded = base64.b64encode(data).decode("ascii")
    tokens = estimate_tokens(width, height, detail)
    return ImagePart(name, mime, encoded, width, height, tokens, detail)


def image_part(name: str, value: object, *, detail: str | None = None) -> ImagePart:
    """``value`` as an image part, at most :data:`MAX_SIDE` pixels on its longest side.

    Raises a :class:`ContextError` (one line) when ``value`` is not an image, or is one that
    cannot be sent (an ``IPython.display.Image`` of a URL, raw bytes too large).
    """
    try:
        if _is_figure(value):
            data = _figure_png(value)
        elif _is_pil(value):
            data = _pil_bytes(value)
        elif _is_ipython_image(value):
            data = _ipython_image_bytes(name, value)
        elif isinstance(value, (bytes, bytearray)) and _is_image_bytes(value):
            data = bytes(value)
        else:
            raise ContextError(
                f"{name!r} is a {_module(value)}.{type(value).__qualname__}, not an image",
                name=name,
                hint=_HINT,
            )
    except ContextError:
        raise
    except Exception as error:  # the library's own failure: one line, not its traceback
        reason = " ".join(str(error).split())[:200] or "no message"
        raise ContextError(
            f"could not make an image of {name!r} ({type(error).__name__}: {reason})",
            name=name,
            hint=_HINT,
        ) from error
    return part_from_data(name, data, detail=detail)


def _figure_png(figure: Any) -> bytes:
    """A matplotlib figure as PNG, its dpi lowered so its longest side fits in MAX_SIDE."""
    width, height = (float(inches) for inches in figure.get_size_inches())
    # matplotlib truncates inches × dpi to whole pixels; a quarter pixel over lands on MAX_SIDE.
    dpi = min(float(figure.dpi), (MAX_SIDE + 0.25) / max(width, height, 1e-6))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _pil_bytes(image: Any) -> bytes:
    """A PIL image shrunk to fit in MAX_SIDE: JPEG if it came from a JPEG, else PNG."""
    copy = image.copy()
    copy.thumbnail((MAX_SIDE, MAX_SIDE))
    buffer = io.BytesIO()
    if getattr(image, "format", None) == "JPEG" and copy.mode in ("RGB", "L"):
        copy.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()
    if copy.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        copy = copy.convert("RGBA" if "A" in copy.mode else "RGB")
    copy.save(buffer, format="PNG")
    return buffer.getvalue()


def _ipython_image_bytes(name: str, image: Any) -> bytes:
    data = getattr(image, "data", None)
    if isinstance(data, str):  # IPython keeps base64 text for some embedded images
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            data = None
    if not isinstance(data, (bytes, bytearray)):
        raise ContextError(
            f"{name!r} is an IPython.display.Image of a URL, not of image bytes",
            name=name,
            hint="make it with Image(data=...) or Image(filename=...), or pass the bytes",
        )
    return bytes(data)


def image_attachment(name: str, namespace: Mapping[str, object]) -> ImagePart:
    """The image of the variable ``name``, for ``--image NAME``; a :class:`ContextError` when
    it is undefined or not an image."""
    if name not in namespace:
        raise UndefinedNameError(
            f"--image: {name!r} is not defined in the notebook",
            name=name,
            hint="run the cell that makes it",
        )
    value = namespace[name]
    if not is_image(value):
        raise ContextError(
            f"--image: {name!r} is a {_module(value)}.{type(value).__qualname__}, not an image",
            name=name,
            hint=_HINT,
        )
    return image_part(name, value)
