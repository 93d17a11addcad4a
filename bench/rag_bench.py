"""The RAG services' numbers: ingest speed, retrieval latency against numpy's brute-force
floor, retrieval quality on documents no one here wrote, memory and index size.

    .venv/bin/python -m bench.rag_bench [--corpus-mb 3] [--queries 200] [--sizes 1000,10000,100000]

Starts the real embedding, dataprep and retriever services (as rag/README.md says), feeds
them over HTTP like the megaservice and the app do, and prints every figure; writes them to
bench/rag_results.json. Not a test: the machines are shared and noisy, so numbers are
reported, never asserted.

- ingest: a mixed corpus of real files on this machine (Debian's PDF manuals, valgrind's HTML
  manual, licence texts, changelogs turned into DOCX), chunks/s and MB/s.
- latency: synthetic unit vectors (the search cost does not depend on what they mean) in the
  same index format, at each size: the retriever over HTTP, the same search in-process, and
  numpy's brute-force dot product + top-k over the same matrix (the floor), p50/p95.
- quality: Node.js's API reference as Debian ships it (HTML, /usr/share/doc/nodejs/api), 35
  questions whose answer page is known, asked among all the other documents: recall@4 (the
  right page among the 4 passages) and MRR.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from launcher.ports import pick_free_port
from launcher.processes import ChildProcess
from models.embedding import pull_embedding_model
from rag.chunks import Chunk
from rag.search import search
from rag.store import INDEX_FILE, Store
from tests.rag_services import dataprep_command, embedding_command, retriever_command
from tests.sample_documents import docx
from tests.services import running

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "rag_results.json"
CACHE = Path.home() / ".cache" / "opea-chat" / "bench"
NODE_API = Path("/usr/share/doc/nodejs/api")

# Question -> the Node.js API page that answers it.
QUESTIONS: list[tuple[str, str]] = [
    ("How do I get the file extension of a path?", "path"),
    ("Join several path segments together with the platform separator", "path"),
    ("What is the platform-specific path delimiter used in PATH?", "path"),
    ("Schedule a function to run once after a delay in milliseconds", "timers"),
    ("How do I cancel a repeating interval timer?", "timers"),
    ("Print a stack trace to stderr from the current position", "console"),
    ("Measure how long an operation takes with a labelled timer", "console"),
    ("Get information about each logical CPU core of the machine", "os"),
    ("How much free system memory is there, in bytes?", "os"),
    ("What is the home directory of the current user?", "os"),
    ("Read input from the terminal one line at a time", "readline"),
    ("Ask the user a question on the command line and wait for the answer", "readline"),
    ("Compress data with gzip", "zlib"),
    ("Use Brotli compression on a stream", "zlib"),
    ("Parse a URL string into hostname, pathname and port", "url"),
    ("Read the query parameters of a URL with URLSearchParams", "url"),
    ("Decode a buffer to a string without splitting multi-byte UTF-8 characters",
     "string_decoder"),
    ("Convert a Unicode domain name to ASCII punycode", "punycode"),
    ("Parse a URL query string into an object of keys and values", "querystring"),
    ("Resolve a host name to its IPv4 addresses", "dns"),
    ("Send a UDP datagram to a port on another host", "dgram"),
    ("Check whether the output stream is a text terminal", "tty"),
    ("Put the terminal into raw mode to read single key presses", "tty"),
    ("Create an HTTPS server with a private key and a certificate", "https"),
    ("Generate a diagnostic report with the JavaScript stack and heap statistics", "report"),
    ("Enable trace event categories for V8 and Node.js", "tracing"),
    ("Connect Chrome DevTools to a running process with the inspector", "inspector"),
    ("Set breakpoints and step through code with the built-in command-line debugger",
     "debugger"),
    ("Give WebAssembly code access to the file system with the system interface", "wasi"),
    ("Handle errors of several asynchronous operations as one group (deprecated module)",
     "domain"),
    ("Which ICU data does Node.js need for full internationalization support?", "intl"),
    ("Which objects such as __dirname are available in every module?", "globals"),
    ("Let corepack manage the versions of yarn and pnpm", "corepack"),
    ("Bind a UDP socket to a port and listen for messages", "dgram"),
    ("Look up the reverse DNS host names of an IP address", "dns"),
]


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * ordered[len(ordered) // 2], 3),
            "p95_ms": round(1000 * ordered[min(len(ordered) - 1,
                                               int(len(ordered) * 0.95))], 3)}


def timed(function: Callable[[int], Any], runs: int) -> list[float]:
    samples = []
    for number in range(runs):
        started = time.perf_counter()
        function(number)
        samples.append(time.perf_counter() - started)
    return samples


def _floor(matrix: np.ndarray[Any, Any], query: np.ndarray[Any, Any]) -> None:
    """numpy's brute force: every dot product, then the top 4 in order."""
    scores = matrix @ query
    best = np.argpartition(-scores, 3)[:4]
    best[np.argsort(-scores[best])]


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[18]


def measure(client: httpx.Client, url: str, matrix: np.ndarray[Any, Any],
            asks: np.ndarray[Any, Any]) -> dict[str, Any]:
    """Retrieval at one index size: over HTTP, in-process, and numpy's floor."""
    body = [{"text": "q", "embedding": q.tolist(), "k": 4} for q in asks]
    started = time.perf_counter()
    client.post(f"{url}/v1/retrieval", json=body[0])  # the retriever loads the new vectors
    reload_s = time.perf_counter() - started
    runs = len(asks)
    # The bare HTTP round trip to the same server: what any request costs on this machine.
    baseline = timed(lambda i: client.get(f"{url}/health").raise_for_status(), runs)
    http = timed(lambda i: client.post(f"{url}/v1/retrieval", json=body[i])
                 .raise_for_status(), runs)
    inproc = timed(lambda i: search(matrix, asks[i], 4), runs)
    brute = timed(lambda i: _floor(matrix, asks[i]), runs)
    return {"reload_s": round(reload_s, 3), "health_check_http": percentiles(baseline),
            "retriever_http": percentiles(http),
            "search_in_process": percentiles(inproc), "numpy_floor": percentiles(brute),
            "http_p95_over_floor": round(_p95(http) / _p95(brute), 1),
            "search_p95_over_floor": round(_p95(inproc) / _p95(brute), 2)}


def rss_mb(child: ChildProcess) -> float:
    return round(psutil.Process(child.pid).memory_info().rss / 1e6, 1)


def embedding_cpu_cost(model: Path) -> dict[str, float]:
    """What embedding costs in CPU time on one thread (a figure the machine's load does not
    change): chunks of ~1500 characters of a licence text, and a one-line question."""
    from rag.chunks import split_text
    from rag.embedder import Embedder

    embedder = Embedder(model, threads=1)
    text = Path("/usr/share/common-licenses/GPL-3").read_text()
    chunks = split_text(text, 1500, 100)
    embedder.embed(chunks[:8])
    started = time.process_time()
    embedder.embed(chunks)
    per_chunk = (time.process_time() - started) / len(chunks)
    started = time.process_time()
    for _ in range(20):
        embedder.embed(["how do I convey the object code of a covered work?"])
    per_query = (time.process_time() - started) / 20
    result = {"chunks": len(chunks), "chunks_per_cpu_second": round(1 / per_chunk, 1),
              "query_cpu_ms": round(1000 * per_query, 1)}
    print(f"embedding on one thread: {result['chunks_per_cpu_second']} chunks per CPU-second "
          f"(1500-character chunks), {result['query_cpu_ms']} ms CPU per question")
    return result


def mixed_corpus(limit_bytes: int) -> list[tuple[str, bytes]]:
    """Real files of every supported type, up to about ``limit_bytes`` in all."""
    candidates: list[tuple[str, bytes]] = []
    for pdf in (Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
                Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf")):
        if pdf.is_file():
            candidates.append((pdf.name, pdf.read_bytes()))
    for html in sorted(Path("/usr/share/doc/valgrind/html").glob("*.html"),
                       key=lambda p: -p.stat().st_size)[:8]:
        candidates.append((f"valgrind-{html.name}", html.read_bytes()))
    for text in ("GPL-3", "Apache-2.0", "LGPL-2.1", "MPL-2.0", "GFDL-1.3"):
        path = Path("/usr/share/common-licenses") / text
        if path.is_file():
            candidates.append((f"{text}.txt", path.read_bytes()))
    for changelog in sorted(Path("/usr/share/doc").glob("*/changelog.Debian.gz"),
                            key=lambda p: -p.stat().st_size)[:6]:
        lines = gzip.decompress(changelog.read_bytes()).decode("utf-8", "replace")
        name = changelog.parent.name
        candidates.append((f"{name}-changelog.docx", docx(lines.splitlines()[:2000])))
    # Round-robin by type so that a small limit still mixes them.
    by_type: dict[str, list[tuple[str, bytes]]] = {}
    for name, data in candidates:
        by_type.setdefault(name.rsplit(".", 1)[-1], []).append((name, data))
    chosen, total = [], 0
    while any(by_type.values()) and total < limit_bytes:
        for files in by_type.values():
            if files and total < limit_bytes:
                name, data = files.pop(0)
                chosen.append((name, data))
                total += len(data)
    return chosen


def ingest(client: httpx.Client, dataprep: str, files: list[tuple[str, bytes]]) \
        -> tuple[int, float]:
    chunks, started = 0, time.perf_counter()
    for name, data in files:
        response = client.post(f"{dataprep}/v1/dataprep/ingest", timeout=3600,
                               files=[("files", (name, data))])
        if response.status_code != 200:
            print(f"  {name}: {response.json()['detail']}")
            continue
        chunks += response.json()["files"][0]["chunks"]
    return chunks, time.perf_counter() - started


def latency(sizes: list[int], queries: int, work: Path) -> dict[str, Any]:
    generator = np.random.default_rng(11)
    store = Store(work / "synthetic")
    results: dict[str, Any] = {}
    port = pick_free_port()
    url = f"http://127.0.0.1:{port}"
    with running("retriever-synthetic", retriever_command(port, work / "synthetic", None),
                 url + "/v1/health_check", work / "logs") as child, \
            httpx.Client(timeout=60) as client:
        have = 0
        for size in sizes:
            started = time.perf_counter()
            while have < size:
                batch = min(5000, size - have)
                vectors = generator.normal(size=(batch, 384)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                chunks = [Chunk(f"synthetic passage {have + i}", i) for i in range(batch)]
                file_id = store.begin_file(f"synthetic-{have}.txt", batch * 20)
                store.finish_file(file_id, chunks, vectors)
                have += batch
            insert_s = time.perf_counter() - started
            _, matrix = store.vectors()
            asks = generator.normal(size=(queries, 384)).astype(np.float32)
            asks /= np.linalg.norm(asks, axis=1, keepdims=True)
            results[str(size)] = {"insert_s": round(insert_s, 2),
                                  **measure(client, url, matrix, asks),
                                  "retriever_rss_mb": rss_mb(child)}
            reload_s = results[str(size)]["reload_s"]
            print(f"  {size:>7} chunks: insert {insert_s:.1f} s, retriever reload "
                  f"{reload_s:.2f} s; p50/p95 ms: HTTP {results[str(size)]['retriever_http']} "
                  f"(a bare GET /health: {results[str(size)]['health_check_http']}), "
                  f"in-process {results[str(size)]['search_in_process']}, numpy floor "
                  f"{results[str(size)]['numpy_floor']}; retriever RSS "
                  f"{results[str(size)]['retriever_rss_mb']} MB")
        db = work / "synthetic" / INDEX_FILE
        results["synthetic_index_mb_per_1k"] = round(db.stat().st_size / 1e6 / have * 1000, 2)
    store.close()
    return results


def quality(client: httpx.Client, embedding: str, retriever: str) -> dict[str, Any]:
    hits, reciprocal, misses = 0, 0.0, []
    for question, page in QUESTIONS:
        vector = client.post(f"{embedding}/embed", json={"inputs": question}).json()[0]
        docs = client.post(f"{retriever}/v1/retrieval",
                           json={"text": question, "embedding": vector, "k": 10}
                           ).json()["retrieved_docs"]
        sources = [d["metadata"]["source"] for d in docs]
        rank = next((i for i, s in enumerate(sources, 1) if s == f"{page}.html"), None)
        hits += rank is not None and rank <= 4
        reciprocal += 1 / rank if rank else 0.0
        if rank is None or rank > 4:
            misses.append(f"{question!r}: wanted {page}.html, got {sources[:4]}")
    return {"questions": len(QUESTIONS), "recall_at_4": round(hits / len(QUESTIONS), 3),
            "mrr_at_10": round(reciprocal / len(QUESTIONS), 3), "misses": misses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rag_bench")
    parser.add_argument("--corpus-mb", type=float, default=3.0)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--latency-only", action="store_true",
                        help="measure retrieval latency and the embedding's CPU cost only; "
                             "keep the other results")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    # The floor and the in-process search on one BLAS thread, as the retriever runs them.
    threadpool_limits(limits=1, user_api="blas")
    results: dict[str, Any]
    model = pull_embedding_model("all-minilm-l6-v2", CACHE / "models", say=lambda t: None).path
    if args.latency_only:
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["embedding_cpu"] = embedding_cpu_cost(model)
        with tempfile.TemporaryDirectory(prefix="opea-chat-rag-bench-") as scratch:
            print(f"retrieval latency, k=4, {args.queries} queries per size:")
            results["latency"] = latency([int(s) for s in args.sizes.split(",")],
                                         args.queries, Path(scratch))
            results["latency"]["load_average_at_start"] = psutil.getloadavg()
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        return 0
    results = {"machine": {"cpus": psutil.cpu_count(),
                           "load_average_at_start": psutil.getloadavg()},
               "embedding_cpu": embedding_cpu_cost(model)}
    with tempfile.TemporaryDirectory(prefix="opea-chat-rag-bench-") as scratch:
        work = Path(scratch)
        data, logs = work / "rag", work / "logs"
        ports = [pick_free_port() for _ in range(3)]
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        embedding, dataprep, retriever = urls
        started = time.perf_counter()
        with running("embedding", embedding_command(ports[0], model), embedding + "/health",
                     logs) as embedding_child:
            results["embedding_ready_s"] = round(time.perf_counter() - started, 2)
            with running("dataprep", dataprep_command(ports[1], data, embedding),
                         dataprep + "/v1/health_check", logs) as dataprep_child, \
                    running("retriever", retriever_command(ports[2], data, embedding),
                            retriever + "/v1/health_check", logs) as retriever_child, \
                    httpx.Client(timeout=60) as client:
                corpus = mixed_corpus(int(args.corpus_mb * 1e6))
                size = sum(len(d) for _, d in corpus)
                kinds = sorted({n.rsplit(".", 1)[-1] for n, _ in corpus})
                print(f"ingest: {len(corpus)} files ({', '.join(kinds)}), {size / 1e6:.2f} MB")
                chunks, seconds = ingest(client, dataprep, corpus)
                results["ingest_mixed"] = {
                    "files": len(corpus), "types": kinds, "mb": round(size / 1e6, 2),
                    "chunks": chunks, "seconds": round(seconds, 1),
                    "chunks_per_s": round(chunks / seconds, 1),
                    "mb_per_s": round(size / 1e6 / seconds, 3)}
                print(f"  {chunks} chunks in {seconds:.1f} s: {chunks / seconds:.1f} chunks/s, "
                      f"{size / 1e6 / seconds:.3f} MB/s")

                pages = sorted({page for _, page in QUESTIONS} | {
                    "string_decoder", "querystring", "punycode", "timers", "path"})
                files = [(f"{p}.html", (NODE_API / f"{p}.html").read_bytes())
                         for p in pages if (NODE_API / f"{p}.html").is_file()]
                if files:
                    node_mb = sum(len(d) for _, d in files) / 1e6
                    node_chunks, node_s = ingest(client, dataprep, files)
                    results["ingest_node_api_html"] = {
                        "files": len(files), "mb": round(node_mb, 2), "chunks": node_chunks,
                        "seconds": round(node_s, 1),
                        "chunks_per_s": round(node_chunks / node_s, 1)}
                    print(f"quality corpus: {len(files)} Node.js API pages, {node_mb:.2f} MB, "
                          f"{node_chunks} chunks in {node_s:.1f} s")
                    results["quality"] = quality(client, embedding, retriever)
                    q = results["quality"]
                    print(f"  {q['questions']} questions among {chunks + node_chunks} chunks: "
                          f"recall@4 {q['recall_at_4']}, MRR {q['mrr_at_10']}")
                    for miss in q["misses"]:
                        print(f"    miss: {miss}")
                else:
                    print(f"quality: skipped, {NODE_API} is not on this machine "
                          "(apt-get install nodejs-doc)")
                total = len(client.post(f"{dataprep}/v1/dataprep/get").json())
                db = data / INDEX_FILE
                all_chunks = sum(f["chunks"] for f in
                                 client.post(f"{dataprep}/v1/dataprep/get").json())
                results["index"] = {"files": total, "chunks": all_chunks,
                                    "mb": round(db.stat().st_size / 1e6, 2),
                                    "mb_per_1k_chunks": round(db.stat().st_size / 1e6 /
                                                              all_chunks * 1000, 2)}
                results["rss_mb"] = {"embedding": rss_mb(embedding_child),
                                     "dataprep": rss_mb(dataprep_child),
                                     "retriever": rss_mb(retriever_child)}
                print(f"index: {all_chunks} chunks, {results['index']['mb']} MB on disk, "
                      f"{results['index']['mb_per_1k_chunks']} MB per 1k chunks")
                print(f"RSS: {results['rss_mb']}")
        sizes = [int(s) for s in args.sizes.split(",")]
        print(f"retrieval latency, k=4, {args.queries} queries per size:")
        results["latency"] = latency(sizes, args.queries, work)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
