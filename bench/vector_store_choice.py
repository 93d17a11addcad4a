"""Why the index is SQLite + numpy and not qdrant-client's local mode: both measured on the
same vectors in one run.

    pip install qdrant-client   # in a scratch environment: not a dependency of opea-chat
    PYTHONPATH=. python bench/vector_store_choice.py [--sizes 1000,10000] [--queries 100]

Prints, at each size: the time to insert the chunks (vector + passage text), the search
latency p50/p95 for the top 4 with their text, the size on disk; then whether a second
process can open the same index (dataprep writes while the retriever reads).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.chunks import Chunk
from rag.search import search
from rag.store import Store


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    return (f"p50 {1000 * ordered[len(ordered) // 2]:.2f} ms, "
            f"p95 {1000 * ordered[int(len(ordered) * 0.95)]:.2f} ms")


def _disk(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    from qdrant_client import QdrantClient, models

    generator = np.random.default_rng(5)
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = generator.normal(size=(size, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        texts = [f"passage {i} " + "lorem ipsum " * 100 for i in range(size)]
        asks = generator.normal(size=(args.queries, 384)).astype(np.float32)
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            started = time.perf_counter()
            store = Store(root / "sqlite")
            file_id = store.begin_file("corpus.txt", 1)
            store.finish_file(file_id, [Chunk(t, i) for i, t in enumerate(texts)], vectors)
            insert = time.perf_counter() - started
            ids, matrix = store.vectors()
            samples = []
            for query in asks:
                begin = time.perf_counter()
                rows, _ = search(matrix, query, 4)
                store.chunks([int(ids[r]) for r in rows])
                samples.append(time.perf_counter() - begin)
            print(f"{size:>6} sqlite+numpy: insert {insert:.2f} s, search+text {_ms(samples)}, "
                  f"{_disk(root / 'sqlite'):.1f} MB")
            store.close()

            started = time.perf_counter()
            client = QdrantClient(path=str(root / "qdrant"))
            client.create_collection("docs", vectors_config=models.VectorParams(
                size=384, distance=models.Distance.COSINE))
            for start in range(0, size, 1000):
                client.upsert("docs", points=[
                    models.PointStruct(id=i, vector=vectors[i].tolist(),
                                       payload={"text": texts[i]})
                    for i in range(start, min(size, start + 1000))])
            insert = time.perf_counter() - started
            samples = []
            for query in asks:
                begin = time.perf_counter()
                client.query_points("docs", query=query.tolist(), limit=4, with_payload=True)
                samples.append(time.perf_counter() - begin)
            print(f"{size:>6} qdrant local:  insert {insert:.2f} s, search+text {_ms(samples)}, "
                  f"{_disk(root / 'qdrant'):.1f} MB")
            second = subprocess.run(
                [sys.executable, "-c", "from qdrant_client import QdrantClient; "
                 f"QdrantClient(path={str(root / 'qdrant')!r})"],
                capture_output=True, text=True, check=False)
            verdict = "yes" if second.returncode == 0 else \
                "no: " + second.stderr.strip().splitlines()[-1][:160]
            print(f"{size:>6} qdrant local: a second process can open the index? {verdict}")
            client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
