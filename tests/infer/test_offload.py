"""Layer streaming from disk: same outputs as the in-memory model, at most two blocks resident,
and the next block's load starts before the current block runs."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.decode import generate_ids
from llmkit.infer.offload import load_streaming
from llmkit.model import build_model, named_config


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("stream") / "ckpt"
    cfg = named_config("tiny-llama").replace(n_layer=4)
    save_checkpoint(build_model(cfg, "cpu"), path, max_shard_bytes=200_000)  # several files
    return path


@pytest.mark.parametrize("prefetch", [True, False])
def test_streamed_model_matches_the_loaded_one(checkpoint, prefetch):
    reference = load_checkpoint(checkpoint).eval()
    streamed, streamer = load_streaming(checkpoint, prefetch=prefetch)
    tokens = torch.randint(0, reference.cfg.vocab_size, (2, 12))
    with torch.no_grad():
        assert torch.equal(streamed(tokens), reference(tokens))
    assert generate_ids(streamed, [[1, 2, 3]], 10) == generate_ids(reference, [[1, 2, 3]], 10)
    assert streamer.stats.max_resident_blocks == (2 if prefetch else 1)
    block_bytes = sum(p.numel() * 4 for p in reference.layers.parameters())
    assert streamer.stats.bytes_loaded >= block_bytes  # every block came from disk at least once
    assert all(p.device.type == "meta" for i, b in enumerate(streamed.layers) for p in b.parameters()
               if i not in streamer.resident)


def test_prefetch_starts_the_next_block_before_the_current_one_runs(checkpoint):
    model, streamer = load_streaming(checkpoint)
    with torch.no_grad():
        model(torch.tensor([[1, 2, 3]]))
    events = streamer.stats.events
    for i in range(3):
        assert events.index(f"load {i + 1}") < events.index(f"run {i + 1}")
        assert events.index(f"load {i + 1}") < events.index(f"run {i}") + 1 + 1  # issued while i runs
