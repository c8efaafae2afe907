"""SSEDecoder: one test per WHATWG event-stream rule, the conformance corpus, then properties
over any bytes cut anywhere, and the cap on one event's size."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from nbchat.sse import EventTooLargeError, ServerSentEvent, SSEDecoder

from corpus import (
    CAPTURE_COUNT,
    CORPUS_DIR,
    capture,
    capture_named,
    capture_names,
    decode,
    expected,
    expected_tail_data,
)


def feed_all(*reads: bytes) -> tuple[list[ServerSentEvent], ServerSentEvent | None, SSEDecoder]:
    """Feed each read in turn to one decoder, then close it."""
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for read in reads:
        events.extend(decoder.feed(read))
    return events, decoder.close(), decoder


def datas(*reads: bytes) -> list[str]:
    """The data of every dispatched event (the close() tail is not included)."""
    return [event.data for event in feed_all(*reads)[0]]


# --- line ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"], ids=["LF", "CR", "CRLF"])
def test_each_line_end_ends_lines_and_blank_lines_dispatch(eol: bytes) -> None:
    stream = b"data: a" + eol + b"data: b" + eol + eol + b"data: c" + eol + eol
    events, tail, _ = feed_all(stream)
    assert [e.data for e in events] == ["a\nb", "c"]
    assert tail is None


def test_mixed_line_ends_in_one_stream() -> None:
    assert datas(b"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n") == ["a", "b", "c", "d"]


def test_crlf_split_across_two_feeds_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\n") == [ServerSentEvent("a")]
    assert decoder.close() is None


def test_lf_of_a_split_crlf_is_not_read_as_a_blank_line() -> None:
    # Were the LF taken for a line of its own, "a" would be dispatched alone.
    assert datas(b"data: a\r", b"\ndata: b\n\n") == ["a\nb"]


def test_crlf_split_survives_an_empty_read_between_its_halves() -> None:
    assert datas(b"data: a\r", b"", b"\n", b"\n") == ["a"]


def test_cr_at_end_of_read_followed_by_crlf_is_two_line_ends() -> None:
    assert datas(b"data: a\r", b"\r\n") == ["a"]


def test_cr_at_end_of_read_followed_by_text_ends_the_line() -> None:
    assert datas(b"data: a\r", b"data: b\r\r") == ["a\nb"]


# --- the data field ----------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"data: a", b"data:a"], ids=["space", "no-space"])
def test_space_after_data_colon_is_optional(line: bytes) -> None:
    assert datas(line + b"\n\n") == ["a"]


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data:  a", " a"),
        (b"data:   a  ", "  a  "),
        (b"data:\ta", "\ta"),
        (b"data: ", ""),
        (b"data:", ""),
    ],
)
def test_only_one_leading_space_is_stripped_from_the_value(line: bytes, data: str) -> None:
    assert datas(line + b"\n\n") == [data]


def test_several_data_lines_are_joined_by_lf() -> None:
    assert datas(b"data: a\ndata:\ndata: b\n\n") == ["a\n\nb"]


def test_data_without_colon_is_an_empty_data_line() -> None:
    assert datas(b"data\n\n") == [""]
    assert datas(b"data\ndata: x\ndata\n\n") == ["\nx\n"]


def test_empty_data_line_dispatches_an_event_with_empty_data() -> None:
    events, tail, _ = feed_all(b'data: {"a":1}\n\ndata: \n\n')  # file 13's ending
    assert [e.data for e in events] == ['{"a":1}', ""]
    assert tail is None


def test_field_names_are_case_sensitive_and_exact() -> None:
    events, _, decoder = feed_all(b"Data: a\ndata : b\n\n")
    assert events == []
    assert decoder.foreign_fields == [("Data", "a"), ("data ", "b")]


# --- comments ----------------------------------------------------------------------------------


def test_comment_lines_are_counted_and_never_dispatched() -> None:
    stream = (
        b": ping - 2024-02-14 10:00:00\r\n\r\n"
        b":\n\n"
        b": OPENROUTER PROCESSING\n\n"
        b"data: a\n: between data lines\ndata: b\n\n"
        b":data: not data\n\n"
    )
    events, tail, decoder = feed_all(stream)
    assert [e.data for e in events] == ["a\nb"]
    assert tail is None
    assert decoder.comment_count == 5
    assert decoder.foreign_fields == []


# --- event, id, retry --------------------------------------------------------------------------


def test_event_field_names_only_the_next_event() -> None:
    events, _, _ = feed_all(b"event: delta\ndata: a\n\ndata: b\n\nevent\ndata: c\n\n")
    assert [(e.event, e.data) for e in events] == [
        ("delta", "a"),
        ("message", "b"),
        ("message", "c"),
    ]


def test_event_type_of_a_block_without_data_does_not_leak() -> None:
    events, _, _ = feed_all(b"event: ping\n\ndata: a\n\n")
    assert events == [ServerSentEvent("a", "message", "")]


def test_id_persists_to_later_events_until_changed() -> None:
    stream = b"data: a\n\nid: 7\ndata: b\n\ndata: c\n\nid: 8\n\ndata: d\n\nid\ndata: e\n\n"
    events, _, _ = feed_all(stream)
    assert [(e.data, e.id) for e in events] == [
        ("a", ""),
        ("b", "7"),
        ("c", "7"),
        ("d", "8"),  # an id-only block sets the id although it dispatches nothing
        ("e", ""),  # a bare "id" line resets it
    ]


def test_id_containing_nul_is_ignored() -> None:
    events, _, _ = feed_all(b"id: 1\ndata: a\n\nid: 2\x00x\ndata: b\n\n")
    assert [e.id for e in events] == ["1", "1"]


def test_retry_of_ascii_digits_sets_the_reconnection_time() -> None:
    decoder = SSEDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 3000\n\n") == []
    assert decoder.retry == 3000
    decoder.feed(b"retry:0\n\n")
    assert decoder.retry == 0


@pytest.mark.parametrize(
    "value",
    [b"12a", b"-5", b"1.5", b"", b" 5", b"5 ", b"\xc2\xb2", b"\xef\xbc\x93"],
    ids=["letter", "negative", "decimal", "empty", "two-spaces", "trailing-space", "sup2", "wide3"],
)
def test_retry_with_anything_but_ascii_digits_is_ignored(value: bytes) -> None:
    _, _, decoder = feed_all(b"retry: 1000\n\n", b"retry: " + value + b"\n\n")
    assert decoder.retry == 1000


@pytest.mark.parametrize(
    "block",
    [b"retry: 3000\n\n", b"event: ping\n\n", b"id: 5\n\n", b": c\n\n", b"\n\n\n", b"x: y\n\n"],
    ids=["retry-only", "event-only", "id-only", "comment-only", "blank-lines", "foreign-only"],
)
def test_block_with_empty_data_buffer_dispatches_nothing(block: bytes) -> None:
    events, tail, _ = feed_all(block)
    assert events == []
    assert tail is None


def test_foreign_fields_are_recorded_and_not_dispatched() -> None:
    error = b'{"code":400,"message":"too long","type":"invalid_request_error"}'
    events, _, decoder = feed_all(b"error: " + error + b"\n\ndata: [DONE]\n\nfoo\n\n")
    assert [e.data for e in events] == ["[DONE]"]
    assert decoder.foreign_fields == [("error", error.decode()), ("foo", "")]


# --- byte-order mark ---------------------------------------------------------------------------


def test_bom_at_stream_start_is_stripped() -> None:
    events, _, decoder = feed_all(b"\xef\xbb\xbfdata: a\n\n")
    assert [e.data for e in events] == ["a"]
    assert decoder.foreign_fields == []


@pytest.mark.parametrize(
    "reads",
    [
        (b"\xef", b"\xbb\xbfdata: a\n\n"),
        (b"\xef\xbb", b"\xbfdata: a\n\n"),
        (b"\xef", b"\xbb", b"\xbf", b"data: a\n\n"),
        (b"\xef\xbb\xbf", b"data: a\n\n"),
        (b"", b"\xef\xbb\xbf", b"", b"data: a\n\n"),
    ],
    ids=["1+2", "2+1", "1+1+1", "bom-alone", "empty-reads"],
)
def test_bom_split_across_reads_is_still_stripped(reads: tuple[bytes, ...]) -> None:
    events, _, decoder = feed_all(*reads)
    assert [e.data for e in events] == ["a"]
    assert decoder.foreign_fields == []


def test_bom_inside_a_value_is_data() -> None:
    assert datas(b"data: \xef\xbb\xbfa\n\n") == ["\ufeffa"]


def test_bom_after_stream_start_is_not_stripped() -> None:
    events, _, decoder = feed_all(b"data: a\n\n", b"\xef\xbb\xbfdata: b\n\n")
    assert [e.data for e in events] == ["a"]
    assert decoder.foreign_fields == [("\ufeffdata", "b")]


def test_only_one_leading_bom_is_stripped() -> None:
    events, _, decoder = feed_all(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n")
    assert events == []
    assert decoder.foreign_fields == [("\ufeffdata", "a")]


# --- end of stream -----------------------------------------------------------------------------


def test_final_event_without_blank_line_comes_from_close_not_feed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\nid: 3\nevent: last\ndata: b\ndata: c\n") == [
        ServerSentEvent("a")
    ]
    assert decoder.close() == ServerSentEvent("b\nc", "last", "3")


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r", b"\r\n"], ids=["none", "LF", "CR", "CRLF"])
def test_final_done_line_without_blank_line_comes_from_close(ending: bytes) -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\n\ndata: [DONE]" + ending) == [ServerSentEvent("x")]
    assert decoder.close() == ServerSentEvent("[DONE]")


def test_close_returns_none_after_a_cleanly_ended_stream() -> None:
    assert SSEDecoder().close() is None
    _, tail, _ = feed_all(b"data: a\n\n")
    assert tail is None
    _, tail, _ = feed_all(b"data: a\r\n\r\n: bye")
    assert tail is None


def test_close_flushes_a_truncated_character_as_replacement() -> None:
    events, tail, _ = feed_all(b"data: \xe4\xba")
    assert events == []
    assert tail == ServerSentEvent("\ufffd")


# --- UTF-8 -------------------------------------------------------------------------------------

MULTIBYTE_TEXTS = ["亚洲", "👋🏽!", "хорошо", "18°C ✅", "a\u2028b\x85c"]


def _stream_of(text: str) -> tuple[bytes, list[ServerSentEvent]]:
    stream = f"\ufeffid: 1\r\ndata: {text}\r\ndata: {text}\r\n\r\n: c\rdata:{text}\n\n"
    return stream.encode(), [
        ServerSentEvent(f"{text}\n{text}", "message", "1"),
        ServerSentEvent(text, "message", "1"),
    ]


@pytest.mark.parametrize("text", MULTIBYTE_TEXTS)
def test_text_split_into_two_reads_at_every_byte_offset_comes_out_whole(text: str) -> None:
    stream, want = _stream_of(text)
    for offset in range(len(stream) + 1):
        events, tail, decoder = feed_all(stream[:offset], stream[offset:])
        assert (events, tail, decoder.comment_count) == (want, None, 1), f"split at {offset}"


@pytest.mark.parametrize("text", MULTIBYTE_TEXTS)
def test_text_fed_one_byte_at_a_time_comes_out_whole(text: str) -> None:
    stream, want = _stream_of(text)
    events, tail, decoder = feed_all(*(stream[i : i + 1] for i in range(len(stream))))
    assert (events, tail, decoder.comment_count) == (want, None, 1)


@pytest.mark.parametrize(
    ("raw", "data"),
    [
        (b"a\xffb", "a\ufffdb"),
        (b"\xe4\xba", "\ufffd"),  # truncated before the line end
        (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),  # an encoded surrogate
        (b"\xc0\xaf", "\ufffd\ufffd"),  # overlong
    ],
    ids=["stray-byte", "truncated", "surrogate", "overlong"],
)
def test_invalid_utf8_becomes_replacement_characters(raw: bytes, data: str) -> None:
    stream = b"data: " + raw + b"\n\n"
    assert datas(stream) == [data]
    assert datas(*(stream[i : i + 1] for i in range(len(stream)))) == [data]


@pytest.mark.parametrize(
    "char",
    ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e", "х"],
    ids=["LS", "PS", "NEL", "VT", "FF", "FS", "RS", "cyrillic-ha-d1-85"],
)
def test_only_cr_and_lf_split_lines(char: str) -> None:
    assert datas(f"data: a{char}b\n\n".encode()) == [f"a{char}b"]


# --- the conformance corpus --------------------------------------------------------------------

CAPTURES = capture_names()
READ_SIZES = {"whole": None, "bytewise": 1, "chunks-of-7": 7}


def test_corpus_holds_every_capture() -> None:
    described = sorted(expected())  # fails with a clear message when the corpus is missing
    assert len(CAPTURES) == CAPTURE_COUNT, f"{CORPUS_DIR} holds {len(CAPTURES)} captures"
    assert described == CAPTURES
    assert (CORPUS_DIR / "INDEX.md").is_file()


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_is_the_one_expected_json_describes(name: str) -> None:
    raw, entry = capture(name), expected(name)
    assert len(raw) == entry["bytes"]
    assert hashlib.sha256(raw).hexdigest() == entry["sha256"]


@pytest.mark.parametrize("size", READ_SIZES.values(), ids=READ_SIZES.keys())
@pytest.mark.parametrize("name", CAPTURES)
def test_capture_decodes_as_strict_whatwg(name: str, size: int | None) -> None:
    strict = expected(name)["strict_whatwg"]
    events, tail, decoder = decode(capture(name), size)
    assert len(events) == strict["dispatched_events"]
    assert decoder.comment_count == strict["comment_lines"]
    assert any(e.data == "[DONE]" for e in events) is strict["done_sentinel_dispatched"]
    assert (tail.data if tail else None) == expected_tail_data(name)
    if size is not None:
        assert (events, tail) == decode(capture(name))[:2], "events depend on the read size"


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_foreign_fields_and_retry(name: str) -> None:
    _, _, decoder = decode(capture(name))
    client_error = expected(name).get("expected_client_error")
    if client_error is None:
        assert decoder.foreign_fields == []
    else:  # 12: llama.cpp's `error:` line
        assert [(n, json.loads(v)) for n, v in decoder.foreign_fields] == [("error", client_error)]
    assert decoder.retry == (3000 if name.startswith("98_") else None)


@pytest.mark.parametrize("prefix", ["90_", "91_", "92_", "93_", "97_", "98_"])
def test_derived_framings_carry_the_payloads_of_01(prefix: str) -> None:
    baseline, _, _ = decode(capture(capture_named("01_")))
    events, tail, _ = decode(capture(capture_named(prefix)))
    assert [e.data for e in events] == [e.data for e in baseline]
    assert tail is None


def test_final_event_without_blank_line_94_matches_01_plus_tail() -> None:
    baseline, _, _ = decode(capture(capture_named("01_")))
    events, tail, _ = decode(capture(capture_named("94_")))
    assert events == baseline[:-1]
    assert tail == baseline[-1] == ServerSentEvent("[DONE]")


def test_multiline_data_95_joins_to_the_json_of_01() -> None:
    baseline, _, _ = decode(capture(capture_named("01_")))
    events, _, _ = decode(capture(capture_named("95_")))
    assert any("\n" in e.data for e in events)
    payloads = [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]
    assert payloads == [e.data if e.data == "[DONE]" else json.loads(e.data) for e in baseline]


def test_ids_and_types_of_98_persist() -> None:
    events, _, _ = decode(capture(capture_named("98_")))
    assert {e.event for e in events} == {"message"}
    assert [e.id for e in events[:-1]] == [str(i) for i in range(len(events) - 1)]
    assert events[-1] == ServerSentEvent("[DONE]", "message", events[-2].id)


# --- any bytes, any cuts -----------------------------------------------------------------------

_PIECES = [
    b"data:",
    b"data: ",
    b"data",
    b"event: e",
    b"id: 7",
    b"id: \x00",
    b"retry: 15",
    b"retry: 99999999999999999999999",
    b": ping",
    b"error: {}",
    b"x",
    b"\r",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    "亚👋🏽\u2028".encode(),
    b"\xe4\xba",
    b"\xff",
    b"[DONE]",
]
_STREAMS = st.lists(st.sampled_from(_PIECES) | st.binary(max_size=12), max_size=40).map(b"".join)


def _outcome(*reads: bytes) -> tuple[object, ...]:
    events, tail, decoder = feed_all(*reads)
    return events, tail, decoder.comment_count, decoder.foreign_fields, decoder.retry


@settings(max_examples=300, deadline=None)
@given(stream=_STREAMS, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_rechunking_of_a_stream_gives_the_same_events(stream: bytes, cuts: list[int]) -> None:
    points = sorted({cut % (len(stream) + 1) for cut in cuts})
    reads = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert _outcome(*reads) == _outcome(stream)


@settings(max_examples=300, deadline=None)
@given(stream=_STREAMS | st.binary(max_size=200))
@example(stream=b"retry: " + b"9" * 5000 + b"\n\n")  # more digits than int() will convert
def test_arbitrary_bytes_never_raise(stream: bytes) -> None:
    _outcome(stream)
    _outcome(*(stream[i : i + 1] for i in range(len(stream))))


# --- the size of one event ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "reads",
    [
        (b"data: " + b"a" * 50 + b"\n", b"data: " + b"b" * 50 + b"\n"),  # data, no blank line
        tuple(b"x" * 10 for _ in range(11)),  # a line that never ends, in small reads
        (b"data: " + b"a" * 200 + b"\n\n",),  # one line over the cap in a single read
    ],
    ids=["data-lines", "endless-line", "one-read"],
)
def test_an_event_past_max_event_size_raises(reads: tuple[bytes, ...]) -> None:
    decoder = SSEDecoder(max_event_size=100)
    for read in reads[:-1]:  # up to the limit, and not past it
        decoder.feed(read)
    with pytest.raises(EventTooLargeError, match="past 100 characters"):
        decoder.feed(reads[-1])


def test_events_under_max_event_size_go_on_for_ever() -> None:
    decoder = SSEDecoder(max_event_size=100)
    for _ in range(1000):
        assert decoder.feed(b"data: " + b"a" * 80 + b"\n\n") == [ServerSentEvent("a" * 80)]
