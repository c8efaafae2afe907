"""A real IPython shell for tests; its display publisher records what a kernel would send."""

from __future__ import annotations

import atexit
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell


@dataclass
class Published:
    """One display message: what a kernel would put on iopub."""

    kind: str  # "display", "update" or "clear"
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    display_id: str | None = None
    wait: bool = False
    at: float = field(default_factory=time.monotonic)


class RecordingPublisher(DisplayPublisher):
    """Records every display, update and clear, like a frontend receiving them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.messages: list[Published] = []

    def publish(  # type: ignore[override]
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        display_id = (transient or {}).get("display_id")
        self.messages.append(
            Published(
                "update" if update else "display", dict(data), dict(metadata or {}), display_id
            )
        )

    def clear_output(self, wait: bool = False) -> None:
        self.messages.append(Published("clear", wait=wait))

    def final_outputs(self) -> list[Published]:
        """The cell's outputs after applying every message, as JupyterLab would."""
        outputs: list[Published] = []
        pending_clear = False
        for message in self.messages:
            if message.kind == "clear":
                if message.wait:
                    pending_clear = True
                else:
                    outputs = []
                continue
            if message.kind == "update":
                for output in outputs:
                    if output.display_id == message.display_id:
                        output.data = message.data
                        output.metadata = message.metadata
                continue
            if pending_clear:
                outputs, pending_clear = [], False
            outputs.append(Published("display", message.data, message.metadata, message.display_id))
        return outputs


class Shell:
    """An IPython shell with nbchat loaded and a way to run cells as a notebook would."""

    def __init__(self, shell: InteractiveShell, publisher: RecordingPublisher | None) -> None:
        self.ip = shell
        self.publisher = publisher

    def run(self, source: str, *, cell_id: str | None = None) -> ExecutionResult:
        if self.publisher is not None:
            self.publisher.messages.clear()
        return self.ip.run_cell(source, store_history=True, cell_id=cell_id)

    def final_outputs(self) -> list[Published]:
        assert self.publisher is not None
        return self.publisher.final_outputs()


def make_shell(*, rich: bool) -> Iterator[Shell]:
    """A fresh shell: rich output recorded like a kernel's, or plain like a terminal's."""
    from nbchat.notebook import reset_session_for_tests

    InteractiveShell.clear_instance()
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no file left to write when the process exits
    shell = InteractiveShell.instance(config=config)
    # IPython's exit hook resets each shell ever made, with a full garbage collection each: over
    # a suite's hundreds of shells that takes minutes at exit. Each is closed here instead.
    atexit.unregister(shell.atexit_operations)
    publisher: RecordingPublisher | None = None
    if rich:
        publisher = RecordingPublisher(shell=shell, parent=shell)
        shell.display_pub = publisher
    shell.run_line_magic("load_ext", "nbchat")
    reset_session_for_tests()
    try:
        yield Shell(shell, publisher)
    finally:
        reset_session_for_tests()
        shell.run_line_magic("unload_ext", "nbchat")
        history = shell.history_manager
        if history is not None:  # what the exit hook would do, without its reset
            history.end_session()
            history.close()
            shell.history_manager = None
        InteractiveShell.clear_instance()
