"""When to ask a server again: urllib3's ``Retry``, bounded in count and in waiting time.

Retrying lives in the connection pool rather than around it, so it happens only before any byte
of a body was read: a stream that broke halfway is never sent again (that would bill twice and
show the start of the reply twice). What is retried: connection errors, a pooled connection the
server had closed, and the answers :func:`retryable_status` names (every 5xx, 408, 409 and 429,
the rule openai-python follows), with exponential backoff that honours ``Retry-After``. The pause
between two attempts waits on the request's :class:`~nbchat.cancel.Cancellation`, so a stop
ends it at once.
"""

from __future__ import annotations

from typing import Any

from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from .cancel import active
from .config import Settings

__all__ = ["RETRY_AFTER_HEADERS", "BoundedRetry", "retry_after", "retryable_status"]

_BACKOFF_MAX = 8.0  # seconds: the longest pause between two attempts
_BACKOFF_JITTER = 0.25  # seconds of random spread, so clients that failed together part ways
_NOT_NOW = frozenset({408, 409, 429})  # request timeout, conflict (a lock), rate limited


RETRY_AFTER_HEADERS = ("Retry-After", "llm_provider-retry-after")
"""Where a server says how long to wait: the standard header, then LiteLLM's proxy, which
passes an upstream's ``Retry-After`` on under its own name."""


def retry_after(headers: Any) -> str | None:
    """The raw wait a response asks for, or None."""
    for name in RETRY_AFTER_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def retryable_status(status: int) -> bool:
    """Whether an answer means "not now" rather than "not this", so it is asked again.

    Every status from 500 up counts, as openai-python counts them, rather than a list:
    gateways answer with codes of their own when an upstream is down or busy (LiteLLM's 529,
    Cloudflare's 520–524), and asking again after a 501 costs at most the bounded retries.
    """
    return status >= 500 or status in _NOT_NOW


class BoundedRetry(Retry):
    """urllib3's ``Retry``, plus a cap on the total time spent waiting between attempts.

    A ``Retry-After`` longer than what is left of the budget ends the retrying at once: the
    user hears "rate limited, the server asks for 600 s" now instead of after ten minutes.
    """

    def __init__(
        self, *args: Any, budget: float = 60.0, waited: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.budget = budget
        self.waited = waited

    @classmethod
    def from_settings(cls, settings: Settings) -> BoundedRetry:
        """The policy ``settings`` ask for; answers are handed back, never raised, so that the
        status and the server's own message reach the error the user sees."""
        return cls(
            total=settings.max_retries,
            connect=settings.max_retries,
            read=min(1, settings.max_retries),  # a pooled connection the server closed
            status=settings.max_retries,
            other=0,
            redirect=False,
            status_forcelist=None,  # is_retry decides, by retryable_status
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=settings.backoff_factor,
            backoff_max=_BACKOFF_MAX,
            backoff_jitter=_BACKOFF_JITTER,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            budget=settings.retry_budget,
        )

    def get_retry_after(self, response: Any) -> float | None:
        """The wait a server asks for, from ``Retry-After`` or a gateway's copy of it."""
        value = retry_after(response.headers)
        return None if value is None else float(self.parse_retry_after(value))

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        return self._is_method_retryable(method) and retryable_status(status_code)

    def new(self, **kwargs: Any) -> BoundedRetry:
        kwargs.setdefault("budget", self.budget)
        kwargs.setdefault("waited", self.waited)
        return super().new(**kwargs)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> BoundedRetry:
        cancellation = active()
        if cancellation is not None:
            cancellation.check()  # a stop shut the socket: that is no reason to ask again
        if isinstance(error, ReadTimeoutError):
            # The server has the request and is slow, not gone: asking again would double the
            # wait and may bill twice. (A pooled connection the server had closed, by
            # contrast, is a ProtocolError and is retried.)
            raise error
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, BoundedRetry)
        wait = retry.get_retry_after(response) if response is not None else None
        if wait is None:
            wait = retry.get_backoff_time()
        retry.waited = self.waited + wait
        if retry.waited > self.budget:
            raise MaxRetryError(_pool, url or "", error)
        return retry

    def sleep(self, response: Any = None) -> None:
        """Wait between two attempts as urllib3 would (``Retry-After``, else the backoff), but
        on the request's cancellation, so that a stop ends the pause at once."""
        cancellation = active()
        if cancellation is None:
            super().sleep(response)
            return
        wait = self.get_retry_after(response) if response is not None else None
        cancellation.pause(wait if wait else self.get_backoff_time())
