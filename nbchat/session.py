"""``ChatSession``: one conversation per notebook, shared by the ``%%chat`` magic and the panel.

The session owns the settings, the system prompt, the history, the client and the key policy
(one :class:`~nbchat.secrets.KeyScrubber` for the client and the history). ``ask`` sends one
prompt and follows its reply, announcing each step as a named event (:mod:`nbchat.events`), so
that a cell's display and any number of panels follow the same reply. One reply is in flight
at a time: a second ``ask`` meanwhile is refused at once, not queued, because a queued question
would be answered without the context of the reply it waited for.

What reaches history follows the notebook's logic: a reply that completed is committed (a cell
run again replaces its own turn), one the user stopped is kept with its partial text and marked
interrupted, one that failed leaves history as it was. Each commit is announced as
``turn_committed`` with the reply it came from, before that reply's ``reply_ended``.

When the ``replay`` setting is on, a request that a recording answers is played from it
(:mod:`nbchat.replay`) instead of being sent; the rest of its life is a live reply's.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .budget import fit
from .cancel import Cancellation, RequestCancelled
from .config import Settings
from .errors import BusyError, NbChatError, StreamError
from .events import Events, ReplyObserver
from .fingerprint import RequestKey, request_key
from .history import History, Turn
from .images import user_content
from .prompt import Prompt
from .protocol import ChatRequest, Message, Usage
from .replay import Recording, Recordings
from .reply import Reply, ReplyStatus
from .secrets import KeyScrubber
from .spending import Spending

if TYPE_CHECKING:
    from .client import ChatClient
    from .stream import ChatStream

__all__ = ["ChatSession", "UsageTotals"]


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
        scrubber: KeyScrubber | None = None,
    ) -> None:
        self._settings = settings if settings is not None else Settings.from_env()
        self.scrubber = scrubber if scrubber is not None else KeyScrubber()
        """Cuts every key this session has used out of what it keeps or shows."""
        self.scrubber.remember(self._settings.api_key)
        self._client = client
        self.history = history if history is not None else History(scrub=self.scrubber.scrub)
        self.usage = UsageTotals()
        self.spending = Spending()
        """Dollars spent, by model, from the user's price table (:mod:`nbchat.prices`)."""
        self.last_reply: Reply | None = None
        """The most recent reply, finished or not: ``get_session().last_reply.text``."""
        self.events = Events()
        self.on = self.events.on
        """Follow a named event (see :mod:`nbchat.events`); returns the function that stops."""
        self._in_flight = threading.Lock()
        self._stream: ChatStream | None = None
        self._cancel_requested = Cancellation()  # set: shuts a request still waiting too
        self.recordings = Recordings()
        """Replies a request may be answered from when ``settings.replay`` is not ``off``."""

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
        self.scrubber.remember(value.api_key)
        self._settings = value
        if self._client is not None:
            self._client.settings = value
        self.events.emit("conversation_changed")

    @property
    def client(self) -> ChatClient:
        """The HTTP client, made on first use (importing ``requests`` costs ~100 ms)."""
        if self._client is None:
            from .client import ChatClient

            self._client = ChatClient(self._settings, scrubber=self.scrubber)
        return self._client

    @property
    def system(self) -> str | None:
        """The system prompt sent first in every request; kept with the conversation."""
        return self.history.system

    @system.setter
    def system(self, text: str | None) -> None:
        self.history.system = text or None
        self.events.emit("conversation_changed")

    @property
    def busy(self) -> bool:
        """A reply is streaming now."""
        return self._in_flight.locked()

    # -- asking -----------------------------------------------------------------------------

    def build_request(
        self,
        prompt: Prompt | str,
        *,
        cell_id: str | None = None,
        model: str | None = None,
        system: str | None = None,
        params: Mapping[str, Any] | None = None,
        use_history: bool = True,
        stream: bool = True,
    ) -> ChatRequest:
        """The request ``ask`` would send: validated, nothing sent.

        Its messages fit the context budget (:mod:`nbchat.budget`): the oldest turns that do
        not fit are left out (``request.turns_left_out`` says how many), never the system
        prompt or this message; when those alone do not fit, ``OverBudgetError``.
        """
        system_messages: list[Message] = []
        system_text = system if system is not None else self.system
        if system_text:
            system_messages.append({"role": "system", "content": system_text})
        # A stale turn was answered from an earlier cell's old text: it is left out.
        turns = (
            [turn.messages() for turn in self.history.before(cell_id) if not turn.stale]
            if use_history
            else []
        )
        message = prompt if isinstance(prompt, Prompt) else Prompt(prompt)
        model_name = model or self._settings.model
        fitted = fit(
            system_messages,
            turns,
            {"role": "user", "content": user_content(message.text, message.images)},
            self._settings.budget_for(model_name),
        )
        merged = {**self._settings.params, **(params or {})}
        request = ChatRequest.build(model_name, fitted.messages, merged)
        request.stream = stream
        request.turns_left_out = fitted.turns_left_out
        request.estimated_prompt_tokens = fitted.estimated_tokens
        return request

    def ask(
        self,
        prompt: Prompt | str,
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
        the session's callbacks.

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
            if cell_id is not None and use_history:
                self.history.claim([cell_id])  # a renamed or copied notebook's first turn
            request = self.build_request(
                prompt,
                cell_id=cell_id,
                model=model,
                system=system,
                params=params,
                use_history=use_history and not new_conversation,
                stream=stream,
            )
            key = request_key(self._settings.base_url, request)
            recording = self._recording_for(key)
            if recording is None:  # a replayed reply needs no key and costs nothing
                self._settings.require_key()
                self.spending.check(self._settings, request.model)
            self._cancel_requested.clear()
            reply = Reply(
                prompt, model=request.model, cell_id=cell_id, choices_requested=request.n or 1
            )
            reply.turns_left_out = request.turns_left_out
            reply.estimated_prompt_tokens = request.estimated_prompt_tokens
            if use_history and not new_conversation:
                reply.stale_left_out = sum(t.stale for t in self.history.before(cell_id))
            reply.request_key, reply.replayed = key, recording is not None
            self.last_reply = reply
            self.events.emit("reply_started", reply, also=observer)  # before anything is sent
            self._follow(
                reply, request, observer, keep=use_history, new=new_conversation, replay=recording
            )
            return reply
        finally:
            self._stream = None
            self._in_flight.release()

    def _recording_for(self, key: RequestKey) -> Recording | None:
        """The recording to answer with, by the replay setting; raises under ``only`` when
        there is none, before anything is shown or sent."""
        mode = self._settings.replay
        if mode == "off":
            return None
        turns = self.history.turns
        recording = self.recordings.find(key, turns)
        if recording is None and mode == "only":
            raise self.recordings.missing(key, turns)
        return recording

    def _follow(
        self,
        reply: Reply,
        request: ChatRequest,
        observer: ReplyObserver | None,
        *,
        keep: bool,
        new: bool,
        replay: Recording | None = None,
    ) -> None:
        """Send ``request`` and see ``reply`` to its end: done, interrupted or failed."""
        try:
            if replay is not None and not request.stream:
                result = replay.result()
            elif request.stream:
                result = self._stream_into(reply, request, observer, replay)
            else:
                result = self.client.complete(request, cancel=self._cancel_requested)
        except RequestCancelled:  # stopped before the server's first byte: nothing to keep
            result = None
        except KeyboardInterrupt:
            self._end(reply, "interrupted", observer, keep=keep, new=new)
            raise
        except NbChatError as error:
            partial = error.partial if isinstance(error, StreamError) else None
            reply.end("failed", result=partial, error=error)
            if partial is not None:
                self.spending.charge(reply)  # a broken stream was paid for as far as it went
            self.events.emit("reply_ended", reply, also=observer)
            raise
        stopped = self._cancel_requested.is_set() and not (result is not None and result.complete)
        status: ReplyStatus = "interrupted" if stopped else "done"
        self._end(reply, status, observer, keep=keep, new=new, result=result)

    def _stream_into(
        self,
        reply: Reply,
        request: ChatRequest,
        observer: ReplyObserver | None,
        replay: Recording | None = None,
    ) -> Any:
        chat_stream: Any = (
            replay.stream(paced=self._settings.replay_pace)
            if replay is not None
            else self.client.stream(request, cancel=self._cancel_requested)
        )
        self._stream = chat_stream
        if self._cancel_requested.is_set():
            chat_stream.cancel()
        with chat_stream:
            for chunk in chat_stream:
                reply.receive(chunk)
                self.events.emit("reply_updated", reply, also=observer)
        return chat_stream.result

    def _end(
        self,
        reply: Reply,
        status: ReplyStatus,
        observer: ReplyObserver | None,
        *,
        keep: bool,
        new: bool,
        result: Any = None,
    ) -> None:
        reply.end(status, result=result)
        final = reply.result
        if not reply.replayed:  # a replayed reply cost nothing
            self.usage.add(reply.answered_model, final.usage)
            self.spending.charge(reply)
        first = final.choices[0] if final.choices else None
        if keep and (status == "done" or final.text):
            if new:
                self.history.new_conversation()
            turn = Turn(
                prompt=reply.prompt,
                reply=final.text,
                cell_id=reply.cell_id,
                status="complete" if status == "done" else "interrupted",
                model=reply.answered_model,
                usage=_usage_counts(final.usage),
                attachments=reply.message.attachments,
                refusal=first.refusal if first else "",
                tool_calls=first.tool_calls if first else (),
                finish_reason=first.finish_reason if first else None,
                request=reply.request_key,
                replayed=reply.replayed,
                images=reply.message.images,
            )
            reply.turn = self.history.commit(turn)
            self.events.emit("turn_committed", reply.turn, reply)
        self.events.emit("reply_ended", reply, also=observer)

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
        if settings.replay == "only":
            return None  # never the network
        try:
            settings.require_key()
            probe = ChatClient(
                replace(
                    settings,
                    max_retries=0,
                    connect_timeout=min(settings.connect_timeout, 3.0),
                    read_timeout=min(settings.read_timeout, 10.0),
                ),
                scrubber=self.scrubber,
            )
        except NbChatError:
            return None
        try:
            return probe.list_models()
        except NbChatError:
            return None
        finally:
            probe.close()

    def new_conversation(self) -> int | None:
        """Forget the conversation so far (it stays in the store); the system prompt stays.
        Returns the stored id of the conversation left, which ``%chat open`` brings back."""
        left = self.history.new_conversation()
        self.events.emit("conversation_changed")
        return left

    def scrub(self, text: str) -> str:
        """``text`` without any API key this session has used."""
        return self.scrubber.scrub(text)

    def close(self) -> None:
        """Close pooled connections; the session stays usable."""
        if self._client is not None:
            self._client.close()
