"""When to ask a server again: urllib3's ``Retry``, bounded in count and in waiting time.

Retrying lives in the connection pool rather than around it, so it happens only before any byte
of a body was read: a stream that broke halfway is never sent again (that would bill twice and
show the start of the reply twice). What is retried: connection errors, a pooled connection the
server had closed, and 408, 409, 429, 500, 502, 503, 504 answers, with exponential backoff that
honours ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from urllib3.exceptions import MaxRetryError, ReadTimeoutError
from urllib3.util.retry import Retry

from .config import Settings

__all__ = ["RETRY_STATUSES", "BoundedRetry"]

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
"""Answers that mean "not now" rather than "not this": asked again after a pause."""

_BACKOFF_MAX = 8.0  # seconds: the longest pause between two attempts
_BACKOFF_JITTER = 0.25  # seconds of random spread, so clients that failed together part ways


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
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=settings.backoff_factor,
            backoff_max=_BACKOFF_MAX,
            backoff_jitter=_BACKOFF_JITTER,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            budget=settings.retry_budget,
        )

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
