"""The index on disk and the retriever's copy in memory: after each change the copy holds
exactly the complete files' chunks, whether it read only the new ones or all of them."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag.chunks import Chunk
from rag.retriever_server import Index
from rag.store import INDEX_FILE, Store


def _unit(count: int, seed: int) -> npt.NDArray[np.float32]:
    vectors = np.random.default_rng(seed).normal(size=(count, 8)).astype(np.float32)
    result: npt.NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return result


def _add(store: Store, name: str, count: int, seed: int) -> bool:
    file_id = store.begin_file(name, count)
    return store.finish_file(file_id, [Chunk(f"{name} {i}", i) for i in range(count)],
                             _unit(count, seed))


def _same_as_disk(index: Index, store: Store) -> None:
    ids, matrix = index.current()
    on_disk_ids, on_disk = store.vectors()
    assert list(ids) == list(on_disk_ids)
    assert np.array_equal(matrix, on_disk)


def test_the_copy_in_memory_follows_every_change(tmp_path: Path) -> None:
    store = Store(tmp_path / "rag")
    index = Index(store)
    assert index.current()[0].size == 0
    _add(store, "a.txt", 5, 1)
    _same_as_disk(index, store)
    loaded = index.current()[1]
    _add(store, "b.txt", 3, 2)          # an addition: only b's rows are read and appended
    _same_as_disk(index, store)
    assert np.array_equal(index.current()[1][:5], loaded)
    assert _add(store, "a.txt", 2, 3)   # a replacement removes a's old rows: all re-read
    _same_as_disk(index, store)
    assert index.current()[1].shape == (5, 8)
    # A file still being ingested is never searched; a deletion is seen at once.
    store.begin_file("c.txt", 1)
    _same_as_disk(index, store)
    assert store.delete("b.txt")
    _same_as_disk(index, store)
    _add(store, "d.txt", 4, 4)
    _same_as_disk(index, store)
    store.delete_all()
    _same_as_disk(index, store)
    assert index.current()[0].size == 0


def test_files_left_ingesting_are_marked_incomplete(tmp_path: Path) -> None:
    store = Store(tmp_path / "rag")
    _add(store, "done.txt", 2, 1)
    store.begin_file("half.txt", 10)
    store.close()
    reopened = Store(tmp_path / "rag")
    assert reopened.mark_interrupted() == 1
    assert [(f.name, f.status, f.chunks) for f in reopened.files()] == [
        ("done.txt", "complete", 2), ("half.txt", "incomplete", 0)]
    assert stat.S_IMODE((tmp_path / "rag" / INDEX_FILE).stat().st_mode) == 0o600
