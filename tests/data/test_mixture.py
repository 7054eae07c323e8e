"""Mixtures: sources curated with their own steps, mixed by weight or token count (small sources
repeated with epochs counted), every prefix of the stream in proportion, per-source stats, and a
loader that counts tokens per source and resumes at the same place in the mixture."""

import json
from pathlib import Path

import numpy as np
import pytest

from llmkit.cli import main
from llmkit.data.loader import TokenDataset, TokenLoader
from llmkit.data.mixture import MixtureSource, targets
from llmkit.errors import LlmkitError
from tests.data.corpus_files import write_jsonl
from tests.data.planted import prose


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    write_jsonl(root / "web.jsonl", [{"text": prose(i, words=120)} for i in range(120)])
    write_jsonl(root / "books.jsonl", [{"body": prose(1000 + i, words=100)} for i in range(12)]
                + [{"body": prose(1000, words=100)}])  # one duplicate for books' own dedup step
    (root / "mix.yaml").write_text(f"""vocab_size: 400
seed: 3
sources:
  - name: web
    inputs: [{root / 'web.jsonl'}]
    steps: [{{name: normalize}}]
    weight: 0.6
  - name: books
    inputs: [{root / 'books.jsonl'}]
    text_field: body
    steps: [{{name: normalize}}, {{name: exact_dedup}}]
    weight: 0.4
""")
    assert main(["data", "prepare", "--out", str(root / "out"), "--config", str(root / "mix.yaml"), "--no-progress"]) == 0
    return root / "out"


def test_shares_follow_the_weights_and_small_sources_repeat(mixture):
    rows = {r["name"]: r for r in json.loads((mixture / "stats.json").read_text())["mixture"]}
    assert rows["web"]["share"] == pytest.approx(0.6, abs=0.02) and rows["books"]["share"] == pytest.approx(0.4, abs=0.02)
    assert rows["books"]["epochs"] > 3 and rows["web"]["epochs"] < 1  # books up-sampled, web down-sampled
    assert rows["books"]["documents"] > 3 * 12  # its 12 unique documents, each used about 4 times


def test_every_prefix_of_the_stream_is_in_proportion(mixture):
    data = TokenDataset(mixture)
    lengths = np.diff(np.append(data.doc_starts, len(data)))
    books = np.cumsum(lengths * (data.doc_sources == data.source_names.index("books")))
    for fraction in (0.1, 0.25, 0.5, 0.75):
        cut = int(len(lengths) * fraction)
        assert books[cut] / np.cumsum(lengths)[cut] == pytest.approx(0.4, abs=0.05)


def test_each_source_keeps_its_own_curation_stats(mixture):
    stats = json.loads((mixture / "stats.json").read_text())
    books_steps = {s["name"]: s for s in stats["sources"]["books"]["steps"]}
    assert books_steps["exact_dedup"]["docs_in"] - books_steps["exact_dedup"]["docs_out"] == 1
    assert "exact_dedup" not in {s["name"] for s in stats["sources"]["web"]["steps"]}


def test_the_loader_counts_tokens_per_source_and_resumes_in_place(mixture):
    data = TokenDataset(mixture)
    straight = TokenLoader(data, 32, 4, seed=1)
    batches = [next(straight)[0] for _ in range(12)]
    first = TokenLoader(data, 32, 4, seed=1)
    for _ in range(5):
        next(first)
    resumed = TokenLoader(TokenDataset(mixture), 32, 4, seed=1)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert all(bool((next(resumed)[0] == b).all()) for b in batches[5:])
    assert resumed.state_dict()["source_tokens"] == straight.state_dict()["source_tokens"]
    assert sum(straight.state_dict()["source_tokens"].values()) == 12 * 4 * 32  # every input token counted once
    sequential = TokenLoader(data, 32, 4, mode="sequential")
    for _ in range(100):
        next(sequential)
    counts = sequential.state_dict()["source_tokens"]
    assert counts["books"] / sum(counts.values()) == pytest.approx(0.4, abs=0.03)


def test_token_targets_and_a_total():
    sources = [MixtureSource("a", ["x"], weight=1.0), MixtureSource("b", ["y"], tokens=500)]
    assert targets({"a": 10_000, "b": 100}, sources, total=2_000) == {"a": 1_500, "b": 500}
    assert targets({"a": 800, "b": 100}, [MixtureSource("a", ["x"], weight=3), MixtureSource("b", ["y"], weight=1)],
                   None) == {"a": 675, "b": 225}


@pytest.mark.parametrize("source,message", [
    ({"name": "a", "inputs": ["x"], "weight": 1, "tokens": 5}, "exactly one of weight or tokens"),
    ({"name": "a", "inputs": ["x"]}, "exactly one of weight or tokens"),
    ({"name": "a", "inputs": ["x"], "weight": 1, "steps": [{"name": "tokenize"}]}, "leave tokenize out"),
    ({"inputs": ["x"], "weight": 1}, "needs name and inputs"),
    ({"name": "a", "inputs": ["x"], "weight": 1, "steps": [{"name": "normalise"}]}, "unknown step"),
])
def test_bad_sources_are_named(source, message):
    with pytest.raises(LlmkitError, match=message):
        MixtureSource.from_dict(source)


def test_a_mixture_config_and_input_flags_do_not_mix(tmp_path):
    (tmp_path / "m.yaml").write_text("sources: [{name: a, inputs: [x], weight: 1}]\n")
    assert main(["data", "prepare", "--out", str(tmp_path / "o"), "--config", str(tmp_path / "m.yaml"),
                 "--input", "x.jsonl"]) != 0
