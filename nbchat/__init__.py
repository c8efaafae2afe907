"""nbchat: talk to an OpenAI-compatible chat model from a Jupyter notebook.

``%load_ext nbchat`` must stay cheap, so this module imports nothing heavy: the public names
below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = [
    "APIKey",
    "ChatClient",
    "ChatPanel",
    "ChatRequest",
    "ChatResult",
    "ChatSession",
    "ChatStream",
    "NbChatError",
    "Reply",
    "Settings",
    "__version__",
    "get_session",
    "load_ipython_extension",
    "summarize",
    "unload_ipython_extension",
]

_LAZY = {
    "APIKey": "nbchat.config",
    "Settings": "nbchat.config",
    "ChatClient": "nbchat.client",
    "ChatStream": "nbchat.stream",
    "ChatRequest": "nbchat.protocol",
    "ChatResult": "nbchat.protocol",
    "NbChatError": "nbchat.errors",
    "ChatSession": "nbchat.session",
    "Reply": "nbchat.reply",
    "get_session": "nbchat.notebook",
    "ChatPanel": "nbchat.panel",
    "summarize": "nbchat.frames",
}

if TYPE_CHECKING:
    from .client import ChatClient
    from .config import APIKey, Settings
    from .errors import NbChatError
    from .frames import summarize
    from .notebook import get_session
    from .panel import ChatPanel
    from .protocol import ChatRequest, ChatResult
    from .reply import Reply
    from .session import ChatSession
    from .stream import ChatStream

_extension_magics: dict[int, Any] = {}


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register ``%%chat``/``%chat`` and follow cell ids."""
    from .cell_images import install
    from .magics import ChatMagics, keep_question_marks

    install(ipython)  # keeps the images cells display, for --cell-image
    magics = ChatMagics(ipython)
    ipython.register_magics(magics)
    ipython.events.register("pre_run_cell", magics.pre_run_cell)
    ipython.events.register("post_run_cell", magics.errors.post_run_cell)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks not in cleanup:
        cleanup.append(keep_question_marks)
    _extension_magics[id(ipython)] = magics


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext nbchat``: stop following cell ids (the session and its history stay)."""
    magics = _extension_magics.pop(id(ipython), None)
    if magics is not None:
        ipython.events.unregister("pre_run_cell", magics.pre_run_cell)
        ipython.events.unregister("post_run_cell", magics.errors.post_run_cell)
    from .cell_images import uninstall
    from .magics import keep_question_marks

    uninstall(ipython)

    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and keep_question_marks in cleanup:
        cleanup.remove(keep_question_marks)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbchat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
