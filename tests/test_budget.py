"""The context budget, prices and the spend limit, asserted on what the loopback server got."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nbchat import views
from nbchat.budget import (
    FALLBACK_BUDGET,
    IMAGE_TOKENS,
    default_budget,
    estimate_message,
    estimate_text,
    fit,
)
from nbchat.errors import ConfigError, OverBudgetError, SpendLimitError
from nbchat.history import Turn
from nbchat.prices import Price, PriceTable, format_dollars
from nbchat.prompt import compose
from nbchat.session import ChatSession
from nbchat.testing import LoopbackServer
from nbchat.testing import Reply as Scripted

from conftest import fast_settings, one_line

SYSTEM = "You are a careful assistant for data work."


@pytest.fixture
def session(server: LoopbackServer) -> Iterator[ChatSession]:
    chat = ChatSession(fast_settings(server.base_url, max_retries=0, context_budget=4_000))
    yield chat
    chat.close()


def fill_history(session: ChatSession, turns: int) -> None:
    for number in range(1, turns + 1):
        session.history.commit(
            Turn(
                prompt=f"question {number}: " + "how do I group the sales by month? " * 5,
                reply=f"answer {number}: " + "use groupby with a monthly period. " * 5,
                model="test-model",
            )
        )


def sent(server: LoopbackServer, index: int = -1) -> list[dict[str, object]]:
    messages = server.chat_requests[index].json["messages"]
    assert isinstance(messages, list)
    return messages


# -- the budget -----------------------------------------------------------------------------


def test_a_300_turn_conversation_sends_only_the_newest_turns_that_fit(
    session: ChatSession, server: LoopbackServer
) -> None:
    fill_history(session, 300)
    session.system = SYSTEM
    server.enqueue(Scripted("By region, then."))
    reply = session.ask("and by region?")
    messages = sent(server)
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert messages[-1] == {"role": "user", "content": "and by region?"}
    history = messages[1:-1]
    kept = len(history) // 2
    assert 0 < kept < 300
    # The newest turns, in order, ending with turn 300: the oldest are the ones left out.
    numbers = [int(str(m["content"]).split(":")[0].split()[1]) for m in history]
    assert numbers == [n for n in range(301 - kept, 301) for _ in range(2)]
    estimate = 3 + sum(estimate_message(m) for m in messages)
    assert estimate <= 4_000
    one_more = session.history.before(None)[300 - kept - 1].messages()
    assert estimate + sum(estimate_message(m) for m in one_more) > 4_000  # as many as fit
    assert reply.turns_left_out == 300 - kept
    assert reply.estimated_prompt_tokens == estimate
    footer = views.footer_text(views.Footing.of_reply(reply))
    assert f"{300 - kept} earlier turns left out" in footer


def test_build_request_is_where_turns_are_left_out(
    session: ChatSession, server: LoopbackServer
) -> None:
    fill_history(session, 300)
    request = session.build_request("and by region?")
    server.enqueue(Scripted("By region, then."))
    session.ask("and by region?")
    assert sent(server) == request.messages
    assert request.turns_left_out > 0
    assert "turns_left_out" not in server.chat_requests[-1].json


def test_a_conversation_that_fits_is_sent_whole(
    session: ChatSession, server: LoopbackServer
) -> None:
    fill_history(session, 3)
    server.enqueue(Scripted("More."))
    reply = session.ask("more?")
    assert len(sent(server)) == 3 * 2 + 1
    assert reply.turns_left_out == 0
    assert "left out" not in views.footer_text(views.Footing.of_reply(reply))


def test_a_big_system_prompt_and_message_are_sent_even_when_no_turn_fits(
    session: ChatSession, server: LoopbackServer
) -> None:
    fill_history(session, 10)
    session.system = "Rules. " * 1_200  # ~2,400 tokens: with the question, no turn fits
    question = "Explain this log: " + "error at line 12; " * 300  # ~1,550 tokens
    server.enqueue(Scripted("It fails at line 12."))
    reply = session.ask(question)
    messages = sent(server)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[-1]["content"] == question
    assert reply.turns_left_out == 10


def test_a_message_and_system_prompt_over_the_budget_are_one_line_and_nothing_is_sent(
    session: ChatSession, server: LoopbackServer
) -> None:
    session.system = "Rules. " * 1_000
    with pytest.raises(OverBudgetError) as caught:
        session.ask("Read this: " + "lorem ipsum dolor " * 1_000)
    line = one_line(caught.value)
    assert "The message (~5,150 tokens) and the system prompt (~2,004 tokens)" in line
    assert "context budget of 4,000 tokens" in line and "context_budget=" in line
    assert server.chat_requests == []


def test_the_budget_follows_a_cells_model_when_none_is_set(server: LoopbackServer) -> None:
    chat = ChatSession(fast_settings(server.base_url, max_retries=0))
    fill_history(chat, 300)
    small = chat.build_request("hi", model="some-local-model")
    large = chat.build_request("hi", model="claude-sonnet-4")
    assert small.turns_left_out > 0 and large.turns_left_out == 0
    assert small.estimated_prompt_tokens is not None
    assert small.estimated_prompt_tokens <= FALLBACK_BUDGET


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini", "gpt-4o"),
        ("openai/gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-nano", "gpt-4.1"),
        ("gpt-5-mini", "gpt-5"),
        ("o3-mini", "o-series"),
        ("openai/o1", "o-series"),
        ("gpt-4", "gpt-4"),
        ("gpt-3.5-turbo", "gpt-3.5"),
        ("anthropic/claude-3-5-sonnet-latest", "claude"),
        ("gemini-2.5-pro", "gemini"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama"),
        ("qwen2.5-coder:7b", "qwen"),
        ("mistral-large-latest", "mistral"),
        ("deepseek-chat", "deepseek"),
        ("my-own-model", None),
        ("phi-3-mini", None),
    ],
)
def test_default_budgets_come_from_the_model_family(model: str, family: str | None) -> None:
    budget, found = default_budget(model)
    assert found == family
    assert (budget == FALLBACK_BUDGET) == (family is None)


def test_the_estimate_errs_high() -> None:
    prose = "The quick brown fox jumps over the lazy dog. " * 100
    assert estimate_text(prose) >= len(prose) / 4  # about 4 characters a token for English
    assert estimate_text("数据分析" * 100) == 400  # a token per character beyond ASCII
    assert estimate_text("") == 0
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    message = {"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}
    assert estimate_message(message) == 4 + estimate_text("what is this?") + IMAGE_TOKENS


_turn = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant"]), "content": st.text(max_size=400)}
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    turns=st.lists(_turn, max_size=40),
    system=st.text(max_size=300),
    current=st.text(max_size=600),
    budget=st.integers(256, 5_000),
)
def test_no_budget_is_ever_exceeded(
    turns: list[list[dict[str, object]]], system: str, current: str, budget: int
) -> None:
    system_messages = [{"role": "system", "content": system}] if system else []
    message = {"role": "user", "content": current}
    try:
        fitted = fit(system_messages, turns, message, budget)
    except OverBudgetError:
        assert 3 + sum(estimate_message(m) for m in [*system_messages, message]) > budget
        return
    assert fitted.estimated_tokens == 3 + sum(estimate_message(m) for m in fitted.messages)
    assert fitted.estimated_tokens <= budget
    assert fitted.messages[: len(system_messages)] == system_messages
    assert fitted.messages[-1] is message
    kept = turns[fitted.turns_left_out :]
    assert fitted.messages[len(system_messages) : -1] == [m for t in kept for m in t]


# -- what the user sees of cuts -------------------------------------------------------------


def test_a_cut_value_and_a_long_paste_are_noted_for_the_user() -> None:
    prompt = compose("Summarize {big}", {"big": "x" * 324_000})
    (note,) = prompt.notes
    assert (note.name, note.sent, note.total, note.cut) == ("big", 100_000, 324_000, True)
    assert views.size_note_text(note).startswith("{big} was cut to 100,000 of 324,000 characters")
    assert "was cut to 100,000 of 324,000" in views.prompt_html(prompt)
    pasted = compose("Why does this fail?\n" + "Traceback line\n" * 10_000, {})
    (paste,) = pasted.notes
    assert paste.name is None and not paste.cut and paste.total > 150_000
    assert f"~{paste.tokens:,} tokens sent" in views.size_note_text(paste)
    long_repr = compose("look at {items}", {"items": [str(n) * 50 for n in range(200)]})
    assert [n.cut for n in long_repr.notes] == [True]
    assert compose("a short question about {x}", {"x": 3}).notes == ()


# -- prices and the spend limit -------------------------------------------------------------


def write_prices(path: Path, prices: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prices), "utf-8")
    return path


USAGE = {
    "prompt_tokens": 200_000,
    "completion_tokens": 50_000,
    "total_tokens": 250_000,
    "prompt_tokens_details": {"cached_tokens": 100_000},
}


def test_a_priced_reply_shows_its_cost_in_the_footer(
    server: LoopbackServer, tmp_path: Path
) -> None:
    prices = write_prices(
        tmp_path / "prices.json",
        {
            "test-": {"input": 1, "output": 1},
            "test-model": {"input": 2, "cached_input": 0.5, "output": 8},
        },
    )
    chat = ChatSession(fast_settings(server.base_url, prices=str(prices)))
    server.enqueue(Scripted("ok", usage=USAGE, include_usage_chunk=True))
    reply = chat.ask("hi")
    # 100k uncached at $2, 100k cached at $0.50, 50k out at $8 per million: $0.65.
    assert reply.cost == pytest.approx(0.65)
    assert "$0.6500" in views.footer_text(views.Footing.of_reply(reply))
    assert chat.spending.by_model == {"test-model": pytest.approx(0.65)}


def test_a_reply_without_usage_is_priced_from_the_estimate(
    server: LoopbackServer, tmp_path: Path
) -> None:
    prices = write_prices(tmp_path / "p.json", {"test-model": {"input": 1000, "output": 1000}})
    chat = ChatSession(fast_settings(server.base_url, prices=str(prices), include_usage=False))
    server.enqueue(Scripted("four", include_usage_chunk=False))
    reply = chat.ask("hi")
    footer = views.footer_text(views.Footing.of_reply(reply))
    assert reply.result.usage is None and reply.cost_estimated
    assert f"~{reply.estimated_prompt_tokens:,} tokens sent" in footer
    assert "~$0.0" in footer


def test_the_spend_limit_refuses_the_next_request_with_one_line(
    server: LoopbackServer, tmp_path: Path
) -> None:
    prices = write_prices(tmp_path / "prices.json", {"test-model": {"input": 2, "output": 8}})
    chat = ChatSession(fast_settings(server.base_url, prices=str(prices), spend_limit=0.5))
    server.enqueue(Scripted("ok", usage=USAGE, include_usage_chunk=True))
    chat.ask("first")  # $0.80: over the limit once spent
    with pytest.raises(SpendLimitError) as caught:
        chat.ask("second")
    line = one_line(caught.value)
    assert "spent $0.8000, its spend limit is $0.5000; nothing was sent" in line
    assert "%chat config spend_limit=1" in line
    assert len(server.chat_requests) == 1
    assert len(chat.history) == 1


def test_a_spend_limit_on_a_model_without_a_price_refuses(
    server: LoopbackServer, tmp_path: Path
) -> None:
    prices = write_prices(tmp_path / "prices.json", {"gpt-4o": {"input": 2.5, "output": 10}})
    chat = ChatSession(fast_settings(server.base_url, prices=str(prices), spend_limit=1))
    with pytest.raises(SpendLimitError) as caught:
        chat.ask("hi")
    assert "has no price for 'test-model'" in one_line(caught.value)
    assert server.chat_requests == []


def test_prices_match_exactly_then_by_the_longest_prefix() -> None:
    table = PriceTable(
        {
            "gpt-4o": Price(2.5, 10),
            "gpt-4o-mini": Price(0.15, 0.6),
            "claude-": Price(3, 15),
        }
    )
    assert table.price_of("gpt-4o") == Price(2.5, 10)
    assert table.price_of("gpt-4o-mini-2024-07-18") == Price(0.15, 0.6)
    assert table.price_of("gpt-4o-2024-08-06") == Price(2.5, 10)
    assert table.price_of("claude-opus-4") == Price(3, 15)
    assert table.price_of("gpt-4") is None
    assert format_dollars(0.00001) == "<$0.0001" and format_dollars(12.5) == "$12.50"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"gpt-4o": 2.5}', "'gpt-4o' must map to an object"),
        ('{"gpt-4o": {"input": 2.5}}', "'gpt-4o' has no 'output' price"),
        ('{"gpt-4o": {"input": -1, "output": 1}}', "'gpt-4o' input must be dollars"),
        ('{"gpt-4o": {"input": "2", "output": 1}}', "a number ≥ 0"),
        ('{"gpt-4o": {"input": 1, "output": 1, "outptu": 2}}', "unknown field 'outptu'"),
    ],
)
def test_a_bad_price_file_is_one_line_naming_the_problem(
    server: LoopbackServer, tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "prices.json"
    path.write_text(text, "utf-8")
    chat = ChatSession(fast_settings(server.base_url, prices=str(path)))
    with pytest.raises(ConfigError) as caught:
        chat.ask("hi")
    line = one_line(caught.value)
    assert str(path) in line and words in line
    assert server.chat_requests == []


def test_the_default_price_file_is_optional_and_read_again_when_edited(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NBCHAT_HOME", str(tmp_path / "home"))
    chat = ChatSession(fast_settings(server.base_url))
    server.enqueue(Scripted("ok", usage=USAGE, include_usage_chunk=True))
    assert chat.ask("no file yet").cost is None
    write_prices(tmp_path / "home" / "prices.json", {"test-model": {"input": 1, "output": 1}})
    server.enqueue(Scripted("ok", usage=USAGE, include_usage_chunk=True))
    assert chat.ask("now priced").cost == pytest.approx(0.25)


# -- the panel ------------------------------------------------------------------------------


def test_the_panels_footer_and_status_say_how_many_turns_were_left_out(
    session: ChatSession, server: LoopbackServer
) -> None:
    import html
    import re

    from nbchat.panel import ChatPanel

    fill_history(session, 300)
    server.enqueue(Scripted("By region, then."))
    panel = ChatPanel(session, namespace={}, load_models=False)
    try:
        panel.input.value = "and by region?"
        panel.send_button.click()
        panel.wait(10)
        left_out = session.last_reply.turns_left_out if session.last_reply else 0
        assert left_out > 250
        assert f"{left_out} earlier turns left out" in panel.status_text
        shown = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(html_values(panel.transcript))))
        assert f"{left_out} earlier turns left out" in shown
    finally:
        panel.close()


def html_values(widget: object) -> list[str]:
    """Every HTML string under a widget."""
    value = getattr(widget, "value", None)
    values = [value] if isinstance(value, str) else []
    for child in getattr(widget, "children", ()):
        values.extend(html_values(child))
    return values
