"""The shape of a chat request with images, as OpenAI's reference and SDK define it.

The gateways nbchat talks to follow OpenAI's vision format, which the shared API contract
(a request schema whose ``content`` is a string) does not spell out: these checks hold a request
body to the SDK's own types and to the reference's content-part schema, strictly.
"""

from __future__ import annotations

import base64
from typing import Any

import jsonschema
from openai.types.chat import ChatCompletionMessageParam
from pydantic import TypeAdapter

# The image part of OpenAI's chat-completions reference (ChatCompletionContentPartImage), as
# strict as it is written there: the gateways nbchat talks to follow this shape.
IMAGE_PART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "image_url"],
    "additionalProperties": False,
    "properties": {
        "type": {"const": "image_url"},
        "image_url": {
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": {
                    "type": "string",
                    "pattern": r"^data:image/(png|jpeg);base64,[A-Za-z0-9+/]+=*$",
                },
                "detail": {"enum": ["auto", "low", "high"]},
            },
        },
    },
}
TEXT_PART_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "text"],
    "additionalProperties": False,
    "properties": {"type": {"const": "text"}, "text": {"type": "string"}},
}
_MESSAGE = TypeAdapter(ChatCompletionMessageParam)


def validate_openai_messages(messages: list[dict[str, Any]]) -> None:
    """Every message as the OpenAI SDK's types read it, and every content part as the
    reference's schema says (the SDK validates lazily: reading the parts is what checks them)."""
    for message in messages:
        checked = _MESSAGE.validate_python(message)
        content = checked.get("content")
        if content is not None and not isinstance(content, str):
            list(content)
        if isinstance(message["content"], list):
            for part in message["content"]:
                schema = IMAGE_PART_SCHEMA if part.get("type") == "image_url" else TEXT_PART_SCHEMA
                jsonschema.validate(part, schema)


def image_parts(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [part for part in message["content"] if part["type"] == "image_url"]


def decoded(part: dict[str, Any]) -> bytes:
    url = part["image_url"]["url"]
    return base64.b64decode(url.split(",", 1)[1])
