"""Parsing, splitting and searching: the pure parts of the RAG services, tested directly."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from rag.chunks import check_sizes, split_sections, split_text
from rag.documents import Section, clean_name, parse
from rag.errors import DocumentError
from rag.search import MMR, THRESHOLD, search
from tests.sample_documents import docx, encrypted_pdf, image_only_pdf, text_pdf


def test_pdf_sections_keep_their_page_numbers() -> None:
    pdf = text_pdf([["Chapter one", "The ferry leaves at nine."], ["The toll is 7 euros."]])
    assert parse("guide.pdf", pdf) == [
        Section("Chapter one\nThe ferry leaves at nine.", page=1),
        Section("The toll is 7 euros.", page=2)]


@pytest.mark.parametrize(("data", "says"), [
    (encrypted_pdf([["secret plans"]]), "is encrypted (password-protected)"),
    (image_only_pdf(), "has no text: nothing to index; it has no text layer"),
    (text_pdf([["cut short"]])[:200], "is not a readable PDF"),
    (b"%PDF-1.7\n" + bytes(range(256)) * 20, "is not a readable PDF"),
    (b"just some words, not a PDF at all", "is not a readable PDF"),
])
def test_a_pdf_that_cannot_be_indexed_says_why(data: bytes, says: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse("report.pdf", data)
    assert says in caught.value.one_line()
    assert caught.value.one_line().startswith("report.pdf ")


def test_docx_markdown_html_and_text() -> None:
    assert parse("a.docx", docx(["First.", "Llamas hum."])) == [
        Section("First.\n\nLlamas hum.")]
    md = b"intro\n# Install\nRun it.\n```\n# not a heading\n```\n## Use\nAsk."
    assert [(s.heading, s.text.splitlines()[-1]) for s in parse("a.md", md)] == [
        (None, "intro"), ("Install", "```"), ("Use", "Ask.")]
    html = (b"<html><head><title>x</title><style>p{}</style></head><body><h1>Intro</h1>"
            b"<p>Hello <b>big</b>\n world.</p><script>alert(1)</script>"
            b"<h2>Setup</h2><ul><li>one</li><li>two</li></ul></body></html>")
    assert parse("a.html", html) == [Section("Intro\n\nHello big world.", heading="Intro"),
                                     Section("Setup\n\none\n\ntwo", heading="Setup")]
    assert parse("a.txt", "caf\xe9 au lait".encode("cp1252")) == [Section("caf\xe9 au lait")]


@pytest.mark.parametrize(("name", "data", "says", "status"), [
    ("empty.txt", b"", "empty.txt is empty: nothing to index", 400),
    ("blank.md", b" \n\n\t ", "blank.md is empty", 400),
    ("photo.png", b"\x89PNG....", "cannot index .png; add a PDF, DOCX, HTML", 415),
    ("Makefile", b"all:", "cannot index a file without an extension", 415),
    ("old.docx", b"PK\x03\x04 not really", "is not a readable DOCX file", 400),
    ("binary.txt", b"\x00\x01\x02ELF", "looks like a binary file", 415),
])
def test_bad_files_are_refused_with_what_to_do(name: str, data: bytes, says: str,
                                               status: int) -> None:
    with pytest.raises(DocumentError) as caught:
        parse(name, data)
    assert says in caught.value.one_line()
    assert caught.value.status == status


@pytest.mark.parametrize(("given", "kept"), [
    ("../../x.txt", "x.txt"), ("..\\..\\windows\\x.txt", "x.txt"), ("/etc/passwd.txt",
                                                                    "passwd.txt"),
    ("r\u00e9sum\u00e9 (final) #2.pdf", "r\u00e9sum\u00e9 (final) #2.pdf"),
    ("bell\x07\nname.md", "bellname.md"), ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
])
def test_file_names_lose_their_path_and_control_characters(given: str, kept: str) -> None:
    assert clean_name(given) == kept


@pytest.mark.parametrize("bad", ["", "..", "../", "\x00\x01"])
def test_a_name_with_nothing_left_is_refused(bad: str) -> None:
    with pytest.raises(DocumentError, match="not a usable file name"):
        clean_name(bad)


def test_chunks_respect_size_and_overlap_and_keep_every_word() -> None:
    words = [f"word{i}" for i in range(3000)]
    text = ". ".join(" ".join(words[i:i + 12]) for i in range(0, 3000, 12))
    chunks = split_text(text, 1500, 100)
    assert all(len(c) <= 1500 for c in chunks)
    assert len(chunks) >= len(text) // 1500
    seen = set(" ".join(chunks).replace(".", " ").split())
    assert seen == set(words)
    # Consecutive chunks share their edge (the overlap), at most 100 characters of it.
    first_tail = chunks[0][-60:].split()[-1]
    assert first_tail in chunks[1][:110]


def test_a_chunk_never_spans_two_pages() -> None:
    chunks = split_sections([Section("a " * 400, page=1), Section("b " * 400, page=2)],
                            500, 50)
    assert {c.page for c in chunks if "a" in c.text} == {1}
    assert [c.index for c in chunks] == list(range(len(chunks)))


@pytest.mark.parametrize(("size", "overlap"), [(10, 0), (1500, 1500), (1500, -1)])
def test_chunk_sizes_out_of_range_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(DocumentError, match="out of range"):
        check_sizes(size, overlap)


def _unit(rows: list[list[float]]) -> npt.NDArray[np.float32]:
    matrix = np.asarray(rows, dtype=np.float32)
    result: npt.NDArray[np.float32] = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return result


def test_search_finds_the_nearest_first_and_matches_brute_force() -> None:
    generator = np.random.default_rng(7)
    matrix = _unit(generator.normal(size=(500, 16)).tolist())
    query = matrix[42] + 0.01
    rows, scores = search(matrix, query, 5)
    assert rows[0] == 42
    assert list(rows) == list(np.argsort(-(matrix @ query))[:5])
    assert list(scores) == sorted(scores, reverse=True)


def test_threshold_and_mmr() -> None:
    matrix = _unit([[1, 0], [0.99, 0.01], [0.7, 0.7], [0, 1]])
    query = np.asarray([1, 0], dtype=np.float32)
    rows, _ = search(matrix, query, 4, THRESHOLD, score_threshold=0.5)
    assert list(rows) == [0, 1, 2]
    # MMR skips the near-duplicate of the best row for the next relevant, different one.
    matrix = _unit([[1, 0.2], [1, 0.25], [0.6, 1], [0, 1]])
    query = _unit([[1, 0.5]])[0]
    assert list(search(matrix, query, 2)[0]) == [1, 0]
    assert list(search(matrix, query, 2, MMR, fetch_k=4, lambda_mult=0.6)[0]) == [1, 2]


def test_search_refuses_what_it_cannot_do() -> None:
    matrix = _unit([[1, 0]])
    with pytest.raises(DocumentError, match="search_type 'fuzzy' is not supported"):
        search(matrix, matrix[0], 1, "fuzzy")
    with pytest.raises(DocumentError, match="the embedding has 3 numbers; this index holds 2"):
        search(matrix, np.ones(3, dtype=np.float32), 1)
    with pytest.raises(DocumentError, match="k=0 is out of range"):
        search(matrix, matrix[0], 0)
    empty = np.zeros((0, 0), dtype=np.float32)
    assert search(empty, np.ones(384, dtype=np.float32), 4)[0].size == 0
