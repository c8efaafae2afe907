"""The one exception tree of nbchat.

Every failure a user can meet is one of these, with a message that fits on one line and says
what to do next. The API key never appears in any of them: messages are built from the
server's words, the status code, the host and the *name* of the variable the key came from.

    NbChatError                      anything nbchat raises on purpose
    ├── ConfigError                  settings that cannot work (no key, bad URL, bad value)
    ├── RequestValidationError       a request field out of its range, refused before sending
    ├── BusyError                    a second reply asked for while one is in flight
    ├── OverBudgetError              the message and system prompt alone exceed the context budget
    ├── SpendLimitError              the session's spend limit is reached; nothing sent
    ├── ConversationError            no such stored conversation, a file that is no export,
    │                                or a store that cannot do what was asked
    ├── NoRecordingError             replay=only, and no recording answers the request
    ├── ContextError                 a variable cannot go into a prompt as asked
    │   ├── UndefinedNameError       the name is not defined in the notebook
    │   ├── NotAFrameError           --df / the picker named something that is not a frame
    │   ├── SummaryError             the frame's own library failed to describe it
    │   ├── NoExceptionError         %chat explain / --error before any cell raised
    │   └── UnknownCellError         --cell, --cells, {In[n]} or {Out[n]} named no such cell
    ├── TransportError               no HTTP answer at all
    │   ├── ConnectError             refused, DNS failure, TLS failure
    │   └── TransportTimeoutError    connect timeout or no bytes for the read timeout
    ├── APIError                     the server answered with an error status
    │   ├── AuthenticationError      401 / 403
    │   ├── NotFoundError            404: a model or a base URL that does not exist
    │   ├── RateLimitError           429 after the retries ran out
    │   └── ServerError              5xx after the retries ran out
    └── StreamError                  the stream broke after it began
        ├── InStreamError            the server sent an error object inside the stream
        ├── MalformedChunkError      a data line that is not the JSON it should be
        └── IncompleteStreamError    the connection ended before the reply did

Stream errors carry ``partial``: what had been assembled before the break, so that no text the
user already saw is lost.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "AuthenticationError",
    "BusyError",
    "ConfigError",
    "ConnectError",
    "ContextError",
    "ConversationError",
    "InStreamError",
    "IncompleteStreamError",
    "MalformedChunkError",
    "NbChatError",
    "NoExceptionError",
    "NoRecordingError",
    "NotAFrameError",
    "NotFoundError",
    "OverBudgetError",
    "RateLimitError",
    "RequestValidationError",
    "ServerError",
    "SpendLimitError",
    "StreamError",
    "SummaryError",
    "TransportError",
    "TransportTimeoutError",
    "UndefinedNameError",
    "UnknownCellError",
]


class NbChatError(Exception):
    """Base of every error nbchat raises on purpose; ``str()`` is one actionable line."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = " ".join(message.split())
        self.hint = " ".join(hint.split()) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(NbChatError):
    """The settings cannot work: no key for a remote URL, a malformed URL or value."""


class ConversationError(NbChatError):
    """A stored conversation cannot be listed, opened or imported as asked; nothing changed."""


class RequestValidationError(NbChatError, ValueError):
    """A request field is out of its documented range; nothing was sent."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class BusyError(NbChatError):
    """A reply is already streaming in this session; one at a time."""


class OverBudgetError(NbChatError):
    """The current message and the system prompt alone exceed the context budget; nothing sent."""


class SpendLimitError(NbChatError):
    """The session spent its ``spend_limit`` (or cannot price the model); nothing sent."""


class NoRecordingError(NbChatError):
    """``replay=only`` and no recording answers the request: nothing was sent."""


class ContextError(NbChatError):
    """A notebook variable cannot go into a prompt as asked; nothing was sent."""

    def __init__(self, message: str, *, name: str, hint: str | None = None) -> None:
        self.name = name
        """The variable the prompt named."""
        super().__init__(message, hint=hint)


class UndefinedNameError(ContextError):
    """The prompt or ``--df`` named a variable the notebook has not defined."""


class NotAFrameError(ContextError):
    """``--df`` or the context picker named a value that is not a dataframe or an array."""


class SummaryError(ContextError):
    """The frame's own library failed while it was being described (an exotic dtype…)."""


class NoExceptionError(ContextError):
    """The error context was asked for, but no cell has raised an exception yet."""


class UnknownCellError(ContextError):
    """A cell number (or its output) that the notebook's In/Out history does not hold."""


class TransportError(NbChatError):
    """No HTTP answer came back: the request never reached a server that replied."""


class ConnectError(TransportError):
    """The connection could not be made (refused, unknown host, TLS)."""


class TransportTimeoutError(TransportError, TimeoutError):
    """Connecting took too long, or the server went silent for longer than the read timeout."""


class APIError(NbChatError):
    """The server answered with an error status; ``status`` and its own message are kept."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        server_message: str | None = None,
        body: Any = None,
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.server_message = server_message
        self.body = body
        super().__init__(message, hint=hint)


class AuthenticationError(APIError):
    """401 or 403: the key is missing, wrong, or not allowed to do this."""


class NotFoundError(APIError):
    """404: the model does not exist here, or the base URL is not an OpenAI-compatible API."""


class RateLimitError(APIError):
    """429 that outlasted the retries."""


class ServerError(APIError):
    """A 5xx that outlasted the retries."""


class StreamError(NbChatError):
    """The stream began and then broke; ``partial`` holds what had arrived."""

    def __init__(self, message: str, *, partial: Any = None, hint: str | None = None) -> None:
        self.partial = partial
        super().__init__(message, hint=hint)


class InStreamError(StreamError):
    """The server put an ``error`` object inside the stream."""

    def __init__(
        self,
        message: str,
        *,
        partial: Any = None,
        error: dict[str, Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.error = error or {}
        super().__init__(message, partial=partial, hint=hint)


class MalformedChunkError(StreamError):
    """A data line was not valid JSON, or not a JSON object."""


class IncompleteStreamError(StreamError):
    """The connection closed before the reply finished (no finish_reason, no ``[DONE]``)."""
