"""Checkpoints keep their own precision: a bf16 checkpoint loads as bf16 (dtype auto), and greedy
decoding in bf16 on CPU gives transformers' bf16 tokens."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.decode import generate_ids
from llmkit.checkpoint.io import resolve_dtype
from tests.parity.hf_models import hf_greedy, hf_tiny

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3", "mistral", "phi3"])
def test_bf16_checkpoint_stays_bf16_and_decodes_like_transformers(family, tmp_path):
    from transformers import AutoModelForCausalLM

    hf_tiny(family).to(torch.bfloat16).save_pretrained(tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()  # as a user loads it
    hf.generation_config.eos_token_id = None
    ours = load_checkpoint(tmp_path, dtype=resolve_dtype("auto")).eval()
    assert {p.dtype for p in ours.parameters()} == {torch.bfloat16}
    prompt = torch.randint(0, 96, (1, 8), generator=torch.Generator().manual_seed(3))
    assert generate_ids(ours, prompt.tolist(), 32) == hf_greedy(hf, prompt, 32)


def test_dtype_names():
    assert resolve_dtype("auto") is None and resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(Exception, match="choose auto"):
        resolve_dtype("int3")
