"""nbchat: talk to an OpenAI-compatible chat model from a Jupyter notebook.

``%load_ext nbchat`` must stay cheap, so this module imports nothing heavy: the public names
below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "APIKey",
    "ChatClient",
    "ChatRequest",
    "ChatResult",
    "ChatStream",
    "NbChatError",
    "Settings",
    "__version__",
]

_LAZY = {
    "APIKey": "nbchat.config",
    "Settings": "nbchat.config",
    "ChatClient": "nbchat.client",
    "ChatStream": "nbchat.client",
    "ChatRequest": "nbchat.protocol",
    "ChatResult": "nbchat.protocol",
    "NbChatError": "nbchat.errors",
}

if TYPE_CHECKING:
    from .client import ChatClient, ChatStream
    from .config import APIKey, Settings
    from .errors import NbChatError
    from .protocol import ChatRequest, ChatResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbchat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
