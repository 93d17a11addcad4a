"""Model files for the model checks: damaged copies of the real SmolLM2 GGUF, a whole GGUF
that llama.cpp cannot load, and generated Hugging Face folders with real safetensors shards
(written by the safetensors reference implementation), whole or damaged."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import save_file

SMOLLM2_TENSOR_COUNT = 272
SMOLLM2_PARAMETERS = 134_515_008


def truncated_copy(source: Path, target: Path, size: int) -> Path:
    """The first ``size`` bytes of ``source``: what an interrupted download leaves."""
    with source.open("rb") as src, target.open("wb") as dst:
        dst.write(src.read(size))
    return target


def bad_magic_copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    with target.open("r+b") as handle:
        handle.write(b"GGUX")
    return target


def unknown_architecture_gguf(path: Path) -> Path:
    """A whole, valid GGUF file of an architecture llama.cpp does not know: it passes
    every file check and still makes the LLM server fail while loading."""
    writer = gguf.GGUFWriter(str(path), arch="opea-chat-test")
    writer.add_block_count(1)
    writer.add_context_length(256)
    writer.add_embedding_length(4)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@dataclass(frozen=True)
class GeneratedFolder:
    path: Path
    parameters: int
    weight_bytes: int
    shards: tuple[str, ...]


def _llama_tensors(layers: int, hidden: int, heads: int, kv_heads: int, vocab: int,
                   ffn: int) -> dict[str, np.ndarray]:
    head_dim = hidden // heads
    rng = np.random.default_rng(4)

    def weight(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float16)

    tensors = {"model.embed_tokens.weight": weight(vocab, hidden),
               "model.norm.weight": weight(hidden), "lm_head.weight": weight(vocab, hidden)}
    for layer in range(layers):
        prefix = f"model.layers.{layer}"
        tensors |= {
            f"{prefix}.self_attn.q_proj.weight": weight(hidden, hidden),
            f"{prefix}.self_attn.k_proj.weight": weight(kv_heads * head_dim, hidden),
            f"{prefix}.self_attn.v_proj.weight": weight(kv_heads * head_dim, hidden),
            f"{prefix}.self_attn.o_proj.weight": weight(hidden, hidden),
            f"{prefix}.mlp.gate_proj.weight": weight(ffn, hidden),
            f"{prefix}.mlp.up_proj.weight": weight(ffn, hidden),
            f"{prefix}.mlp.down_proj.weight": weight(hidden, ffn),
            f"{prefix}.input_layernorm.weight": weight(hidden),
            f"{prefix}.post_attention_layernorm.weight": weight(hidden),
        }
    return tensors


def hf_folder(path: Path, shards: int = 2, layers: int = 2, hidden: int = 64, heads: int = 4,
              kv_heads: int = 2, vocab: int = 256, context: int = 2048) -> GeneratedFolder:
    """A small Llama-architecture Hugging Face folder: config.json, sharded safetensors
    weights with their index, and a tokenizer."""
    path.mkdir(parents=True)
    ffn = hidden * 2
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads,
        "max_position_embeddings": context, "vocab_size": vocab, "torch_dtype": "float16",
        "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2,
    }
    (path / "config.json").write_text(json.dumps(config, indent=2))
    tensors = _llama_tensors(layers, hidden, heads, kv_heads, vocab, ffn)
    names = sorted(tensors)
    files = tuple(f"model-{i + 1:05d}-of-{shards:05d}.safetensors" for i in range(shards))
    weight_map: dict[str, str] = {}
    for index, file in enumerate(files):
        part = {name: tensors[name] for name in names[index::shards]}
        save_file(part, str(path / file), metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, file)
    total = sum(t.nbytes for t in tensors.values())
    (path / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    vocabulary = {f"t{i}": i for i in range(vocab)}
    (path / "tokenizer.json").write_text(json.dumps({
        "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None,
        "model": {"type": "BPE", "vocab": vocabulary, "merges": []},
    }))
    (path / "tokenizer_config.json").write_text(json.dumps({"model_max_length": context}))
    return GeneratedFolder(path, sum(t.size for t in tensors.values()), total, files)
