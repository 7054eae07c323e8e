"""Deduplication through its three phases (keys per unit, decide over all, apply per unit)."""

import random

import numpy as np

from llmkit.data.steps.dedup import ExactDedup, ExactDedupOptions
from llmkit.data.steps.minhash import NearDedup
from tests.data.planted import ENGLISH, jaccard, near_duplicate, prose


def _run(step, units: list[list[str]], tmp_path) -> list[list[tuple]]:
    files = []
    for i, texts in enumerate(units):
        np.savez(tmp_path / f"keys{i}.npz", **step.keys(texts))
        files.append(tmp_path / f"keys{i}.npz")
    results = []
    for decision, texts in zip(step.decide(files), units):
        apply = step.applier(decision)  # one applier per unit: it walks the decision in document order
        results.append([apply(t) for t in texts])
    return results


def test_exact_dedup_keeps_first_occurrence_across_units(tmp_path):
    units = [[ENGLISH[0], ENGLISH[1]], [ENGLISH[0].upper(), "  ".join(ENGLISH[1].split()), ENGLISH[2]]]
    results = _run(ExactDedup(), units, tmp_path)
    assert [r[1] for r in results[0]] == [None, None]
    assert [r[1] for r in results[1]] == ["duplicate", "duplicate", None]


def test_line_dedup_removes_repeated_lines_corpus_wide(tmp_path):
    footer = "Copyright the example company, all rights reserved."
    units = [[f"First article body.\n{footer}"], [f"Second article body.\n{footer}", footer]]
    results = _run(ExactDedup(ExactDedupOptions(granularity="line")), units, tmp_path)
    assert results[0][0][0] == f"First article body.\n{footer}"
    assert results[1][0][0] == "Second article body."
    assert results[1][1] == (None, "duplicate_lines")


def test_near_dedup_recall_and_precision_on_planted_corpus(tmp_path):
    rng = random.Random(0)
    originals = [prose(seed, words=rng.randint(150, 300)) for seed in range(300)]
    docs, cluster_of = [], []
    for i, text in enumerate(originals):
        docs.append(text)
        cluster_of.append(i)
        if i % 2 == 0:  # half the originals get 1-2 near copies
            for copy in range(1 + i % 3 // 2):
                dup = near_duplicate(text, seed=1000 * i + copy, edits=rng.randint(1, 3))
                if jaccard(text, dup) < 0.8:
                    dup = near_duplicate(text, seed=1000 * i + copy, edits=1)
                assert jaccard(text, dup) >= 0.8
                docs.append(dup)
                cluster_of.append(i)
    order = list(range(len(docs)))
    rng.shuffle(order)
    docs, cluster_of = [docs[i] for i in order], [cluster_of[i] for i in order]
    units = [docs[i:i + 97] for i in range(0, len(docs), 97)]
    kept = [r[1] is None for unit in _run(NearDedup(), units, tmp_path) for r in unit]
    is_dup = [c in cluster_of[:i] for i, c in enumerate(cluster_of)]  # a later member of its cluster
    removed = [not k for k in kept]
    true_pos = sum(r and d for r, d in zip(removed, is_dup))
    recall = true_pos / sum(is_dup)
    precision = true_pos / max(1, sum(removed))
    assert recall >= 0.95, recall
    assert precision >= 0.99, precision
    assert len(set(c for c, k in zip(cluster_of, kept) if k)) == len(originals)  # one survivor per cluster


def test_near_dedup_keeps_unrelated_documents(tmp_path):
    units = [[prose(s) for s in range(50)]]
    assert all(r[1] is None for r in _run(NearDedup(), units, tmp_path)[0])
