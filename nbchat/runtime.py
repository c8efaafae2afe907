"""Where nbchat runs: the one module that reaches the running IPython and asks what it can show.

Every face needs the same few facts: the shell (if any), the user's namespace, whether output
can be rich (a kernel sends HTML to a frontend; terminal IPython prints text), and which kernel
this is. Asking them in one place keeps the answers consistent and keeps IPython out of every
other module below the faces: nothing here imports IPython until a question needs it, and
nothing imports it at all when it is not already loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Frontend",
    "connection_file",
    "display",
    "frontend",
    "javascript",
    "running_cell_id",
    "running_shell",
    "user_namespace",
]


def running_shell() -> Any:
    """The IPython shell this code runs in, or None; IPython is not imported when absent."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if get_ipython else None


def user_namespace(shell: Any = None) -> dict[str, Any]:
    """The variables of the user's notebook or terminal session ({} outside IPython)."""
    shell = shell if shell is not None else running_shell()
    namespace = getattr(shell, "user_ns", None)
    return namespace if isinstance(namespace, dict) else {}


def connection_file() -> str | None:
    """The kernel's connection file, which names this kernel process; None outside a kernel."""
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    app_class = getattr(kernelapp, "IPKernelApp", None)
    if app_class is None or not app_class.initialized():
        return None
    path = getattr(app_class.instance(), "connection_file", None)
    return str(path) if path else None


def running_cell_id(shell: Any = None) -> str | None:
    """The id of the cell running now, when the frontend names its cells (JupyterLab,
    Notebook 7 and VS Code send ``metadata.cellId``; nbclient and nbconvert do not)."""
    shell = shell if shell is not None else running_shell()
    get_parent = getattr(getattr(shell, "kernel", None), "get_parent", None)
    parent = get_parent() if callable(get_parent) else None
    metadata = parent.get("metadata") if isinstance(parent, dict) else None
    cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
    return cell_id if isinstance(cell_id, str) and cell_id else None


@dataclass(frozen=True, slots=True)
class Frontend:
    """What the place nbchat runs in can do."""

    shell: Any
    """The IPython shell, or None outside IPython."""
    rich: bool
    """Outputs are shown as HTML by a frontend (a kernel); False for terminal IPython."""
    widgets: bool
    """Widgets can be shown (a kernel with comms)."""
    draws_widgets: bool = False
    """A frontend known to draw widgets is attached (JupyterLab, Notebook 7 and other
    clients of a Jupyter server, VS Code, Colab); not so for nbclient, nbconvert or a
    console, where nothing would draw a widget and a reply must stream as outputs."""

    @property
    def terminal(self) -> bool:
        return not self.rich


def frontend(shell: Any = None) -> Frontend:
    """The capabilities of ``shell`` (default: the running shell)."""
    shell = shell if shell is not None else running_shell()
    rich = _rich_output(shell)
    widgets = rich and hasattr(shell, "kernel")
    return Frontend(
        shell=shell,
        rich=rich,
        widgets=widgets,
        draws_widgets=widgets and _widget_frontend(user_namespace(shell)),
    )


def _widget_frontend(namespace: Mapping[str, Any]) -> bool:
    # A Jupyter server names the notebook in every kernel it starts; VS Code says so in the
    # environment and the namespace; Colab's kernel has its module loaded.
    return bool(
        os.environ.get("JPY_SESSION_NAME")
        or os.environ.get("VSCODE_PID")
        or "__vsc_ipynb_file__" in namespace
        or "google.colab" in sys.modules
    )


def _rich_output(shell: Any) -> bool:
    # Terminal IPython's publisher is the base class, which prints text/plain; a kernel's is a
    # subclass that sends every MIME type to the frontend.
    publisher = getattr(shell, "display_pub", None)
    if publisher is None:
        return False
    from IPython.core.displaypub import DisplayPublisher

    return type(publisher) is not DisplayPublisher


def display(obj: object, **kwargs: Mapping[str, Any] | bool | str) -> None:
    """Show ``obj`` the way IPython's ``display`` does (widgets, rich reprs)."""
    from IPython.display import display as ipython_display

    ipython_display(obj, **kwargs)  # type: ignore[no-untyped-call]


def javascript(script: str) -> Any:
    """A display object that runs ``script`` in frontends that run output scripts."""
    from IPython.display import Javascript

    return Javascript(script)  # type: ignore[no-untyped-call]
