"""Drive a real IPython kernel from tests, the way JupyterLab does.

``KernelDriver`` starts an ipykernel running the same Python as the tests, sends
``execute_request`` messages carrying ``metadata.cellId`` (as JupyterLab, Notebook 7 and
VS Code do; nbclient does not), records every iopub message of an execution in order with
its arrival time, answers ``input_request`` prompts, interrupts and restarts the kernel.
``run_notebook`` executes a notebook file with nbclient and the same Python.

Only one execution runs at a time; messages belonging to no current execution (a thread
printing after its cell finished, a late ``status``) are kept in ``KernelDriver.stray``.

Ordering: iopub messages arrive in the order the kernel published them, bracketed by
``status: busy`` and ``status: idle``; but ipykernel sends iopub through a background
thread and the ``execute_reply`` straight from the shell, so the reply may overtake the
last outputs (ipykernel sleeps 0.5 ms to make that rare). An execution is therefore
finished only when both the reply and ``idle`` have arrived.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import nbformat
import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager, KernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

KERNEL_NAME = "python3"
OUTPUT_TYPES = frozenset({"stream", "display_data", "execute_result", "error"})


class PinnedKernelSpecManager(KernelSpecManager):
    """Knows one kernel, ``python3``, run by the interpreter running the tests.

    Whatever kernelspecs are installed (user, venv, system), the kernel is always
    ``sys.executable -m ipykernel_launcher``.
    """

    def find_kernel_specs(self) -> dict[str, str]:
        return {KERNEL_NAME: str(Path(__file__).parent)}

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name != KERNEL_NAME:
            raise NoSuchKernel(kernel_name)
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (tests)",
            language="python",
            interrupt_mode="signal",
            resource_dir=str(Path(__file__).parent),
            metadata={"debugger": True},
        )


def kernel_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``os.environ`` (as it is now) with ``env`` laid over it."""
    merged = dict(os.environ)
    merged.update(env)
    return merged


class IopubMessage(NamedTuple):
    """One iopub message of an execution: when it arrived here (``time.monotonic()``)."""

    time: float
    msg_type: str
    content: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class InputRequest:
    """An ``input_request`` the kernel sent on the stdin channel."""

    time: float
    prompt: str
    password: bool
    answer: str | None = None  # None while unanswered


@dataclass
class Execution:
    """Everything observed about one ``execute_request``."""

    msg_id: str
    code: str
    cell_id: str | None
    sent_at: float
    messages: list[IopubMessage] = field(default_factory=list)
    reply: dict[str, Any] | None = None  # execute_reply content
    reply_received_at: float | None = None
    idle_at: float | None = None
    input_requests: list[InputRequest] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """The execute_reply arrived and the kernel went idle for this request."""
        return self.reply is not None and self.idle_at is not None

    @property
    def reply_status(self) -> str | None:
        """``"ok"``, ``"error"`` or ``"aborted"`` (None before the reply)."""
        return None if self.reply is None else self.reply.get("status")

    @property
    def execution_count(self) -> int | None:
        return None if self.reply is None else self.reply.get("execution_count")

    @property
    def msg_types(self) -> list[str]:
        return [message.msg_type for message in self.messages]

    def outputs_of_type(self, msg_type: str) -> list[dict[str, Any]]:
        """Contents of the iopub messages of this type, in arrival order."""
        return [m.content for m in self.messages if m.msg_type == msg_type]

    def _stream(self, name: str) -> str:
        return "".join(c["text"] for c in self.outputs_of_type("stream") if c["name"] == name)

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"ename", "evalue", "traceback"}`` of the error output, else of an error reply."""
        errors = self.outputs_of_type("error")
        source = errors[-1] if errors else None
        if source is None and self.reply_status == "error":
            source = self.reply
        if source is None:
            return None
        return {
            "ename": source.get("ename"),
            "evalue": source.get("evalue"),
            "traceback": list(source.get("traceback", [])),
        }

    def final_outputs(self) -> list[dict[str, Any]]:
        """The cell's outputs once every iopub message is applied the way JupyterLab does.

        ``display_data``/``execute_result``/``error`` are appended; ``stream`` text is merged
        into the previous output when that is a stream of the same name (``\\r`` and ``\\b``
        are kept as sent); ``update_display_data`` replaces data and metadata of every output
        of this cell with the same ``transient.display_id``; ``clear_output(wait=False)``
        clears now, ``clear_output(wait=True)`` clears when the next output is added (an
        update does not count). Returned as nbformat-style dicts (copies).
        """
        outputs: list[dict[str, Any]] = []
        display_ids: list[str | None] = []
        clear_next = False
        for message in self.messages:
            kind, content = message.msg_type, message.content
            if kind == "clear_output":
                if content.get("wait"):
                    clear_next = True
                else:
                    outputs.clear()
                    display_ids.clear()
                    clear_next = False
                continue
            if kind == "update_display_data":
                target = (content.get("transient") or {}).get("display_id")
                for index, display_id in enumerate(display_ids):
                    if display_id is not None and display_id == target:
                        outputs[index]["data"] = copy.deepcopy(content.get("data", {}))
                        outputs[index]["metadata"] = copy.deepcopy(content.get("metadata", {}))
                continue
            if kind not in OUTPUT_TYPES:
                continue
            if clear_next:
                outputs.clear()
                display_ids.clear()
                clear_next = False
            output: dict[str, Any]
            if kind == "stream":
                last = outputs[-1] if outputs else None
                if last and last["output_type"] == "stream" and last["name"] == content["name"]:
                    last["text"] += content["text"]
                    continue
                output = {"output_type": "stream", "name": content["name"], "text": content["text"]}
            elif kind == "error":
                output = {
                    "output_type": "error",
                    "ename": content.get("ename"),
                    "evalue": content.get("evalue"),
                    "traceback": list(content.get("traceback", [])),
                }
            else:
                output = {
                    "output_type": kind,
                    "data": copy.deepcopy(content.get("data", {})),
                    "metadata": copy.deepcopy(content.get("metadata", {})),
                }
                if kind == "execute_result":
                    output["execution_count"] = content.get("execution_count")
            outputs.append(output)
            display_ids.append((content.get("transient") or {}).get("display_id"))
        return outputs

    def describe(self) -> str:
        """A short account for assertion messages."""
        lines = [f"execution {self.msg_id} cell_id={self.cell_id!r} reply={self.reply_status}"]
        for message in self.messages:
            lines.append(
                f"  +{message.time - self.sent_at:.3f}s {message.msg_type} {message.content}"
            )
        return "\n".join(lines)


MessageMatcher = Callable[[IopubMessage], bool]


class KernelTimeoutError(TimeoutError):
    """An execution did not finish in time; ``execution`` holds what was seen."""

    def __init__(self, message: str, execution: Execution) -> None:
        super().__init__(f"{message}\n{execution.describe()}")
        self.execution = execution


class RunningExecution:
    """An execution that has been sent; pump it, interrupt it, answer it, then ``result()``."""

    def __init__(
        self,
        driver: KernelDriver,
        execution: Execution,
        *,
        stdin_replies: Iterable[str],
        on_message: Callable[[IopubMessage], None] | None,
    ) -> None:
        self.driver = driver
        self.execution = execution
        self._replies: deque[str] = deque(stdin_replies)
        self._on_message = on_message
        self._pending_input: int | None = None  # index into execution.input_requests

    @property
    def done(self) -> bool:
        return self.execution.done

    @property
    def awaiting_input(self) -> InputRequest | None:
        if self._pending_input is None:
            return None
        return self.execution.input_requests[self._pending_input]

    def input_reply(self, text: str) -> None:
        """Answer the pending ``input_request`` (or queue the answer for the next one)."""
        if self._pending_input is None:
            self._replies.append(text)
            return
        self._answer(text)

    def _answer(self, text: str) -> None:
        assert self._pending_input is not None
        index, self._pending_input = self._pending_input, None
        request = self.execution.input_requests[index]
        self.execution.input_requests[index] = InputRequest(
            request.time, request.prompt, request.password, text
        )
        self.driver.client.input(text)

    # called by the driver while pumping
    def _iopub(self, message: IopubMessage) -> None:
        self.execution.messages.append(message)
        if message.msg_type == "status" and message.content.get("execution_state") == "idle":
            self.execution.idle_at = message.time
        if self._on_message is not None:
            self._on_message(message)

    def _input_request(self, received: float, content: dict[str, Any]) -> None:
        self.execution.input_requests.append(
            InputRequest(received, content.get("prompt", ""), bool(content.get("password")))
        )
        self._pending_input = len(self.execution.input_requests) - 1
        if self._replies:
            self._answer(self._replies.popleft())

    def wait_for(self, match: str | MessageMatcher, *, timeout: float = 30) -> IopubMessage:
        """Pump until an iopub message (already seen or new) matches a msg_type or predicate."""
        matcher: MessageMatcher = (
            (lambda m: m.msg_type == match) if isinstance(match, str) else match
        )
        checked = 0
        deadline = time.monotonic() + timeout
        while True:
            for message in self.execution.messages[checked:]:
                if matcher(message):
                    return message
            checked = len(self.execution.messages)
            if self.done:
                raise AssertionError(f"execution finished without a matching message ({match})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KernelTimeoutError(
                    f"no message matching {match} in {timeout}s", self.execution
                )
            self.driver._pump(min(remaining, 0.5))

    def pump(self, seconds: float) -> None:
        """Process messages for about ``seconds`` (or until the execution is done)."""
        deadline = time.monotonic() + seconds
        while not self.done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.driver._pump(remaining)

    def result(self, *, timeout: float = 60) -> Execution:
        """Pump until the reply and the idle status have arrived; return the execution.

        On timeout, or when the kernel asks for input nobody answers, the kernel is
        interrupted and drained, then ``KernelTimeoutError``/``AssertionError`` is raised.
        """
        deadline = time.monotonic() + timeout
        problem: str | None = None
        while not self.done:
            if self._pending_input is not None:
                request = self.execution.input_requests[self._pending_input]
                problem = f"unanswered input_request {request.prompt!r} (give stdin_replies)"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                problem = f"execution not finished after {timeout}s"
                break
            self.driver._pump(min(remaining, 0.5))
        if problem is None:
            self.driver._finish(self)
            return self.execution
        self.driver.interrupt()
        drain_until = time.monotonic() + 10
        while not self.done and time.monotonic() < drain_until:
            self.driver._pump(0.2)
        self.driver._finish(self)
        if problem.startswith("unanswered"):
            raise AssertionError(f"{problem}\n{self.execution.describe()}")
        raise KernelTimeoutError(problem, self.execution)


class KernelDriver:
    """A real ipykernel for tests: ``with KernelDriver(env, cwd) as kernel: kernel.execute(...)``.

    The kernel runs ``sys.executable`` in ``cwd`` with ``os.environ`` (copied at start) plus
    ``env``; ``restart()`` keeps that environment. Leaving the context shuts the kernel down
    and closes every socket.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        *,
        startup_timeout: float = 60,
    ) -> None:
        self.env = kernel_environment(env or {})
        self.cwd = str(cwd if cwd is not None else Path.cwd())
        self.startup_timeout = startup_timeout
        self.km: KernelManager | None = None
        self._client: BlockingKernelClient | None = None
        self._poller: zmq.Poller | None = None
        self._current: RunningExecution | None = None
        self.stray: list[tuple[str, dict[str, Any]]] = []  # (channel, message) for nobody

    # lifecycle

    def start(self) -> KernelDriver:
        if self.km is not None:
            raise RuntimeError("kernel already started")
        self.km = KernelManager(
            kernel_name=KERNEL_NAME, kernel_spec_manager=PinnedKernelSpecManager()
        )
        try:
            self.km.start_kernel(env=self.env, cwd=self.cwd)
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def _connect(self) -> None:
        assert self.km is not None
        client = self.km.client()
        self._client = client
        client.start_channels()
        client.wait_for_ready(timeout=self.startup_timeout)
        poller = zmq.Poller()
        for channel in (client.iopub_channel, client.shell_channel, client.stdin_channel):
            poller.register(channel.socket, zmq.POLLIN)
        self._poller = poller

    def _disconnect(self) -> None:
        self._poller = None
        if self._client is not None:
            client, self._client = self._client, None
            client.stop_channels()

    def close(self) -> None:
        """Shut the kernel down (politely, then by force) and release everything."""
        self._current = None
        try:
            self._disconnect()
        finally:
            km, self.km = self.km, None
            if km is not None:
                try:
                    if km.has_kernel:
                        km.shutdown_kernel(now=False)  # interrupt, ask, then SIGTERM/SIGKILL
                    else:
                        km.cleanup_resources()
                except BaseException:
                    if km.has_kernel:
                        km.shutdown_kernel(now=True)
                    raise

    def __enter__(self) -> KernelDriver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def client(self) -> BlockingKernelClient:
        if self._client is None:
            raise RuntimeError("kernel not running")
        return self._client

    @property
    def pid(self) -> int | None:
        """The kernel process id (for leak checks)."""
        process = getattr(self.km and self.km.provisioner, "process", None)
        return None if process is None else process.pid

    def is_alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def interrupt(self) -> None:
        """SIGINT to the kernel, as the Interrupt button does."""
        assert self.km is not None
        self.km.interrupt_kernel()

    def restart(self, *, timeout: float | None = None) -> None:
        """Restart the kernel (same environment, cwd and ports) and wait until it is ready."""
        assert self.km is not None
        self._current = None
        self._disconnect()
        self.km.restart_kernel(now=False)
        if timeout is not None:
            self.startup_timeout = timeout
        self._connect()

    # executing

    def start_execution(
        self,
        code: str,
        *,
        cell_id: str | None = None,
        allow_stdin: bool = False,
        stdin_replies: Iterable[str] = (),
        on_message: Callable[[IopubMessage], None] | None = None,
        store_history: bool = True,
    ) -> RunningExecution:
        """Send an ``execute_request`` (with ``metadata.cellId`` when given) and return at once."""
        if self._current is not None and not self._current.done:
            raise RuntimeError("an execution is still running; call result() on it first")
        client = self.client
        content = {
            "code": code,
            "silent": False,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
        }
        metadata = {"cellId": cell_id} if cell_id is not None else {}
        message = client.session.msg("execute_request", content, metadata=metadata)
        execution = Execution(
            msg_id=message["header"]["msg_id"], code=code, cell_id=cell_id, sent_at=time.monotonic()
        )
        running = RunningExecution(
            self, execution, stdin_replies=stdin_replies, on_message=on_message
        )
        self._current = running
        client.shell_channel.send(message)
        return running

    def execute(
        self,
        code: str,
        *,
        cell_id: str | None = None,
        timeout: float = 60,
        allow_stdin: bool = False,
        stdin_replies: Iterable[str] = (),
        on_message: Callable[[IopubMessage], None] | None = None,
        store_history: bool = True,
    ) -> Execution:
        """Run ``code`` to completion and return everything observed.

        ``on_message`` is called with each iopub message as it arrives (it may call
        ``interrupt()``). ``stdin_replies`` answer ``input()``/``getpass()`` prompts in order
        (pass ``allow_stdin=True``).
        """
        running = self.start_execution(
            code,
            cell_id=cell_id,
            allow_stdin=allow_stdin,
            stdin_replies=stdin_replies,
            on_message=on_message,
            store_history=store_history,
        )
        return running.result(timeout=timeout)

    def _finish(self, running: RunningExecution) -> None:
        if self._current is running:
            self._current = None

    def _pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` for messages on iopub/shell/stdin and dispatch all ready ones."""
        client = self.client
        assert self._poller is not None
        ready = dict(self._poller.poll(int(timeout * 1000)))
        if not ready:
            if self.km is not None and not self.km.is_alive():
                raise RuntimeError("the kernel died")
            return
        # stdin first (it may be blocking the kernel), then iopub before shell so that a
        # reply never overtakes the outputs already waiting here.
        channels = (
            ("stdin", client.stdin_channel),
            ("iopub", client.iopub_channel),
            ("shell", client.shell_channel),
        )
        for name, channel in channels:
            if channel.socket not in ready:
                continue
            while channel.msg_ready():
                self._dispatch(name, channel.get_msg(timeout=0))

    def _dispatch(self, channel: str, message: dict[str, Any]) -> None:
        received = time.monotonic()
        running = self._current
        parent = message.get("parent_header", {}).get("msg_id")
        if running is None or parent != running.execution.msg_id:
            self.stray.append((channel, message))
            return
        kind = message["header"]["msg_type"]
        content = message.get("content", {})
        if channel == "iopub":
            running._iopub(IopubMessage(received, kind, content, message.get("metadata", {})))
        elif channel == "shell" and kind == "execute_reply":
            running.execution.reply = content
            running.execution.reply_received_at = received
        elif channel == "stdin" and kind == "input_request":
            running._input_request(received, content)
        else:
            self.stray.append((channel, message))


def run_notebook(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 120,
) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` with nbclient (same Python, ``os.environ`` + ``env``).

    Runs in ``cwd`` (default: the notebook's folder); returns the executed notebook (the file
    is not written). A failing cell raises ``nbclient.exceptions.CellExecutionError``.
    """
    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    workdir = str(cwd if cwd is not None else path.parent)
    manager = AsyncKernelManager(
        kernel_name=KERNEL_NAME, kernel_spec_manager=PinnedKernelSpecManager()
    )
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=int(timeout),
        startup_timeout=60,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": workdir}},
    )
    try:
        # cleanup_kc: we hand nbclient the manager, so tell it to shut the kernel down anyway.
        return client.execute(cleanup_kc=True, env=kernel_environment(env or {}), cwd=workdir)
    finally:
        if manager.has_kernel:  # nbclient failed before its own cleanup could run
            run_sync(manager.shutdown_kernel)(now=True)


@contextlib.contextmanager
def nbchat_kernel(base_url: str, tmp_path: Path, **env: str) -> Iterator[KernelDriver]:
    """A real kernel with nbchat loaded, talking to ``base_url`` (no retries, a test model)."""
    settings = {
        "NBCHAT_BASE_URL": base_url,
        "NBCHAT_MODEL": "test-model",
        "NBCHAT_MAX_RETRIES": "0",
        **env,
    }
    with KernelDriver(settings, tmp_path) as driver:
        assert driver.execute("%load_ext nbchat").reply_status == "ok"
        yield driver
