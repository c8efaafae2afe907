"""Real OpenAI-compatible servers that nobody here wrote, started and stopped by a test.

``LiteLLMProxy(models, master_key=...)`` runs LiteLLM's proxy (``litellm[proxy]``) with the
tests' own interpreter on a free loopback port, from a config file holding ``models`` (each a
``model_list`` entry: ``{"model_name": ..., "litellm_params": {...}}``), and waits until
``/health/liveliness`` answers. Deployments with ``mock_response`` answer from inside the proxy;
one whose ``api_base`` is a :class:`~nbchat.testing.LoopbackServer` makes the proxy a gateway in
front of a scripted upstream.

The proxy must never reach beyond this machine:

- its environment is ``os.environ`` without any key, proxy or database variable, with ``HOME``
  and ``XDG_*`` in a temp dir of its own, and with LiteLLM's switches for working offline (the
  bundled model cost map and other bundled files, no telemetry, Hugging Face offline);
- an audit hook installed before LiteLLM is imported refuses every connection and name lookup
  that is not loopback, and writes each refused one to ``network.log``
  (:meth:`LiteLLMProxy.network_attempts`), so a test can assert that none was tried.

Its log (``proxy.log``: LiteLLM's own lines and uvicorn's access log, one line per request)
is kept for the test to read. On stop the proxy's process group gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from processes import wait_ready

_START_TIMEOUT = 120.0  # seconds; it starts in about 12 s here
_STOP_TIMEOUT = 15.0
_PROXY_MODULES = ("litellm", "fastapi", "uvicorn")  # what `litellm[proxy]` brings

_OFFLINE: dict[str, str] = {
    # LiteLLM fetches these from the network at start unless told to use its bundled copies.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
    "HF_HUB_OFFLINE": "1",
    "NO_PROXY": "127.0.0.1,localhost,::1",
    "no_proxy": "127.0.0.1,localhost,::1",
    "PYTHONUNBUFFERED": "1",
}
_DROPPED_PREFIXES = ("NBCHAT_", "OPENAI_", "LITELLM_", "AZURE_", "ANTHROPIC_", "AWS_", "HF_")
_DROPPED = frozenset({"DATABASE_URL", "DIRECT_URL", "REDIS_URL", "REDIS_HOST", "STORE_MODEL_IN_DB"})

# Runs in the proxy's process before LiteLLM is imported; argv[1] is where refusals are logged.
_BOOTSTRAP = r"""
import ipaddress, socket, sys

_log_path = sys.argv.pop(1)


def _loopback(host):
    host = str(host).strip("[]").lower()
    if host in ("localhost", "localhost.localdomain", "ip6-localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _guard(event, args):
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):
            return  # a Unix socket
        host = address[0]
    else:
        return
    if host is None or _loopback(host.decode() if isinstance(host, bytes) else host):
        return
    with open(_log_path, "a", encoding="utf-8") as log:
        log.write(f"{event} {host}\n")
    raise socket.gaierror(socket.EAI_NONAME, f"network refused in tests: {host}")


sys.addaudithook(_guard)
from litellm.proxy.proxy_cli import run_server

run_server()
"""


PROXY_PYTHON = Path(
    os.environ.get("LITELLM_PYTHON")
    or Path(__file__).resolve().parents[1] / ".venv-litellm" / "bin" / "python"
)
"""The interpreter the proxy runs in: a virtualenv of its own (``make litellm``), because
``litellm[proxy]`` pins versions of polars and python-dateutil that nbchat's own tests must not
be held to. ``LITELLM_PYTHON`` points elsewhere."""


def _proxy_imports(*names: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import importlib.util, sys; "
        "sys.exit(','.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))"
    )
    return subprocess.run(
        [str(PROXY_PYTHON), "-c", code, *names], capture_output=True, text=True, check=False
    )


def require_litellm() -> None:
    """Skip (or, in CI, fail) when LiteLLM's proxy is not installed in its virtualenv."""
    import pytest

    if not PROXY_PYTHON.exists():
        missing = f"no {PROXY_PYTHON} (make litellm)"
    else:
        done = _proxy_imports(*_PROXY_MODULES)
        missing = done.stderr.strip() if done.returncode else ""
        missing = f"not installed in {PROXY_PYTHON}: {missing} (make litellm)" if missing else ""
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the LiteLLM proxy tests must run in CI: {missing}")
        pytest.skip(missing)


def litellm_version() -> str:
    code = "from importlib.metadata import version; print(version('litellm'))"
    done = subprocess.run([str(PROXY_PYTHON), "-c", code], capture_output=True, text=True)
    return done.stdout.strip()


class ProxyError(RuntimeError):
    """The proxy did not start, or did not answer in time; the message has its log tail."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')


class LiteLLMProxy:
    """A running LiteLLM proxy: ``base_url`` (``…/v1``) is what an OpenAI client is given."""

    def __init__(
        self,
        models: Sequence[Mapping[str, Any]],
        *,
        master_key: str,
        litellm_settings: Mapping[str, Any] | None = None,
        router_settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.config: dict[str, Any] = {
            "model_list": [dict(model) for model in models],
            "litellm_settings": dict(litellm_settings or {}),
            "router_settings": dict(router_settings or {}),
            "general_settings": {"master_key": master_key},
        }
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None
        """Seconds from launch until the proxy first answered."""
        self._temp = tempfile.TemporaryDirectory(prefix="litellm-proxy-")
        self.state_dir = Path(self._temp.name)
        self.config_path = self.state_dir / "config.yaml"
        self.log_path = self.state_dir / "proxy.log"
        self.network_log = self.state_dir / "network.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- environment -------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        home = self.state_dir / "home"
        isolated = {
            "HOME": home,
            "XDG_CONFIG_HOME": home / ".config",
            "XDG_DATA_HOME": home / ".local" / "share",
            "XDG_CACHE_HOME": home / ".cache",
            "XDG_STATE_HOME": home / ".local" / "state",
            "HF_HOME": home / ".cache" / "huggingface",
            "TMPDIR": self.state_dir / "tmp",
        }
        for path in isolated.values():
            path.mkdir(parents=True, exist_ok=True)
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.upper().startswith(_DROPPED_PREFIXES)
            and name.upper() not in _DROPPED
            and not name.lower().endswith("_proxy")
        }
        env.update({name: str(path) for name, path in isolated.items()})
        env.update(_OFFLINE)
        return env

    def _command(self) -> list[str]:
        return [
            str(PROXY_PYTHON),
            "-c",
            _BOOTSTRAP,
            str(self.network_log),
            "--config",
            str(self.config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--num_workers",
            "1",
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LiteLLMProxy:
        # YAML is a superset of JSON, so the config needs no YAML writer.
        self.config_path.write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        env = self._environment()
        for attempt in range(3):
            self.port = _free_port()
            with self.log_path.open("ab") as log:
                log.write(f"\n=== attempt {attempt + 1} on port {self.port}\n".encode())
                log.flush()
                launched = time.monotonic()
                self.process = subprocess.Popen(
                    self._command(),
                    cwd=self.state_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                self._wait_ready()
            except ProxyError:
                port_taken = "address already in use" in self.log_tail(4000).lower()
                self.stop()
                if not port_taken:
                    raise
                continue
            self.started_in = time.monotonic() - launched
            return self
        raise ProxyError(f"no free port after 3 attempts\n{self.log_tail()}")

    def _wait_ready(self) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(f"{self.url}/health/liveliness", timeout=2) as answer:
                return bool(answer.status == 200)

        wait_ready(
            self.process,
            answers,
            what="the LiteLLM proxy",
            timeout=_START_TIMEOUT,
            log_tail=self.log_tail,
            error=ProxyError,
        )

    def stop(self) -> None:
        """SIGTERM the proxy's process group; SIGKILL whatever outlives the grace period."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_STOP_TIMEOUT)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # anything left in its group, itself included
        process.wait(timeout=_STOP_TIMEOUT)

    def close(self) -> None:
        self.stop()
        self._temp.cleanup()

    def __enter__(self) -> LiteLLMProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what it did -------------------------------------------------------------------------

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, characters: int = 3000) -> str:
        return self.log_text()[-characters:]

    def access_log(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request the proxy answered, oldest first
        (uvicorn writes the line once the status is sent)."""
        return [
            (match["method"], match["path"], int(match["status"]))
            for match in _ACCESS_LINE.finditer(self.log_text())
        ]

    def network_attempts(self) -> list[str]:
        """Every connection or name lookup beyond loopback that the proxy tried (and was
        refused)."""
        try:
            return self.network_log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []


# -- llama.cpp's server, as llama-cpp-python runs it --------------------------------------------

LLAMA_PYTHON = Path(
    os.environ.get("LLAMA_PYTHON")
    or Path(__file__).resolve().parents[1] / ".venv-llama" / "bin" / "python"
)
"""The interpreter ``python -m llama_cpp.server`` runs in: a virtualenv of its own (``make
llama``), where llama-cpp-python compiled llama.cpp, with PyPI's ``gguf`` to write the tiny model.
``LLAMA_PYTHON`` points elsewhere."""

_LLAMA_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "gguf")
_LLAMA_START_TIMEOUT = 60.0  # seconds; it starts in about 2 s here
_MAKE_TINY_GGUF = Path(__file__).resolve().with_name("make_tiny_gguf.py")

_GUARD_END = "sys.addaudithook(_guard)\n"
_NETWORK_GUARD = _BOOTSTRAP[: _BOOTSTRAP.index(_GUARD_END) + len(_GUARD_END)]
"""The proxy's bootstrap up to its audit hook: refuses and logs any non-loopback connection."""
_LLAMA_BOOTSTRAP = (
    _NETWORK_GUARD + "import runpy\nrunpy.run_module('llama_cpp.server', run_name='__main__')\n"
)

_LLAMA_KEPT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
"""The only variables of ``os.environ`` the server sees: its settings are pydantic-settings
classes that read ``HOST``, ``PORT``, ``MODEL``, ``API_KEY``, ``CONFIG_FILE``… from the
environment, so nothing of the tests' own may leak in."""


def require_llama() -> None:
    """Skip (or, in CI, fail) when llama-cpp-python's server is not installed in its
    virtualenv."""
    import pytest

    if not LLAMA_PYTHON.exists():
        missing = f"no {LLAMA_PYTHON} (make llama)"
    else:
        code = (
            "import importlib.util, sys; "
            "sys.exit(','.join(n for n in sys.argv[1:] if importlib.util.find_spec(n) is None))"
        )
        done = subprocess.run(
            [str(LLAMA_PYTHON), "-c", code, *_LLAMA_MODULES],
            capture_output=True,
            text=True,
            check=False,
        )
        missing = done.stderr.strip() if done.returncode else ""
        missing = f"not installed in {LLAMA_PYTHON}: {missing} (make llama)" if missing else ""
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the llama.cpp server tests must run in CI: {missing}")
        pytest.skip(missing)


def llama_cpp_python_version() -> str:
    code = "from importlib.metadata import version; print(version('llama_cpp_python'))"
    done = subprocess.run([str(LLAMA_PYTHON), "-c", code], capture_output=True, text=True)
    return done.stdout.strip()


def make_tiny_model(path: Path) -> Path:
    """Write tests/make_tiny_gguf.py's tiny random-weight llama model to ``path``, with the
    ``gguf`` package of ``.venv-llama``."""
    subprocess.run(
        [str(LLAMA_PYTHON), str(_MAKE_TINY_GGUF), str(path)],
        check=True,
        capture_output=True,
        env={name: os.environ[name] for name in _LLAMA_KEPT if name in os.environ},
    )
    return path


class LlamaCppServer(LiteLLMProxy):
    """``python -m llama_cpp.server`` serving one GGUF model as ``alias``, with a context of
    ``n_ctx`` tokens, on a free loopback port; ``base_url`` (``…/v1``) is what nbchat is given.

    It shares the proxy's lifecycle (a port retried when taken, its own process group stopped
    on exit, a log of uvicorn's access lines) and its network guard, and runs on one thread
    with a fixed seed so that it takes one core at most. It is offline by nature: it reads the
    model file and nothing else.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        n_ctx: int = 256,
        alias: str = "tiny-llama",
        seed: int = 1234,
        api_key: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__([], master_key="")
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.alias = alias
        self.seed = seed
        self.api_key = api_key
        """The bearer token the server then requires on every request, ``/v1/models`` too."""
        self.extra_args = list(extra_args)
        self._temp.cleanup()
        self._temp = tempfile.TemporaryDirectory(prefix="llama-cpp-server-")
        self.state_dir = Path(self._temp.name)
        self.config_path = self.state_dir / "unused-config.json"
        self.log_path = self.state_dir / "server.log"
        self.network_log = self.state_dir / "network.log"

    def _environment(self) -> dict[str, str]:
        home = self.state_dir / "home"
        (home / ".cache").mkdir(parents=True, exist_ok=True)
        (self.state_dir / "tmp").mkdir(exist_ok=True)
        env = {name: os.environ[name] for name in _LLAMA_KEPT if name in os.environ}
        env.update(
            HOME=str(home),
            XDG_CACHE_HOME=str(home / ".cache"),
            HF_HOME=str(home / ".cache" / "huggingface"),
            HF_HUB_OFFLINE="1",
            TMPDIR=str(self.state_dir / "tmp"),
            NO_PROXY="127.0.0.1,localhost,::1",
            no_proxy="127.0.0.1,localhost,::1",
            PYTHONUNBUFFERED="1",
            OMP_NUM_THREADS="1",
        )
        return env

    def _command(self) -> list[str]:
        return [
            str(LLAMA_PYTHON),
            "-c",
            _LLAMA_BOOTSTRAP,
            str(self.network_log),
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            "1",
            "--n_threads_batch",
            "1",
            "--seed",
            str(self.seed),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(["--api_key", self.api_key] if self.api_key else []),
            *self.extra_args,
        ]

    def _wait_ready(self) -> None:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

        def answers() -> bool:
            probe = urllib.request.Request(f"{self.base_url}/models", headers=headers)
            with urllib.request.urlopen(probe, timeout=2) as answer:
                return bool(answer.status == 200)

        wait_ready(
            self.process,
            answers,
            what="llama-cpp-python's server",
            timeout=_LLAMA_START_TIMEOUT,
            log_tail=self.log_tail,
            error=ProxyError,
        )


# -- llama.cpp's own C++ server -----------------------------------------------------------------

LLAMA_SERVER = Path(
    os.environ.get("LLAMA_SERVER")
    or Path(__file__).resolve().parents[1] / ".venv-llama" / "build" / "bin" / "llama-server"
)
"""llama.cpp's ``llama-server``, built by ``make llama`` in llama-cpp-python's kept build
directory from the same llama.cpp sources and libraries. ``LLAMA_SERVER`` points elsewhere."""


def require_llama_server() -> None:
    """Skip (or, in CI, fail) when ``llama-server`` was not built."""
    import pytest

    if not os.access(LLAMA_SERVER, os.X_OK):
        missing = f"no {LLAMA_SERVER} (make llama)"
        if os.environ.get("CI"):
            pytest.fail(f"the llama-server tests must run in CI: {missing}")
        pytest.skip(missing)


class LlamaServer(LlamaCppServer):
    """llama.cpp's C++ ``llama-server`` serving one GGUF model as ``alias``: one slot (so the
    whole ``n_ctx`` is one conversation's), one thread, no web UI, waiting until ``/health``
    says the model is loaded.

    It has no Python to hook, so nothing refuses its connections; it is built without an HTTP
    client (llama-cpp-python switches llama.cpp's curl off), reads the model file it is given and
    never fetches one, so it has nothing to connect to.
    """

    def _command(self) -> list[str]:
        return [
            str(LLAMA_SERVER),
            "--model",
            str(self.model_path),
            "--alias",
            self.alias,
            "--ctx-size",
            str(self.n_ctx),
            "--parallel",
            "1",
            "--threads",
            "1",
            "--threads-batch",
            "1",
            "--seed",
            str(self.seed),
            "--no-webui",
            "--no-warmup",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(["--api-key", self.api_key] if self.api_key else []),
            *self.extra_args,
        ]

    def _wait_ready(self) -> None:
        def answers() -> bool:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                return bool(answer.status == 200)  # 503 while the model loads

        wait_ready(
            self.process,
            answers,
            what="llama-server",
            timeout=_LLAMA_START_TIMEOUT,
            log_tail=self.log_tail,
            error=ProxyError,
        )
