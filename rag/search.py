"""Nearest chunks to a query vector: exact cosine search over the index's matrix (its rows
are L2-normalised, so a dot product is the cosine), with the search types OPEA's retriever
offers. Pure functions of arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rag.errors import DocumentError

SIMILARITY = "similarity"
THRESHOLD = "similarity_score_threshold"
MMR = "mmr"
SEARCH_TYPES = (SIMILARITY, THRESHOLD, MMR)

Matrix = npt.NDArray[np.float32]


def top_k(matrix: Matrix, query: Matrix, k: int) -> tuple[npt.NDArray[np.intp], Matrix]:
    """Row numbers and scores of the ``k`` best rows, best first."""
    if matrix.shape[0] == 0 or k <= 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
    scores = matrix @ query
    k = min(k, scores.shape[0])
    best = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    best = best[np.argsort(-scores[best], kind="stable")]
    return best, scores[best]


def mmr(matrix: Matrix, query: Matrix, k: int, fetch_k: int,
        lambda_mult: float) -> tuple[npt.NDArray[np.intp], Matrix]:
    """Maximal marginal relevance: among the ``fetch_k`` best, pick ``k`` that are relevant
    and unlike the ones already picked. Scores returned are the query similarities."""
    rows, scores = top_k(matrix, query, max(k, fetch_k))
    if rows.size == 0:
        return rows, scores
    candidates = matrix[rows]
    picked: list[int] = []
    left = list(range(rows.size))
    while left and len(picked) < k:
        if picked:
            redundancy = (candidates[left] @ candidates[picked].T).max(axis=1)
        else:
            redundancy = np.zeros(len(left), dtype=np.float32)
        value = lambda_mult * scores[left] - (1 - lambda_mult) * redundancy
        choice = left[int(np.argmax(value))]
        picked.append(choice)
        left.remove(choice)
    return rows[picked], scores[picked]


def search(matrix: Matrix, query: Matrix, k: int, search_type: str = SIMILARITY,
           score_threshold: float = 0.2, fetch_k: int = 20,
           lambda_mult: float = 0.5) -> tuple[npt.NDArray[np.intp], Matrix]:
    if search_type not in SEARCH_TYPES:
        raise DocumentError(f"search_type '{search_type}' is not supported",
                            hint=f"use one of: {', '.join(SEARCH_TYPES)}")
    if not 1 <= k <= 1000:
        raise DocumentError(f"k={k} is out of range", hint="ask for 1 to 1000 passages")
    if matrix.shape[0] and query.shape != (matrix.shape[1],):
        raise DocumentError(
            f"the embedding has {query.size} numbers; this index holds {matrix.shape[1]}",
            hint="embed the question with the same model as the documents")
    if search_type == MMR:
        return mmr(matrix, query, k, fetch_k, lambda_mult)
    rows, scores = top_k(matrix, query, k)
    if search_type == THRESHOLD:
        keep = scores >= score_threshold
        return rows[keep], scores[keep]
    return rows, scores
