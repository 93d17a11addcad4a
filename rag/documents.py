"""Documents as text: PDF, DOCX, HTML, Markdown and plain text, each cut into sections that
remember where they came from (a PDF's page, an HTML or Markdown heading), so every passage
retrieved later can say where it is in its file.

Pure functions of (file name, bytes); every failure is a ``DocumentError`` that says what is
wrong with the file and what to do.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from rag.errors import DocumentError

SUFFIXES = {
    ".pdf": "pdf", ".docx": "docx", ".html": "html", ".htm": "html",
    ".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
}
SUPPORTED = "PDF, DOCX, HTML, Markdown (.md) or plain text (.txt)"
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_HTML_HEADINGS = ("h1", "h2", "h3", "h4")
_HTML_BLOCKS = ("p", "div", "li", "pre", "tr", "dt", "dd", "blockquote", "table", "ul", "ol",
                "section", "article", "h5", "h6", "dl")
_MARK = "\x00"


@dataclass(frozen=True)
class Section:
    text: str
    page: int | None = None
    heading: str | None = None


def clean_name(name: str) -> str:
    """The file name to index under: its last path part (``../../x.txt`` -> ``x.txt``, also
    with backslashes), without control characters, at most 200 characters."""
    last = PureWindowsPath(PurePosixPath(name.replace("\x00", "")).name).name
    text = "".join(ch for ch in unicodedata.normalize("NFC", last)
                   if unicodedata.category(ch)[0] != "C").strip()
    if text in ("", ".", ".."):
        raise DocumentError(f"'{name}' is not a usable file name",
                            hint="rename the file and add it again")
    if len(text) > 200:
        stem, dot, suffix = text.rpartition(".")
        text = (stem[: 199 - len(suffix)] + dot + suffix) if dot and len(suffix) < 10 \
            else text[:200]
    return text


def kind_of(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    kind = SUFFIXES.get(suffix)
    if kind is None:
        shown = suffix or "a file without an extension"
        raise DocumentError(f"{name}: cannot index {shown}",
                            hint=f"add a {SUPPORTED} file", status=415)
    return kind


def parse(name: str, data: bytes) -> list[Section]:
    """The text sections of one file, or a ``DocumentError`` (never an empty list)."""
    kind = kind_of(name)
    if not data.strip():
        raise DocumentError(f"{name} is empty: nothing to index",
                            hint="add a file that has text in it")
    sections = {"pdf": _pdf, "docx": _docx, "html": _html, "markdown": _markdown,
                "text": _text}[kind](name, data)
    sections = [s for s in (Section(_tidy(s.text), s.page, s.heading) for s in sections)
                if s.text]
    if not sections:
        hint = ("it has no text layer (a scan?): run OCR on it first, e.g. ocrmypdf"
                if kind == "pdf" else "add a file that has text in it")
        raise DocumentError(f"{name} has no text: nothing to index", hint=hint)
    return sections


def _tidy(text: str) -> str:
    text = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+", " ", text)
    return re.sub(r"\n\s*\n\s*(\n\s*)+", "\n\n", text).strip()


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Windows-1252/Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            return data.decode("latin-1")


def _pdf(name: str, data: bytes) -> list[Section]:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    # pypdf logs every repair it makes to a damaged file; the error below says it plainly.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    unreadable = DocumentError(f"{name} is not a readable PDF (damaged or not a PDF)",
                               hint="open it in a PDF viewer and save or export it again")
    if not data.lstrip()[:1024].find(b"%PDF-") >= 0:
        raise unreadable
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _encrypted(name)
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            sections.append(Section(page.extract_text() or "", page=number))
    except FileNotDecryptedError as exc:
        raise _encrypted(name) from exc
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError, zipfile.BadZipFile, OSError) as exc:
        raise unreadable from exc
    except Exception as exc:  # pypdf raises many kinds on damaged files
        if "crypt" in type(exc).__name__.lower() or "AES" in str(exc):
            raise _encrypted(name) from exc
        raise unreadable from exc
    return sections


def _encrypted(name: str) -> DocumentError:
    return DocumentError(f"{name} is encrypted (password-protected): cannot read its text",
                         hint="save a copy without the password and add that")


def _docx(name: str, data: bytes) -> list[Section]:
    import docx2txt

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if "word/document.xml" not in archive.namelist():
                raise zipfile.BadZipFile("no word/document.xml")
        text = docx2txt.process(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DocumentError(f"{name} is not a readable DOCX file (damaged, or an old .doc)",
                            hint="open it in a word processor and save it as .docx "
                                 "again") from exc
    return [Section(text or "")]


def _html(name: str, data: bytes) -> list[Section]:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    # Source line breaks are spaces in HTML (except in <pre>); blocks and <br> are breaks.
    for text in soup.find_all(string=True):
        if isinstance(text, NavigableString) and text.find_parent("pre") is None:
            text.replace_with(re.sub(r"\s+", " ", str(text)))
    for tag in soup.find_all("br"):
        tag.replace_with("\n")
    for tag in soup.find_all(_HTML_HEADINGS):
        title = " ".join(tag.get_text(" ").split())
        tag.replace_with(f"\n{_MARK}{title}{_MARK}\n" if title else "")
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.append("\n")
    parts = (soup.body or soup).get_text().split(_MARK)
    # parts: text before the first heading, then heading, text, heading, text, ...
    sections = [Section(parts[0])]
    for index in range(1, len(parts) - 1, 2):
        sections.append(Section(parts[index] + "\n" + parts[index + 1], heading=parts[index]))
    return sections


def _markdown(name: str, data: bytes) -> list[Section]:
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    fenced = False
    for line in decode_text(data).splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _MD_HEADING.match(line)
        if match:
            if "".join(lines).strip():
                sections.append(Section("\n".join(lines), heading=heading))
            heading, lines = match.group(2), [line]
        else:
            lines.append(line)
    if "".join(lines).strip():
        sections.append(Section("\n".join(lines), heading=heading))
    return sections


def _text(name: str, data: bytes) -> list[Section]:
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f"{name} looks like a binary file, not text",
                            hint=f"add a {SUPPORTED} file", status=415)
    return [Section(decode_text(data))]
