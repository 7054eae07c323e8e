"""Curation throughput per step, and MinHash near-dedup against datatrove in the same run.

Generates a corpus of English-shaped documents with planted near-duplicates (shingle Jaccard >= 0.8),
runs `llmkit data prepare` with the default curation steps (per-step docs/s and MB/s, per core),
then near-dedup alone in llmkit and in datatrove's four-stage MinHash pipeline on the same files
with the same number of workers: documents/s and the precision/recall of each against the
planted clusters. Prints a table and writes JSON.

    pip install datatrove==0.10.1   # only for this benchmark
    .venv/bin/python benchmarks/data_pipeline.py [--docs 100000] [--workers 2] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the planted-corpus generator is shared with the tests

from llmkit.data.pipeline import PrepareConfig, prepare  # noqa: E402
from tests.data.planted import near_duplicate, prose  # noqa: E402

CURATION = ["normalize", "language", "gopher", "c4", "toxicity", "exact_dedup", "near_dedup", "pii"]


def make_corpus(folder: Path, n_docs: int, n_files: int, seed: int = 0) -> dict[str, int]:
    """JSONL files of n_docs documents; about 10% are near copies of an earlier original.
    Returns doc id -> cluster id."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    docs, clusters = [], {}
    while len(docs) < n_docs:
        cluster = len(clusters)
        text = prose(cluster, words=rng.randint(100, 300))
        copies = [text] + [near_duplicate(text, rng.randint(0, 2**31), edits=rng.randint(1, 2))
                           for _ in range(1 if rng.random() < 0.1 else 0)]
        for copy in copies:
            doc_id = f"d{len(docs)}"
            docs.append({"id": doc_id, "text": copy})
            clusters[doc_id] = cluster
    rng.shuffle(docs)
    for f in range(n_files):
        with open(folder / f"part-{f:03d}.jsonl", "w") as handle:
            for doc in docs[f::n_files]:
                handle.write(json.dumps(doc) + "\n")
    return clusters


def score(removed: set[str], clusters: dict[str, int]) -> tuple[float, float]:
    """Precision and recall of removals: a cluster of k copies should lose exactly k - 1."""
    sizes: dict[int, int] = {}
    for c in clusters.values():
        sizes[c] = sizes.get(c, 0) + 1
    removed_per_cluster: dict[int, int] = {}
    for doc in removed:
        removed_per_cluster[clusters[doc]] = removed_per_cluster.get(clusters[doc], 0) + 1
    true_pos = sum(min(n, sizes[c] - 1) for c, n in removed_per_cluster.items())
    should = sum(k - 1 for k in sizes.values())
    return true_pos / max(1, len(removed)), true_pos / max(1, should)


def run_llmkit_curation(inputs: Path, out: Path, workers: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    stats = prepare(PrepareConfig(inputs=[str(inputs)], out=str(out), steps=[{"name": s} for s in CURATION],
                                  workers=workers, keep_rejected=False, progress=False))
    timings = json.loads((out / "timings.json").read_text())
    rows = {}
    for step in stats["steps"]:
        seconds = timings["step_seconds"].get(step["name"], 0.0)
        rows[step["name"]] = {"docs_in": step["docs_in"], "docs_per_s": step["docs_in"] / max(seconds, 1e-9),
                              "mb_per_s": step["chars_in"] / 1e6 / max(seconds, 1e-9)}
    return {"steps": rows, "wall_seconds": timings["wall_seconds"], "docs_in": stats["docs_in"]}


def run_llmkit_minhash(inputs: Path, out: Path, workers: int, n_docs: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    prepare(PrepareConfig(inputs=[str(inputs)], out=str(out), steps=[{"name": "near_dedup"}],
                          workers=workers, progress=False))
    seconds = time.perf_counter() - started
    removed = {json.loads(line)["document"]["id"] for f in (out / "rejected").glob("*.jsonl")
               for line in f.read_text().splitlines()}
    return {"seconds": seconds, "docs_per_s": n_docs / seconds, "removed": removed}


def run_datatrove_minhash(inputs: Path, work: Path, workers: int, n_docs: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    shutil.rmtree(work, ignore_errors=True)
    config = MinhashConfig()  # its defaults: 5-grams, 14 buckets x 8 hashes
    tasks = len(list(inputs.glob("*.jsonl")))
    stages = [
        ([JsonlReader(str(inputs)), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], tasks),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"), config=config)],
         config.num_buckets),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"),
                              config=config)], 1),
        ([JsonlReader(str(inputs)), MinhashDedupFilter(input_folder=str(work / "remove_ids"),
                                                       exclusion_writer=JsonlWriter(str(work / "removed"))),
          JsonlWriter(str(work / "kept"))], tasks),
    ]
    started = time.perf_counter()
    for i, (pipeline, n_tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline=pipeline, tasks=n_tasks, workers=workers,
                              logging_dir=str(work / f"logs{i}")).run()
    seconds = time.perf_counter() - started
    import gzip

    removed = {json.loads(line)["id"] for f in (work / "removed").glob("*") for line in
               gzip.open(f, "rt") if line.strip()}
    return {"seconds": seconds, "docs_per_s": n_docs / seconds, "removed": removed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="runs/benchmarks/data_work")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    work = Path(args.work)
    clusters = make_corpus(work / "input", args.docs, args.files)
    n_docs = len(clusters)
    curation = run_llmkit_curation(work / "input", work / "llmkit_curation", args.workers)
    ours = run_llmkit_minhash(work / "input", work / "llmkit_minhash", args.workers, n_docs)
    theirs = run_datatrove_minhash(work / "input", work / "datatrove", args.workers, n_docs)
    for result in (ours, theirs):
        result["precision"], result["recall"] = score(result.pop("removed"), clusters)

    print(f"{n_docs} documents, {args.workers} workers; per-step rates are per core")
    print(f"{'step':<14}{'docs in':>10}{'docs/s':>10}{'MB/s':>8}")
    for name, row in curation["steps"].items():
        print(f"{name:<14}{row['docs_in']:>10}{row['docs_per_s']:>10.0f}{row['mb_per_s']:>8.1f}")
    print(f"whole curation run: {curation['wall_seconds']:.1f} s wall, {n_docs / curation['wall_seconds']:.0f} docs/s")
    print(f"\n{'near-dedup':<12}{'seconds':>9}{'docs/s':>9}{'precision':>11}{'recall':>8}")
    for name, r in (("llmkit", ours), ("datatrove", theirs)):
        print(f"{name:<12}{r['seconds']:>9.1f}{r['docs_per_s']:>9.0f}{r['precision']:>11.4f}{r['recall']:>8.4f}")
    print(f"throughput ratio llmkit / datatrove: {ours['docs_per_s'] / theirs['docs_per_s']:.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"docs": n_docs, "workers": args.workers, "curation": curation, "minhash": {"llmkit": ours, "datatrove": theirs},
              "ratio": ours["docs_per_s"] / theirs["docs_per_s"]}
    (out / "data_pipeline.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'data_pipeline.json'}")


if __name__ == "__main__":
    main()
