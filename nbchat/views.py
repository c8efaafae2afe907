"""Every fragment a face shows, as HTML for notebooks and widgets and as text for terminals.

The faces decide *when* and *where* something is drawn; this module alone decides *what* it
looks like: the footer under a reply, the placeholder while a model is asked, reasoning, the
user's message with its attachments folded, notices, the status line, and the words used for
each ending. Changing the footer, or the word for a stopped reply, is one edit here.

Styles are inline (notebook outputs and widget HTML both keep them, a saved notebook shows them
without any stylesheet being loaded) and come from one table, :data:`STYLES`, keyed by the
``nbchat-*`` class each element also carries. Colours are JupyterLab's theme variables with a
light fallback for frontends without them. Everything drawn from model or user text is escaped
here or rendered by :mod:`nbchat.render`, which escapes raw HTML.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .history import Turn
    from .images import ImagePart
    from .prompt import Prompt
    from .protocol import Choice, ToolCall
    from .reply import Reply
    from .sizes import SizeNote

__all__ = [
    "INTERRUPTED",
    "STALE",
    "STYLES",
    "Footing",
    "choice_heading",
    "empty_transcript",
    "footer_html",
    "footer_text",
    "images_html",
    "interrupted_message",
    "notice_html",
    "placeholder_html",
    "prompt_html",
    "reasoning_html",
    "reply_html",
    "size_note_text",
    "size_notes_html",
    "status_html",
    "streaming_marker_html",
    "streaming_status",
    "thinking_html",
]

INTERRUPTED = "interrupted"
"""The word for a reply the user stopped (Stop, Kernel → Interrupt, Ctrl-C)."""
FAILED = "failed"
REPLAYED = "replayed"
"""What a footer says of a reply answered from a recording, with no request sent."""
CUT = "cut at the token limit (max_tokens)"
"""What a footer says of a reply the server ended with ``finish_reason: "length"``."""
STALE = "stale: an earlier cell changed; left out of requests until this cell runs again"
"""What a footer and ``%chat history`` say of a stale turn."""
TOOLS_NOT_RUN_NOTE = "nbchat does not run tools yet: the model is told so in the next request"
_FOLD_ARGUMENTS = 400  # characters of pretty-printed arguments shown unfolded

# Each fallback is the Light theme's value: #757575 is its secondary text on white (4.6:1).
_MUTED = "color: var(--jp-ui-font-color2, #757575); font-size: 0.85em"
STYLES: Mapping[str, str] = {
    "nbchat-muted": _MUTED,
    "nbchat-footer": _MUTED,
    "nbchat-placeholder": _MUTED,
    "nbchat-thinking": f"{_MUTED}; white-space: pre-wrap",
    "nbchat-reasoning-summary": _MUTED,
    "nbchat-you": (
        "border-left: 3px solid var(--jp-brand-color1, #1976d2); padding: 2px 8px; margin: 6px 0"
    ),
    "nbchat-you-label": f"{_MUTED}; font-weight: bold",
    "nbchat-typed": "white-space: pre-wrap",
    "nbchat-attachment-summary": _MUTED,
    "nbchat-attachment-body": "font-size: 0.8em; white-space: pre-wrap",
    "nbchat-images": "display: flex; flex-wrap: wrap; gap: 8px; margin: 4px 0",
    "nbchat-image": "margin: 0",
    "nbchat-thumbnail": (
        "max-width: 160px; max-height: 120px; border: 1px solid var(--jp-border-color2, #e0e0e0)"
    ),
    "nbchat-image-caption": _MUTED,
    "nbchat-error": "color: var(--jp-error-color1, #d32f2f)",
    "nbchat-size-note": "color: var(--jp-warn-color0, #b35c00); font-size: 0.85em",
    "nbchat-status-text": "color: var(--jp-ui-font-color2, #757575); font-size: 0.9em",
    "nbchat-status-error": "color: var(--jp-error-color1, #d32f2f); font-size: 0.9em",
    "nbchat-refusal": (
        "border-left: 3px solid var(--jp-warn-color0, #f57c00); padding: 2px 8px; margin: 6px 0"
    ),
    "nbchat-refusal-label": f"{_MUTED}; font-weight: bold",
    "nbchat-tool-call-summary": f"{_MUTED}; font-weight: bold",
    "nbchat-tool-call-arguments": "font-size: 0.85em; white-space: pre-wrap",
}
"""Inline style by class name: the one stylesheet of everything nbchat draws."""

_REASONING_PREVIEW = 600  # characters of reasoning shown while the model thinks


def counted(number: int, word: str, plural: str | None = None) -> str:
    """``1 reply``, ``2 replies``: a number and its noun, in the right form."""
    return f"{number:,} {word if number == 1 else plural or word + 's'}"


def _element(tag: str, cls: str, body: str) -> str:
    style = STYLES.get(cls)
    styled = f' style="{style}"' if style else ""
    return f'<{tag} class="{cls}"{styled}>{body}</{tag}>'


# -- the footer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Footing:
    """What a footer says about a reply, from a live :class:`Reply` or a stored turn."""

    model: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    seconds: float | None = None
    """How long it took; unknown for a turn read back from the store."""
    ending: str = ""
    """"" for a reply that completed, else :data:`INTERRUPTED` or ``failed``."""
    cut: bool = False
    """The server stopped the reply at the token limit (``finish_reason: "length"``)."""
    choices_asked: int = 1
    choices_received: int = 1
    turns_left_out: int = 0
    """Earlier turns the context budget left out of the request."""
    estimated_prompt_tokens: int | None = None
    """The offline estimate of what was sent, shown until the server's count arrives."""
    cost: float | None = None
    """Dollars, when the user's price table prices the model."""
    cost_estimated: bool = False
    stale: bool = False
    """The turn was answered from an earlier cell's old text (``Turn.stale``)."""
    stale_left_out: int = 0
    """Stale turns the reply's request left out."""
    replayed: bool = False
    """Answered from a recording (:mod:`nbchat.replay`), not by the server."""

    @classmethod
    def of_reply(cls, reply: Reply) -> Footing:
        result = reply.result
        usage = result.usage
        endings = {"interrupted": INTERRUPTED, "failed": FAILED}
        return cls(
            model=reply.answered_model,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            total_tokens=usage.total_tokens if usage else None,
            seconds=reply.elapsed,
            ending=endings.get(reply.status, ""),
            cut=any(choice.finish_reason == "length" for choice in result.choices),
            choices_asked=reply.choices_requested,
            choices_received=len(result.choices) if reply.status == "done" else 1,
            turns_left_out=reply.turns_left_out,
            estimated_prompt_tokens=reply.estimated_prompt_tokens,
            cost=reply.cost,
            cost_estimated=reply.cost_estimated,
            stale_left_out=reply.stale_left_out,
            replayed=reply.replayed,
        )

    @classmethod
    def of_turn(cls, turn: Turn) -> Footing:
        usage = turn.usage or {}
        return cls(
            model=turn.model or "model",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            total_tokens=usage.get("total_tokens"),
            ending=INTERRUPTED if turn.status == "interrupted" else "",
            cut=turn.finish_reason == "length",
            stale=turn.stale,
            replayed=turn.replayed,
        )

    def parts(self) -> list[str]:
        """The footer's pieces, in order: model, tokens, time, how it ended."""
        parts = [self.model]
        if self.replayed:
            parts.append(REPLAYED)
        if self.prompt_tokens is not None and self.completion_tokens is not None:
            parts.append(f"{self.prompt_tokens:,} → {self.completion_tokens:,} tokens")
        elif self.total_tokens is not None:
            parts.append(f"{self.total_tokens:,} tokens")
        elif self.estimated_prompt_tokens is not None:
            parts.append(estimated_tokens_part(self.estimated_prompt_tokens))
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        if self.cost is not None:
            from .prices import format_dollars

            parts.append(("~" if self.cost_estimated else "") + format_dollars(self.cost))
        if self.turns_left_out:
            parts.append(left_out_part(self.turns_left_out))
        if self.cut:
            parts.append(CUT)
        if 0 < self.choices_received < self.choices_asked:
            parts.append(f"{self.choices_received} of {self.choices_asked} choices came back")
        if self.ending:
            parts.append(self.ending)
        if self.stale:
            parts.append(STALE)
        if self.stale_left_out:
            parts.append(f"{counted(self.stale_left_out, 'stale turn')} left out")
        return parts


def estimated_tokens_part(tokens: int) -> str:
    return f"~{tokens:,} tokens sent"


def left_out_part(turns: int) -> str:
    """What a footer says of the turns the context budget left out."""
    return f"{counted(turns, 'earlier turn')} left out"


def sending_parts(reply: Reply) -> list[str]:
    """What is known of a request before its reply: the estimated tokens, the turns left out."""
    parts = []
    if reply.estimated_prompt_tokens is not None:
        parts.append(estimated_tokens_part(reply.estimated_prompt_tokens))
    if reply.turns_left_out:
        parts.append(left_out_part(reply.turns_left_out))
    return parts


def footer_html(footing: Footing) -> str:
    return _element("div", "nbchat-footer", " · ".join(html.escape(p) for p in footing.parts()))


def footer_text(footing: Footing) -> str:
    return f"[{' · '.join(footing.parts())}]"


# -- a reply ----------------------------------------------------------------------------------


def placeholder_html(model: str, details: Sequence[str] = ()) -> str:
    """What a cell shows from the question until the first text arrives; ``details`` are
    :func:`sending_parts`."""
    tail = "".join(f" · {html.escape(part)}" for part in details)
    return _element("div", "nbchat-placeholder", f"⋯ asking {html.escape(model)}{tail}")


def streaming_marker_html(model: str) -> str:
    """The line under choices that are still growing."""
    return _element("div", "nbchat-placeholder", f"⋯ {html.escape(model)}")


def choice_heading(number: int, *, markdown: bool = False) -> str:
    """The heading over choice ``number`` (from 1) of a reply with several."""
    return f"#### Choice {number}" if markdown else f"<h4>Choice {number}</h4>"


def thinking_html(reasoning: str) -> str:
    """The tail of the model's reasoning, shown while it thinks and no answer has come yet."""
    tail = reasoning[-_REASONING_PREVIEW:]
    cut = "…" if len(reasoning) > len(tail) else ""
    return _element("div", "nbchat-thinking", f"Thinking… {cut}{html.escape(tail)}")


def reasoning_html(reasoning: str) -> str:
    """A finished reply's reasoning, folded away above the answer ("" when there was none)."""
    if not reasoning.strip():
        return ""
    from .render import render_markdown

    summary = _element("summary", "nbchat-reasoning-summary", "Reasoning")
    return f'<details class="nbchat-reasoning">{summary}{render_markdown(reasoning)}</details>'


def reply_html(bodies: Sequence[str], footing: Footing, reasonings: Sequence[str] = ()) -> str:
    """A finished reply: each choice's rendered body (headed when there are several), its
    reasoning folded above it, and the footer."""
    many = len(bodies) > 1
    sections = []
    for index, body in enumerate(bodies):
        heading = choice_heading(index + 1) if many else ""
        reasoning = reasonings[index] if index < len(reasonings) else ""
        sections.append(heading + reasoning_html(reasoning) + body)
    return f'<div class="nbchat-reply">{"".join(sections)}{footer_html(footing)}</div>'


def refusal_html(refusal: str) -> str:
    """The model's refusal, marked as one (it is not an answer)."""
    if not refusal:
        return ""
    label = _element("div", "nbchat-refusal-label", "The model refused")
    return _element("div", "nbchat-refusal", label + html.escape(refusal))


def _pretty_arguments(arguments: str) -> str:
    import json

    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments  # as streamed: a model may send arguments that are not JSON


def tool_calls_html(calls: Sequence[ToolCall]) -> str:
    """Each function the model asked to call, its arguments pretty-printed (folded when
    long), and a line saying the tools were not run."""
    if not calls:
        return ""
    parts = []
    for call in calls:
        arguments = _pretty_arguments(call.arguments)
        opened = " open" if len(arguments) <= _FOLD_ARGUMENTS else ""
        summary = _element(
            "summary", "nbchat-tool-call-summary", f"Tool call: {html.escape(call.name)}"
        )
        body = _element("pre", "nbchat-tool-call-arguments", html.escape(arguments))
        parts.append(f'<details class="nbchat-tool-call"{opened}>{summary}{body}</details>')
    return "".join(parts) + _element("div", "nbchat-muted", html.escape(TOOLS_NOT_RUN_NOTE))


def choice_extras_html(choice: Choice | None) -> str:
    """What a choice holds besides its text: a refusal, tool calls."""
    if choice is None:
        return ""
    return refusal_html(choice.refusal) + tool_calls_html(choice.tool_calls)


def turn_extras_html(turn: Turn) -> str:
    return refusal_html(turn.refusal) + tool_calls_html(turn.tool_calls)


def extras_markdown(refusal: str, calls: Sequence[ToolCall]) -> str:
    """The same as Markdown, for the saved output's ``text/markdown`` and the terminal."""
    parts = []
    if refusal:
        parts.append(f"> **The model refused:** {refusal}")
    for call in calls:
        parts.append(
            f"**Tool call: {call.name}**\n\n```json\n{_pretty_arguments(call.arguments)}\n```"
        )
    if calls:
        parts.append(f"*{TOOLS_NOT_RUN_NOTE}*")
    return "\n\n".join(parts)


def choice_markdown(text: str, choice: Choice | None) -> str:
    """A choice as Markdown: its text, then its refusal and tool calls, if any."""
    extras = extras_markdown(choice.refusal, choice.tool_calls) if choice is not None else ""
    return "\n\n".join(part for part in (text, extras) if part)


def choices_markdown(markdowns: Sequence[str]) -> str:
    """A reply's Markdown: one choice as it is; several, each under its heading."""
    if len(markdowns) == 1:
        return markdowns[0]
    return "\n\n".join(
        f"{choice_heading(i + 1, markdown=True)}\n\n{text}" for i, text in enumerate(markdowns)
    )


def interrupted_message(kept_characters: int) -> str:
    """The one line a cell ends with when the user interrupted its reply."""
    if kept_characters:
        return (
            f"Interrupted: the partial reply ({counted(kept_characters, 'character')}) is kept, "
            f"marked {INTERRUPTED}"
        )
    return "Interrupted before the reply began; the conversation is unchanged"


# -- the user's side --------------------------------------------------------------------------


def prompt_html(prompt: Prompt) -> str:
    """A user message: the text as typed, each attached summary folded under its label."""
    parts: list[str] = []
    for piece, attachment in prompt.parts():
        if attachment is None:
            parts.append(_element("div", "nbchat-typed", html.escape(piece)))
            continue
        summary = _element(
            "summary", "nbchat-attachment-summary", f"attached: {html.escape(attachment.label)}"
        )
        body = _element("pre", "nbchat-attachment-body", html.escape(piece))
        parts.append(f'<details class="nbchat-attachment">{summary}{body}</details>')
    label = _element("div", "nbchat-you-label", "You")
    return _element(
        "div",
        "nbchat-you",
        label + "".join(parts) + images_html(prompt.images) + size_notes_html(prompt.notes),
    )


def size_note_text(note: SizeNote) -> str:
    """One line on a value cut short, or a long text, in a message."""
    what = "The message's typed text" if note.name is None else f"{{{note.name}}}"
    if note.cut:
        return (
            f"{what} was cut to {note.sent:,} of {note.total:,} characters "
            f"(~{note.tokens:,} tokens sent)"
        )
    return f"{what} is long: {note.total:,} characters, ~{note.tokens:,} tokens sent"


def size_notes_html(notes: Sequence[SizeNote]) -> str:
    """The notices above a reply whose message holds cuts or long texts ("" for none)."""
    return "".join(
        _element("div", "nbchat-size-note", f"⚠ {html.escape(size_note_text(n))}") for n in notes
    )


def images_html(images: Sequence[ImagePart]) -> str:
    """Each image sent, as a small thumbnail over its label ("" when there are none).

    The only ``<img>`` nbchat draws, and only of parts it made itself: an :class:`ImagePart`
    holds a PNG or JPEG as base64 and nothing else (checked when it is made or read back), so
    its ``data:`` URL cannot carry anything but that image. Model output never reaches here;
    :mod:`nbchat.render` keeps images in replies as links, never loaded.
    """
    if not images:
        return ""
    figures = []
    for image in images:
        label = html.escape(image.label)
        style = STYLES["nbchat-thumbnail"]
        thumbnail = (
            f'<img class="nbchat-thumbnail" style="{style}" src="{image.url}" alt="{label}"'
            f' title="{label}">'
        )
        caption = _element("figcaption", "nbchat-image-caption", f"image: {label}")
        figures.append(_element("figure", "nbchat-image", thumbnail + caption))
    return _element("div", "nbchat-images", "".join(figures))


def notice_html(message: str) -> str:
    """A one-line problem shown in a transcript (the request failed, nothing was kept)."""
    return _element("div", "nbchat-error", f"⚠ {html.escape(message)}")


def empty_transcript() -> str:
    return _element(
        "div",
        "nbchat-muted",
        "No messages yet. What you ask here and in <code>%%chat</code> cells is one conversation.",
    )


def context_hint() -> str:
    return _element("span", "nbchat-muted", "Context: no dataframes yet")


# -- the status line --------------------------------------------------------------------------


def status_html(text: str, *, error: bool = False) -> str:
    return _element(
        "span", "nbchat-status-error" if error else "nbchat-status-text", html.escape(text)
    )


def streaming_status(model: str, characters: int, seconds: float) -> str:
    return f"streaming {model}… {characters:,} characters · {seconds:.1f} s"


def ended_status(footing: Footing, kept_characters: int) -> str:
    """The status line once a reply has ended well or was stopped."""
    parts = footing.parts()
    if footing.ending == INTERRUPTED:
        kept = counted(kept_characters, "character")
        parts[-1] = f"{INTERRUPTED}; the partial reply ({kept}) is kept"
    return " · ".join(parts)
