"""Run nbchat's notebooks end to end without a browser and write them out as HTML.

    python notebooks/run_headless.py [NOTEBOOK ...] [--out DIR]

With an API key configured (``NBCHAT_API_KEY``, or ``OPENAI_API_KEY`` with ``OPENAI_BASE_URL``)
the notebooks talk to that API. Without one they talk to nbchat's bundled loopback server, and
say so: every reply is then canned, a short Markdown sample quoting the question.

The run keeps its conversations in a temporary ``NBCHAT_HOME``, deleted at the end: your own
history file is neither read nor written. It needs the ``lab`` extra (and ``examples`` for the
dataframes notebook): ``pip install -e '.[lab,examples]'``, which ``make quickstart`` does in
its own virtualenv.

Cells are executed the way JupyterLab executes them, each ``execute_request`` carrying the
cell's id, so that a notebook behaves here as it does in a browser. The executed notebooks
(``.ipynb``) and their HTML go to ``--out`` (default ``build/notebooks``); a cell that fails
stops the run with its error and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter
except ModuleNotFoundError as missing:
    sys.exit(
        f"{missing}: running the notebooks needs nbchat's `lab` extra "
        "(pip install -e '.[lab,examples]', or `make quickstart`)"
    )

from nbchat.config import Settings
from nbchat.testing import LoopbackServer
from nbchat.testing.server import DEFAULT_MODELS

HERE = Path(__file__).resolve().parent
CANNED_NOTE = (
    "**This run used canned replies.** No API key was configured, so the notebook talked to "
    "nbchat's bundled loopback server (`nbchat.testing`), which answers every question with "
    "a canned Markdown sample. Set `NBCHAT_API_KEY` and run it again for real answers."
)


class CellIdClient(NotebookClient):
    """An nbclient that sends each cell's id with its execute_request, as JupyterLab does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cell_id: str | None = None
        self.on_cell_execute = self._note_cell

    def _note_cell(self, cell: Any, cell_index: int) -> None:
        self._cell_id = cell.get("id")

    async def async_start_new_kernel_client(self) -> Any:
        kernel_client = await super().async_start_new_kernel_client()

        def execute(code: str, *, store_history: bool = True, stop_on_error: bool = True) -> str:
            content = {
                "code": code,
                "silent": False,
                "store_history": store_history,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": stop_on_error,
            }
            metadata = {"cellId": self._cell_id} if self._cell_id else {}
            message = kernel_client.session.msg("execute_request", content, metadata=metadata)
            kernel_client.shell_channel.send(message)
            return str(message["header"]["msg_id"])

        kernel_client.execute = execute
        return kernel_client


def run(notebook_path: Path, out_dir: Path, *, canned: bool, timeout: int) -> Path:
    """Execute one notebook in ``out_dir`` and write it there as .ipynb and .html."""
    notebook = nbformat.read(notebook_path, as_version=4)
    client = CellIdClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(out_dir)}},
    )
    client.execute()
    if canned:
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(CANNED_NOTE))
    executed = out_dir / notebook_path.name
    nbformat.write(notebook, executed)
    html, _ = HTMLExporter().from_notebook_node(notebook)
    target = executed.with_suffix(".html")
    target.write_text(html, encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run nbchat's notebooks headless.")
    parser.add_argument("notebooks", nargs="*", type=Path, default=sorted(HERE.glob("*.ipynb")))
    parser.add_argument("--out", type=Path, default=Path("build/notebooks"))
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args(argv)
    out_dir = args.out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    settings = Settings.from_env()
    server: LoopbackServer | None = None
    if settings.usable_key is None and not settings.is_loopback:
        models = dict.fromkeys([*DEFAULT_MODELS, settings.model])  # NBCHAT_MODEL is accepted
        server = LoopbackServer(models=list(models)).start()
        os.environ["NBCHAT_BASE_URL"] = server.base_url
        os.environ.pop("OPENAI_BASE_URL", None)
        print(f"No API key configured: using the loopback server at {server.base_url}.")
        print("Every reply in this run is canned; set NBCHAT_API_KEY for real answers.")
    else:
        print(f"Talking to {settings.base_url} as model {settings.model}.")
    # The kernels inherit the environment: their turns go to a history file that is thrown
    # away, never into the user's own.
    history = tempfile.TemporaryDirectory(prefix="nbchat-headless-")
    os.environ["NBCHAT_HOME"] = history.name
    try:
        for notebook_path in args.notebooks:
            target = run(notebook_path, out_dir, canned=server is not None, timeout=args.timeout)
            print(f"{notebook_path.name}: ran every cell; wrote {target}")
    except CellExecutionError as error:
        print(f"A cell failed:\n{error}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        history.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
