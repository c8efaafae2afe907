"""A streaming reply drawn by one widget: finished blocks sent once, only the open tail resent.

A cell's outputs can be rewritten but never removed one by one, and JupyterLab hides all past
the 50th, so :class:`~nbchat.display.CellDisplay` alone must merge finished blocks into a few
outputs, resending each byte several times (more, the longer the reply). A widget has no such
limit: this one is one output, and each message to it *adds* to what its views show. A finished
block of HTML crosses the wire once; the open block at the end is replaced as it grows. The
HTML is nbchat's own rendering of the model's Markdown, already made safe by
:mod:`nbchat.render`, the same HTML a ``text/html`` output would hold.

Messages go as custom widget messages, not synced state: state is sent whole on each change,
which is what this avoids. anywidget holds messages back until the module has loaded and
``initialize`` has run, so none is lost before the first view is drawn; the page keeps the
blocks per model (``initialize``), and every view (the cell, a second view of it) draws from
them. A page reloaded in the middle of a reply shows it again once it has finished, from the
cell's final output.

Used only where a frontend is known to draw widgets (see :func:`nbchat.runtime.frontend`):
elsewhere (nbclient, nbconvert, consoles) the cell's outputs stream as before.
"""

from __future__ import annotations

import uuid
from typing import Any

import anywidget
import traitlets

__all__ = ["LiveReply"]

_ESM = r"""
// What each reply's model has received, for all of its views.
const replies = new Map();

function initialize({ model, signal }) {
  const id = model.get("reply_id");
  const reply = { finished: [], tail: "", views: new Set() };
  replies.set(id, reply);
  signal?.addEventListener("abort", () => replies.delete(id));
  model.on("msg:custom", (message) => {
    if (message.reset !== undefined) {
      reply.finished = [];
      for (const view of reply.views) view.finished.replaceChildren();
    }
    if (message.append) {
      reply.finished.push(message.append);
      for (const view of reply.views) {
        view.finished.insertAdjacentHTML("beforeend", message.append);
      }
    }
    if (message.tail !== undefined) {
      reply.tail = message.tail;
      for (const view of reply.views) view.tail.innerHTML = message.tail;
    }
  });
}

function render({ model, el, signal }) {
  const reply = replies.get(model.get("reply_id"));
  if (!reply) return;
  // The class JupyterLab and Notebook 7 give HTML outputs: tables, code and headings look
  // the same while streaming as in the final output.
  el.classList.add("nbchat-live", "jp-RenderedHTMLCommon");
  const view = { finished: document.createElement("div"), tail: document.createElement("div") };
  view.finished.innerHTML = reply.finished.join("");
  view.tail.innerHTML = reply.tail;
  el.append(view.finished, view.tail);
  reply.views.add(view);
  signal?.addEventListener("abort", () => reply.views.delete(view));
}

export default { initialize, render };
"""

_PLAIN = "nbchat: the reply is streaming (this frontend does not show widgets)"


class LiveReply(anywidget.AnyWidget):
    """One reply as it streams: :meth:`update` adds finished HTML and replaces the open tail."""

    _esm = _ESM
    reply_id = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(reply_id=uuid.uuid4().hex, **kwargs)

    def bundle(self) -> dict[str, Any]:
        """The output that shows this widget in a cell (text where widgets are not drawn)."""
        shown: Any = self._repr_mimebundle_()  # (data, metadata) in ipywidgets 8
        data = dict(shown[0] if isinstance(shown, tuple) else shown)
        data["text/plain"] = _PLAIN
        return data

    def close(self) -> None:
        """Let the page forget this reply, and its layout: a widget per reply must not pile up
        in the page and the kernel over a long notebook."""
        layout = self.layout
        super().close()
        layout.close()

    def update(self, *, append: str = "", tail: str | None = None, reset: bool = False) -> None:
        """In one message: forget the finished HTML (``reset``), add ``append`` to it, and
        show ``tail`` after it (``None``: keep the tail shown)."""
        message: dict[str, Any] = {}
        if reset:
            message["reset"] = True
        if append:
            message["append"] = append
        if tail is not None:
            message["tail"] = tail
        if message:
            self.send(message)
