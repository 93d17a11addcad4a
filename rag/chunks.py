"""Cutting sections of text into overlapping chunks for embedding.

ChatQnA's dataprep splits with LangChain's RecursiveCharacterTextSplitter (chunk 1500
characters, overlap 100). This is the same idea without pulling LangChain in (its core
package brings a dozen dependencies for one function): split at the coarsest separator that
makes pieces small enough (paragraphs, then lines, sentences, words, characters), pack the
pieces greedily up to ``size`` characters, and start each chunk with the last pieces of the
one before it, up to ``overlap`` characters. A chunk never spans two sections, so each one
keeps its page or heading.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.documents import Section

CHUNK_SIZE = 1500
CHUNK_OVERLAP = 100
SEPARATORS = ("\n\n", "\n", ". ", " ", "")


@dataclass(frozen=True)
class Chunk:
    text: str
    index: int
    page: int | None = None
    heading: str | None = None


def check_sizes(size: int, overlap: int) -> None:
    from rag.errors import DocumentError

    if not 50 <= size <= 100_000:
        raise DocumentError(f"chunk_size {size} is out of range",
                            hint="use 50 to 100000 characters (ChatQnA's default: 1500)")
    if not 0 <= overlap < size:
        raise DocumentError(f"chunk_overlap {overlap} is out of range",
                            hint="use 0 up to less than chunk_size (ChatQnA's default: 100)")


def _pieces(text: str, size: int, separators: tuple[str, ...]) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, each keeping the separator
    that followed it, so joining them gives ``text`` back."""
    if len(text) <= size:
        return [text]
    separator, rest = separators[0], separators[1:]
    if separator == "":
        return [text[i:i + size] for i in range(0, len(text), size)]
    parts = text.split(separator)
    pieces: list[str] = []
    for number, part in enumerate(parts):
        piece = part + (separator if number < len(parts) - 1 else "")
        if not piece:
            continue
        pieces.extend([piece] if len(piece) <= size else _pieces(piece, size, rest))
    return pieces


def split_text(text: str, size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for piece in _pieces(text, size, SEPARATORS):
        if current and length + len(piece) > size:
            chunks.append("".join(current).strip())
            # Carry the tail of this chunk into the next, as far as the overlap allows.
            while current and (length > overlap or length + len(piece) > size):
                length -= len(current.pop(0))
        current.append(piece)
        length += len(piece)
    if current:
        chunks.append("".join(current).strip())
    return [chunk for chunk in chunks if chunk]


def split_sections(sections: list[Section], size: int = CHUNK_SIZE,
                   overlap: int = CHUNK_OVERLAP) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in sections:
        for text in split_text(section.text, size, overlap):
            chunks.append(Chunk(text, len(chunks), section.page, section.heading))
    return chunks
