"""The package's shape: cheap to import, public names complete, the house rules on imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import nbchat

PACKAGE = Path(nbchat.__file__).parent
HEAVY = (
    "requests",
    "urllib3",
    "markdown_it",
    "ipywidgets",
    "pygments",
    "pandas",
    "polars",
    "numpy",
    "pyarrow",
    "matplotlib",
    "PIL",
)


def test_importing_nbchat_loads_nothing_heavy() -> None:
    code = f"import sys, nbchat; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_load_ext_loads_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'nbchat')\n"
        "assert 'chat' in ip.magics_manager.magics['cell']\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        f"print(','.join(m for m in {HEAVY!r} if m in new))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == ""


def test_only_the_notebook_faces_import_ipython_and_ipywidgets() -> None:
    """IPython is reached through runtime.py (where nbchat runs) and by the magic's own modules;
    widgets only by the panel's; nothing below the faces imports either."""

    def importers(module: str) -> list[str]:
        return sorted(
            str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if module in _imports(p)
        )

    magic_face = ["actions.py", "commands.py", "magics.py", "options.py"]
    assert importers("IPython") == sorted([*magic_face, "runtime.py"])
    assert importers("ipywidgets") == [
        "panel.py",
        "panel_controls.py",
        "panel_view.py",
        "transcript.py",
    ]
    assert importers("anywidget") == ["composer.py", "live_reply.py"]


def test_nothing_imports_numpy_at_module_level() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        top = {
            alias.name.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        top |= {
            node.module.split(".")[0]
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        assert "numpy" not in top and "pyarrow" not in top, path


def test_every_public_name_resolves() -> None:
    for name in nbchat.__all__:
        assert getattr(nbchat, name) is not None, name
    assert set(nbchat.__all__) <= set(dir(nbchat))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


HTTP_MODULES = ["adapter.py", "client.py", "http_errors.py", "retry.py", "stream.py"]
"""The wire layer: the only modules that may speak HTTP; everything above talks to ChatClient."""


def test_only_the_http_modules_import_requests_or_urllib3() -> None:
    importers = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if _imports(p) & {"requests", "urllib3"}
    )
    assert importers == HTTP_MODULES


def test_nothing_imports_pandas_or_polars() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert not _imports(path) & {"pandas", "polars"}, path


def test_the_loopback_server_uses_only_the_standard_library() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for path in (PACKAGE / "testing").rglob("*.py"):
        assert _imports(path) <= stdlib, (path, _imports(path) - stdlib)


# Each module's layer, from the wire up (ARCHITECTURE.md draws the same table). A module may
# import from its own layer or any below it, never from above.
LAYERS: dict[str, int] = {
    **dict.fromkeys(
        ["errors", "version", "sse", "config", "secrets", "runtime", "budget", "prices"], 0
    ),
    "cancel": 0,
    **dict.fromkeys(["protocol", "accumulator", "retry", "http_errors", "stream", "client"], 1),
    "adapter": 1,
    **dict.fromkeys(["highlight", "render", "incremental", "codeblocks"], 2),
    **dict.fromkeys(["context", "frames", "prompt", "sizes", "images", "cell_images"], 3),
    **dict.fromkeys(["excerpt", "cells", "tracebacks"], 3),
    **dict.fromkeys(["turn", "schema", "store", "catalog", "identity", "history"], 4),
    "fingerprint": 1,
    **dict.fromkeys(["reply", "events", "session", "notebook", "spending", "conversations"], 5),
    **dict.fromkeys(["replay", "ipynb"], 5),
    **dict.fromkeys(["views", "options", "export", "usage_report", "importer"], 6),
    **dict.fromkeys(
        [
            "display",
            "terminal",
            "magics",
            "commands",
            "actions",
            "panel",
            "panel_controls",
            "panel_view",
            "composer",
            "live_reply",
            "conversation_commands",
        ],
        7,
    ),
    "transcript": 7,
    "__init__": 8,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]  # a subpackage (frames/) is one module of its layer


def _package_imports(source: str, *, in_subpackage: bool) -> set[str]:
    """The nbchat modules ``source`` imports, anywhere in it (lazy imports in functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 0:
            if node.module and node.module.split(".")[0] == "nbchat":
                names = node.module.split(".")[1:2] or [a.name for a in node.names]
                found.update(names)
            continue
        if in_subpackage and node.level == 1:
            continue  # within its own subpackage
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    return found


def test_imports_run_down_the_layers_only() -> None:
    upward = []
    for path in PACKAGE.rglob("*.py"):
        source = _module_name(path)
        if source == "testing":
            continue  # stands apart: standard library only (tested above)
        assert source in LAYERS, f"{source} has no layer: add it to LAYERS and ARCHITECTURE.md"
        in_subpackage = len(path.relative_to(PACKAGE).parts) > 1
        for target in _package_imports(path.read_text("utf-8"), in_subpackage=in_subpackage):
            assert target in LAYERS, (path, target)
            if LAYERS[target] > LAYERS[source]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {target}")
    assert upward == []


def test_the_layer_rule_sees_lazy_and_absolute_imports() -> None:
    source = "def f():\n    from .session import ChatSession\n    from nbchat.panel import X\n"
    assert _package_imports(source, in_subpackage=False) == {"session", "panel"}
    assert _package_imports("from .model import Facts\n", in_subpackage=True) == set()
