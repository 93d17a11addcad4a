"""Sources of a RAG answer: from the retriever's output to what clients read and show."""

from __future__ import annotations

from launcher.terminal_chat import format_sources
from opea.megaservice import rag_messages, rag_prompt
from opea.sources import Source, from_retrieved, parse_sources, sources_event
from opea.wire import StreamDecoder, done_event, encode_token

RETRIEVED = {"id": "x", "text": "The launch code is 7-4-1.",
             "metadata": {"source": "/data/rag/files/../secret plan.pdf", "page": 3,
                          "heading": None, "chunk": 7, "score": 0.712345}}


def test_a_retrieved_passage_becomes_a_source_with_file_page_and_score() -> None:
    source = from_retrieved(RETRIEVED)
    assert source == Source(file="secret plan.pdf", passage="The launch code is 7-4-1.",
                            score=0.7123, page=3, heading=None)
    assert source.where() == "secret plan.pdf, page 3"
    assert from_retrieved({"text": "t", "metadata": {"source": "a.md", "heading": "Setup"}}
                          ).where() == "a.md, “Setup”"
    assert from_retrieved({"text": "t"}).file == "unknown document"


def test_the_sources_event_follows_done_and_only_a_reader_that_wants_it_sees_it() -> None:
    stream = (encode_token("Seven") + encode_token(" four") + done_event()
              + sources_event([from_retrieved(RETRIEVED)]))
    decoder = StreamDecoder()
    text = "".join(decoder.feed_line(line) for line in stream.split("\n"))
    assert text == "Seven four"
    assert decoder.done
    [(name, data)] = decoder.events
    assert name == "sources"
    assert parse_sources(data) == [from_retrieved(RETRIEVED)]
    # A plain ChatQnA client reads data lines up to [DONE] and stops: no JSON as text.
    plain = stream.split("data: [DONE]")[0]
    assert "sources" not in plain


def test_unreadable_sources_are_no_sources() -> None:
    assert parse_sources("not json") == []
    assert parse_sources('{"sources": [1, {"file": "a.txt", "passage": "p"}]}') == [
        Source(file="a.txt", passage="p")]


def test_the_last_question_is_wrapped_in_chatqnas_rag_prompt_and_history_kept() -> None:
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                    {"role": "user", "content": "What is the launch code?"}]
    sent = rag_messages(conversation, ["The launch code is 7-4-1.", "Other passage."])
    assert sent[:3] == conversation[:3]
    prompt = sent[3]["content"]
    assert sent[3]["role"] == "user"
    assert prompt == rag_prompt("What is the launch code?",
                                ["The launch code is 7-4-1.", "Other passage."])
    sections = [line.split(":")[0] for line in prompt.splitlines() if line.startswith("###")]
    assert sections[1:] == ["### Search results", "### Question", "### Answer"]
    assert "The launch code is 7-4-1.\nOther passage." in prompt
    # Nothing retrieved: the question goes to the model as it is.
    assert rag_messages(conversation, []) == conversation


def test_the_terminal_shows_each_source_with_where_score_and_a_passage_line() -> None:
    long = Source(file="b.txt", passage="word " * 100, score=0.5)
    text = format_sources([from_retrieved(RETRIEVED), long])
    assert text.splitlines()[:3] == ["Sources:", "  [1] secret plan.pdf, page 3 (score 0.71)",
                                     "      The launch code is 7-4-1."]
    assert text.splitlines()[4].endswith("…") and len(text.splitlines()[4]) < 180
