"""The notebook's one session, made on first use from the environment.

Every face asks :func:`get_session` for the session, so a ``%%chat`` cell, ``%chat`` commands
and every panel share one conversation. Its history is the notebook's latest conversation in
the store, found by the notebook's key (its path, from the environment the server started the
kernel with), so a kernel restart picks up where the conversation was. A path the store does not
know is looked up by the saved notebook's cell ids (:mod:`nbchat.identity`): a renamed notebook
goes on with its conversation, a copy with a copy of it. The replies saved in the notebook's
``.ipynb`` are read then too (:mod:`nbchat.ipynb`).
"""

from __future__ import annotations

import logging
import os
import threading

from .config import Settings
from .history import History
from .identity import notebook_file, saved_cell_ids
from .runtime import connection_file, running_cell_id, user_namespace
from .secrets import KeyScrubber
from .session import ChatSession
from .store import HistoryStore, notebook_key

__all__ = ["get_session", "reset_session_for_tests"]

log = logging.getLogger("nbchat")

_session: ChatSession | None = None
_session_lock = threading.Lock()


def get_session() -> ChatSession:
    """This notebook's session, made on first use from the environment."""
    global _session
    with _session_lock:
        if _session is None:
            _session = _new_notebook_session()
        return _session


def _new_notebook_session() -> ChatSession:
    key = notebook_key(user_namespace(), os.environ, connection_file=connection_file())
    settings = Settings.from_env()
    store: HistoryStore | None
    try:
        store = HistoryStore(HistoryStore.default_path())
    except Exception as error:  # history then lives in memory only
        log.warning("nbchat: history will not survive a restart: %s", error)
        store = None
    scrubber = KeyScrubber(settings.api_key)
    history = History(store, key, scrub=scrubber.scrub)
    if history.unclaimed:  # a path new to the store: a renamed or copied notebook?
        saved = saved_cell_ids(notebook_file(key, key))
        if saved:
            history.claim(saved)
    session = ChatSession(settings, history=history, scrubber=scrubber)
    from .ipynb import follow_saved_notebook  # the saved .ipynb: recordings, maybe the turns

    follow_saved_notebook(
        session, user_namespace(), os.environ, cells_named=running_cell_id() is not None
    )
    return session


def reset_session_for_tests() -> None:
    """Forget the notebook session (tests make a fresh one per case)."""
    global _session
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None
