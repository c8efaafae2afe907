"""The key policy: where a key may not be given, and how it is cut out of text.

Two rules live here and nowhere else:

- **A key is never an argument.** :func:`refuse_key_name` refuses any option, setting or
  body field that names a key or another credential (``api_key``, ``token``,
  ``authorization``, ``access_token``, ``secret``, ``password``, …): a value typed in a cell
  is saved in the notebook. The faces call it wherever a name comes from the user.
- **A key is never written down.** :class:`KeyScrubber` remembers every key a session has used
  and replaces each with :data:`REDACTED` in text a server echoes back, in error messages, and
  in what history stores. One scrubber is shared by the session, its client and its history,
  so the same text is cut the same way everywhere. A message that echoes what the user typed
  goes through :func:`mask_secrets`, which also masks anything shaped like a key (``sk-…``):
  a key pasted in the wrong place must not be printed back in full.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from .config import APIKey
from .errors import ConfigError

__all__ = [
    "KEY_NAMES",
    "REDACTED",
    "KeyScrubber",
    "is_key_name",
    "looks_like_key",
    "mask_secrets",
    "refuse_key_name",
]

REDACTED = "[key removed]"
"""What stands where a key was."""

KEY_NAMES = frozenset(
    {
        "api_key",
        "key",
        "apikey",
        "token",
        "api_token",
        "access_token",
        "auth",
        "bearer",
        "credential",
        "credentials",
    }
)
"""Names that mean "the key", after lower-casing and ``-``/``.``/space → ``_``."""

_CREDENTIAL_WORDS = ("authoriz", "secret", "password", "passwd", "passphrase", "apikey", "bearer")
"""A name holding one of these, separators removed, names a credential: ``Authorization``,
``client_secret``, ``db-password``, ``x_api_key``, ``openaiApiKey``."""

_TOKEN_SUFFIXES = ("_token", "_api_key", "_apikey", "_key_id")
"""Credential names by their end (``refresh_token``); ``max_tokens`` and ``prompt_cache_key``
are body fields and stay allowed."""

_KEY_SHAPE = re.compile(r"(?<![A-Za-z0-9])sk[-_][A-Za-z0-9_-]{12,}")
"""What an OpenAI-style key looks like (``sk-…``, ``sk-proj-…``, ``sk-ant-…``, ``sk_live_…``)."""

MIN_SECRET_LENGTH = 8
"""Shorter keys are not cut out of text. Local servers take any key and their docs use dummy
ones (vLLM's ``EMPTY``, ``none``, ``x``): cutting those would mangle every reply holding the
word, and a key that short guards nothing worth hiding."""

_ECHO_KEYS: tuple[APIKey, ...] = ()
"""Every key any scrubber was told about. An error line is made where no session is at hand
(the magic's ``UsageError``), so the keys to mask in echoes are kept here for the process."""
_ECHO_LOCK = threading.Lock()


def _normal(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", name.strip().lower())


def is_key_name(name: str) -> bool:
    """Whether ``name`` (an option, setting or body field) names the API key or a credential."""
    normal = _normal(name)
    while normal.startswith("param_"):  # %chat config param.NAME, however often repeated
        normal = normal.removeprefix("param_")
    compact = normal.replace("_", "")
    return (
        normal in KEY_NAMES
        or compact in KEY_NAMES
        or any(word in compact for word in _CREDENTIAL_WORDS)
        or normal.endswith(_TOKEN_SUFFIXES)
        or compact.endswith(("accesstoken", "authtoken", "apitoken"))
    )


def refuse_key_name(name: str) -> None:
    """Raise :class:`~nbchat.errors.ConfigError` when ``name`` names the API key."""
    if is_key_name(name):
        raise ConfigError(
            "The API key is never a magic argument (it would be saved in the notebook)",
            hint="run %chat key, or set NBCHAT_API_KEY before starting Jupyter",
        )


def looks_like_key(text: str) -> bool:
    """Whether ``text`` holds a key nbchat was given, or anything shaped like ``sk-…``."""
    return mask_secrets(text) != text


def mask_secrets(text: str) -> str:
    """``text`` with every key nbchat was given, and anything shaped like one, masked: for
    messages that echo what the user typed, where a key may have been pasted by mistake."""
    for key in _ECHO_KEYS:
        secret = key.reveal()
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPE.sub(REDACTED, text)


def _remember_for_echoes(key: APIKey) -> None:
    global _ECHO_KEYS
    with _ECHO_LOCK:
        if key not in _ECHO_KEYS:
            _ECHO_KEYS = (*_ECHO_KEYS, key)


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
        _remember_for_echoes(key)

    def scrub(self, text: str) -> str:
        """``text`` with every remembered key replaced by :data:`REDACTED`."""
        for key in self._keys:  # a tuple replaced whole, never changed: no lock to read
            secret = key.reveal()
            if len(secret) >= MIN_SECRET_LENGTH and secret in text:
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
