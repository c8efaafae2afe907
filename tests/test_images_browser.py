"""The thumbnail of a sent image in real Chromium: it is drawn, it is the only image, and a
hostile reply beside it still loads nothing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image as PILImage
from test_render_browser import HOSTILE

from nbchat.display import final_bundle
from nbchat.images import image_part
from nbchat.prompt import Prompt
from nbchat.reply import Reply

from browser import chromium


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium")) as context:
        page = context.new_page()
        page.requests = []  # type: ignore[attr-defined]
        page.on("request", lambda request: page.requests.append(request.url))
        yield page


def test_the_thumbnail_is_drawn_and_nothing_else_loads(page: Any) -> None:
    buffer = io.BytesIO()
    PILImage.new("RGB", (640, 480), (0, 128, 0)).save(buffer, format="PNG")
    part = image_part("plot", buffer.getvalue())
    prompt = Prompt(f"What is this? {part.marker}", images=(part,))
    data, _ = final_bundle(Reply.finished(prompt, HOSTILE, model="m"))
    page.set_content(f"<!doctype html><meta charset=utf-8><body>{data['text/html']}</body>")
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    images = page.evaluate(
        "() => [...document.images].map(i => ({cls: i.className, natural: i.naturalWidth,"
        " shown: i.clientWidth, src: i.src.slice(0, 22)}))"
    )
    assert images == [
        {"cls": "nbchat-thumbnail", "natural": 640, "shown": 160, "src": "data:image/png;base64,"}
    ]
    assert "image: plot · 640×480 · ~425 tokens" in page.inner_text("body")
    assert [url for url in page.requests if not url.startswith(("about:", "data:"))] == []
