"""``%chat`` commands parsed: one parser with a subcommand each.

Every command is parsed by IPython's ``MagicArgumentParser`` (argparse, raising ``UsageError``
instead of exiting), so bad values fail the same way as ``%%chat`` options, and ``%chat
COMMAND?`` or ``%chat COMMAND --help`` prints the command's usage. What each command does is
:mod:`nbchat.actions`'.
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from .options import row_count, token_budget, usage_error

__all__ = ["COMMANDS", "parse_command", "usage"]


def _parsers() -> tuple[MagicArgumentParser, dict[str, MagicArgumentParser]]:
    parser = MagicArgumentParser(  # type: ignore[no-untyped-call]
        prog="chat", description="Manage the notebook's conversation."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands: dict[str, MagicArgumentParser] = {}

    def command(name: str, summary: str) -> MagicArgumentParser:
        commands[name] = sub.add_parser(name, help=summary, description=summary)
        return commands[name]

    history = command("history", "list the turns of the conversation")
    history.add_argument(
        "--sent", action="store_true", help="print the messages the next request carries"
    )
    command("reset", "start a new conversation (the old one stays in the store)")
    command("conversations", "list this notebook's conversations and recent ones")
    opening = command("open", "go on with a stored conversation (its ID from %chat conversations)")
    opening.add_argument("id", type=_conversation_id, metavar="ID")
    importing = command("import", "start a new conversation from a .json export")
    importing.add_argument("path", help="a file %chat export wrote")
    model = command("model", "show the model, or set it for %%chat and the panel")
    model.add_argument("name", nargs="?", metavar="MODEL_ID", help="a model the server offers")
    command("models", "list the server's models")
    system = command("system", "show, set or clear the system prompt")
    system.add_argument("--clear", action="store_true", help="remove the system prompt")
    system.add_argument("text", nargs="?", help="the system prompt, as prose (no quoting)")
    config = command("config", "show settings, or change them: KEY=VALUE …")
    config.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    command("key", "enter the API key without echo (never saved in the notebook)")
    command("usage", "tokens spent in this session, per model")
    export = command("export", "write the conversation to a .md or .json file")
    export.add_argument("path", help="where to write; the ending picks the format")
    export.add_argument("--force", action="store_true", help="replace the file if it exists")
    panel = command("panel", "show the chat panel on this notebook's conversation")
    panel.add_argument(
        "--side", action="store_true", help="beside the notebook, in JupyterLab (sidecar)"
    )
    code = command("code", "put code block N of the latest reply in a new cell below")
    code.add_argument("number", nargs="?", type=_block_number, default=1, metavar="N")
    context = command("context", "print what --df NAME would attach to a message")
    context.add_argument("names", nargs="*", metavar="NAME", help="dataframes or arrays")
    context.add_argument(
        "--df-rows", "--rows", type=row_count, metavar="N", dest="df_rows", help="sample rows"
    )
    context.add_argument(
        "--df-tokens",
        "--tokens",
        type=token_budget,
        metavar="N",
        dest="df_tokens",
        help="token budget per summary",
    )
    explain = command("explain", "ask about the last exception: its traceback, cell and variables")
    explain.add_argument(
        "--df-tokens",
        "--tokens",
        type=token_budget,
        metavar="N",
        dest="df_tokens",
        help="token budget per summary (the whole error context: 3 × N)",
    )
    explain.add_argument("question", nargs="?", help="what to ask, as prose (no quoting)")
    return parser, commands


def _conversation_id(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(
            f"takes a conversation's number (see %chat conversations), got {raw!r}"
        )
    return int(raw)


def _block_number(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"takes the number of a code block (1, 2, …), got {raw!r}")
    return int(raw)


COMMANDS = (
    "code",
    "config",
    "context",
    "conversations",
    "explain",
    "export",
    "history",
    "import",
    "key",
    "model",
    "models",
    "open",
    "panel",
    "reset",
    "system",
    "usage",
)
"""The ``%chat`` commands (a test checks the parser has exactly these)."""


_PROSE = ("system", "explain")
"""Commands whose words are prose, taken as typed (a question may end in ``?``)."""
_EXPLAIN_BUDGET = re.compile(r"^((?:--df-tokens|--tokens)(?:=|\s+)\S+)\s*")


@functools.cache
def parsers() -> tuple[MagicArgumentParser, dict[str, MagicArgumentParser]]:
    """The ``%chat`` parser and each command's own, built on first use (``%load_ext`` stays
    cheap)."""
    return _parsers()


def usage() -> str:
    """The help of every command, for ``%chat?``."""
    lines = ["%chat commands (%chat COMMAND? for one command's options):", ""]
    for name in COMMANDS:
        lines.append(f"  %chat {name:<13} {parsers()[1][name].description}")
    return "\n".join(lines)


def parse_command(line: str) -> argparse.Namespace | str:
    """The parsed ``%chat`` line, or the help text to print when help was asked for."""
    name, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    if name in ("?", "-h", "--help", "help"):
        return usage()
    if not name:
        raise UsageError(f"%chat needs a command: {', '.join(COMMANDS)} (%chat? says more)")
    wants_help = name.endswith("?") or (rest.endswith("?") and name not in _PROSE)
    name = name.rstrip("?")
    root, commands = parsers()
    parser = commands.get(name)
    if parser is None:
        raise usage_error(
            f"%chat: unknown command {name!r}; try one of {', '.join(COMMANDS)} "
            "(or %%chat in a cell to ask a question)"
        )
    if wants_help or rest in ("-h", "--help"):
        return parser.format_help().removeprefix("::").strip()
    if name == "system":
        # Prose: an apostrophe is not a shell quote, and a leading dash is not an option.
        words = ["--clear"] if rest == "--clear" else (["--", rest] if rest else [])
    elif name == "explain":
        budget = _EXPLAIN_BUDGET.match(rest)
        options = budget.group(1).split() if budget else []
        question = rest[budget.end() :] if budget else rest
        words = [*options, *(["--", question] if question else [])]
    else:
        try:
            words = shlex.split(rest)
        except ValueError as error:
            raise usage_error(f"%chat {name}: {error}") from None
    try:
        args = root.parse_args([name, *words])
    except UsageError as error:
        message = str(error).strip().splitlines()[-1]
        if message.startswith("unrecognized arguments"):
            raise usage_error(f"%chat {name} takes {_takes(parser)}, got {rest!r}") from None
        raise usage_error(f"%chat {name}: {message} (see %chat {name}?)") from None
    return args


def _takes(parser: MagicArgumentParser) -> str:
    """What a command takes, in words for an error: its usage line after its name."""
    line = " ".join(parser.format_usage().removeprefix("::").split())
    taken = line.partition(parser.prog)[2].strip()
    return taken or "no argument"
