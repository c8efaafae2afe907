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
    assert importers("ipywidgets") == ["panel.py", "panel_controls.py", "transcript.py"]


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


HTTP_MODULES = ["client.py", "http_errors.py", "retry.py", "stream.py"]
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
