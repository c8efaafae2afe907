"""What the loopback server refuses before it answers a chat request, refused the way real
OpenAI-compatible servers refuse it.

Each check returns a :class:`Refusal` (the status and the JSON error object to send) or None.
Some checks always run (the key, the JSON body, fields the server is told to reject, the
``known_models`` list); others run only when the answer is the canned default reply, so that a
test's scripted items are played exactly as scripted (see :func:`canned_refusal`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from .script import error_body

__all__ = [
    "MAX_CHOICES",
    "Refusal",
    "body_refusal",
    "canned_refusal",
    "key_refusal",
    "model_refusal",
]

MAX_CHOICES = 128
"""The largest ``n`` the canned reply accepts, as OpenAI's API does."""


@dataclass(frozen=True)
class Refusal:
    """An error answer: HTTP status and OpenAI-style error object."""

    status: int
    body: dict[str, Any]


def _invalid(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> Refusal:
    return Refusal(status, error_body(message, "invalid_request_error", code=code, param=param))


def key_refusal(required: str | None, authorization: str) -> Refusal | None:
    """A 401 unless ``authorization`` is ``Bearer <required>``; the 401 never repeats a key."""
    if required is None or authorization.strip() == f"Bearer {required}":
        return None
    return _invalid(401, "Incorrect API key provided.", code="invalid_api_key")


def body_refusal(request: Any, reject_fields: Collection[str]) -> Refusal | None:
    """A 400 for a body that is not a JSON object, or that names a field to reject."""
    if not isinstance(request, dict):
        return _invalid(400, "We could not parse the JSON body of your request.")
    rejected = [name for name in request if name in reject_fields]
    if rejected:
        message = f"Unrecognized request argument supplied: {rejected[0]}"
        return _invalid(400, message, param=rejected[0])
    return None


def model_refusal(request: dict[str, Any], known: Collection[str] | None) -> Refusal | None:
    """A 404 ``model_not_found`` when ``known`` is given and the request's model is not in it."""
    model = request.get("model")
    if known is None or (isinstance(model, str) and model in known):
        return None
    message = f"The model `{model}` does not exist or you do not have access to it."
    return _invalid(404, message, code="model_not_found")


def canned_refusal(request: dict[str, Any], listed: Collection[str] | None) -> Refusal | None:
    """What a real server would refuse in a request that the canned reply is to answer.

    A missing model, a model that ``listed`` (what ``GET /models`` lists; None for no check)
    does not name, and an ``n`` that is not a whole number from 1 to :data:`MAX_CHOICES`.
    """
    if not isinstance(request.get("model"), str):
        return _invalid(400, "you must provide a model parameter", param="model")
    refusal = model_refusal(request, listed)
    if refusal is not None:
        return refusal
    n = request.get("n", 1)
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        return _invalid(400, f"Invalid type for 'n': expected an integer, got {n!r}.", param="n")
    if not 1 <= n <= MAX_CHOICES:
        message = f"Invalid 'n': {n}. Expected a value from 1 to {MAX_CHOICES}."
        return _invalid(400, message, code="integer_out_of_range", param="n")
    return None
