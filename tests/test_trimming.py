"""Fitting a conversation to the context window: what is kept, what leaves, and what is
refused; token counts checked against SmolLM2's real tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.errors import ContextOverflowError
from app.tokens import estimate_tokens, gguf_counter
from app.trimming import FIXED_TOKENS, PER_MESSAGE_TOKENS, fit_to_context, turns


def words(text: str) -> int:
    return len(text.split())


def conversation(n: int, size: int = 10) -> list[dict[str, str]]:
    history = []
    for i in range(n):
        history.append({"role": "user", "content": f"q{i} " + "w " * (size - 1)})
        history.append({"role": "assistant", "content": f"a{i} " + "w " * (size - 1)})
    return history


def test_everything_fits_nothing_is_left_out() -> None:
    fitted = fit_to_context("Be brief.", conversation(3), "new?", 4096, 512, words)
    assert fitted.left_out == 0
    assert [m["role"] for m in fitted.messages] == ["system"] + ["user", "assistant"] * 3 + [
        "user"]
    assert fitted.messages[-1] == {"role": "user", "content": "new?"}


def test_oldest_whole_turns_leave_first_and_the_count_is_reported() -> None:
    # Each message costs 10 + 8; a turn 36. Budget: 400 - 100 - 48 = 252.
    # System (1 + 8) and question (1 + 8) leave 234: six turns fit, four leave.
    fitted = fit_to_context("system", conversation(10), "new?", 400, 100, words)
    assert fitted.left_out == 4
    kept = [m["content"].split()[0] for m in fitted.messages[1:-1]]
    assert kept == [f"{kind}{i}" for i in range(4, 10) for kind in ("q", "a")]
    assert fitted.messages[0] == {"role": "system", "content": "system"}
    assert fitted.prompt_tokens <= 400 - 100


def test_a_long_old_turn_does_not_let_older_ones_sneak_back_in() -> None:
    long_turn = [{"role": "user", "content": "w " * 500}, {"role": "assistant", "content": "ok"}]
    history = [*conversation(1), *long_turn, *conversation(1)]
    fitted = fit_to_context("", history, "new?", 400, 100, words)
    assert fitted.left_out == 2  # the long turn and everything before it
    assert [m["content"].split()[0] for m in fitted.messages[:-1]] == ["q0", "a0"]


def test_an_empty_system_prompt_is_not_sent() -> None:
    fitted = fit_to_context("  ", [], "hi", 4096, 512, words)
    assert fitted.messages == [{"role": "user", "content": "hi"}]


def test_a_question_that_cannot_fit_is_refused_with_what_to_change() -> None:
    with pytest.raises(ContextOverflowError) as caught:
        fit_to_context("Be brief.", conversation(2), "w " * 5000, 4096, 512, words)
    line = caught.value.one_line()
    assert "4,096-token context" in line and "512 kept for the answer" in line
    assert "--context-size" in line and "Max tokens" in line


def test_the_system_prompt_counts_and_is_named_when_it_is_what_does_not_fit() -> None:
    with pytest.raises(ContextOverflowError, match="question and system prompt"):
        fit_to_context("w " * 4000, [], "short", 4096, 512, words)


def test_answers_before_any_question_stay_with_their_turn() -> None:
    grouped = turns([{"role": "assistant", "content": "hello"},
                     {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    assert [len(turn) for turn in grouped] == [1, 2]


SAMPLES = [
    "The quick brown fox jumps over the lazy dog. " * 20,
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + "
    "fibonacci(n - 2)\n" * 5,
    "3.14159265358979 2.71828182845904 1234567890 0x7fffffff 192.168.0.1 " * 5,
    "日本語のテキストと中文文本\uff0c还有한국어 텍스트。" * 5,
    "🎉🚀✨ emoji 👍🏽 and accents: naïve café résumé Straße Ελληνικά русский " * 5,
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}} <html><body>x</body></html> " * 5,
    "    \n\n\t\t   spaces and\n\n\nnewlines    \n" * 10,
    "supercalifragilisticexpialidocious antidisestablishmentarianism " * 10,
]


def test_the_estimate_never_counts_fewer_tokens_than_smollm2s_tokenizer(smollm2: Path
                                                                        ) -> None:
    exact = gguf_counter(smollm2)
    assert exact is not None
    for sample in SAMPLES:
        assert estimate_tokens(sample) >= exact(sample), sample[:40]


def test_the_real_tokenizer_is_used_for_a_gguf_file_and_none_otherwise(smollm2: Path,
                                                                        tmp_path: Path
                                                                        ) -> None:
    exact = gguf_counter(smollm2)
    assert exact is not None and exact("Hello world") == 2
    assert gguf_counter(tmp_path / "missing.gguf") is None
    not_gguf = tmp_path / "fake.gguf"
    not_gguf.write_bytes(b"not a model")
    assert gguf_counter(not_gguf) is None


def test_template_allowance_covers_smollm2s_chat_template(smollm2: Path) -> None:
    # Render SmolLM2's own template and count it: the per-message and fixed allowances
    # must cover everything the template adds around the contents.
    import llama_cpp

    model = llama_cpp.Llama(model_path=str(smollm2), vocab_only=True, verbose=False)
    template = model.metadata["tokenizer.chat_template"]
    end, start = "<|im_end|>", "<|im_start|>"  # SmolLM2's special tokens
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=template, eos_token=end, bos_token=start)
    messages: list[Any] = [{"role": "user", "content": "hi"},
                           {"role": "assistant", "content": "yo"},
                           {"role": "user", "content": "ok?"}]
    prompt = formatter(messages=messages).prompt
    total = len(model.tokenize(prompt.encode(), add_bos=False, special=True))
    contents = sum(len(model.tokenize(m["content"].encode(), add_bos=False, special=False))
                   for m in messages)
    assert total - contents <= FIXED_TOKENS + PER_MESSAGE_TOKENS * len(messages)
