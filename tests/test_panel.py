"""The chat panel driven through its widgets (``value``, ``click()``) on the loopback server."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nbchat.panel import ChatPanel
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer, Reply, Status

from conftest import fast_settings
from ipython_shell import Shell, make_shell

LONG = "First paragraph of a long answer.\n\n" + " ".join(f"word{i}" for i in range(300))


@pytest.fixture
def session(server: LoopbackServer) -> Iterator[ChatSession]:
    chat = ChatSession(fast_settings(server.base_url, max_retries=0))
    yield chat
    chat.close()


@pytest.fixture
def open_panel(session: ChatSession) -> Iterator[Callable[..., ChatPanel]]:
    panels: list[ChatPanel] = []

    def make(**kwargs: Any) -> ChatPanel:
        kwargs.setdefault("namespace", {})
        kwargs.setdefault("load_models", False)
        panel = ChatPanel(kwargs.pop("session", session), **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.session.cancel()
        panel.wait(10)
        panel.close()


def html_values(widget: Any) -> list[str]:
    """Every HTML string under ``widget``, in the order a reader sees them."""
    values = [widget.value] if hasattr(widget, "value") and isinstance(widget.value, str) else []
    children = list(getattr(widget, "children", ()))
    if "nbchat-transcript" in getattr(widget, "_dom_classes", ()):
        children.reverse()  # drawn bottom-up: the last child is at the top
    for child in children:
        values.extend(html_values(child))
    return values


def transcript(panel: ChatPanel) -> str:
    """The transcript as text: tags dropped, entities decoded."""
    joined = " ".join(html_values(panel.transcript))
    return html.unescape(re.sub(r"<[^>]+>", " ", joined))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def turn_views(panel: ChatPanel) -> list[Any]:
    """The transcript's turns, oldest first (it is drawn bottom-up: the newest child first)."""
    children = reversed(panel.transcript.children)
    return [view for view in children if "nbchat-turn" in view._dom_classes]


def send(panel: ChatPanel, text: str) -> None:
    panel.input.value = text
    panel.send_button.click()


def status(panel: ChatPanel) -> str:
    return panel.status_text


# -- sending and streaming ------------------------------------------------------------------


def test_a_message_streams_into_the_transcript(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, chunk_size=8, delay=0.004))
    panel = open_panel()
    send(panel, "Explain it at length")
    assert panel.input.value == ""  # the message left the input...
    wait_for(lambda: "word40 " in transcript(panel), "part of the reply")
    partial = transcript(panel)
    assert "Explain it at length" in partial and "word299" not in partial  # ...and streams in
    assert panel.send_button.disabled and not panel.stop_button.disabled
    assert status(panel).startswith("streaming test-model")
    panel.wait(10)
    final = transcript(panel)
    assert "word299" in final and final.count("Explain it at length") == 1
    assert not panel.send_button.disabled and panel.stop_button.disabled
    assert "test-model" in status(panel) and "tokens" in status(panel)
    turn = panel.session.history.last()
    assert turn is not None and turn.prompt == "Explain it at length" and turn.reply == LONG


def test_finished_blocks_are_sent_once_and_only_the_tail_is_updated(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    paragraphs = [f"Paragraph {i}: " + "text " * 30 for i in range(80)]
    server.enqueue(Reply("\n\n".join(paragraphs), chunk_size=12, delay=0.002))
    panel = open_panel()
    sent: list[int] = []  # the size of every HTML value that went to the page
    seen: set[int] = set()

    def on_value(change: dict[str, Any]) -> None:
        sent.append(len(change["new"]))

    def on_children(change: dict[str, Any]) -> None:
        for widget in change["new"]:
            if id(widget) not in seen and hasattr(widget, "value"):
                seen.add(id(widget))
                sent.append(len(widget.value))
                widget.observe(on_value, names="value")

    send(panel, "many paragraphs")
    wait_for(lambda: panel.live is not None, "the live reply")
    live = panel.live
    assert live is not None
    live.outputs.observe(on_children, names="children")
    panel.wait(10)
    final_html = live.outputs.children[-1].value
    assert "Paragraph 79" in final_html
    streamed = sum(sent) - len(final_html)
    assert len(sent) > 10, "the reply was drawn as it came"
    # Re-sending the whole reply at each update would cost many times the reply; sending
    # finished blocks once and only the open tail again stays within a small multiple.
    assert streamed <= 4 * len(final_html), (streamed, len(final_html), len(sent))


def test_stop_keeps_the_partial_reply_marked_in_transcript_and_history(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, chunk_size=8, stall_after=20, stall_seconds=60))
    panel = open_panel()
    send(panel, "go slowly")
    wait_for(lambda: "word" in transcript(panel), "the first words")
    wait_for(lambda: panel.live is not None and panel.live.reply.chunks >= 19, "the stall")
    panel.stop_button.click()
    panel.wait(10)
    assert not panel.asking  # not the 60 s stall
    turn = panel.session.history.last()
    assert turn is not None and turn.status == "interrupted"
    assert turn.reply and LONG.startswith(turn.reply) and turn.reply != LONG
    assert "interrupted" in transcript(panel)
    assert "interrupted" in status(panel) and "kept" in status(panel)
    assert not panel.send_button.disabled


def test_a_second_send_while_streaming_is_refused_and_keeps_its_text(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, chunk_size=8, delay=0.01))
    panel = open_panel()
    send(panel, "first")
    wait_for(lambda: panel.session.busy, "the first reply")
    wait_for(lambda: len(server.chat_requests) == 1, "the first request")  # else Stop stops it
    send(panel, "second, too soon")
    assert "already streaming" in status(panel)
    assert panel.input.value == "second, too soon"
    panel.stop()
    panel.wait(10)
    assert [r.json["messages"][-1]["content"] for r in server.chat_requests] == ["first"]


# -- one session, many faces ----------------------------------------------------------------


def test_two_panels_on_one_session_stay_in_step(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply("Reply one.", delay=0.01), Reply(LONG, chunk_size=8, delay=0.01))
    left, right = open_panel(), open_panel()
    send(left, "asked on the left")
    left.wait(10)
    assert "Reply one." in transcript(right) and "asked on the left" in transcript(right)
    send(right, "asked on the right")
    wait_for(lambda: "word10 " in transcript(left), "the right panel's reply, on the left")
    assert left.send_button.disabled  # busy on both sides
    send(left, "meanwhile")
    assert "already streaming" in status(left) and left.input.value == "meanwhile"
    right.wait(10)
    assert transcript(left) == transcript(right)
    assert not left.send_button.disabled
    left.new_button.click()
    assert "asked on the" not in transcript(right)
    assert "No messages yet" in transcript(right)


def test_panel_and_magic_share_the_conversation_both_ways(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    monkeypatch.setenv("NBCHAT_MAX_RETRIES", "0")
    for shell in make_shell(rich=True):
        _share_both_ways(shell, server)


def _share_both_ways(shell: Shell, server: LoopbackServer) -> None:
    shell.run("import nbchat\npanel = nbchat.ChatPanel(load_models=False)")
    panel: ChatPanel = shell.ip.user_ns["panel"]
    try:
        server.enqueue(Reply("From the cell."), Reply("From the panel."), Reply("Cell again."))
        result = shell.run("%%chat\nasked in a cell", cell_id="cell-1")
        assert result.error_in_exec is None
        assert "asked in a cell" in transcript(panel) and "From the cell." in transcript(panel)
        send(panel, "asked in the panel")
        panel.wait(10)
        shell.run("%%chat\nasked in a second cell", cell_id="cell-2")
        sent = server.chat_requests[-1].json["messages"]
        assert [m["content"] for m in sent] == [
            "asked in a cell",
            "From the cell.",
            "asked in the panel",
            "From the panel.",
            "asked in a second cell",
        ]
        assert "Cell again." in transcript(panel)
    finally:
        panel.close()


def test_a_reply_that_began_before_the_panel_opened_is_shown_when_it_ends(
    open_panel: Callable[..., ChatPanel], session: ChatSession, server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, chunk_size=8, delay=0.005))
    worker = threading.Thread(target=session.ask, args=("early question",))
    worker.start()
    # Busy comes first, the reply a moment later (once the request is built): a panel opened in
    # between follows it from reply_started; here it opens once the reply exists.
    wait_for(lambda: session.busy and session.last_reply is not None, "the reply to begin")
    panel = open_panel()
    assert panel.send_button.disabled and not panel.stop_button.disabled
    assert "early question" in transcript(panel)  # followed from the moment it opened
    worker.join(10)
    assert "early question" in transcript(panel) and "word299" in transcript(panel)
    assert "No messages yet" not in transcript(panel)
    assert not panel.send_button.disabled and panel.stop_button.disabled


# -- errors keep the input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "words"),
    [
        (Status(401), ["401"]),
        (Status(500, body={"error": {"message": "upstream exploded"}}), ["500"]),
        (Reply("partial", drop_after=1), ["connection"]),
    ],
    ids=["unauthorized", "server-error", "dropped"],
)
def test_errors_show_in_one_line_and_keep_the_input(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer, script: Any, words: list[str]
) -> None:
    server.enqueue(script)
    panel = open_panel()
    send(panel, "a question worth keeping")
    panel.wait(10)
    message = status(panel)
    assert "\n" not in message and "Traceback" not in message
    for word in words:
        assert word.lower() in message.lower(), message
    assert panel.input.value == "a question worth keeping"
    assert "a question worth keeping" in transcript(panel) and "⚠" in transcript(panel)
    assert len(panel.session.history) == 0
    assert not panel.send_button.disabled


def test_no_key_and_no_server_are_errors_too(
    open_panel: Callable[..., ChatPanel], unused_port: int
) -> None:
    keyless = ChatSession(fast_settings("https://api.example.com/v1", max_retries=0))
    panel = open_panel(session=keyless)
    send(panel, "hello?")
    panel.wait(10)
    assert "key" in status(panel).lower() and panel.input.value == "hello?"
    offline = ChatSession(fast_settings(f"http://127.0.0.1:{unused_port}/v1", max_retries=0))
    panel = open_panel(session=offline)
    send(panel, "anyone there?")
    panel.wait(10)
    assert "connect" in status(panel).lower() and panel.input.value == "anyone there?"


def test_an_empty_message_is_not_sent(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    panel = open_panel()
    send(panel, "   \n ")
    assert "Type a message" in status(panel)
    assert server.chat_requests == []


# -- the model picker -----------------------------------------------------------------------


def test_the_model_picker_lists_the_servers_models_and_sets_the_model(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.models = ["alpha-1", "beta-2", "test-model"]
    panel = open_panel(load_models=True)
    wait_for(lambda: bool(panel.model_picker.options), "the model list")
    assert list(panel.model_picker.options) == ["alpha-1", "beta-2", "test-model"]
    assert panel.model_picker.value == "test-model"
    panel.model_picker.value = "beta-2"
    assert panel.session.settings.model == "beta-2"
    server.enqueue(Reply("ok"))
    send(panel, "which model?")
    panel.wait(10)
    assert server.chat_requests[-1].json["model"] == "beta-2"


def test_without_a_model_list_the_picker_takes_free_text(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.models = None  # /models answers 404
    panel = open_panel(load_models=True)
    wait_for(lambda: "lists no models" in panel.model_picker.placeholder, "the fallback")
    assert list(panel.model_picker.options) == []
    panel.model_picker.value = "my-local-model"
    assert panel.session.settings.model == "my-local-model"


# -- code blocks ----------------------------------------------------------------------------


def test_code_blocks_get_copy_controls_with_the_code_as_data(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    hostile = 'print("</script><script>alert(1)</script>")\nx = "\\u2028 é"\n'
    text = f"Try:\n\n```python\n{hostile}```\n\nor\n\n```sql\nselect 1;\n```\n"
    server.enqueue(Reply(text))
    panel = open_panel()
    send(panel, "code please")
    panel.wait(10)
    buttons = [
        w for w in _walk(panel.transcript) if "nbchat-copy-code" in getattr(w, "_dom_classes", ())
    ]
    assert [b.description for b in buttons] == ["Copy python 1", "Copy sql 2"]
    buttons[0].click()
    (output,) = panel.code_actions.outputs
    script = output["data"]["application/javascript"]
    literal = script[script.index("(") + 1 : script.index(").catch")]
    assert json.loads(literal) == hostile  # the code is a string in the script, nothing more
    assert "</script>" not in script and script.isascii()
    assert "Copied code 1" in status(panel) and "%chat code 1" in status(panel)


def _walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


# -- secrets --------------------------------------------------------------------------------


def test_the_key_is_in_no_widget_state(server: LoopbackServer) -> None:
    secret = "sk-panel-secret-0123456789"
    server.require_key = secret
    keyed = ChatSession(fast_settings(server.base_url, max_retries=0).with_key(secret))
    panel = ChatPanel(keyed, namespace={}, load_models=True)
    try:
        wait_for(lambda: bool(panel.model_picker.options), "the model list")
        server.enqueue(Reply("fine"))
        send(panel, "hello")
        panel.wait(10)
        states = json.dumps([w.get_state() for w in _walk(panel)], default=str)
        assert "fine" in states and secret not in states
        assert secret not in repr(panel)
    finally:
        panel.close()


# -- context --------------------------------------------------------------------------------


def test_picked_dataframes_go_with_the_next_message_and_show_folded(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import numpy as np
    import pandas as pd

    namespace: dict[str, Any] = {
        "sales": pd.DataFrame({"city": ["Paris", "Lyon"] * 50, "revenue": range(100)}),
        "_hidden": pd.DataFrame({"a": [1]}),
        "not_a_frame": [1, 2, 3],
    }
    panel = open_panel(namespace=namespace)
    assert [name for _, name in panel.context_picker.options] == ["sales"]
    namespace["later"] = pd.Series([1.5, 2.5], name="later")
    panel.refresh_button.click()
    assert [name for _, name in panel.context_picker.options] == ["later", "sales"]
    panel.context_picker.value = ("sales",)
    server.enqueue(Reply("Revenue grows."), Reply("Again."))
    send(panel, "How does revenue vary by city?")
    panel.wait(10)
    sent = server.chat_requests[-1].json["messages"][-1]["content"]
    assert sent.startswith('How does revenue vary by city?\n\n<dataframe name="sales"')
    assert "| revenue |" in sent and sent.endswith("</dataframe>")
    turn = panel.session.history.last()
    assert turn is not None and turn.prompt == sent  # the history keeps what was sent
    assert panel.context_picker.value == ()  # attached once, to that message
    shown = " ".join(html_values(panel.transcript))
    assert "<details" in shown and "attached: sales · pandas DataFrame · 100 × 2" in shown
    send(panel, "And without the frame?")
    panel.wait(10)
    assert "<dataframe" not in server.chat_requests[-1].json["messages"][-1]["content"]
    # An array folds like a frame, whatever its summary's tag is called.
    namespace["grid"] = np.arange(12.0).reshape(3, 4)
    panel.refresh_context()
    panel.context_picker.value = ("grid",)
    server.enqueue(Reply("A grid."))
    send(panel, "What is in the grid?")
    panel.wait(10)
    assert "<array" in server.chat_requests[-1].json["messages"][-1]["content"]
    last_turn = turn_views(panel)[-1]
    you = " ".join(html_values(last_turn.children[0]))
    assert "attached: grid · numpy ndarray" in you
    visible = re.sub(r"<details.*?</details>", "", you, flags=re.DOTALL)
    assert "<array" not in html.unescape(visible)  # the summary is folded away


def test_a_picked_frame_that_is_gone_is_a_one_line_error(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import pandas as pd

    namespace: dict[str, Any] = {"sales": pd.DataFrame({"a": [1, 2]})}
    panel = open_panel(namespace=namespace)
    panel.context_picker.value = ("sales",)
    del namespace["sales"]
    send(panel, "still there?")
    assert "'sales' is not defined" in status(panel)
    assert panel.input.value == "still there?" and server.chat_requests == []


def test_a_failed_message_gets_back_its_text_and_its_frames(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import pandas as pd

    panel = open_panel(namespace={"sales": pd.DataFrame({"a": [1, 2]})})
    panel.context_picker.value = ("sales",)
    server.enqueue(Status(503, delay=0.5))  # still asking when the picker is looked at
    send(panel, "about sales")
    assert panel.context_picker.value == ()  # taken with the message...
    panel.wait(10)
    assert panel.input.value == "about sales"  # ...and given back when it failed
    assert panel.context_picker.value == ("sales",)


def test_the_model_picker_follows_chat_model(
    open_panel: Callable[..., ChatPanel], session: ChatSession
) -> None:
    from dataclasses import replace

    panel = open_panel()
    session.settings = replace(session.settings, model="changed-elsewhere")
    assert panel.model_picker.value == "changed-elsewhere"


def test_the_panel_is_a_widget_that_nests_like_one(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import ipywidgets as widgets

    panel = open_panel()
    box = widgets.VBox([widgets.HTML(value="above"), panel])
    assert box.children[1] is panel
    assert isinstance(panel, widgets.VBox)
    data = panel._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id


# -- the message box ------------------------------------------------------------------------


def test_enter_in_the_box_sends_what_was_typed(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply("Sent by the key."))
    panel = open_panel()
    assert "Enter sends" in panel.input.placeholder
    # What the page sends as it is typed, then on Enter: custom messages with the text.
    panel.input._handle_custom_msg({"event": "input", "value": "typed, not yet f"}, [])
    assert panel.input.value == "typed, not yet f" and server.chat_requests == []
    panel.input._handle_custom_msg({"event": "submit", "value": "typed, fully"}, [])
    panel.wait(10)
    assert server.chat_requests[-1].json["messages"][-1]["content"] == "typed, fully"
    assert panel.input.value == "" and "Sent by the key." in transcript(panel)
    panel.input._handle_custom_msg({"event": "something else"}, [])
    assert len(server.chat_requests) == 1


def test_each_message_is_a_turn_of_its_own(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply("One."), Reply("Two."))
    panel = open_panel()
    for text in ("first", "second"):
        send(panel, text)
        panel.wait(10)
    turns = panel.session.history.turns
    assert [t.prompt for t in turns] == ["first", "second"]
    ids = [t.cell_id or "" for t in turns]
    assert all(i.startswith("panel-") for i in ids) and len(set(ids)) == 2


# -- regenerate and send again --------------------------------------------------------------


def again_button(panel: ChatPanel) -> Any:
    """The Regenerate / Send again button, when the transcript shows it."""
    found = [w for w in _walk(panel.transcript) if w is panel.again_button]
    return found[0] if found else None


def test_regenerate_replaces_the_latest_reply_in_place(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply("Answer one."), Reply("Answer two, the old one."))
    server.enqueue(Reply(LONG, chunk_size=8, delay=0.004))
    panel = open_panel()
    send(panel, "question one")
    panel.wait(10)
    send(panel, "question two")
    panel.wait(10)
    button = again_button(panel)
    assert button is not None and button.description == "Regenerate"
    button.click()
    wait_for(lambda: "word40 " in transcript(panel), "the new reply streaming")
    streaming = transcript(panel)
    assert again_button(panel) is None  # nothing to click while it streams
    assert "Answer two, the old one." not in streaming  # streams in the old one's place...
    assert streaming.count("question two") == 1 and len(turn_views(panel)) == 2
    panel.wait(10)
    final = transcript(panel)
    assert final.count("question two") == 1 and "word299" in final
    assert final.index("Answer one.") < final.index("question two") < final.index("word299")
    assert "Answer two, the old one." not in final
    assert [t.reply for t in panel.session.history.turns] == ["Answer one.", LONG]
    sent = server.chat_requests[-1].json["messages"]  # only the turns before it
    assert [m["content"] for m in sent] == ["question one", "Answer one.", "question two"]
    assert again_button(panel) is not None


def test_regenerate_resends_the_attached_summaries_and_keeps_their_fold(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import pandas as pd

    panel = open_panel(namespace={"sales": pd.DataFrame({"a": [1, 2]})})
    panel.context_picker.value = ("sales",)
    server.enqueue(Reply("First."), Reply("Second."))
    send(panel, "about sales")
    panel.wait(10)
    assert panel.regenerate()
    panel.wait(10)
    first, second = (r.json["messages"][-1]["content"] for r in server.chat_requests)
    assert second == first and '<dataframe name="sales"' in first
    (turn,) = panel.session.history.turns
    assert turn.reply == "Second." and [a.label for a in turn.attachments] == [
        a.label for a in panel.session.history.turns[0].attachments
    ]
    assert "attached: sales" in " ".join(html_values(panel.transcript))


def test_regenerate_from_the_panel_replaces_a_chat_cells_turn(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    for shell in make_shell(rich=True):
        shell.run("import nbchat\npanel = nbchat.ChatPanel(load_models=False)")
        panel: ChatPanel = shell.ip.user_ns["panel"]
        try:
            server.enqueue(Reply("From the cell."), Reply("Regenerated."), Reply("Next."))
            assert shell.run("%%chat\nasked in a cell", cell_id="cell-1").error_in_exec is None
            assert panel.again_button.description == "Regenerate"
            panel.again_button.click()
            panel.wait(10)
            (turn,) = panel.session.history.turns
            assert (turn.cell_id, turn.reply) == ("cell-1", "Regenerated.")
            shell.run("%%chat\nasked in a second cell", cell_id="cell-2")
            sent = [m["content"] for m in server.chat_requests[-1].json["messages"]]
            assert sent == ["asked in a cell", "Regenerated.", "asked in a second cell"]
        finally:
            panel.close()


def test_regenerate_needs_a_turn_it_can_replace(
    open_panel: Callable[..., ChatPanel], session: ChatSession, server: LoopbackServer
) -> None:
    panel = open_panel()
    assert again_button(panel) is None
    assert not panel.regenerate() and "Nothing to regenerate" in status(panel)
    server.enqueue(Reply("Appended, without a cell."))
    session.ask("from a terminal")  # no cell id: a new reply would append, not replace
    assert again_button(panel) is None
    assert not panel.again() and "no turn id" in status(panel)
    assert len(server.chat_requests) == 1


def test_send_again_resends_a_failed_message_once(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    import pandas as pd

    panel = open_panel(namespace={"sales": pd.DataFrame({"a": [1, 2]})})
    panel.context_picker.value = ("sales",)
    server.enqueue(Status(503), Reply("Worked the second time."))
    send(panel, "about sales")
    panel.wait(10)
    assert "503" in status(panel) and panel.input.value == "about sales"
    button = again_button(panel)
    assert button is not None and button.description == "Send again"
    button.click()
    assert panel.input.value == "" and panel.context_picker.value == ()  # it went, once
    panel.wait(10)
    first, second = (r.json["messages"] for r in server.chat_requests)
    assert second == first and '<dataframe name="sales"' in first[-1]["content"]
    (turn,) = panel.session.history.turns
    assert turn.reply == "Worked the second time."
    assert "⚠" not in transcript(panel) and transcript(panel).count("about sales") == 1
    assert again_button(panel).description == "Regenerate"


def test_a_message_stopped_before_its_reply_began_can_be_sent_again(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, stall_after=1, stall_seconds=60), Reply("Now it answers."))
    panel = open_panel()
    send(panel, "hello?")
    wait_for(lambda: panel.live is not None and panel.live.reply.chunks == 1, "the role chunk")
    panel.stop()
    panel.wait(10)
    assert panel.session.history.turns == ()
    assert "before the reply began" in status(panel) and panel.input.value == "hello?"
    assert "hello?" in transcript(panel)  # the message is still on screen
    assert again_button(panel).description == "Send again"
    assert panel.again()
    panel.wait(10)
    assert [t.reply for t in panel.session.history.turns] == ["Now it answers."]


def test_send_again_after_stop_replaces_the_partial_reply(
    open_panel: Callable[..., ChatPanel], server: LoopbackServer
) -> None:
    server.enqueue(Reply(LONG, chunk_size=8, stall_after=20, stall_seconds=60), Reply("Whole."))
    panel = open_panel()
    send(panel, "go slowly")
    wait_for(lambda: panel.live is not None and panel.live.reply.chunks >= 19, "the stall")
    panel.stop()
    panel.wait(10)
    (stopped,) = panel.session.history.turns
    assert stopped.status == "interrupted"
    assert again_button(panel).description == "Send again"
    panel.again_button.click()
    panel.wait(10)
    (turn,) = panel.session.history.turns
    assert (turn.status, turn.reply, turn.cell_id) == ("complete", "Whole.", stopped.cell_id)
    assert "interrupted" not in transcript(panel)
    assert [m["role"] for m in server.chat_requests[-1].json["messages"]] == ["user"]


def test_side_shows_the_panel_through_a_sidecar_closed_with_it(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sidecar import Sidecar

    monkeypatch.setenv("NBCHAT_BASE_URL", server.base_url)
    monkeypatch.setenv("NBCHAT_MODEL", "test-model")
    made: list[Any] = []
    enter = Sidecar.__enter__
    monkeypatch.setattr(Sidecar, "__enter__", lambda self: made.append(self) or enter(self))
    for shell in make_shell(rich=True):
        assert shell.run("%chat panel --side", cell_id="side-cell").success
        (side,) = made
        assert side.title == "nbchat" and side.anchor == "split-right"
        panels = shell.ip.magics_manager.registry["ChatMagics"].panels
        shown = [
            m.data["application/vnd.jupyter.widget-view+json"]["model_id"]
            for m in shell.publisher.messages
            if "application/vnd.jupyter.widget-view+json" in m.data
        ]
        assert shown == [panels["side-cell"].model_id]  # the panel, displayed inside the sidecar
        assert shell.run("%chat panel --side", cell_id="side-cell").success
        assert side.comm is None  # the first panel's sidecar went with it
