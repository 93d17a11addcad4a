"""Reading model files before any server does: the real SmolLM2 GGUF, generated Hugging Face
folders, and damaged copies of both, each refused with what is wrong and what to do."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from models.catalogue import CATALOGUE
from models.errors import ModelError
from models.gguf import read_header
from models.hf_folder import check_folder
from models.memory import estimate
from tests.model_files import (
    SMOLLM2_PARAMETERS,
    SMOLLM2_TENSOR_COUNT,
    bad_magic_copy,
    hf_folder,
    truncated_copy,
    unknown_architecture_gguf,
)


def test_smollm2_header_says_what_the_model_is(smollm2: Path) -> None:
    header = read_header(smollm2)
    assert (header.version, header.tensor_count) == (3, SMOLLM2_TENSOR_COUNT)
    assert header.architecture == "llama"
    assert header.parameter_count == SMOLLM2_PARAMETERS  # "135M" in its name
    assert header.quantization == "Q4_1"
    assert header.context_length == 8192
    assert header.metadata["general.name"].startswith("Smollm2 135M")
    # The tensor data is the file minus its header (vocabulary, merges, template).
    assert 0.9 * header.file_size < header.tensor_bytes < header.file_size


def test_the_catalogue_knows_smollm2s_memory_shape_before_the_download(smollm2: Path) -> None:
    # What the estimate is worth against the real server is in test_memory.py; here: the
    # catalogue's estimate before a download is the one made from the file after it.
    assert CATALOGUE["smollm2-135m"].shape == read_header(smollm2).shape()


def test_the_estimate_grows_with_the_context_by_the_kv_cache_alone(smollm2: Path) -> None:
    shape = read_header(smollm2).shape()
    needs = [estimate(shape, context, "llama.cpp") for context in (512, 2048, 4096, 8192)]
    assert [n.total for n in needs] == sorted({n.total for n in needs})  # strictly growing
    assert len({(n.weights, n.overhead) for n in needs}) == 1
    per_token = {n.kv_cache / n.context for n in needs}
    assert len(per_token) == 1 and per_token.pop() > 0  # the cache is linear in the context


@pytest.mark.parametrize("size,why", [
    (2_000_000, r"is truncated: tensor \S+ needs bytes up to [\d,]+ but the file has 2,000,000"),
    (98_362_431, r"is truncated: tensor \S+ needs bytes up to 98,362,432 but the file has "
                 r"98,362,431"),
    (1_000_000, r"is truncated: its header ends early \(the file has 1000000 bytes\)"),
    (10, r"is truncated: its header ends early \(the file has 10 bytes\)"),
])
def test_a_truncated_gguf_is_refused_with_a_fix(smollm2: Path, tmp_path: Path, size: int,
                                                why: str) -> None:
    cut = truncated_copy(smollm2, tmp_path / "cut.gguf", size)
    with pytest.raises(ModelError, match=why) as caught:
        read_header(cut)
    assert caught.value.hint == "the download or copy was cut short; pull or copy the model again"


def test_bad_magic_and_an_empty_file_are_not_gguf(smollm2: Path, tmp_path: Path) -> None:
    for path in (bad_magic_copy(smollm2, tmp_path / "bad.gguf"), tmp_path / "empty.gguf"):
        path.touch()
        with pytest.raises(ModelError, match=r"is not a GGUF model \(it does not start with "):
            read_header(path)


def test_absurd_counts_are_corrupt_not_a_hang(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(struct.pack("<4sIQQ", b"GGUF", 3, 2**60, 2**60) + b"\0" * 64)
    with pytest.raises(ModelError, match="is a corrupt GGUF file: it declares") as caught:
        read_header(garbage)
    assert caught.value.hint == "download or copy the model again"


def test_a_gguf_written_by_ggufs_own_writer_reads_back(tmp_path: Path) -> None:
    header = read_header(unknown_architecture_gguf(tmp_path / "tiny.gguf"))
    assert header.architecture == "opea-chat-test"
    assert (header.tensor_count, header.parameter_count) == (1, 32)
    assert header.quantization == "F32" and header.tensor_bytes == 32 * 4
    assert header.context_length == 256


def test_a_generated_hugging_face_folder_checks_out(tmp_path: Path) -> None:
    made = hf_folder(tmp_path / "tiny-llama")
    folder = check_folder(made.path)
    assert folder.architecture == "LlamaForCausalLM"
    assert [shard.name for shard in folder.shards] == list(made.shards)
    assert folder.parameter_count == made.parameters
    assert folder.weight_bytes == made.weight_bytes
    assert folder.dtype == "F16"
    assert folder.tokenizer.name == "tokenizer.json"
    shape = folder.shape()
    assert (shape.layers, shape.kv_heads, shape.head_dim, shape.context_length) == \
        (2, 2, 16, 2048)
    # The shards are real: the reference implementation reads them.
    assert len(load_file(str(made.path / made.shards[0]))) > 0


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    made = hf_folder(tmp_path / "tiny-llama")
    (made.path / made.shards[1]).unlink()
    with pytest.raises(ModelError) as caught:
        check_folder(made.path)
    assert caught.value.message == (
        f"{made.path} is not a usable Hugging Face model folder: weight shard "
        f"{made.shards[1]} listed in model.safetensors.index.json is missing")
    assert caught.value.hint == "download the model folder again (opea-chat models pull hf:REPO)"


def test_a_broken_config_json_says_where(tmp_path: Path) -> None:
    made = hf_folder(tmp_path / "tiny-llama")
    (made.path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"],\n  "hidden')
    with pytest.raises(ModelError, match=r"config.json is not valid JSON \(line 2: "):
        check_folder(made.path)
    (made.path / "config.json").unlink()
    with pytest.raises(ModelError, match=r"config\.json is missing"):
        check_folder(made.path)


def test_a_truncated_shard_and_a_missing_tokenizer(tmp_path: Path) -> None:
    made = hf_folder(tmp_path / "tiny-llama")
    shard = made.path / made.shards[0]
    os.truncate(shard, shard.stat().st_size - 100)
    with pytest.raises(ModelError, match=rf"{made.shards[0]} is truncated: its tensors need "):
        check_folder(made.path)
    other = hf_folder(tmp_path / "no-tokenizer")
    (other.path / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match="no tokenizer") as caught:
        check_folder(other.path)
    assert caught.value.hint == "download the tokenizer files of the model into the folder too"


def test_pytorch_only_weights_and_an_index_without_a_map(tmp_path: Path) -> None:
    folder = tmp_path / "old-style"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match=r"its weights are PyTorch \.bin files, not safetensors"):
        check_folder(folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ModelError, match=r"model\.safetensors\.index\.json has no weight_map"):
        check_folder(folder)


def test_a_shard_that_is_not_safetensors(tmp_path: Path) -> None:
    made = hf_folder(tmp_path / "tiny-llama", shards=1)
    (made.path / made.shards[0]).write_bytes(b"<html>Rate limited</html>")
    with pytest.raises(ModelError, match="is not a safetensors file, or is truncated"):
        check_folder(made.path)
