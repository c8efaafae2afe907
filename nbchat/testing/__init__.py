"""A scripted OpenAI-compatible chat server on the loopback interface, for tests and demos.

    from nbchat.testing import LoopbackServer, Reply, Status

    with LoopbackServer() as server:
        server.enqueue(Status(429, headers={"Retry-After": "0"}), Reply(text="Hello"))
        ...  # point the client at server.base_url
        assert len(server.chat_requests) == 2

``python -m nbchat.testing.server --port 8123`` serves canned replies for offline notebooks
(``--long`` for long ones; a message containing ``/long`` gets a long one anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .canned import LONG_KEYWORD, canned_reply
from .script import RawSSE, RecordedRequest, Reply, ScriptItem, Status

if TYPE_CHECKING:
    from .server import LoopbackServer

# The public names. script.py and canned.py, where they live, keep no list of their own.
__all__ = [
    "LONG_KEYWORD",
    "LoopbackServer",
    "RawSSE",
    "RecordedRequest",
    "Reply",
    "ScriptItem",
    "Status",
    "canned_reply",
]


def __getattr__(name: str) -> Any:
    """Import the server module on first use rather than here, so that running it with
    ``python -m nbchat.testing.server`` does not find it already imported (and warn)."""
    if name == "LoopbackServer":
        from .server import LoopbackServer

        return LoopbackServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
