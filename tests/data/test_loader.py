import numpy as np
import pytest
import torch

from llmkit.data.loader import TokenDataset, TokenLoader, document_attention_mask
from llmkit.data.shards import ShardWriter
from llmkit.errors import LlmkitError
from llmkit.fileio import write_json


@pytest.fixture
def shards(tmp_path):
    """Documents of known lengths 1..40 (token values encode document and offset) in 100-token shards."""
    writer = ShardWriter(tmp_path, "train", np.dtype("<u2"), shard_tokens=100)
    docs = []
    for d in range(40):
        tokens = np.array([1000 + d] * (d % 9 + 2) + [0], dtype=np.int64)  # eos = 0 ends each document
        writer.add(tokens)
        docs.append(tokens)
    writer.close()
    write_json(tmp_path / "index.json", {"dtype": "uint16", "eos_id": 0, "vocab_size": 2000,
                                         "train": writer.shards, "val": []})
    return tmp_path, np.concatenate(docs)


def test_stream_spans_shards_and_matches_what_was_written(shards):
    path, stream = shards
    ds = TokenDataset(path)
    assert len(ds) == len(stream) and len(ds.shards) > 1
    assert np.array_equal(ds.tokens(95, 20), stream[95:115])  # crosses a shard boundary


def test_document_ids_follow_document_starts(shards):
    path, stream = shards
    ds = TokenDataset(path)
    ids = ds.document_ids(0, len(stream))
    expected = np.repeat(np.arange(40), [d % 9 + 3 for d in range(40)])
    assert np.array_equal(ids, expected)


def test_resume_continues_at_the_exact_next_batch(shards):
    ds = TokenDataset(shards[0])
    reference = TokenLoader(ds, 16, 4, seed=7)
    batches = [next(reference) for _ in range(6)]
    first = TokenLoader(ds, 16, 4, seed=7)
    for _ in range(3):
        next(first)
    resumed = TokenLoader(ds, 16, 4, seed=7)
    resumed.load_state_dict(first.state_dict())
    for expected in batches[3:]:
        got = next(resumed)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def test_two_ranks_resume_on_one(shards):
    ds = TokenDataset(shards[0])
    ranks = [TokenLoader(ds, 16, 2, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(2):
        for loader in ranks:
            next(loader)
    global_batch = torch.cat([next(loader)[0] for loader in ranks])
    single = TokenLoader(ds, 16, 4, seed=3)
    single.load_state_dict({**ranks[0].state_dict(), "step": 2})
    assert torch.equal(next(single)[0], global_batch)
    with pytest.raises(LlmkitError, match="global_batch"):
        TokenLoader(ds, 16, 2, seed=3).load_state_dict(ranks[0].state_dict())


def test_sequential_mode_walks_the_stream(shards):
    path, stream = shards
    loader = TokenLoader(TokenDataset(path), 10, 3, mode="sequential")
    inputs, targets = next(loader)
    assert np.array_equal(inputs.numpy().ravel(), stream[:30])
    assert np.array_equal(targets[0].numpy(), stream[1:11])


def test_document_mask_is_block_causal(shards):
    loader = TokenLoader(TokenDataset(shards[0]), 12, 1, mode="sequential", with_document_ids=True)
    _, _, doc_ids = next(loader)
    mask = document_attention_mask(doc_ids)[0, 0]
    for i in range(12):
        for j in range(12):
            assert mask[i, j] == (j <= i and doc_ids[0, i] == doc_ids[0, j])
