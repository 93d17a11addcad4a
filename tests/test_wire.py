"""ChatQnA's wire format: what the client decodes and what the megaservice emits."""

from __future__ import annotations

import json
from pathlib import Path

from opea.wire import StreamDecoder, encode_token, error_event, openai_stream_to_chatqna


def decode(lines: list[str]) -> str:
    decoder = StreamDecoder()
    return "".join(decoder.feed_line(line) for line in lines) + decoder.finish()


def test_decodes_chatqna_events_including_quotes_and_empty_first_event() -> None:
    lines = ["data: b''", "", "data: b'Hello'", "", 'data: b" it\'s"', "", "data: [DONE]", ""]
    assert decode(lines) == "Hello it's"


def test_multibyte_character_split_across_events_is_joined() -> None:
    dash = "—".encode()  # three bytes
    lines = [f"data: {dash[:1]!r}", f"data: {dash[1:]!r}", "data: b' ok'", "data: [DONE]"]
    assert decode(lines) == "— ok"


def test_encode_then_decode_round_trips_any_text() -> None:
    text = "naïve 'quotes' \"double\" \\backslash\\ \n newline 日本語 🎉 <b>x</b>"
    events = [encode_token(piece) for piece in (text[:7], text[7:20], text[20:])]
    lines = [line for event in events for line in event.split("\n")]
    assert decode([*lines, "data: [DONE]"]) == text


def test_payload_is_never_evaluated_as_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = f"data: b'x' + __import__('pathlib').Path({str(marker)!r}).touch()"
    text = decode([hostile, "data: [DONE]"])
    assert not marker.exists()
    assert "__import__" in text  # shown as text, not run


def test_unescaped_form_from_opea_fake_stream_is_tolerated() -> None:
    # OPEA's orchestrator builds "data: b'" + text + "'" by hand for short-circuited graphs.
    assert decode(["data: b'it's fine'", "data: [DONE]"]) == "it's fine"


def test_nothing_after_done_is_decoded() -> None:
    assert decode(["data: b'a'", "data: [DONE]", "data: b'b'"]) == "a"


def test_invalid_utf8_from_the_model_becomes_replacement_characters() -> None:
    assert decode(["data: b'ok \\xff'", "data: [DONE]"]) == "ok \ufffd"


def openai_event(content: str | None) -> bytes:
    body = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    return f"data: {json.dumps(body)}\r\n\r\n".encode()


def test_openai_stream_is_reframed_even_when_tcp_merges_and_splits_events() -> None:
    stream = openai_event("Hel") + openai_event("lo") + openai_event(None) + b"data: [DONE]\r\n\r\n"
    chunks = [stream[:10], stream[10:150], stream[150:]]  # boundaries mid-event
    events = list(openai_stream_to_chatqna(chunks))
    assert events == ["data: b'Hel'\n\n", "data: b'lo'\n\n", "data: [DONE]\n\n"]


def test_an_error_body_instead_of_a_stream_becomes_an_error_event() -> None:
    error = b'{"error": {"message": "model does not exist", "code": 404}}'
    assert list(openai_stream_to_chatqna([error])) == [
        error_event("the LLM server failed while answering: model does not exist"),
        "data: [DONE]\n\n"]


def test_a_stream_cut_short_or_carrying_an_error_ends_with_an_error_event() -> None:
    cut = [b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n']
    events = list(openai_stream_to_chatqna(cut))
    assert events[0] == encode_token("Hi") and events[-1] == "data: [DONE]\n\n"
    assert events[1].startswith("event: error\n") and "stopped before" in events[1]
    overflow = [b'data: {"error": {"message": "Requested tokens (831) exceed context window'
                b' of 512"}}\n\n']
    events = list(openai_stream_to_chatqna(overflow))
    decoder = StreamDecoder()
    texts = [decoder.feed_line(line) for event in events for line in event.split("\n")]
    assert not "".join(texts) and decoder.done
    assert decoder.error is not None and decoder.error.startswith(
        "the conversation needs 831 tokens but the model's context holds 512")
