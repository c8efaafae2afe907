"""The key policy: where a key may not be given, and how it is cut out of text.

Two rules live here and nowhere else:

- **A key is never an argument.** :func:`refuse_key_name` refuses any option, setting or
  body field that names a key (``api_key``, ``key``, ``token``, …): a value typed in a cell is
  saved in the notebook. The faces call it wherever a name comes from the user.
- **A key is never written down.** :class:`KeyScrubber` remembers every key a session has used
  and replaces each with :data:`REDACTED` in text a server echoes back, in error messages, and
  in what history stores. One scrubber is shared by the session, its client and its history,
  so the same text is cut the same way everywhere.
"""

from __future__ import annotations

import threading
from typing import Any

from .config import APIKey
from .errors import ConfigError

__all__ = ["KEY_NAMES", "REDACTED", "KeyScrubber", "is_key_name", "refuse_key_name"]

REDACTED = "[key removed]"
"""What stands where a key was."""

KEY_NAMES = frozenset({"api_key", "key", "apikey", "token", "api_token", "access_token"})
"""Names that mean "the key", after lower-casing and ``-`` → ``_``."""


def is_key_name(name: str) -> bool:
    """Whether ``name`` (an option, setting or body field) names the API key."""
    return name.strip().lower().replace("-", "_") in KEY_NAMES


def refuse_key_name(name: str) -> None:
    """Raise :class:`~nbchat.errors.ConfigError` when ``name`` names the API key."""
    if is_key_name(name):
        raise ConfigError(
            "The API key is never a magic argument (it would be saved in the notebook)",
            hint="run %chat key, or set NBCHAT_API_KEY before starting Jupyter",
        )


class KeyScrubber:
    """Cuts every key it was told about out of text and JSON values; safe across threads.

    Keys are kept as :class:`~nbchat.config.APIKey` objects (masked in any repr) and revealed
    only to compare. A key stays remembered after the settings move on to another, so text that
    still holds an old key is cut too.
    """

    __slots__ = ("_keys", "_lock")

    def __init__(self, *keys: APIKey | None) -> None:
        self._keys: tuple[APIKey, ...] = ()
        self._lock = threading.Lock()
        for key in keys:
            self.remember(key)

    def __repr__(self) -> str:
        return f"<KeyScrubber of {len(self._keys)} keys>"

    def remember(self, key: APIKey | None) -> None:
        """Cut ``key`` from now on (None is ignored)."""
        if key is None:
            return
        with self._lock:
            if key not in self._keys:
                self._keys = (*self._keys, key)

    def scrub(self, text: str) -> str:
        """``text`` with every remembered key replaced by :data:`REDACTED`."""
        for key in self._keys:  # a tuple replaced whole, never changed: no lock to read
            secret = key.reveal()
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def scrub_json(self, value: Any) -> Any:
        """A JSON value with every string in it scrubbed (keys of objects included)."""
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {self.scrub(str(k)): self.scrub_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub_json(v) for v in value]
        return value
