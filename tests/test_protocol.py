"""ChatRequest (payload and validation) and StreamAccumulator (unit cases, then the corpus)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from nbchat.accumulator import StreamAccumulator, completion_result
from nbchat.errors import NbChatError, RequestValidationError
from nbchat.protocol import ChatRequest, ChatResult, Choice, ToolCall, Usage

from corpus import capture, capture_names, decode, expected

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def request(**fields: Any) -> ChatRequest:
    return ChatRequest(model="gpt-4o-mini", messages=MESSAGES, **fields)


# --- ChatRequest: the payload ------------------------------------------------------------------


def test_unset_fields_are_not_sent() -> None:
    assert request().to_payload() == {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}


def test_every_field_reaches_the_payload() -> None:
    req = request(
        temperature=0.7,
        top_p=0.9,
        n=2,
        stream=False,
        stop=["\n\n", "END"],
        max_tokens=256,
        presence_penalty=-0.5,
        frequency_penalty=1.5,
        logit_bias={50256: -100, "1734": 12.5},
        user="user-42",
        extra={"seed": 7, "response_format": {"type": "json_object"}},
    )
    req.validate()
    payload = req.to_payload()
    assert payload == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "temperature": 0.7,
        "top_p": 0.9,
        "n": 2,
        "stream": False,
        "stop": ["\n\n", "END"],
        "max_tokens": 256,
        "presence_penalty": -0.5,
        "frequency_penalty": 1.5,
        "logit_bias": {"50256": -100, "1734": 12.5},
        "user": "user-42",
        "seed": 7,
        "response_format": {"type": "json_object"},
    }
    assert list(payload)[-2:] == ["seed", "response_format"]  # extras come last
    assert json.loads(json.dumps(payload)) == payload


def test_logit_bias_int_keys_become_str_keys_without_touching_the_request() -> None:
    req = request(logit_bias={50256: -100, 11: 5})
    assert req.to_payload()["logit_bias"] == {"50256": -100, "11": 5}
    assert req.logit_bias == {50256: -100, 11: 5}


def test_single_stop_string_is_sent_as_is() -> None:
    assert request(stop="###").to_payload()["stop"] == "###"


def test_build_sorts_named_fields_from_extras() -> None:
    params = {
        "temperature": 0.2,
        "max_tokens": 10,
        "seed": 1,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
        "logit_bias": {7: 1},
    }
    req = ChatRequest.build("m", MESSAGES, params)
    assert (req.temperature, req.max_tokens, req.logit_bias) == (0.2, 10, {7: 1})
    assert req.extra == {
        "seed": 1,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
    }
    assert req.to_payload() == {
        "model": "m",
        "messages": MESSAGES,
        "temperature": 0.2,
        "stream": True,
        "max_tokens": 10,
        "logit_bias": {"7": 1},
        "seed": 1,
        "stream_options": {"include_usage": True},
        "reasoning_effort": "low",
    }


def test_build_without_params() -> None:
    assert ChatRequest.build("m", MESSAGES) == ChatRequest("m", MESSAGES)
    assert ChatRequest.build("m", MESSAGES, {}).extra == {}


def test_build_validates() -> None:
    with pytest.raises(RequestValidationError, match="temperature"):
        ChatRequest.build("m", MESSAGES, {"temperature": 3})


@pytest.mark.parametrize("name", ["model", "messages"])
def test_build_refuses_model_or_messages_among_params(name: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.build("m", MESSAGES, {name: "x"})
    assert caught.value.field == name


def test_build_refuses_a_non_mapping_logit_bias_by_name() -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest.build("m", MESSAGES, {"logit_bias": 5})
    assert caught.value.field == "logit_bias"


# --- ChatRequest: validation -------------------------------------------------------------------

NAN = math.nan

REFUSED = [
    # (fields, the field named, words the message must contain)
    ({"temperature": -0.01}, "temperature", ["0 to 2"]),
    ({"temperature": 2.01}, "temperature", ["0 to 2"]),
    ({"temperature": math.inf}, "temperature", ["0 to 2"]),
    ({"temperature": "1"}, "temperature", ["0 to 2"]),
    ({"top_p": 1.5}, "top_p", ["0 to 1"]),
    ({"top_p": -0.1}, "top_p", ["0 to 1"]),
    ({"n": 0}, "n", ["≥ 1"]),
    ({"n": 2.0}, "n", ["≥ 1"]),
    ({"max_tokens": 0}, "max_tokens", ["≥ 1"]),
    ({"max_tokens": -5}, "max_tokens", ["≥ 1"]),
    ({"max_tokens": "10"}, "max_tokens", ["≥ 1"]),
    ({"presence_penalty": -2.5}, "presence_penalty", ["-2 to 2"]),
    ({"presence_penalty": 2.001}, "presence_penalty", ["-2 to 2"]),
    ({"frequency_penalty": 3}, "frequency_penalty", ["-2 to 2"]),
    ({"frequency_penalty": -2.5}, "frequency_penalty", ["-2 to 2"]),
    # bools are ints in Python, never numbers here
    ({"temperature": True}, "temperature", ["0 to 2"]),
    ({"top_p": False}, "top_p", ["0 to 1"]),
    ({"n": True}, "n", ["≥ 1"]),
    ({"max_tokens": True}, "max_tokens", ["≥ 1"]),
    ({"presence_penalty": False}, "presence_penalty", ["-2 to 2"]),
    ({"frequency_penalty": True}, "frequency_penalty", ["-2 to 2"]),
    ({"logit_bias": {1: True}}, "logit_bias[1]", ["-100 to 100"]),
    # NaN compares false with everything, so it must be caught on its own
    ({"temperature": NAN}, "temperature", ["0 to 2"]),
    ({"top_p": NAN}, "top_p", ["0 to 1"]),
    ({"presence_penalty": NAN}, "presence_penalty", ["-2 to 2"]),
    ({"frequency_penalty": NAN}, "frequency_penalty", ["-2 to 2"]),
    ({"logit_bias": {1: NAN}}, "logit_bias[1]", ["-100 to 100"]),
    # stop: a non-empty string or 1..4 of them
    ({"stop": ""}, "stop", ["non-empty string"]),
    ({"stop": []}, "stop", ["1 to 4"]),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", ["1 to 4", "got 5"]),
    ({"stop": ["a", ""]}, "stop", ["non-empty string"]),
    ({"stop": ["a", 1]}, "stop", ["non-empty string"]),
    ({"stop": 5}, "stop", ["non-empty string"]),
    ({"stop": ("a",)}, "stop", ["non-empty string"]),
    # logit_bias: token id -> -100..100
    ({"logit_bias": {1: 100.5}}, "logit_bias[1]", ["-100 to 100"]),
    ({"logit_bias": {"2": -101}}, "logit_bias[2]", ["-100 to 100"]),
    ({"logit_bias": {3: "5"}}, "logit_bias[3]", ["-100 to 100"]),
    ({"logit_bias": {"abc": 1}}, "logit_bias", ["token ids", "'abc'"]),
    ({"logit_bias": {"-1": 1}}, "logit_bias", ["token ids"]),
    ({"logit_bias": {1.5: 1}}, "logit_bias", ["token ids"]),
    ({"logit_bias": {"": 1}}, "logit_bias", ["token ids"]),
    ({"logit_bias": {" 5": 1}}, "logit_bias", ["token ids"]),
    ({"logit_bias": {True: 1}}, "logit_bias", ["token ids"]),
    ({"logit_bias": [(1, 1)]}, "logit_bias", ["token ids"]),
    # the rest
    ({"stream": "yes"}, "stream", ["true or false"]),
    ({"user": 42}, "user", ["string"]),
    ({"extra": {"temperature": 1}}, "temperature", ["named request field"]),
    ({"extra": {"seed": 1, "model": "x"}}, "model", ["named request field"]),
    ({"extra": {"messages": []}}, "messages", ["named request field"]),
]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    REFUSED,
    ids=[f"{f}={next(iter(v.values()))!r}" for v, f, _ in REFUSED],
)
def test_out_of_range_field_is_refused_by_name(
    fields: dict[str, Any], field: str, words: list[str]
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        request(**fields).validate()
    error = caught.value
    assert error.field == field
    message = str(error)
    assert message.startswith(f"{field}: ")
    for word in words:
        assert word in message


@pytest.mark.parametrize("model", ["", "   ", None, 5])
def test_empty_model_is_refused(model: Any) -> None:
    with pytest.raises(RequestValidationError, match=r"^model: .*model id") as caught:
        ChatRequest(model, MESSAGES).validate()
    assert caught.value.field == "model"


@pytest.mark.parametrize("messages", [[], None, "Hi", ({"role": "user"},)])
def test_empty_or_non_list_messages_are_refused(messages: Any) -> None:
    with pytest.raises(RequestValidationError, match="non-empty list") as caught:
        ChatRequest("m", messages).validate()
    assert caught.value.field == "messages"


@pytest.mark.parametrize(
    "bad",
    [{"role": "bot", "content": "x"}, {"content": "x"}, {"role": None}, "Hi", None],
)
def test_message_without_a_valid_role_is_refused_by_position(bad: Any) -> None:
    with pytest.raises(RequestValidationError) as caught:
        ChatRequest("m", [MESSAGES[0], bad]).validate()
    assert caught.value.field == "messages[1]"
    assert "assistant, developer, function, system, tool, user" in str(caught.value)


def test_validation_error_is_a_value_error_and_an_nbchat_error() -> None:
    with pytest.raises(RequestValidationError) as caught:
        request(top_p=2).validate()
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, NbChatError)


ACCEPTED = [
    {"temperature": 0},
    {"temperature": 2},
    {"temperature": 2.0},
    {"top_p": 0},
    {"top_p": 1},
    {"n": 1},
    {"max_tokens": 1},
    {"presence_penalty": -2},
    {"presence_penalty": 2},
    {"frequency_penalty": -2.0},
    {"frequency_penalty": 2},
    {"logit_bias": {0: -100, 1: 100, "2": 0, 3: 0.5}},
    {"logit_bias": {}},
    {"stop": "x"},
    {"stop": ["a"]},
    {"stop": ["a", "b", "c", "d"]},
    {"stream": False},
    {"user": ""},
    {"extra": {"seed": 1, "temperature_unit": "K"}},
]


@pytest.mark.parametrize("fields", ACCEPTED, ids=[repr(f) for f in ACCEPTED])
def test_boundary_values_are_accepted(fields: dict[str, Any]) -> None:
    request(**fields).validate()


@pytest.mark.parametrize("role", ["system", "developer", "user", "assistant", "tool", "function"])
def test_every_known_role_is_accepted(role: str) -> None:
    ChatRequest("m", [{"role": role, "content": "x"}]).validate()


@pytest.mark.parametrize("token", ["²", "①"])
def test_logit_bias_refuses_non_ascii_digit_keys(token: str) -> None:
    with pytest.raises(RequestValidationError):
        request(logit_bias={token: 1}).validate()


# --- StreamAccumulator: unit cases -------------------------------------------------------------


def chunk(
    content: str | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    **delta: Any,
) -> dict[str, Any]:
    """A minimal chat.completion.chunk with one choice."""
    if content is not None:
        delta["content"] = content
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def accumulate(*chunks: dict[str, Any]) -> StreamAccumulator:
    accumulator = StreamAccumulator()
    for c in chunks:
        accumulator.add(c)
    return accumulator


def test_interleaved_choices_are_assembled_apart() -> None:
    accumulator = accumulate(
        chunk("", index=0, role="assistant"),
        chunk("C", index=2),
        chunk("A", index=0),
        chunk("B", index=1),
        chunk("c", index=2, finish="stop"),
        chunk("a", index=0),
        chunk("b", index=1, finish="length"),
    )
    assert accumulator.choice_indexes == [0, 1, 2]
    assert not accumulator.finished  # choice 0 has no finish_reason yet
    assert [accumulator.text(i) for i in range(3)] == ["Aa", "Bb", "Cc"]
    accumulator.add(chunk(index=0, finish="stop"))
    assert accumulator.finished
    result = accumulator.result(done=False)
    assert result.complete
    assert [(c.index, c.text, c.finish_reason) for c in result.choices] == [
        (0, "Aa", "stop"),
        (1, "Bb", "length"),
        (2, "Cc", "stop"),
    ]
    assert (result.text, result.finish_reason) == ("Aa", "stop")


def test_choice_without_index_is_choice_zero() -> None:
    accumulator = accumulate({"choices": [{"delta": {"content": "x"}}]}, chunk("y"))
    assert accumulator.choice_indexes == [0]
    assert accumulator.text() == "xy"


def test_later_null_finish_reason_does_not_reset_it() -> None:
    annotation = {  # file 27: an Azure filter annotation after the stop chunk, no delta
        "id": "",
        "model": "",
        "object": "",
        "created": 0,
        "choices": [{"index": 0, "finish_reason": None, "content_filter_results": {}}],
    }
    result = accumulate(chunk("Hello"), chunk(finish="stop"), annotation).result(done=False)
    assert result.finish_reason == "stop"
    assert result.complete
    assert (result.id, result.model) == ("chatcmpl-1", "m")


def test_usage_on_every_chunk_keeps_the_last_never_the_sum() -> None:
    accumulator = accumulate(  # vLLM (09) and Perplexity (22): cumulative usage on every chunk
        chunk("a", usage={"prompt_tokens": 46, "completion_tokens": 1, "total_tokens": 47}),
        chunk("b", usage={"prompt_tokens": 46, "completion_tokens": 2, "total_tokens": 48}),
        chunk(
            finish="stop", usage={"prompt_tokens": 46, "completion_tokens": 3, "total_tokens": 49}
        ),
        {"choices": [], "usage": {"prompt_tokens": 46, "completion_tokens": 3, "total_tokens": 49}},
    )
    usage = accumulator.result(done=True).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (46, 3, 49)


def test_null_or_empty_usage_does_not_erase_earlier_usage() -> None:
    counts = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    accumulator = accumulate(chunk("a", usage=counts), chunk("b", usage=None), chunk(usage={}))
    accumulator.add({**chunk("c"), "usage": None})
    usage = accumulator.result(done=True).usage
    assert usage is not None
    assert usage.raw == counts


def test_usage_only_chunk_with_empty_choices() -> None:
    raw = {
        "prompt_tokens": 14,
        "completion_tokens": 30,
        "total_tokens": 44,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 0},
        "cost_in_usd_ticks": 5,
    }
    accumulator = accumulate(chunk("hi", finish="stop"), {"id": "x", "choices": [], "usage": raw})
    assert accumulator.choice_indexes == [0]
    result = accumulator.result(done=True)
    assert result.usage == Usage(14, 30, 44, raw)
    assert result.usage.prompt_tokens_details == {"cached_tokens": 8}
    assert result.usage.completion_tokens_details == {"reasoning_tokens": 0}


def test_usage_counts_that_are_not_ints_are_none_but_kept_raw() -> None:
    raw = {"prompt_tokens": True, "completion_tokens": "3", "total_tokens": 3}
    usage = accumulate({"choices": [], "usage": raw}).result(done=True).usage
    assert usage == Usage(None, None, 3, raw)
    assert usage.prompt_tokens_details == {}
    assert usage.completion_tokens_details == {}


def test_no_usage_gives_none() -> None:
    assert accumulate(chunk("a")).result(done=True).usage is None


def test_chunk_without_delta_is_fine() -> None:
    result = accumulate(
        chunk("Hey"), {"choices": [{"index": 0, "finish_reason": "content_filter"}]}
    ).result(done=False)
    assert (result.text, result.finish_reason, result.complete) == ("Hey", "content_filter", True)


def test_unknown_fields_are_ignored() -> None:
    odd = {
        "id": "c",
        "model": "m",
        "obfuscation": "xyz",
        "x_groq": {"id": "req_1", "usage": {"queue_time": 0.1}},
        "citations": ["https://example.com"],
        "service_tier": "default",
        "seed": 2039908639335532000,
        "choices": [
            {
                "index": 0,
                "text": "not this",
                "logprobs": {"content": []},
                "native_finish_reason": "stop",
                "delta": {"content": "ABC", "token_id": 12, "annotations": []},
                "finish_reason": "eos",
            }
        ],
    }
    result = accumulate(odd).result(done=False)
    assert (result.text, result.finish_reason, result.usage) == ("ABC", "eos", None)


def test_metadata_comes_from_the_first_chunk_with_an_id() -> None:
    result = accumulate(
        {"id": "", "model": "", "created": 0, "choices": [], "prompt_filter_results": []},
        {**chunk("a"), "created": 17, "system_fingerprint": "fp_1"},
        {**chunk("b"), "id": "other", "created": 99, "system_fingerprint": "fp_2"},
    ).result(done=True)
    assert (result.id, result.model, result.created, result.system_fingerprint) == (
        "chatcmpl-1",
        "m",
        17,
        "fp_1",
    )


def test_reasoning_fields_go_to_reasoning() -> None:
    accumulator = accumulate(
        chunk(reasoning_content="Think "),  # DeepSeek, xAI, Qwen
        chunk(reasoning="more. "),  # Ollama, OpenRouter
        chunk([{"type": "thinking", "thinking": [{"type": "text", "text": "Done."}]}]),  # Mistral
        chunk([{"type": "thinking", "thinking": "!"}, {"type": "text", "text": "4"}]),
        chunk(" is it", finish="stop"),
    )
    assert accumulator.reasoning() == "Think more. Done.!"
    assert accumulator.text() == "4 is it"


def test_refusal_deltas_are_kept_apart_from_text() -> None:
    result = accumulate(
        chunk(None, refusal="I'm sorry"), chunk(None, refusal=", no."), chunk(finish="stop")
    ).result(done=True)
    assert (result.text, result.choices[0].refusal) == ("", "I'm sorry, no.")


def test_streamed_tool_calls_by_index() -> None:
    def call(index: int, **fields: Any) -> dict[str, Any]:
        return chunk(tool_calls=[{"index": index, **fields}])

    result = accumulate(
        call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
        call(0, function={"arguments": '{"city":'}),
        call(1, id="call_b", type="function", function={"name": "get_stock", "arguments": ""}),
        call(0, function={"arguments": '"Oslo"}'}),
        call(1, function={"arguments": "{}"}),
        chunk(finish="tool_calls"),
    ).result(done=True)
    assert result.choices[0].tool_calls == (
        ToolCall("call_a", "get_weather", '{"city":"Oslo"}'),
        ToolCall("call_b", "get_stock", "{}"),
    )


def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    first = {"id": "A", "function": {"name": "one", "arguments": '{"x": 1}'}}
    second = {"id": "B", "function": {"name": "two", "arguments": "{}"}}
    result = accumulate(
        chunk(tool_calls=[first]),
        chunk(tool_calls=[second], finish="tool_calls"),  # Mistral (20): no index, no type
    ).result(done=True)
    assert result.choices[0].tool_calls == (
        ToolCall("A", "one", '{"x": 1}'),
        ToolCall("B", "two", "{}"),
    )


def test_tool_call_fragments_without_index_or_id_continue_the_last_call() -> None:
    result = accumulate(
        chunk(tool_calls=[{"id": "A", "function": {"name": "f", "arguments": "{"}}]),
        chunk(tool_calls=[{"function": {"arguments": "}"}}]),
    ).result(done=False)
    assert result.choices[0].tool_calls == (ToolCall("A", "f", "{}"),)


def test_in_band_error_makes_the_result_incomplete() -> None:
    error = {"message": "stream failed after output", "type": "server_error"}
    result = accumulate(chunk("Hello"), {"error": error}).result(done=True)
    assert result.text == "Hello"
    assert result.errors == (error,)
    assert not result.complete


def test_error_that_is_not_an_object_is_wrapped() -> None:
    result = accumulate({"error": "boom"}).result(done=True)
    assert result.errors == ({"message": "boom"},)


def test_gateway_warnings_are_collected() -> None:
    accumulator = accumulate(
        {"choices": [], "warnings": [{"type": "UNSUITABLE_INPUT", "message": "Bad input."}]},
        {"choices": [], "warnings": [{"type": "ONLY_TYPE"}, "plain", {}, None]},
        {"choices": [], "warnings": "single"},
    )
    assert accumulator.result(done=False).warnings == ("Bad input.", "ONLY_TYPE", "plain", "single")


def test_text_and_reasoning_mid_stream() -> None:
    accumulator = StreamAccumulator()
    assert (accumulator.text(), accumulator.reasoning(), accumulator.finished) == ("", "", False)
    steps = [
        (chunk(role="assistant", reasoning_content="Hm"), "", "Hm"),
        (chunk(reasoning_content=", ok."), "", "Hm, ok."),
        (chunk("Hello"), "Hello", "Hm, ok."),
        (chunk(", 世界"), "Hello, 世界", "Hm, ok."),
    ]
    for c, text, reasoning in steps:
        accumulator.add(c)
        assert (accumulator.text(), accumulator.reasoning()) == (text, reasoning)
        assert not accumulator.finished
        assert not accumulator.result(done=False).complete
    assert accumulator.text(1) == accumulator.reasoning(7) == ""
    accumulator.add(chunk(finish="stop"))
    assert accumulator.finished
    assert accumulator.result(done=False).complete


def test_empty_result() -> None:
    result = StreamAccumulator().result(done=False)
    assert (result.choices, result.text, result.reasoning, result.finish_reason) == (
        (),
        "",
        "",
        None,
    )
    assert not result.complete
    assert StreamAccumulator().result(done=True).complete


def test_completion_result_reads_a_non_streamed_body() -> None:
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "deepseek-reasoner",
        "system_fingerprint": "fp_9",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Three.",
                    "reasoning_content": "s-t-r-a-w-b-e-r-r-y",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "count", "arguments": '{"w":"x"}'},
                        },
                        {
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "check", "arguments": "{}"},
                        },
                    ],
                },
                "logprobs": None,
                "finish_reason": "stop",
            },
            {"index": 1, "message": {"role": "assistant", "content": "3"}, "finish_reason": None},
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }
    result = completion_result(body)
    assert result == ChatResult(
        choices=(
            Choice(
                index=0,
                text="Three.",
                reasoning="s-t-r-a-w-b-e-r-r-y",
                finish_reason="stop",
                tool_calls=(
                    ToolCall("call_1", "count", '{"w":"x"}'),
                    ToolCall("call_2", "check", "{}"),
                ),
            ),
            Choice(index=1, text="3"),
        ),
        usage=Usage(5, 7, 12, body["usage"]),
        id="chatcmpl-9",
        model="deepseek-reasoner",
        created=1700000000,
        system_fingerprint="fp_9",
        complete=True,
    )
    assert (result.text, result.reasoning, result.finish_reason) == (
        "Three.",
        "s-t-r-a-w-b-e-r-r-y",
        "stop",
    )


def test_completion_result_with_reasoning_field_and_without_index() -> None:
    body = {"choices": [{"message": {"content": "hi", "reasoning": "greet"}}, {"message": {}}]}
    result = completion_result(body)
    assert [(c.index, c.text, c.reasoning) for c in result.choices] == [
        (0, "hi", "greet"),
        (1, "", ""),
    ]


def test_completion_result_keeps_id_less_tool_calls_apart() -> None:
    calls = [
        {"type": "function", "function": {"name": "a", "arguments": "{}"}},
        {"type": "function", "function": {"name": "b", "arguments": "{}"}},
    ]
    body = {"choices": [{"message": {"tool_calls": calls}, "finish_reason": "tool_calls"}]}
    assert completion_result(body).choices[0].tool_calls == (
        ToolCall(None, "a", "{}"),
        ToolCall(None, "b", "{}"),
    )


@pytest.mark.parametrize(
    "odd",
    [
        {"choices": [None]},
        {"choices": [{"index": 0, "delta": "oops"}]},
        {"choices": [{"index": 0, "delta": {}}, {"index": "1", "delta": {}}]},
    ],
    ids=["choice-null", "delta-string", "index-string"],
)
def test_odd_choices_do_not_raise(odd: dict[str, Any]) -> None:
    accumulate(odd).result(done=False)  # no exception is the behaviour under test


# --- StreamAccumulator over the corpus ---------------------------------------------------------

CAPTURES = capture_names()
INCOMPLETE = ("10_", "13_", "14_", "25_", "26_")
"""Captures with no finish_reason and no [DONE], or with an in-band error."""


def accumulate_capture(name: str) -> tuple[ChatResult, int]:
    """Decode a capture, fold its JSON chunks, and count the empty data events skipped.

    A JSON event that ``close()`` hands back is folded in too; a ``[DONE]`` there adds nothing.
    ``done`` is strict: only a dispatched ``[DONE]`` counts, so 09 and 94 (whose ``[DONE]`` only
    ``close()`` hands back) must be complete on their finish_reason alone.
    """
    events, tail, _ = decode(capture(name))
    done = any(event.data == "[DONE]" for event in events)
    if tail is not None and tail.data.startswith("{"):
        events.append(tail)
    accumulator, skipped = StreamAccumulator(), 0
    for event in events:
        if not event.data:
            skipped += 1
        elif event.data != "[DONE]":
            accumulator.add(json.loads(event.data))
    return accumulator.result(done=done), skipped


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_assembles_to_the_expected_choices(name: str) -> None:
    result, _ = accumulate_capture(name)
    choices = expected(name)["choices"]
    assert [c.index for c in result.choices] == sorted(int(i) for i in choices)
    for choice in result.choices:
        want = choices[str(choice.index)]
        assert choice.text == want["content"]
        assert choice.finish_reason == want["finish_reason"]
        assert choice.reasoning == want.get("reasoning", "")
        assert choice.refusal == want.get("refusal", "")
        assert [
            {"id": t.id, "name": t.name, "arguments": t.arguments} for t in choice.tool_calls
        ] == want.get("tool_calls", [])


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_usage_is_the_last_reported(name: str) -> None:
    result, _ = accumulate_capture(name)
    want = expected(name)["usage"]
    if want is None:
        assert result.usage is None
        return
    assert result.usage is not None
    assert dict(result.usage.raw) == want
    assert result.usage.prompt_tokens == want["prompt_tokens"]
    assert result.usage.completion_tokens == want["completion_tokens"]
    assert result.usage.total_tokens == want["total_tokens"]


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_stream_errors_and_empty_events(name: str) -> None:
    result, skipped = accumulate_capture(name)
    entry = expected(name)
    assert list(result.errors) == entry["stream_errors"]
    assert skipped == len(entry["empty_or_nonjson_data_events"])


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_completeness(name: str) -> None:
    result, _ = accumulate_capture(name)
    assert result.complete is (not name.startswith(INCOMPLETE))
    # the same rule, read off expected.json
    entry = expected(name)
    finished = bool(entry["choices"]) and all(c["finish_reason"] for c in entry["choices"].values())
    done = entry["strict_whatwg"]["done_sentinel_dispatched"]
    assert result.complete is ((done or finished) and not entry["stream_errors"])


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_warnings(name: str) -> None:
    result, _ = accumulate_capture(name)
    if name.startswith("13_"):
        assert len(result.warnings) == 1
        assert result.warnings[0].startswith("Unsuitable input detected.")
    else:
        assert result.warnings == ()
