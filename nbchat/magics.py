"""``%%chat`` and ``%chat``: the notebook face of the session. Thin on purpose.

The cell magic parses options, fills ``{name}`` from the user namespace, finds the cell's id and
hands everything to :class:`~nbchat.session.ChatSession`; the line magic runs small commands on
the same session. Whatever the user can fix (a bad option, no key, an unknown model, a server
error) is raised as exactly ``UsageError``, which IPython prints as one line without a
traceback.
"""

from __future__ import annotations

import getpass
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import StdinNotImplementedError, UsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic import line_cell_magic as _line_cell_magic

from . import export
from .config import Settings
from .context import attachments, interpolate, prompt_text
from .errors import ConfigError, NbChatError
from .protocol import ChatRequest
from .session import ChatSession, Reply, get_session

__all__ = ["ChatMagics"]

_F = TypeVar("_F", bound=Callable[..., Any])


# IPython's option decorators are untyped; these give them their actual shapes.
def magic_arguments() -> Callable[[_F], _F]:
    return cast("Callable[[_F], _F]", _magic_arguments.magic_arguments())  # type: ignore[no-untyped-call]


def argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    return cast("Callable[[_F], _F]", _magic_arguments.argument(*args, **kwargs))  # type: ignore[no-untyped-call]


def line_cell_magic(method: _F) -> _F:
    return cast("_F", _line_cell_magic(method))


_SUBCOMMANDS = (
    "code",
    "config",
    "context",
    "export",
    "history",
    "key",
    "model",
    "models",
    "panel",
    "reset",
    "system",
    "usage",
)
_KEY_NAMES = frozenset({"api_key", "key", "apikey", "token", "api-key"})
_SETTING_FIELDS: tuple[str, ...] = (
    "base_url",
    "model",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "retry_budget",
    "include_usage",
    "context_tokens",
    "context_rows",
)
_SCALAR_OPTIONS = (
    "temperature",
    "top_p",
    "n",
    "max_tokens",
    "presence_penalty",
    "frequency_penalty",
    "user",
)
_REQUEST_FIELDS = tuple(name for name in ChatRequest.FIELDS if name != "stream")


def _one_line(error: Exception) -> UsageError:
    return UsageError(" ".join(str(error).split()))


def _parse_json_option(option: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise UsageError(f"{option} takes JSON, got {raw!r}") from None


def _parse_assignment(option: str, raw: str) -> tuple[str, Any]:
    name, sep, value = raw.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"{option} takes KEY=VALUE, got {raw!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value  # a bare word is a string: model=gpt-4o, user=alice


def _refuse_key(name: str) -> None:
    if name.lower().replace("-", "_") in _KEY_NAMES:
        raise UsageError(
            "The API key is never a magic argument (it would be saved in the notebook): "
            "run %chat key, or set NBCHAT_API_KEY before starting Jupyter"
        )


@magics_class
class ChatMagics(Magics):
    """``%%chat`` asks the model; ``%chat`` manages the conversation."""

    def __init__(self, shell: Any, session_factory: Callable[[], ChatSession] = get_session):
        super().__init__(shell)
        self._session_factory = session_factory
        self.cell_id: str | None = None
        """The id of the cell running now, from the frontend's ``metadata.cellId``."""
        self._panels: dict[str, Any] = {}
        """The panel each ``%chat panel`` cell shows, by cell id."""

    @property
    def session(self) -> ChatSession:
        return self._session_factory()

    def pre_run_cell(self, info: Any) -> None:
        """Note the running cell's id (JupyterLab, Notebook 7 and VS Code send one)."""
        self.cell_id = getattr(info, "cell_id", None) or None

    @magic_arguments()
    @argument("-m", "--model", help="model id for this cell (default: %%chat model)")
    @argument("-s", "--system", help="system prompt for this cell only")
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2")
    @argument("--top-p", type=float, help="nucleus sampling mass, 0 to 1")
    @argument("-n", type=int, help="number of replies to generate")
    @argument("--stop", action="append", help="stop sequence (repeat for up to 4)")
    @argument("--max-tokens", type=int, help="most tokens to generate")
    @argument("--presence-penalty", type=float, help="-2 to 2: favour new topics")
    @argument("--frequency-penalty", type=float, help="-2 to 2: discourage repetition")
    @argument("--logit-bias", metavar="JSON", help="token bias, e.g. '{\"50256\": -100}'")
    @argument("--user", help="end-user id for the provider's abuse monitoring")
    @argument("--param", action="append", metavar="KEY=JSON", help="any other body field")
    @argument("--no-stream", action="store_true", help="wait for the whole reply")
    @argument("--new", action="store_true", help="start a fresh conversation")
    @argument("--no-history", action="store_true", help="one-off question: not sent, not kept")
    @argument("--df", action="append", metavar="NAME", help="attach a dataframe's summary (repeat)")
    @argument("--df-rows", type=int, metavar="N", help="sample rows in dataframe summaries")
    @argument("--df-tokens", type=int, metavar="N", help="token budget per dataframe summary")
    @argument("--code", action="store_true", help="put the reply's first code block in a new cell")
    @argument("-o", "--out", metavar="NAME", help="also store the reply text in variable NAME")
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> None:
        """Ask the model in a ``%%chat`` cell, or run a ``%chat`` command.

        ``%%chat [options]`` sends the cell as the next message of the notebook's conversation
        and streams the reply as Markdown. ``{name}`` inserts a variable's value; other braces
        stay as typed; ``{{``/``}}`` write a literal brace. Running a cell again replaces its
        own turn in the conversation.

        ``%chat`` commands: ``history``, ``reset``, ``model [NAME]``, ``models``,
        ``system [TEXT]``, ``config [KEY=VALUE ...]``, ``key``, ``usage``, ``export PATH``,
        ``panel`` (the chat panel), ``code [N]`` (code block N of the latest reply into a new
        cell), ``context NAME`` (the summary a dataframe adds to a prompt).
        """
        if cell is None:
            self._command(line)
            return
        self._ask(line, cell)

    # -- %%chat -----------------------------------------------------------------------------

    def _ask(self, line: str, cell: str) -> None:
        try:
            # Split like a POSIX shell so that -s 'two words' loses its quotes.
            args = self.chat.parser.parse_args(shlex.split(line))  # type: ignore[attr-defined]
        except ValueError as error:
            raise UsageError(f"%%chat: {error} in the options line") from None
        except UsageError as error:
            # argparse's message comes after the usage text; keep the one line that matters.
            message = str(error).strip().splitlines()[-1].removeprefix("%chat: ")
            raise UsageError(f"%%chat: {message} (see %%chat? for the options)") from None
        params = self._params(args)
        namespace = self.shell.user_ns if self.shell is not None else {}
        if not cell.strip():
            raise UsageError("%%chat needs a question in the cell below the %%chat line")
        if args.out is not None and not str(args.out).isidentifier():
            raise UsageError(f"-o/--out takes a variable name, got {args.out!r}")
        session = self.session
        prompt = self._prompt(cell, namespace, args.df or [], session, args.df_rows, args.df_tokens)
        display = self._display()
        try:
            reply = session.ask(
                prompt,
                cell_id=self.cell_id,
                model=args.model,
                system=args.system,
                params=params,
                stream=not args.no_stream,
                use_history=not args.no_history,
                new_conversation=args.new,
                observer=display,
            )
        except KeyboardInterrupt:
            raise self._interrupted(session.last_reply) from None
        except NbChatError as error:
            raise _one_line(error) from None
        if reply.status == "interrupted":
            raise self._interrupted(reply)
        if args.out:
            namespace[args.out] = reply.text
        if args.code:
            self._code_to_next_cell(reply.text)

    @staticmethod
    def _prompt(
        cell: str,
        namespace: dict[str, Any],
        frames: list[str],
        session: ChatSession,
        rows: int | None,
        tokens: int | None,
    ) -> str:
        """The message to send: the cell with ``{name}`` filled in, then any ``--df`` summaries."""
        settings = session.settings
        rows = settings.context_rows if rows is None else rows
        tokens = settings.context_tokens if tokens is None else tokens
        if rows < 0 or tokens < 100:
            raise UsageError("--df-rows takes a number ≥ 0 and --df-tokens a number ≥ 100")

        def format_value(name: str, value: object) -> str:
            return prompt_text(name, value, prompt=cell, tokens=tokens, rows=rows)

        try:
            prompt = interpolate(cell, namespace, format_value=format_value).strip()
            attached = attachments(frames, namespace, prompt=cell, tokens=tokens, rows=rows)
        except (LookupError, TypeError, ValueError) as error:
            raise UsageError(f"%%chat: {error.args[0]}") from None
        return "\n\n".join([prompt, *attached])

    @staticmethod
    def _interrupted(reply: Reply | None) -> UsageError:
        kept = len(reply.text) if reply is not None else 0
        if kept:
            return UsageError(
                f"Interrupted: the partial reply ({kept:,} characters) is kept, marked interrupted"
            )
        return UsageError("Interrupted before the reply began; the conversation is unchanged")

    def _params(self, args: Any) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name in _SCALAR_OPTIONS:
            value = getattr(args, name)
            if value is not None:
                params[name] = value
        if args.stop:
            params["stop"] = args.stop[0] if len(args.stop) == 1 else list(args.stop)
        if args.logit_bias is not None:
            bias = _parse_json_option("--logit-bias", args.logit_bias)
            if not isinstance(bias, dict):
                raise UsageError("--logit-bias takes a JSON object, e.g. '{\"50256\": -100}'")
            params["logit_bias"] = bias
        for raw in args.param or ():
            name, value = _parse_assignment("--param", raw)
            _refuse_key(name)
            if name in ("model", "messages", "stream"):
                raise UsageError(f"--param cannot set {name!r}; it has its own option")
            params[name] = value
        return params

    def _display(self) -> Callable[[Reply], None]:
        from .display import CellDisplay, IPythonSink, PlainDisplay, supports_rich_output

        if self.shell is not None and supports_rich_output(self.shell):
            return CellDisplay(IPythonSink(self.shell))
        return PlainDisplay()

    def _code_to_next_cell(self, text: str) -> None:
        from .render import first_code_block

        code = first_code_block(text)
        if code is None:
            print("(--code: the reply has no code block)")
            return
        if self.shell is not None:
            self.shell.set_next_input(code, replace=False)

    # -- %chat ------------------------------------------------------------------------------

    def _command(self, line: str) -> None:
        command, _, raw = line.strip().partition(" ")
        raw = raw.strip()
        if not command:
            raise UsageError(f"%chat needs a command: {', '.join(_SUBCOMMANDS)}")
        handler = getattr(self, f"_cmd_{command}", None)
        if command not in _SUBCOMMANDS or handler is None:
            raise UsageError(
                f"%chat: unknown command {command!r}; try one of {', '.join(_SUBCOMMANDS)} "
                "(or %%chat in a cell to ask a question)"
            )
        if command == "system":
            words = [raw] if raw else []  # prose: an apostrophe is not a shell quote
        else:
            try:
                words = shlex.split(raw)
            except ValueError as error:
                raise UsageError(f"%chat {command}: {error}") from None
        try:
            handler(words, raw)
        except NbChatError as error:
            raise _one_line(error) from None

    def _cmd_history(self, args: list[str], raw: str) -> None:
        self._no_args("history", args)
        history = self.session.history
        if not len(history):
            print("The conversation is empty.")
            return
        system = self.session.system
        if system:
            print(f"system: {_preview(system, 70)}")
        for number, turn in enumerate(history, start=1):
            flag = " (interrupted)" if turn.status == "interrupted" else ""
            cell = f" cell {turn.cell_id[:8]}" if turn.cell_id else ""
            print(f"{number:>3}.{cell} you: {_preview(turn.prompt, 60)}")
            print(f"     {turn.model or 'model'}{flag}: {_preview(turn.reply, 60)}")

    def _cmd_panel(self, args: list[str], raw: str) -> None:
        self._no_args("panel", args)
        from IPython.display import display

        from .display import supports_rich_output

        if self.shell is None or not supports_rich_output(self.shell):
            raise UsageError(
                "%chat panel needs a notebook frontend (JupyterLab, Notebook 7, VS Code, Voila); "
                "in a terminal, ask with %%chat"
            )
        from .panel import ChatPanel

        namespace = self.shell.user_ns if self.shell is not None else None
        panel = ChatPanel(self.session, namespace=namespace)
        if self.cell_id is not None:
            # Running the cell again replaces its panel: the old one stops following the
            # session instead of streaming every reply into widgets no one can see.
            earlier = self._panels.pop(self.cell_id, None)
            if earlier is not None:
                earlier.close()
            self._panels[self.cell_id] = panel
        display(panel)  # type: ignore[no-untyped-call]

    def _cmd_code(self, args: list[str], raw: str) -> None:
        """Put code block N (default 1) of the latest reply into a new cell below."""
        from .render import code_blocks

        if len(args) > 1 or (args and not args[0].isdigit()):
            raise UsageError("%chat code takes the number of a code block: %chat code 2")
        number = int(args[0]) if args else 1
        session = self.session
        latest = session.last_reply
        text = latest.text if latest is not None else ""
        if not text:
            last_turn = session.history.last()
            text = last_turn.reply if last_turn is not None else ""
        if not text:
            raise UsageError("%chat code: the conversation has no reply yet")
        blocks = code_blocks(text)
        if not blocks:
            raise UsageError("%chat code: the latest reply has no code block")
        if not 1 <= number <= len(blocks):
            raise UsageError(f"%chat code: the latest reply has {len(blocks)} code blocks")
        if self.shell is not None:
            self.shell.set_next_input(blocks[number - 1].code.rstrip("\n"), replace=False)

    def _cmd_context(self, args: list[str], raw: str) -> None:
        """Print exactly what ``--df NAME`` would attach to a message."""
        names = [word for word in args if not word.startswith("--")]
        options = [word for word in args if word.startswith("--")]
        settings = self.session.settings
        rows, tokens = settings.context_rows, settings.context_tokens
        for option in options:
            name, _, value = option.partition("=")
            if name not in ("--rows", "--tokens") or not value.isdigit():
                raise UsageError("%chat context takes NAME ... [--rows=N] [--tokens=N]")
            if name == "--rows":
                rows = int(value)
            else:
                tokens = max(100, int(value))
        if not names:
            raise UsageError("%chat context needs the name of a dataframe: %chat context df")
        namespace = self.shell.user_ns if self.shell is not None else {}
        try:
            print("\n\n".join(attachments(names, namespace, tokens=tokens, rows=rows)))
        except (LookupError, TypeError, ValueError) as error:
            raise UsageError(f"%chat context: {error.args[0]}") from None

    def _cmd_reset(self, args: list[str], raw: str) -> None:
        self._no_args("reset", args)
        turns = len(self.session.history)
        self.session.new_conversation()
        print(f"Started a new conversation ({turns} earlier turns stay in the history store).")

    def _cmd_model(self, args: list[str], raw: str) -> None:
        session = self.session
        if not args:
            print(session.settings.model)
            return
        if len(args) > 1:
            raise UsageError("%chat model takes one model id")
        name = args[0]
        known = session.quick_model_list()
        if known is not None and name not in known:
            close = [m for m in known if name.lower() in m.lower()][:5]
            hint = f"; did you mean {', '.join(close)}?" if close else "; see %chat models"
            raise UsageError(f"{session.settings.base_url} has no model {name!r}{hint}")
        session.settings = _replace(session.settings, model=name)
        print(f"Model: {name}")

    def _cmd_models(self, args: list[str], raw: str) -> None:
        self._no_args("models", args)
        session = self.session
        session.settings.require_key()
        models = session.client.list_models()
        current = session.settings.model
        for name in models:
            print(f"{'*' if name == current else ' '} {name}")
        if current not in models:
            print(f"(the current model, {current}, is not in the server's list)")

    def _cmd_system(self, args: list[str], raw: str) -> None:
        session = self.session
        if not raw:
            print(session.system or "(no system prompt)")
            return
        quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'"
        text = raw[1:-1] if quoted else raw
        if text == "--clear" or not text.strip():
            session.system = None
            print("System prompt cleared.")
            return
        session.system = text
        print(f"System prompt set ({len(text):,} characters).")

    def _cmd_config(self, args: list[str], raw: str) -> None:
        session = self.session
        settings = session.settings
        for word in args:
            name, value = _parse_assignment("%chat config", word)
            _refuse_key(name)
            settings = _configure(settings, name, value)
        if args:
            session.settings = settings
        for name, value in settings.describe().items():
            print(f"{name:>16}: {value}")

    def _cmd_key(self, args: list[str], raw: str) -> None:
        if args:
            raise UsageError(
                "%chat key takes no argument: the key is asked for without echo, "
                "so that it is never saved in the notebook"
            )
        session = self.session
        url = session.settings.base_url
        try:
            entered = getpass.getpass(f"API key for {url}: ")
        except StdinNotImplementedError:
            raise UsageError(
                "This frontend cannot ask for input; set NBCHAT_API_KEY in the environment"
            ) from None
        except (EOFError, KeyboardInterrupt):
            raise UsageError("No key entered; nothing changed") from None
        entered = entered.strip()
        if not entered:
            raise UsageError("No key entered; nothing changed")
        session.settings = session.settings.with_key(entered, source="%chat key")
        print(f"Key {session.settings.describe()['api_key']} will be sent to {url} only.")

    def _cmd_usage(self, args: list[str], raw: str) -> None:
        self._no_args("usage", args)
        totals = self.session.usage
        print(
            f"{totals.replies} replies: {totals.prompt_tokens:,} prompt + "
            f"{totals.completion_tokens:,} completion = {totals.total_tokens:,} tokens"
        )
        for model, tokens in sorted(totals.by_model.items()):
            print(f"  {model}: {tokens:,} tokens")
        if totals.replies_without_usage:
            print(f"  ({totals.replies_without_usage} replies came without usage figures)")

    def _cmd_export(self, args: list[str], raw: str) -> None:
        if len(args) != 1:
            raise UsageError("%chat export takes one path ending in .md or .json")
        path = Path(args[0]).expanduser()
        try:
            written = export.write(self.session, path)
        except ValueError as error:
            raise UsageError(str(error)) from None
        except OSError as error:
            raise UsageError(f"Cannot write {path}: {error.strerror or error}") from None
        print(f"Wrote {written} turns to {path}")

    @staticmethod
    def _no_args(command: str, args: list[str]) -> None:
        if args:
            raise UsageError(f"%chat {command} takes no argument, got {' '.join(args)!r}")


def _preview(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _replace(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    try:
        return replace(settings, **changes)
    except ConfigError as error:
        raise _one_line(error) from None


def _configure(settings: Settings, name: str, value: Any) -> Settings:
    """``settings`` with one ``%chat config`` assignment applied."""
    if name == "base_url":
        try:
            return settings.with_base_url(str(value), source="%chat config")
        except ConfigError as error:
            raise _one_line(error) from None
    if name in _SETTING_FIELDS:
        return _replace(settings, **{name: value})
    if name in _REQUEST_FIELDS or name.startswith("param."):
        field = name.removeprefix("param.")
        _refuse_key(field)
        cleared = value is None or value == ""
        updated = settings.with_params(**{field: None if cleared else value})
        ChatRequest.build(updated.model, [{"role": "user", "content": "?"}], updated.params)
        return updated
    raise UsageError(
        f"%chat config: unknown setting {name!r}; settings are "
        f"{', '.join(_SETTING_FIELDS + _REQUEST_FIELDS)}; "
        f"send another body field with param.{name}=VALUE"
    )
