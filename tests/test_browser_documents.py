"""The rag profile's done-when, in a real browser (Debian Chromium via Playwright) against
`opea-chat launch --profile rag`: upload a PDF in the Documents panel, ask a question only
that PDF answers, and see the PDF and the passage as the answer's source; the sources stay
after a reload; the document can be deleted. Screenshots land in test-artifacts/browser/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import ChatPage, chromium, screenshot
from tests.launched import Launched
from tests.sample_documents import text_pdf

pytestmark = pytest.mark.integration
READY = r"^Ready: (http://127\.0\.0\.1:\d+)$"
FACT = "The launch code of Project Bluebird is 4417."
QUESTION = "What is the launch code of Project Bluebird?"


@pytest.fixture(scope="module")
def launched(smollm2: Path, minilm: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Launched]:
    home = tmp_path_factory.mktemp("browser-rag-home")
    (home / "models").mkdir()
    (home / "models" / smollm2.name).symlink_to(smollm2)
    (home / "models" / minilm.name).symlink_to(minilm, target_is_directory=True)
    stack = Launched(["--profile", "rag", "--runtime", "local", "--no-browser",
                      "--idle-timeout", "0", "--context-size", "2048"], home)
    try:
        stack.expect(READY, timeout=300)
        yield stack
    finally:
        stack.cleanup()


@pytest.fixture
def app(launched: Launched, tmp_path: Path) -> Iterator[ChatPage]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        try:
            yield ChatPage(context.new_page(), launched.session()["urls"]["app"]).open()
        finally:
            context.close()


def test_upload_a_pdf_ask_and_see_the_pdf_and_passage_as_the_source(
        app: ChatPage, tmp_path: Path) -> None:
    pdf = tmp_path / "bluebird-report.pdf"
    pdf.write_bytes(text_pdf([["Project Bluebird: status report"],
                              ["Budget and staffing are on track.", FACT]]))
    documents = app.open_section("Documents")
    assert documents.get_by_text("No documents yet.").count() == 1
    documents.locator("input[type=file]").set_input_files(str(pdf))
    # The listed document's line (the uploader's own chip shows the name too).
    app.page.get_by_text("Added 1 document.").wait_for(timeout=180_000)
    app.wait_idle()
    documents = app.open_section("Documents")
    row = documents.get_by_text(re.compile(r"(\d+ B|[\d.]+ kB) · \d chunks? · added 20\d\d-"))
    assert row.count() == 1
    assert documents.get_by_text("bluebird-report.pdf", exact=True).count() == 1
    screenshot(app.page, "rag-01-document-added")

    switch = app.page.get_by_test_id("stCheckbox").filter(
        has_text="Answer from my documents").locator("input")
    assert switch.is_checked()  # on by default once a document exists

    app.send(QUESTION)
    answer = app.wait_for_answer(timeout=240)
    assert answer.strip()
    message = app.assistant()
    message.get_by_text("Sources").wait_for(timeout=10_000)
    first_source = re.compile(r"\[1\] bluebird-report\.pdf, page 2 · score 0\.\d\d")
    source = message.get_by_test_id("stExpander").filter(has_text=first_source)
    assert source.count() == 1
    source.locator("summary").click()
    source.get_by_text(FACT).wait_for(timeout=10_000)
    screenshot(app.page, "rag-02-answer-with-source", full_page=True)

    app.page.reload()
    app.wait_idle()
    again = app.assistant().get_by_test_id("stExpander").filter(has_text=first_source)
    assert again.count() == 1  # kept with the history

    documents = app.open_section("Documents")
    documents.get_by_role("button", name=re.compile(r"Delete$")).click()
    app.page.get_by_text("Deleted bluebird-report.pdf.").wait_for(timeout=30_000)
    app.wait_idle()
    documents = app.open_section("Documents")
    documents.get_by_text("No documents yet.").wait_for(timeout=10_000)
    screenshot(app.page, "rag-03-deleted")
    assert app.errors == []
