"""The paged engine against transformers' greedy generate for the families with their own attention
features: soft-capped scores and per-layer windows (Gemma), q/k norms (Qwen3, OLMo 2, Gemma 3) and
LongRoPE's switch past the pre-training context (Phi-3, whose keys are then recomputed)."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from tests.parity.hf_models import hf_greedy, hf_tiny

pytestmark = pytest.mark.parity
PROMPTS = [[5, 9, 13], list(range(10, 30)), [7] * 11]


@pytest.mark.parametrize("family", ["gemma2", "gemma3", "phi3", "qwen3", "olmo2"])
def test_engine_greedy_matches_transformers(family, tmp_path):
    hf = hf_tiny(family)
    hf.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path).eval()
    expected = [hf_greedy(hf, torch.tensor([p]), 12)[0] for p in PROMPTS]
    engine = Engine(ours, config=EngineConfig(block_size=4, num_blocks=64, max_tokens_per_step=8))
    outputs = engine.generate(PROMPTS, SamplingParams(max_tokens=12, ignore_eos=True))
    assert [o[0].token_ids for o in outputs] == expected
