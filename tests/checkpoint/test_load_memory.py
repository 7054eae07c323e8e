"""Loading maps the safetensors file and assigns its tensors: a bf16 checkpoint of about 1 GB adds
at most 1.15x its weight bytes to a fresh process's peak memory, and stays bf16."""

import sys

import pytest

pytestmark = pytest.mark.slow


def test_a_1gb_bf16_checkpoint_loads_in_1_15x_its_weights(tmp_path):
    sys.path.insert(0, "benchmarks")
    from load_memory import write_bf16_checkpoint

    from llmkit.checkpoint.load_memory import measure

    figures = measure("llmkit", write_bf16_checkpoint(tmp_path / "ckpt", 1.0))
    assert figures["weight_bytes"] > 0.9e9 and figures["dtype"] == "torch.bfloat16"
    assert figures["ratio"] <= 1.15, figures
