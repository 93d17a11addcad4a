"""Making model text safe and readable as Markdown.

Streamlit's ``st.markdown`` (without ``unsafe_allow_html``) already shows raw HTML as text;
the browser tests check that. What is left to do here, outside code:
- control characters (a model can emit any byte) become visible symbols instead of being
  dropped or breaking the layout; ``\\r\\n`` and lone ``\\r`` become newlines;
- Markdown images become plain links, so a model (or a prompt injected into it) cannot make
  the browser fetch an arbitrary URL, which is a known way to leak a conversation.
Code (fenced blocks and inline spans) is left exactly as written.

What the user typed keeps its line breaks (``typed_markdown``): Markdown would join lines
that are not separated by a blank one, and a question should look as it was written.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_IMAGE = re.compile(r"!\[(?=[^\]\n]*\]\()")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")
_BACKTICKS = re.compile(r"`+")


def _visible_control(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Unicode "control pictures" block: ␀, ␇, ␛ ...
    if code == 0x7F:
        return "\u2421"  # ␡
    return "\ufffd"


def visible_controls(text: str) -> str:
    """Newlines normalised; other control characters (but tab) shown as symbols."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(_visible_control, text)


def _outside_inline_code(line: str) -> list[tuple[str, bool]]:
    """Split a line into (piece, is_code) by CommonMark's backtick-run rule."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    start = 0
    while (opening := _BACKTICKS.search(line, position)) is not None:
        run = opening.group()
        closing = re.compile(rf"(?<!`){run}(?!`)").search(line, opening.end())
        if closing is None:
            position = opening.end()
            continue
        pieces.append((line[start:opening.start()], False))
        pieces.append((line[opening.start():closing.end()], True))
        start = position = closing.end()
    pieces.append((line[start:], False))
    return pieces


def _neutralize_images(line: str) -> str:
    return "".join(piece if is_code else _IMAGE.sub("[image: ", piece)
                   for piece, is_code in _outside_inline_code(line))


def _lines(text: str) -> list[tuple[str, bool]]:
    """The lines of ``text`` with whether each is inside a fenced code block (or a fence)."""
    fence: str | None = None
    result = []
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match.group(1)
            result.append((line, fence is not None))
        else:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence) \
                    and not line.strip()[len(match.group(1)):].strip():
                fence = None
            result.append((line, True))
    return result


def safe_markdown(text: str) -> str:
    """Model output ready for ``st.markdown``: controls visible, images made links."""
    return "\n".join(line if in_code else _neutralize_images(line)
                     for line, in_code in _lines(visible_controls(text)))


def typed_markdown(text: str) -> str:
    """What the user typed, made safe like model output and with its line breaks kept."""
    lines = _lines(safe_markdown(text))
    result = []
    for index, (line, in_code) in enumerate(lines):
        following = lines[index + 1][0] if index + 1 < len(lines) else ""
        hard_break = not in_code and line.strip() and following.strip()
        result.append(line + "  " if hard_break else line)
    return "\n".join(result)
