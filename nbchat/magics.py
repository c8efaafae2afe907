"""``%%chat`` and ``%chat``: the notebook face of the session. Thin on purpose.

The cell magic parses its options, composes the message (:func:`nbchat.prompt.compose`), finds
the cell's id and hands everything to :class:`~nbchat.session.ChatSession`, with a display
that fits where it runs (:mod:`nbchat.runtime`). The line magic parses a command
(:mod:`nbchat.commands`) and runs it (:mod:`nbchat.actions`). Whatever the user can fix (a bad
option, no key, an unknown model, a server error) leaves as exactly ``UsageError``, which
IPython prints as one line without a traceback.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from IPython.core import magic_arguments as _magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, magics_class
from IPython.core.magic import line_cell_magic as _line_cell_magic

from . import views
from .errors import NbChatError
from .events import ReplyObserver
from .notebook import get_session
from .options import (
    cell_number,
    cell_range,
    join_option_values,
    request_params,
    row_count,
    token_budget,
    usage_error,
)
from .prompt import compose
from .session import ChatSession
from .tracebacks import ErrorRecorder

if TYPE_CHECKING:
    from .images import ImagePart

__all__ = ["ChatMagics"]

_F = TypeVar("_F", bound=Callable[..., Any])


# IPython's option decorators are untyped; these give them their actual shapes.
def magic_arguments() -> Callable[[_F], _F]:
    return cast("Callable[[_F], _F]", _magic_arguments.magic_arguments())  # type: ignore[no-untyped-call]


def argument(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    return cast("Callable[[_F], _F]", _magic_arguments.argument(*args, **kwargs))  # type: ignore[no-untyped-call]


def line_cell_magic(method: _F) -> _F:
    return cast("_F", _line_cell_magic(method))


def _assignable(name: str) -> bool:
    """A name ``-o`` may bind: an identifier, not a keyword, not a dunder (``__builtins__``,
    ``__name__``: rebinding them breaks the user's namespace)."""
    import keyword

    dunder = name.startswith("__") and name.endswith("__")
    return name.isidentifier() and not keyword.iskeyword(name) and not dunder


_CHAT_LINE_ASKING = re.compile(r"^(\s*)%chat(\s+.*\?)\s*$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """An input transformer: a ``%chat`` line that ends in ``?`` goes to ``%chat`` as typed.

    IPython reads any line ending in ``?`` as a help request on its last word, so
    ``%chat context?`` would look up a variable named ``context`` and ``%chat system Be brief?``
    would lose the system prompt. This runs before that rule, on ``%chat`` lines only:
    ``%chat COMMAND?`` then shows the command's usage, and prose keeps its question mark.
    """
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic's body is its own text
    kept = []
    for line in lines:
        match = _CHAT_LINE_ASKING.match(line.rstrip("\n"))
        if match is None:
            kept.append(line)
            continue
        indent, arguments = match.groups()
        kept.append(f"{indent}get_ipython().run_line_magic('chat', {arguments.strip()!r})\n")
    return kept


@magics_class
class ChatMagics(Magics):
    """``%%chat`` asks the model; ``%chat`` manages the conversation."""

    def __init__(self, shell: Any, session_factory: Callable[[], ChatSession] = get_session):
        super().__init__(shell)
        self._session_factory = session_factory
        self.cell_id: str | None = None
        """The id of the cell running now, from the frontend's ``metadata.cellId``."""
        self.panels: dict[str, Any] = {}
        """The panel each ``%chat panel`` cell shows, by cell id."""
        self.errors = ErrorRecorder(shell)
        """The last exception a cell raised (follows ``post_run_cell``)."""

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
    @argument("--df-rows", type=row_count, metavar="N", help="sample rows in dataframe summaries")
    @argument("--df-tokens", type=token_budget, metavar="N", help="token budget per summary")
    @argument("--image", action="append", metavar="NAME", help="send an image or plot (repeat)")
    @argument(
        "--cell-image",
        action="append",
        type=int,
        metavar="N",
        help="send the image cell [N] showed; -1 is the last cell (repeat)",
    )
    @argument(
        "--cell",
        dest="cells",
        action="append",
        type=cell_number,
        metavar="N",
        help="attach cell N's source and output (-1: the previous cell; repeat)",
    )
    @argument(
        "--cells",
        dest="cells",
        action="append",
        type=cell_range,
        metavar="A:B",
        help="attach cells A to B-1, as a slice: -3: is the last three",
    )
    @argument("--error", action="store_true", help="attach the last exception and its cell")
    @argument("--code", action="store_true", help="put code block 1 of the reply in a new cell")
    @argument("-o", "--out", metavar="NAME", help="also store the reply text in variable NAME")
    @line_cell_magic
    def chat(self, line: str, cell: str | None = None) -> None:
        """Ask the model in a ``%%chat`` cell, or run a ``%chat`` command.

        ``%%chat [options]`` sends the cell as the next message of the notebook's conversation
        and streams the reply as Markdown. ``{name}`` inserts a variable's value; other braces
        stay as typed; ``{{``/``}}`` write a literal brace. Running a cell again replaces its
        own turn in the conversation.

        ``%chat COMMAND``: ``history [--sent]``, ``reset``, ``conversations``, ``open ID``,
        ``model [NAME]``, ``models``, ``system [TEXT]``, ``config [KEY=VALUE ...]``, ``key``,
        ``usage``, ``export PATH``, ``import PATH``, ``panel``, ``code [N]``,
        ``context NAME``, ``explain [QUESTION]``; ``%chat COMMAND?`` shows one's options.
        """
        if cell is None:
            self._command(line)
        else:
            self._ask(line, cell)

    def _ask(self, line: str, cell: str) -> None:
        try:
            # Split like a POSIX shell so that -s 'two words' loses its quotes.
            words = join_option_values(shlex.split(line))
            args = self.chat.parser.parse_args(words)  # type: ignore[attr-defined]
        except ValueError as error:
            raise usage_error(f"%%chat: {error} in the options line") from None
        except UsageError as error:
            # argparse's message comes after the usage text; keep the one line that matters.
            message = str(error).strip().splitlines()[-1].removeprefix("%chat: ")
            raise usage_error(f"%%chat: {message} (see %%chat? for the options)") from None
        params = request_params(args)
        if not cell.strip():
            raise UsageError("%%chat needs a question in the cell below the %%chat line")
        if args.out is not None and not _assignable(str(args.out)):
            raise usage_error(
                f"-o/--out takes a variable name of your own, got {args.out!r} "
                "(not a keyword, and not a __name__ IPython or Python relies on)"
            )
        try:
            session = self.session  # made on first use: a mistyped variable fails here
        except NbChatError as error:
            raise usage_error(error) from None
        settings = session.settings
        namespace = self.shell.user_ns if self.shell is not None else {}
        try:
            prompt = compose(
                cell,
                namespace,
                frames=args.df or (),
                tokens=settings.context_tokens if args.df_tokens is None else args.df_tokens,
                rows=settings.context_rows if args.df_rows is None else args.df_rows,
                images=[*(args.image or ()), *self._cell_images(args.cell_image or ())],
                cells=args.cells or (),
                error=self.errors.latest() if args.error else None,
            )
            reply = session.ask(
                prompt,
                cell_id=self.cell_id,
                model=args.model,
                system=args.system,
                params=params,
                stream=not args.no_stream,
                use_history=not args.no_history,
                new_conversation=args.new,
                observer=self._display(),
            )
        except KeyboardInterrupt:
            latest = session.last_reply
            kept = len(latest.text) if latest is not None else 0
            raise UsageError(views.interrupted_message(kept)) from None
        except NbChatError as error:
            raise usage_error(error) from None
        if reply.status == "interrupted":
            raise UsageError(views.interrupted_message(len(reply.text)))
        if args.out:
            namespace[args.out] = reply.text
        if args.code:
            from .actions import code_to_next_cell

            try:
                code_to_next_cell(self, reply.text, 1)
            except UsageError as error:
                print(f"(--code: {error})")

    def _cell_images(self, numbers: Sequence[int]) -> list[ImagePart]:
        if not numbers:
            return []
        from .cell_images import capture

        kept = capture(self.shell)
        outputs = self.shell.user_ns.get("Out") if self.shell is not None else None
        return [
            kept.image(number, outputs if isinstance(outputs, dict) else None) for number in numbers
        ]

    def ask(self, line: str, cell: str) -> None:
        """Ask as a ``%%chat`` cell with options ``line`` and text ``cell`` would."""
        self._ask(line, cell)

    def _display(self) -> ReplyObserver:
        from .runtime import frontend

        where = frontend(self.shell) if self.shell is not None else None
        if where is not None and where.rich:
            from .display import CellDisplay, IPythonSink

            if where.draws_widgets:  # one output, however long the reply (no output limit)
                from .live_reply import LiveReply

                return CellDisplay(IPythonSink(self.shell), live=LiveReply)
            return CellDisplay(IPythonSink(self.shell))
        from .terminal import PlainDisplay

        return PlainDisplay()

    def _command(self, line: str) -> None:
        from .actions import HANDLERS
        from .commands import parse_command

        parsed = parse_command(line)
        if isinstance(parsed, str):
            print(parsed)  # help was asked for
            return
        try:
            HANDLERS[parsed.command](self, parsed)
        except NbChatError as error:
            raise usage_error(error) from None


# The magic is both ``%chat`` and ``%%chat``; its options are the cell's, so its usage reads
# ``%%chat`` (IPython's help formatter adds one ``%`` to the parser's name).
ChatMagics.chat.parser.prog = "%chat"  # type: ignore[attr-defined]
ChatMagics.chat.__doc__ = ChatMagics.chat.parser.format_help()  # type: ignore[attr-defined]
