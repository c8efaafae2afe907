"""The panel's message box: a textarea that sends on Enter, made with anywidget.

ipywidgets' ``Textarea`` reports no key events, so it cannot send on Enter; a JupyterLab
extension of our own would need a frontend build. anywidget runs a small ES module in the page
instead: Enter (without Shift, and not while an input method is composing a character) sends a
``submit`` message carrying the text, Shift+Enter adds a line. The text reaches the kernel as it
is typed, so ``value`` reads and sets the box from code as a ``Textarea``'s does. It travels as
custom messages rather than synced state: the widget manager may hold state changes back and
send them after a later custom message, and a keystroke's arriving after ``submit`` would put
the sent text back in the box.

The module also watches its own connection to the kernel. When the kernel restarts, the widget
manager marks every widget of the old kernel disconnected and their comms are gone: a click or a
key then reaches nothing, with only a line in the browser console. The box says so in the page
instead (``lost_message``), since nothing in the kernel is left to say it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

__all__ = ["LOST_KERNEL", "PLACEHOLDER", "Composer"]

PLACEHOLDER = (
    "Ask about your notebook… Enter sends, Shift+Enter adds a line; "
    "%%chat cells share this conversation"
)
LOST_KERNEL = "This panel lost its kernel: run %chat panel again"

_ESM = r"""
function render({ model, el }) {
  const lost = document.createElement("div");
  lost.className = "nbchat-lost";
  lost.setAttribute("role", "alert");
  lost.hidden = true;
  const area = document.createElement("textarea");
  area.className = "nbchat-composer-area";
  // Lumino's key bindings (run cell, …) skip a target marked so: keys typed here are the
  // message's, wherever the frontend listens for its shortcuts.
  area.setAttribute("data-lm-suppress-shortcuts", "true");
  el.classList.add("nbchat-composer");
  el.append(lost, area);

  const draw = () => {
    area.placeholder = model.get("placeholder");
    area.rows = model.get("rows");
    lost.textContent = model.get("lost_message");
  };
  draw();
  area.value = model.get("value");

  // The widget manager puts this class on every view of a kernel that restarted or went away.
  const disconnected = () => el.closest(".jupyter-widgets-disconnected") !== null;
  const showLost = () => {
    lost.hidden = false;
    el.classList.add("nbchat-composer-lost");
  };
  const check = () => {
    if (disconnected()) showLost();
  };
  // Views update their class on the same event; look once they have.
  model.on("comm_live_update", () => setTimeout(check, 0));
  check();

  // The text goes to the kernel as custom messages, in order with "submit": synced state may
  // be held back and sent after a later custom message, and would put a sent text back.
  const send = (event) => {
    if (disconnected()) {
      showLost();
      return;
    }
    try {
      model.send({ event, value: area.value });
    } catch (error) {
      showLost(); // the comm is gone (a kernel shut down)
    }
  };
  area.addEventListener("input", () => {
    model.set("value", area.value); // this page's copy, for a view drawn again; not sent
    send("input");
  });
  // Keys typed here are the message's, not the notebook's shortcuts (ipywidgets' own text
  // boxes do the same): JupyterLab would otherwise take Shift+Enter's new line to run the cell.
  area.addEventListener("keypress", (event) => event.stopPropagation());
  area.addEventListener("keydown", (event) => {
    event.stopPropagation();
    if (event.key !== "Enter") return;
    // keyCode 229: the key went to an input method (some browsers omit isComposing).
    if (event.shiftKey || event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    send("submit");
  });
  model.on("change:value", () => {
    const value = model.get("value");
    if (area.value !== value) area.value = value;
  });
  model.on("change:placeholder", draw);
  model.on("change:rows", draw);
  model.on("change:lost_message", draw);
}
export default { render };
"""

_CSS = """
.nbchat-composer { width: 100%; }
.nbchat-composer-area {
  box-sizing: border-box;
  width: 100%;
  resize: vertical;
  padding: 4px 8px;
  font-family: var(--jp-ui-font-family, sans-serif);
  font-size: var(--jp-widgets-font-size, 13px);
  color: var(--jp-widgets-input-color, #000);
  background: var(--jp-widgets-input-background-color, #fff);
  border: var(--jp-widgets-input-border-width, 1px) solid
    var(--jp-widgets-input-border-color, #9e9e9e);
}
.nbchat-composer-area:focus {
  outline: none;
  border-color: var(--jp-widgets-input-focus-border-color, #64b5f6);
}
.nbchat-lost {
  color: var(--jp-error-color1, #d32f2f);
  font-weight: bold;
  padding: 4px 0;
}
"""


class Composer(anywidget.AnyWidget):
    """The message box: ``value`` is its text; :meth:`on_submit` hears Enter."""

    _esm = _ESM
    _css = _CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode(PLACEHOLDER).tag(sync=True)
    rows = traitlets.Int(3).tag(sync=True)
    lost_message = traitlets.Unicode(LOST_KERNEL).tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_submit: list[Callable[[], object]] = []
        self.on_msg(self._message)

    def on_submit(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` when Enter is pressed in the box (after its text has arrived)."""
        self._on_submit.append(callback)

    def _message(self, _widget: object, content: Any, _buffers: object) -> None:
        if not isinstance(content, dict) or content.get("event") not in ("input", "submit"):
            return
        typed = content.get("value")
        if isinstance(typed, str) and typed != self.value:
            # What the page has; not sent back to it, where it may be behind what is typed.
            with self._lock_property(value=typed):
                self.value = typed
        if content["event"] == "submit":
            for callback in self._on_submit:
                callback()
