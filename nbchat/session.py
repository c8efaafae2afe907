"""``ChatSession``: one conversation per notebook, shared by the ``%%chat`` magic and the panel.

The session owns the settings, the system prompt, the history and the client. ``ask`` sends one
prompt and follows its reply; every change (request sent, text arrived, reply ended) is told to
observers, so that a cell's display and any number of panels can follow the same reply. One
reply is in flight at a time: a second ``ask`` meanwhile is refused at once, not queued, because
a queued question would be answered without the context of the reply it waited for.

What reaches history follows the notebook's logic: a reply that completed is committed (a cell
run again replaces its own turn), one the user stopped is kept with its partial text and marked
interrupted, one that failed leaves history as it was.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .config import APIKey, Settings
from .errors import BusyError, NbChatError, StreamError
from .history import History, HistoryStore, Turn, notebook_key
from .protocol import ChatRequest, ChatResult, Message, StreamAccumulator, Usage

if TYPE_CHECKING:
    from .client import ChatClient, ChatStream

__all__ = ["ChatSession", "Reply", "ReplyObserver", "UsageTotals", "get_session"]

log = logging.getLogger("nbchat")

ReplyStatus = Literal["pending", "streaming", "done", "failed", "interrupted"]
ReplyObserver = Callable[["Reply"], None]
"""Called with the same :class:`Reply` on every change; it should be quick and never raise."""


class Reply:
    """One reply's life, as observers see it.

    The same object is handed to observers on every change. Reading ``text`` or ``result``
    joins what arrived so far, so an observer that redraws at a bounded rate should read them
    only when it redraws, not on every call.
    """

    def __init__(
        self, prompt: str, *, model: str, cell_id: str | None, choices_requested: int
    ) -> None:
        self.prompt = prompt
        """The user message exactly as sent."""
        self.model = model
        """The model asked for (the server may name a more precise one in ``result.model``)."""
        self.cell_id = cell_id
        self.choices_requested = choices_requested
        self.status: ReplyStatus = "pending"
        self.error: NbChatError | None = None
        """Why the reply failed, when it did."""
        self.started = time.monotonic()
        self.ended: float | None = None
        self.chunks = 0
        """Stream chunks received so far (one per change seen while streaming)."""
        self._accumulator = StreamAccumulator()
        self._final: ChatResult | None = None

    def __repr__(self) -> str:
        return (
            f"<Reply {self.status} model={self.model!r} chars={len(self.text)} "
            f"cell_id={self.cell_id!r}>"
        )

    @property
    def result(self) -> ChatResult:
        """The reply as assembled so far (final once the reply has ended)."""
        return self._final or self._accumulator.result(done=False)

    @property
    def text(self) -> str:
        """The first choice's Markdown so far."""
        if self._final is not None:
            return self._final.text
        return self._accumulator.text(0)

    def text_pieces(self) -> Sequence[str]:
        """The first choice's text as the pieces received so far (cheap to follow per chunk)."""
        if self._final is not None:
            return (self._final.text,)
        return self._accumulator.text_pieces(0)

    def texts(self) -> list[str]:
        """Every choice's Markdown so far, in choice order."""
        if self._final is not None:
            return [choice.text for choice in self._final.choices]
        accumulator = self._accumulator
        return [accumulator.text(i) for i in accumulator.choice_indexes] or [""]

    def reasonings(self) -> list[str]:
        """Every choice's reasoning so far ("" where the model showed none)."""
        if self._final is not None:
            return [choice.reasoning for choice in self._final.choices]
        accumulator = self._accumulator
        return [accumulator.reasoning(i) for i in accumulator.choice_indexes] or [""]

    @property
    def usage(self) -> Usage | None:
        return self.result.usage

    @property
    def elapsed(self) -> float:
        """Seconds from the request to the end of the reply (or until now)."""
        return (self.ended or time.monotonic()) - self.started

    @property
    def ended_ok(self) -> bool:
        return self.status == "done"


@dataclass
class UsageTotals:
    """Tokens spent by this session, as the server reported them."""

    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    replies_without_usage: int = 0
    """Replies whose server reported no usage: the totals undercount by these."""
    by_model: dict[str, int] = field(default_factory=dict)
    """Total tokens per model."""

    def add(self, model: str, usage: Usage | None) -> None:
        self.replies += 1
        if usage is None or usage.total_tokens is None:
            self.replies_without_usage += 1
            return
        self.prompt_tokens += usage.prompt_tokens or 0
        self.completion_tokens += usage.completion_tokens or 0
        self.total_tokens += usage.total_tokens
        self.by_model[model] = self.by_model.get(model, 0) + usage.total_tokens


def _usage_counts(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    counts = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    return {name: value for name, value in counts.items() if value is not None} or None


class ChatSession:
    """A notebook's conversation with a model: settings, system prompt, history, client."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        history: History | None = None,
        client: ChatClient | None = None,
    ) -> None:
        self._settings = settings if settings is not None else Settings.from_env()
        self._client = client
        self.history = history if history is not None else History()
        self.usage = UsageTotals()
        self.last_reply: Reply | None = None
        """The most recent reply, finished or not: ``get_session().last_reply.text``."""
        self._observers: tuple[ReplyObserver, ...] = ()
        self._in_flight = threading.Lock()
        self._stream: ChatStream | None = None
        self._cancel_requested = threading.Event()
        self._observers_lock = threading.Lock()
        self._watchers: tuple[Callable[[], None], ...] = ()
        self._known_keys: set[APIKey] = set()  # kept masked; revealed only to scrub

    def __repr__(self) -> str:
        return (
            f"<ChatSession model={self._settings.model!r} base_url={self._settings.base_url!r} "
            f"turns={len(self.history)}>"
        )

    # -- settings ---------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        if self._settings.api_key is not None:
            self._known_keys.add(self._settings.api_key)
        self._settings = value
        if self._client is not None:
            self._client.settings = value
        self._conversation_changed()

    @property
    def client(self) -> ChatClient:
        """The HTTP client, made on first use (importing ``requests`` costs ~100 ms)."""
        if self._client is None:
            from .client import ChatClient

            self._client = ChatClient(self._settings)
        return self._client

    @property
    def system(self) -> str | None:
        """The system prompt sent first in every request; kept with the conversation."""
        return self.history.system

    @system.setter
    def system(self, text: str | None) -> None:
        self.history.system = text or None
        self._conversation_changed()

    @property
    def busy(self) -> bool:
        """A reply is streaming now."""
        return self._in_flight.locked()

    # -- observers --------------------------------------------------------------------------

    def subscribe(self, observer: ReplyObserver) -> Callable[[], None]:
        """Follow every reply of this session; returns the function that stops following."""
        with self._observers_lock:
            self._observers = (*self._observers, observer)

        def unsubscribe() -> None:
            with self._observers_lock:
                observers = list(self._observers)
                with contextlib.suppress(ValueError):
                    observers.remove(observer)
                self._observers = tuple(observers)

        return unsubscribe

    def watch(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when the session changes without a reply: a new conversation,
        a new system prompt, new settings. Open panels use it to stay in step with ``%chat``
        commands and with each other. Returns the function that stops watching."""
        with self._observers_lock:
            self._watchers = (*self._watchers, listener)

        def unwatch() -> None:
            with self._observers_lock:
                self._watchers = tuple(w for w in self._watchers if w is not listener)

        return unwatch

    def _conversation_changed(self) -> None:
        for listener in self._watchers:
            try:
                listener()
            except Exception:
                log.exception("nbchat: a watcher of the conversation failed")

    def _notify(self, reply: Reply, extra: ReplyObserver | None) -> None:
        # Called for every chunk: the tuple is replaced, never changed, so no lock is needed.
        observers = self._observers if extra is None else (*self._observers, extra)
        for observer in observers:
            try:
                observer(reply)
            except Exception:  # a broken display must not break the reply itself
                log.exception("nbchat: an observer of the reply failed")

    # -- asking -----------------------------------------------------------------------------

    def build_request(
        self,
        prompt: str,
        *,
        cell_id: str | None = None,
        model: str | None = None,
        system: str | None = None,
        params: Mapping[str, Any] | None = None,
        use_history: bool = True,
        stream: bool = True,
    ) -> ChatRequest:
        """The request ``ask`` would send: validated, nothing sent."""
        messages: list[Message] = []
        system_text = system if system is not None else self.system
        if system_text:
            messages.append({"role": "system", "content": system_text})
        if use_history:
            for turn in self.history.before(cell_id):
                messages.extend(turn.messages())
        messages.append({"role": "user", "content": prompt})
        merged = {**self._settings.params, **(params or {})}
        request = ChatRequest.build(model or self._settings.model, messages, merged)
        request.stream = stream
        return request

    def ask(
        self,
        prompt: str,
        *,
        cell_id: str | None = None,
        model: str | None = None,
        system: str | None = None,
        params: Mapping[str, Any] | None = None,
        stream: bool = True,
        use_history: bool = True,
        new_conversation: bool = False,
        observer: ReplyObserver | None = None,
    ) -> Reply:
        """Send ``prompt`` and follow the reply to its end.

        ``cell_id`` ties the turn to a notebook cell: the request carries only the turns before
        that cell's own, and the reply replaces it. ``use_history=False`` asks a one-off question
        that is neither sent with nor kept in the conversation; ``new_conversation`` starts a
        fresh one (the old stays in the store). ``observer`` follows this reply only, on top of
        the session's subscribers.

        Returns the reply when it completed or was stopped with :meth:`cancel`. Raises the
        :class:`NbChatError` that ended it otherwise (observers saw it first), and lets
        ``KeyboardInterrupt`` through after keeping the partial reply.
        """
        if not self._in_flight.acquire(blocking=False):
            raise BusyError(
                "A reply is already streaming in this notebook",
                hint="wait for it to finish, or stop it first",
            )
        try:
            request = self.build_request(
                prompt,
                cell_id=cell_id,
                model=model,
                system=system,
                params=params,
                use_history=use_history and not new_conversation,
                stream=stream,
            )
            self._settings.require_key()
            self._cancel_requested.clear()
            reply = Reply(
                prompt, model=request.model, cell_id=cell_id, choices_requested=request.n or 1
            )
            self.last_reply = reply
            self._notify(reply, observer)  # the placeholder shows before anything is sent
            self._follow(reply, request, observer, keep=use_history, new=new_conversation)
            return reply
        finally:
            self._stream = None
            self._in_flight.release()

    def _follow(
        self,
        reply: Reply,
        request: ChatRequest,
        observer: ReplyObserver | None,
        *,
        keep: bool,
        new: bool,
    ) -> None:
        """Send ``request`` and see ``reply`` to its end: done, interrupted or failed."""
        try:
            if request.stream:
                self._stream_into(reply, request, observer)
            else:
                reply._final = self.client.complete(request)
        except KeyboardInterrupt:
            self._end(reply, "interrupted", observer, keep=keep, new=new)
            raise
        except NbChatError as error:
            if isinstance(error, StreamError) and error.partial is not None:
                reply._final = error.partial
            reply.error = error
            self._end(reply, "failed", observer, keep=False, new=False)
            raise
        stopped = self._cancel_requested.is_set() and not (
            reply._final is not None and reply._final.complete
        )
        self._end(reply, "interrupted" if stopped else "done", observer, keep=keep, new=new)

    def _stream_into(
        self, reply: Reply, request: ChatRequest, observer: ReplyObserver | None
    ) -> None:
        chat_stream = self.client.stream(request)
        self._stream = chat_stream
        reply._accumulator = chat_stream.accumulator
        if self._cancel_requested.is_set():
            chat_stream.cancel()
        reply.status = "streaming"
        with chat_stream:
            for _chunk in chat_stream:
                reply.chunks += 1
                self._notify(reply, observer)
        if chat_stream.result is not None:
            reply._final = chat_stream.result

    def _end(
        self,
        reply: Reply,
        status: ReplyStatus,
        observer: ReplyObserver | None,
        *,
        keep: bool,
        new: bool,
    ) -> None:
        if reply._final is None:
            reply._final = reply._accumulator.result(done=False)
        reply.status = status
        reply.ended = time.monotonic()
        result = reply._final
        if status in ("done", "interrupted"):
            self.usage.add(result.model or reply.model, result.usage)
            if keep and (status == "done" or result.text):
                if new:
                    self.history.new_conversation()
                self.history.commit(
                    Turn(
                        prompt=reply.prompt,
                        reply=result.text,
                        cell_id=reply.cell_id,
                        status="complete" if status == "done" else "interrupted",
                        model=result.model or reply.model,
                        usage=_usage_counts(result.usage),
                    )
                )
        self._notify(reply, observer)

    def cancel(self) -> bool:
        """Stop the reply in flight, from any thread; False when there was none.

        The connection is shut at once; the partial reply is kept, marked interrupted.
        """
        if not self.busy:
            return False
        self._cancel_requested.set()
        chat_stream = self._stream
        if chat_stream is not None:
            chat_stream.cancel()
        return True

    def quick_model_list(self) -> list[str] | None:
        """The server's model ids, or None when it cannot say (no key, no /models, offline…).

        A quick look, without retries and with short timeouts: checking a model name or
        filling a picker must not hang on a server that is down; the first question will say
        what is wrong with it.
        """
        from .client import ChatClient

        settings = self._settings
        try:
            settings.require_key()
            probe = ChatClient(
                replace(
                    settings,
                    max_retries=0,
                    connect_timeout=min(settings.connect_timeout, 3.0),
                    read_timeout=min(settings.read_timeout, 10.0),
                )
            )
        except NbChatError:
            return None
        try:
            return probe.list_models()
        except NbChatError:
            return None
        finally:
            probe.close()

    def new_conversation(self) -> None:
        """Forget the conversation so far (it stays in the store); the system prompt stays."""
        self.history.new_conversation()
        self._conversation_changed()

    def scrub(self, text: str) -> str:
        """``text`` without any API key this session has used (for what goes to the store)."""
        if self._settings.api_key is not None:
            self._known_keys.add(self._settings.api_key)
        for key in self._known_keys:
            secret = key.reveal()
            if secret and secret in text:
                text = text.replace(secret, "[key removed]")
        return text

    def close(self) -> None:
        """Close pooled connections; the session stays usable."""
        if self._client is not None:
            self._client.close()


_session: ChatSession | None = None
_session_lock = threading.Lock()


def _running_shell() -> Any:
    """The IPython shell this code runs in, without importing IPython when it is absent."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython() if get_ipython else None


def _kernel_connection_file() -> str | None:
    kernelapp = sys.modules.get("ipykernel.kernelapp")
    app_class = getattr(kernelapp, "IPKernelApp", None)
    if app_class is None or not app_class.initialized():
        return None
    connection_file = getattr(app_class.instance(), "connection_file", None)
    return str(connection_file) if connection_file else None


def get_session() -> ChatSession:
    """This notebook's session, made on first use from the environment.

    Its history is the notebook's latest conversation in the store, so a kernel restart picks
    up where the conversation was.
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = _new_notebook_session()
        return _session


def _new_notebook_session() -> ChatSession:
    import os

    shell = _running_shell()
    user_ns: Mapping[str, object] = getattr(shell, "user_ns", None) or {}
    key = notebook_key(user_ns, os.environ, connection_file=_kernel_connection_file())
    settings = Settings.from_env()
    store: HistoryStore | None
    try:
        store = HistoryStore(HistoryStore.default_path())
    except Exception as error:  # history then lives in memory only
        log.warning("nbchat: history will not survive a restart: %s", error)
        store = None
    session = ChatSession(settings)
    session.history = History(store, key, scrub=session.scrub)
    return session


def reset_session_for_tests() -> None:
    """Forget the notebook session (tests make a fresh one per case)."""
    global _session
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None
