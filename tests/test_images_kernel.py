"""``--cell-image N`` in a real kernel: the plot a cell displayed goes to the model."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbchat.images import image_size
from nbchat.testing import LoopbackServer, Reply

from kernel import KernelDriver, nbchat_kernel
from openai_shapes import image_parts, validate_openai_messages

PLOT = (
    "import matplotlib\n"
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(6, 4), dpi=100)\n"
    "ax.plot([1, 3, 2])\n"
    "ax.set_title('sales')\n"
    "print(matplotlib.get_backend())"
)


@pytest.fixture
def kernel(server: LoopbackServer, tmp_path: Path) -> Iterator[KernelDriver]:
    # The kernel's inline backend draws with Agg and flushes the figure after the cell runs.
    with nbchat_kernel(
        server.base_url, tmp_path, MPLBACKEND="module://matplotlib_inline.backend_inline"
    ) as driver:
        yield driver


def test_cell_image_sends_the_plot_a_cell_displayed(
    kernel: KernelDriver, server: LoopbackServer
) -> None:
    plot = kernel.execute(PLOT, cell_id="plot")
    assert plot.reply_status == "ok", plot.describe()
    (shown,) = plot.outputs_of_type("display_data")
    displayed = base64.b64decode(shown["data"]["image/png"])
    assert "inline" in plot.stdout

    server.enqueue(Reply("A line that rises, then falls."), Reply("Still the same plot."))
    by_count = kernel.execute(
        f"%%chat --cell-image {plot.execution_count}\nWhat does this plot show?", cell_id="ask"
    )
    assert by_count.reply_status == "ok", by_count.describe()
    user = server.last_request.json["messages"][-1]
    validate_openai_messages([user])
    (part,) = image_parts(user)
    sent = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    assert sent == displayed  # what the user saw, byte for byte
    width, height = image_size(sent) or (0, 0)
    assert 0 < max(width, height) <= 1024
    assert f"[image: cell {plot.execution_count} · {width}×{height}" in user["content"][0]["text"]
    html = by_count.final_outputs()[0]["data"]["text/html"]
    assert 'class="nbchat-thumbnail"' in html

    relative = kernel.execute("%%chat --cell-image -2\nAnd now?", cell_id="again")
    assert relative.reply_status == "ok", relative.describe()
    messages = server.last_request.json["messages"]
    validate_openai_messages(messages)
    # The earlier turn is resent with its image, and -2 names the plot again (-1 is the chat).
    assert image_parts(messages[0]) == [part]
    assert image_parts(messages[-1]) == [part]
