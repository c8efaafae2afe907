"""Settings: where to send requests, with which key, model, defaults and patience.

A key and a base URL come in pairs, and a key is only ever sent to the base URL it was
configured with. This is what stops ``OPENAI_API_KEY`` from leaking to a gateway or a local
server named by ``NBCHAT_BASE_URL``:

===================  =============================  =========================================
key variable         base URL variable              used when
===================  =============================  =========================================
``NBCHAT_API_KEY``   ``NBCHAT_BASE_URL``            either ``NBCHAT_`` variable is set
                     (default ``https://api.302.ai/v1``)
``OPENAI_API_KEY``   ``OPENAI_BASE_URL``            no ``NBCHAT_`` pair is set
                     (default ``https://api.openai.com/v1``)
===================  =============================  =========================================

A loopback server (127.0.0.1, localhost, ::1) may be used without a key. The key lives in an
:class:`APIKey`, whose repr and str are masked and which refuses to be pickled, so it cannot
reach a notebook output, a log line or a file by accident.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "OPENAI_DEFAULT_BASE_URL",
    "REPLAY_MODES",
    "APIKey",
    "Settings",
    "is_loopback_url",
    "normalize_base_url",
]

DEFAULT_BASE_URL = "https://api.302.ai/v1"
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"

REPLAY_MODES = ("off", "reuse", "only")
"""``off``: always ask the server; ``reuse``: answer an identical request from its recording;
``only``: never ask the server (see :mod:`nbchat.replay`)."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_MOST_SECONDS = 86_400  # a timeout or retry budget longer than a day is a typo
_MOST_RETRIES = 100
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class APIKey:
    """A secret that shows itself only to the code that sends it (:meth:`reveal`)."""

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise ConfigError("The API key is empty")
        if any(c.isspace() for c in value) or not value.isprintable():
            raise ConfigError(
                "The API key contains spaces or control characters",
                hint="paste the key alone, without quotes or 'Bearer'",
            )
        if not value.isascii():  # an HTTP header cannot carry it, and no provider issues one
            raise ConfigError(
                "The API key contains characters that are not ASCII",
                hint="paste the key itself, as the provider shows it",
            )
        self.__value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header and nothing else."""
        return self.__value

    def masked(self) -> str:
        """Enough to tell two keys apart, never enough to use one: ``…wxyz`` or ``****``."""
        return f"…{self.__value[-4:]}" if len(self.__value) >= 20 else "****"

    def __repr__(self) -> str:
        return f"APIKey({self.masked()})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, APIKey) and other.__value == self.__value

    def __hash__(self) -> int:
        return hash(self.__value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("an API key cannot be pickled: it must never be written to disk")


def is_loopback_url(url: str) -> bool:
    """True for http(s) URLs on 127.0.0.0/8, ::1 or localhost."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_base_url(url: str, *, source: str = "base URL") -> str:
    """Canonical form of a base URL: no trailing slash; a bare host gets ``/v1``.

    ``https://api.302.ai`` → ``https://api.302.ai/v1``. A pasted full endpoint
    (``…/v1/chat/completions``) is cut back to its base, since that is what people paste.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:  # an unclosed IPv6 bracket: "http://[::1"
        raise ConfigError(
            f"{source} {text!r} is not a URL", hint="e.g. http://[::1]:8000/v1 for IPv6"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{source} {text!r} is not an http(s) URL",
            hint="e.g. https://api.302.ai/v1 or http://127.0.0.1:8000/v1",
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"{source} must not contain a user name or password",
            hint="put the key in NBCHAT_API_KEY instead",
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{source} must not have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"{source} {text!r} has a malformed port") from None
    path = parts.path.rstrip("/")
    for endpoint in ("/chat/completions", "/models"):
        if path.endswith(endpoint):
            path = path[: -len(endpoint)]
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def _env_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"{name} must be more than 0 seconds, got {raw}")
    return value


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):  # "²" is a digit to isdigit(), not to int()
        raise ConfigError(f"{name}={raw!r} is not a whole number ≥ 0")
    return int(raw)


def _env_budget(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("NBCHAT_CONTEXT_BUDGET", "").strip()
    if raw.lower() in ("", "auto"):
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"NBCHAT_CONTEXT_BUDGET={raw!r} is not a whole number of tokens or auto")
    return int(raw)


def _env_dollars(environ: Mapping[str, str]) -> float | None:
    raw = environ.get("NBCHAT_SPEND_LIMIT", "").strip()
    if raw.lower() in ("", "none", "off"):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ConfigError(f"NBCHAT_SPEND_LIMIT={raw!r} is not a number of dollars ≥ 0")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a request needs besides its messages. Immutable: change with ``replace``."""

    base_url: str = DEFAULT_BASE_URL
    """Where ``/chat/completions`` and ``/models`` live, normalised (``…/v1``)."""
    model: str = DEFAULT_MODEL
    api_key: APIKey | None = field(default=None, repr=False, compare=False)
    """The key; only sent to ``key_base_url``."""
    key_base_url: str | None = None
    """The base URL the key was configured with."""
    key_source: str | None = None
    """Where the key came from, e.g. ``NBCHAT_API_KEY``: named in errors, never the key."""
    base_url_source: str = "default"
    """Where the base URL came from: a variable name, ``default`` or ``set in this session``."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Default request fields (temperature, max_tokens, …) merged under each request's own."""
    connect_timeout: float = 10.0
    """Seconds to wait for a connection."""
    read_timeout: float = 120.0
    """Seconds to wait for the next bytes of an answer (between stream chunks, not in total)."""
    max_retries: int = 3
    """Retries for connection errors and 408/409/429/5xx answers before the body starts."""
    retry_budget: float = 60.0
    """Most seconds spent waiting between retries of one request, Retry-After included."""
    backoff_factor: float = 0.5
    """Exponential backoff between retries: 0 s, then 2×, 4× this, … (capped at 8 s)."""
    include_usage: bool = True
    """Ask streams for token usage (``stream_options.include_usage``)."""
    context_tokens: int = 1000
    """Most tokens one dataframe summary may take in a prompt (estimated offline)."""
    context_rows: int = 0
    """Sample rows a dataframe summary shows; 0 keeps the data's values out of prompts."""
    context_budget: int | None = None
    """Most tokens one request may send, history included; None: the model's default
    (:func:`nbchat.budget.default_budget`). ``auto`` means None."""
    prices: str | None = None
    """The price table's file; None: ``prices.json`` beside the history file
    (:mod:`nbchat.prices`)."""
    spend_limit: float | None = None
    """Dollars this session may spend before the next request is refused; None: no limit."""
    replay: str = "off"
    """Answer from recordings: one of :data:`REPLAY_MODES` (``NBCHAT_REPLAY``)."""
    replay_pace: bool = False
    """Replay at the recorded reply's own pace, for demos, instead of at once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", normalize_base_url(self.base_url))
        if self.key_base_url is not None:
            object.__setattr__(self, "key_base_url", normalize_base_url(self.key_base_url))
        if (
            isinstance(self.backoff_factor, bool)
            or not isinstance(self.backoff_factor, (int, float))
            or self.backoff_factor < 0
        ):
            raise ConfigError(f"backoff_factor must be ≥ 0, got {self.backoff_factor!r}")
        for name in ("connect_timeout", "read_timeout", "retry_budget"):
            value = getattr(self, name)
            # Finite and at most a day: an infinite timeout is an OverflowError in the socket
            # layer on every request, not a slow server.
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value <= _MOST_SECONDS
            ):
                raise ConfigError(
                    f"{name} must be a number of seconds above 0 and at most "
                    f"{_MOST_SECONDS:,}, got {value!r}"
                )
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or not 0 <= self.max_retries <= _MOST_RETRIES
        ):
            raise ConfigError(
                f"max_retries must be a whole number from 0 to {_MOST_RETRIES}, "
                f"got {self.max_retries!r}"
            )
        for name, least in (("context_tokens", 100), ("context_rows", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{name} must be a whole number ≥ {least}, got {value!r}")
        if not isinstance(self.replay_pace, bool):
            raise ConfigError(f"replay_pace must be true or false, got {self.replay_pace!r}")
        if self.replay not in REPLAY_MODES:
            raise ConfigError(
                f"replay must be one of {', '.join(REPLAY_MODES)}, got {self.replay!r}"
            )
        self._check_spending_settings()

    def _check_spending_settings(self) -> None:
        """``context_budget``, ``prices`` and ``spend_limit``: their words for "none" become
        None, anything else out of range is one line."""
        from .budget import MIN_BUDGET

        budget: object = self.context_budget
        if isinstance(budget, str) and budget.strip().lower() in ("auto", ""):
            object.__setattr__(self, "context_budget", None)
        elif budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_BUDGET
        ):
            raise ConfigError(
                f"context_budget must be a whole number of tokens ≥ {MIN_BUDGET} or auto, "
                f"got {budget!r}"
            )
        limit: object = self.spend_limit
        if isinstance(limit, str) and limit.strip().lower() in ("none", "off", ""):
            object.__setattr__(self, "spend_limit", None)
        elif limit is not None and (
            isinstance(limit, bool)
            or not isinstance(limit, (int, float))
            or not 0 <= limit < float("inf")
        ):
            raise ConfigError(f"spend_limit must be a number of dollars ≥ 0 or none, got {limit!r}")
        prices: object = self.prices
        if isinstance(prices, str) and prices.strip().lower() in ("none", ""):
            object.__setattr__(self, "prices", None)
        elif self.prices is not None and not isinstance(self.prices, str):
            raise ConfigError(f"prices must be the path of a JSON file, got {self.prices!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``NBCHAT_*`` (or, failing that, ``OPENAI_*``) variables, pairing key and URL."""
        env = os.environ if environ is None else environ
        prefix = "NBCHAT" if env.get("NBCHAT_API_KEY") or env.get("NBCHAT_BASE_URL") else None
        if prefix is None and (env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL")):
            prefix = "OPENAI"
        default_url = OPENAI_DEFAULT_BASE_URL if prefix == "OPENAI" else DEFAULT_BASE_URL
        url_variable = f"{prefix or 'NBCHAT'}_BASE_URL"
        raw_url = env.get(url_variable, "").strip()
        base_url = normalize_base_url(raw_url, source=url_variable) if raw_url else default_url
        key_variable = f"{prefix}_API_KEY" if prefix else None
        raw_key = env.get(key_variable, "").strip() if key_variable else ""
        api_key = APIKey(raw_key) if raw_key else None
        return cls(
            base_url=base_url,
            base_url_source=url_variable if raw_url else "default",
            model=env.get("NBCHAT_MODEL", "").strip() or DEFAULT_MODEL,
            api_key=api_key,
            key_base_url=base_url if api_key else None,
            key_source=key_variable if api_key else None,
            connect_timeout=_env_float(env, "NBCHAT_CONNECT_TIMEOUT", 10.0),
            read_timeout=_env_float(env, "NBCHAT_READ_TIMEOUT", 120.0),
            max_retries=_env_int(env, "NBCHAT_MAX_RETRIES", 3),
            context_tokens=_env_int(env, "NBCHAT_CONTEXT_TOKENS", 1000),
            context_rows=_env_int(env, "NBCHAT_CONTEXT_ROWS", 0),
            context_budget=_env_budget(env),
            prices=env.get("NBCHAT_PRICES", "").strip() or None,
            spend_limit=_env_dollars(env),
            replay=env.get("NBCHAT_REPLAY", "").strip().lower() or "off",
            replay_pace=env.get("NBCHAT_REPLAY_PACE", "").strip().lower() in _TRUE,
        )

    def with_base_url(self, url: str, *, source: str = "set in this session") -> Settings:
        """Point at another server. The key stays behind unless it was made for that URL."""
        return replace(self, base_url=normalize_base_url(url), base_url_source=source)

    def with_key(self, key: str | APIKey, *, source: str = "set in this session") -> Settings:
        """Use ``key`` for the current base URL (and only for it)."""
        api_key = key if isinstance(key, APIKey) else APIKey(key)
        return replace(self, api_key=api_key, key_base_url=self.base_url, key_source=source)

    def with_params(self, **params: Any) -> Settings:
        """Change default request fields; ``None`` removes one."""
        merged = {**self.params, **params}
        return replace(self, params={k: v for k, v in merged.items() if v is not None})

    def key_for(self, url: str) -> APIKey | None:
        """The key to send to ``url``, or None unless ``url`` is under the key's own base URL."""
        if self.api_key is None or self.key_base_url is None:
            return None
        if url == self.key_base_url or url.startswith(self.key_base_url + "/"):
            return self.api_key
        return None

    @property
    def usable_key(self) -> APIKey | None:
        """The key, if it may be sent to the current base URL."""
        return self.key_for(self.base_url)

    @property
    def is_loopback(self) -> bool:
        return is_loopback_url(self.base_url)

    def require_key(self) -> None:
        """Raise ``ConfigError`` when a request to the base URL would go without a needed key."""
        if self.usable_key is not None or self.is_loopback:
            return
        if self.api_key is not None:
            raise ConfigError(
                f"The API key from {self.key_source} belongs to {self.key_base_url}, "
                f"not to {self.base_url}; it is not sent elsewhere",
                hint="set a key for this URL (%chat key) or point back at the key's URL",
            )
        variable = (
            "OPENAI_API_KEY" if self.base_url_source == "OPENAI_BASE_URL" else "NBCHAT_API_KEY"
        )
        raise ConfigError(
            f"No API key for {self.base_url}",
            hint=f"set {variable} in the environment, or run %chat key",
        )

    def describe(self) -> dict[str, Any]:
        """The effective settings for display, key masked and its origin named."""
        key = self.usable_key
        return {
            "base_url": f"{self.base_url} ({self.base_url_source})",
            "api_key": f"{key.masked()} (from {self.key_source})"
            if key
            else ("none needed (loopback)" if self.is_loopback else "not set"),
            "model": self.model,
            "params": dict(self.params),
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_retries": self.max_retries,
            "retry_budget": self.retry_budget,
            "include_usage": self.include_usage,
            "context_tokens": self.context_tokens,
            "context_rows": self.context_rows,
            "context_budget": self.budget_description(),
            "prices": self.prices or "prices.json beside the history file",
            "spend_limit": "none" if self.spend_limit is None else f"${self.spend_limit:,.2f}",
            "replay": self.replay,
            "replay_pace": self.replay_pace,
        }

    def budget_for(self, model: str) -> int:
        """The context budget a request to ``model`` gets: the setting, else its default."""
        from .budget import default_budget

        return self.context_budget or default_budget(model)[0]

    def budget_description(self) -> str:
        from .budget import default_budget

        if self.context_budget is not None:
            return f"{self.context_budget:,} tokens"
        budget, family = default_budget(self.model)
        origin = f"the {family} default" if family else "the default for unknown models"
        return f"auto: {budget:,} tokens ({origin})"
