"""Plots and images in prompts: image parts at the server, kept in history, shown folded."""

from __future__ import annotations

import base64
import io
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import matplotlib
import pytest
from IPython.core.error import UsageError
from PIL import Image as PILImage

from nbchat import views
from nbchat.errors import ContextError
from nbchat.images import ImagePart, estimate_tokens, image_part, image_size, is_image
from nbchat.prompt import Prompt, compose
from nbchat.render import render_markdown
from nbchat.schema import migrate, put_turn, read_turns
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer, Status
from nbchat.turn import Turn

from conftest import fast_settings
from ipython_shell import Shell
from openai_shapes import decoded, image_parts, validate_openai_messages

matplotlib.use("Agg")
from matplotlib.figure import Figure

MODEL = "gpt-4o-mini"  # the loopback server's canned replies answer it


def figure(width: float = 8, height: float = 6, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    fig.add_subplot().plot([1, 3, 2])
    return fig


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def session(server: LoopbackServer) -> Iterator[ChatSession]:
    chat_session = ChatSession(fast_settings(server.base_url, model=MODEL))
    yield chat_session
    chat_session.close()


# -- sizes and costs --------------------------------------------------------------------------


def test_sizes_come_from_the_header_of_png_and_jpeg_bytes() -> None:
    assert image_size(png_bytes(321, 123)) == (321, 123)
    buffer = io.BytesIO()
    PILImage.new("RGB", (640, 480)).save(buffer, format="JPEG", progressive=True)
    assert image_size(buffer.getvalue()) == (640, 480)
    assert image_size(b"GIF89a....") is None
    assert image_size(png_bytes(10, 10)[:20]) is None  # a header cut short


def test_token_estimate_follows_openais_tiles() -> None:
    assert estimate_tokens(800, 600) == 85 + 170 * 4
    assert estimate_tokens(512, 512) == 85 + 170
    assert estimate_tokens(4096, 4096) == 765  # fit in 2048, then shortest side 768: 2×2 tiles
    assert estimate_tokens(1024, 100) == 85 + 170 * 2
    assert estimate_tokens(3000, 2000, "low") == 85


# -- matplotlib and PIL at the server ------------------------------------------------------------


def test_a_matplotlib_figure_in_braces_is_an_image_part_at_the_server(
    session: ChatSession, server: LoopbackServer
) -> None:
    fig = figure(20, 10)  # 2000×1000 at its own dpi: shrunk to fit 1024
    prompt = compose("What trend does {fig} show?", {"fig": fig})
    session.ask(prompt)
    body = server.last_request.json
    validate_openai_messages(body["messages"])
    (user,) = body["messages"]
    text, image = user["content"]
    assert text["type"] == "text"
    assert re.fullmatch(
        r"What trend does \[image: fig · 1024×512 · ~\d+ tokens\] show\?", text["text"]
    )
    png = decoded(image)
    assert png.startswith(b"\x89PNG")
    assert image_size(png) == (1024, 512)
    assert PILImage.open(io.BytesIO(png)).size == (1024, 512)
    assert image["image_url"]["url"].startswith("data:image/png;base64,")


def test_a_pil_image_by_image_option_is_shrunk_and_sent(
    env: LoopbackServer, shell: Shell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.ip.user_ns["photo"] = PILImage.new("RGB", (3000, 2000), (10, 120, 200))
    result = shell.run("%%chat --image photo\nWhat colour is this?")
    assert result.success, result.error_in_exec
    body = env.last_request.json
    validate_openai_messages(body["messages"])
    (user,) = body["messages"]
    assert user["content"][0]["text"] == (
        "What colour is this?\n\n[image: photo · 1024×683 · ~765 tokens]"
    )
    (part,) = image_parts(user)
    sent = PILImage.open(io.BytesIO(decoded(part)))
    assert sent.size == (1024, 683)
    assert sent.getpixel((10, 10)) == (10, 120, 200)
    assert shell.ip.user_ns["photo"].size == (3000, 2000)  # the user's image is left as it was


def test_an_ipython_image_of_bytes_is_sent_as_it_is(
    session: ChatSession, server: LoopbackServer
) -> None:
    from IPython.display import Image

    data = png_bytes(300, 200)
    session.ask(compose("{logo} and {raw}", {"logo": Image(data=data), "raw": data}))
    user = server.last_request.json["messages"][0]
    validate_openai_messages([user])
    assert [decoded(part) for part in image_parts(user)] == [data, data]
    assert (
        "[image: logo · 300×200 · ~255 tokens] and [image: raw · 300×200"
        in user["content"][0]["text"]
    )


def test_images_that_cannot_be_sent_are_one_line() -> None:
    from IPython.display import Image

    with pytest.raises(ContextError, match=r"'big' is a 2000×1500 PNG .* cannot be shrunk"):
        compose("{big}", {"big": png_bytes(2000, 1500)})
    with pytest.raises(ContextError, match="of a URL"):
        image_part("remote", Image(url="https://example.invalid/x.png"))
    with pytest.raises(ContextError, match="not an image"):
        compose("x", {"n": 3}, images=["n"])
    with pytest.raises(ContextError, match="not defined"):
        compose("x", {}, images=["nothing"])
    assert not is_image(b"plain bytes") and is_image(png_bytes(2, 2))


def test_bad_image_options_are_one_line_usage_errors(
    shell: Shell, capsys: pytest.CaptureFixture[str], env: LoopbackServer
) -> None:
    shell.ip.user_ns["n"] = 5
    for options, words in [
        ("--image n", "not an image"),
        ("--image missing", "not defined"),
        ("--cell-image 999", "showed no image"),
        ("--cell-image x", "invalid int value"),
    ]:
        result = shell.run(f"%%chat {options}\nlook")
        assert type(result.error_in_exec) is UsageError, options
        err = capsys.readouterr().err.strip()
        assert err.startswith("UsageError: ") and "\n" not in err and words in err, err
    assert env.chat_requests == []


# -- history ------------------------------------------------------------------------------------


def test_a_later_turn_resends_the_image_and_the_store_keeps_it(
    session: ChatSession, server: LoopbackServer
) -> None:
    session.ask(compose("Describe {fig}", {"fig": figure()}))
    first_part = image_parts(server.last_request.json["messages"][0])[0]
    session.ask("And the colour of the line?")
    messages = server.last_request.json["messages"]
    validate_openai_messages(messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert image_parts(messages[0]) == [first_part]
    assert messages[2]["content"] == "And the colour of the line?"
    (turn, _) = session.history
    assert turn.images[0].estimated_tokens == 765 and turn.images[0].width == 800

    db = sqlite3.connect(":memory:")
    migrate(db)
    db.execute("INSERT INTO conversations (notebook_key, created) VALUES ('nb', 0)")
    put_turn(db, 1, turn)
    (read,) = read_turns(db, 1)
    assert read.images == turn.images
    assert read.messages() == turn.messages()


def test_a_tampered_stored_image_is_left_out_not_drawn() -> None:
    good = image_part("x", png_bytes(4, 4))
    turn = Turn(prompt=f"see {good.marker}", reply="ok", images=(good,))
    db = sqlite3.connect(":memory:")
    migrate(db)
    db.execute("INSERT INTO conversations (notebook_key, created) VALUES ('nb', 0)")
    put_turn(db, 1, turn)
    details = json.loads(db.execute("SELECT details FROM turns").fetchone()[0])
    details["images"].append({**details["images"][0], "data": '"><script>alert(1)</script>'})
    details["images"].append({**details["images"][0], "mime": "text/html"})
    db.execute("UPDATE turns SET details = ?", (json.dumps(details),))
    (read,) = read_turns(db, 1)
    assert read.images == (good,)


# -- a model that takes no images -----------------------------------------------------------------


def test_a_model_refusing_images_is_one_line_and_nothing_is_kept(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.enqueue(
        Status(
            400,
            {
                "error": {
                    "message": "Invalid content type. image_url is only supported by certain"
                    " models.",
                    "type": "invalid_request_error",
                    "code": None,
                }
            },
        )
    )
    shell.ip.user_ns["fig"] = figure()
    result = shell.run("%%chat\nWhat is in {fig}?")
    assert type(result.error_in_exec) is UsageError
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith("UsageError: The model 'gpt-4o-mini' does not accept images (HTTP 400"), (
        err
    )
    from nbchat import get_session

    assert len(get_session().history) == 0


# -- shown folded ----------------------------------------------------------------------------


def test_the_transcript_shows_a_thumbnail_and_plain_text_the_marker(
    shell: Shell, env: LoopbackServer, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    shell.ip.user_ns["photo"] = PILImage.new("RGB", (800, 600))
    assert shell.run("%%chat --image photo\nWhat is this?").success
    html_out = shell.final_outputs()[0].data["text/html"]
    (img,) = re.findall(r"<img [^>]*>", html_out)
    assert 'class="nbchat-thumbnail"' in img and "max-width: 160px" in img
    assert 'src="data:image/png;base64,' in img
    assert "image: photo · 800×600 · ~765 tokens" in html_out

    from nbchat import get_session

    (turn,) = get_session().history
    page = views.prompt_html(Prompt(turn.prompt, turn.attachments, images=turn.images))
    assert page.count("<img ") == 1 and "photo · 800×600" in page

    capsys.readouterr()
    shell.run("%chat history")
    assert "[image: photo · 800×600 · ~765 tokens]" in capsys.readouterr().out
    shell.run(f"%chat export {tmp_path / 'chat.md'}")
    assert "[image: photo · 800×600 · ~765 tokens]" in (tmp_path / "chat.md").read_text()


def test_the_panel_transcript_shows_the_thumbnail(session: ChatSession) -> None:
    from nbchat.transcript import turn_view

    part = image_part("fig", png_bytes(64, 48))
    turn = Turn(prompt=f"see {part.marker}", reply="a red square", images=(part,))
    view = turn_view(turn, lambda code: None)
    html_value = view.children[0].value
    assert html_value.count("<img ") == 1 and "fig · 64×48" in html_value


def test_model_output_still_cannot_show_an_image() -> None:
    data = base64.b64encode(png_bytes(2, 2)).decode()
    rendered = render_markdown(
        f'![x](data:image/png;base64,{data}) <img src="data:image/png;base64,{data}">'
    )
    assert "<img" not in rendered


def test_an_image_part_holds_only_base64_png_or_jpeg() -> None:
    with pytest.raises(ValueError, match="base64"):
        ImagePart("x", "image/png", 'AAAA" onerror="alert(1)', 1, 1, 85)
    with pytest.raises(ValueError, match="PNG or JPEG"):
        ImagePart("x", "image/svg+xml", "AAAA", 1, 1, 85)


# -- what a cell displayed ----------------------------------------------------------------------


def test_cell_image_sends_what_a_cell_displayed_or_returned(
    shell: Shell, env: LoopbackServer
) -> None:
    shell.ip.user_ns["data"] = png_bytes(120, 80)
    shown = shell.run("from IPython.display import Image, display\ndisplay(Image(data=data))")
    assert shown.success
    returned = shell.run("from PIL import Image as P\nP.new('RGB', (40, 30))")
    assert returned.success
    result = shell.run(
        f"%%chat --cell-image {shown.execution_count} --cell-image -1\nCompare these"
    )
    assert result.success, result.error_in_exec
    user = env.last_request.json["messages"][0]
    validate_openai_messages([user])
    first, second = image_parts(user)
    assert decoded(first) == shell.ip.user_ns["data"]
    assert image_size(decoded(second)) == (40, 30)
    count = shown.execution_count
    assert f"[image: cell {count} · 120×80" in user["content"][0]["text"]
    assert f"[image: cell {returned.execution_count} · 40×30" in user["content"][0]["text"]


def test_only_the_last_cells_images_are_kept(shell: Shell) -> None:
    from nbchat.cell_images import KEEP_CELLS, capture

    shell.ip.user_ns["data"] = png_bytes(8, 8)
    counts = []
    for _ in range(KEEP_CELLS + 3):
        run = shell.run("from IPython.display import Image, display\ndisplay(Image(data=data))")
        counts.append(run.execution_count)
    kept = capture(shell.ip)
    assert kept.image(counts[-1]).width == 8
    with pytest.raises(ContextError, match="showed no image"):
        kept.image(counts[0])


# -- nothing heavy -----------------------------------------------------------------------------


def test_load_ext_and_an_image_prompt_import_neither_matplotlib_nor_pil() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'nbchat')\n"
        "from nbchat.prompt import compose\n"
        f"png = {png_bytes(4, 4)!r}\n"
        "prompt = compose('see {png}', {'png': png})\n"
        "assert prompt.images[0].width == 4\n"
        "print(','.join(m for m in ('matplotlib', 'PIL') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


@pytest.fixture
def env(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", MODEL)
    monkeypatch.setenv("NBCHAT_READ_TIMEOUT", "5")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    return server


def test_the_shape_check_refuses_what_no_gateway_reads() -> None:
    good = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    validate_openai_messages([{"role": "user", "content": [good]}])
    for bad in (
        {"type": "image", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "max"}},
    ):
        with pytest.raises(Exception, match="."):
            validate_openai_messages([{"role": "user", "content": [bad]}])


def test_kept_images_stay_under_the_total(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from nbchat import cell_images

    monkeypatch.setattr(cell_images, "MAX_TOTAL", 500)
    kept = cell_images.CellImages()
    image = base64.b64encode(png_bytes(64, 64)).decode()
    assert 200 <= len(image) < 250  # two cells' images fit in 500, three do not
    for count in range(1, 6):
        kept.note({"image/png": image, "text/plain": "<Figure>"})
        kept.cell_ended(SimpleNamespace(execution_count=count))
    assert kept.image(5).width == 64 and kept.image(-2).name == "cell 4"
    with pytest.raises(ContextError, match="showed no image"):
        kept.image(3)
