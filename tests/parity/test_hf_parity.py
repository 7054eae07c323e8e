"""llmkit vs transformers on the same weights, both directions, for every HF family we load."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.decode import generate_ids
from tests.parity.hf_models import hf_greedy, hf_tiny

pytestmark = pytest.mark.parity
FAMILIES = ["llama", "mistral", "qwen2", "gpt2", "mixtral", "qwen3", "olmo2", "phi3", "gemma2", "gemma3"]
SEQ = 24  # longer than Mistral's sliding window of 8, so the window is exercised


def _tokens(batch=2, seed=1):
    return torch.randint(0, 96, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_transformers_checkpoint_loads_with_parity(family, tmp_path):
    hf = hf_tiny(family)
    hf.save_pretrained(tmp_path)
    ours = load_checkpoint(tmp_path).eval()
    tokens = _tokens()
    with torch.no_grad():
        diff = (ours(tokens) - hf(tokens).logits).abs().max().item()
    assert diff <= 1e-4, f"{family}: max |logit diff| {diff}"
    prompt = tokens[:1, :8]
    assert generate_ids(ours, prompt.tolist(), 32) == hf_greedy(hf, prompt, 32)


@pytest.mark.parametrize("family", FAMILIES)
def test_llmkit_checkpoint_loads_in_transformers(family, tmp_path):
    from transformers import AutoModelForCausalLM

    hf_tiny(family).save_pretrained(tmp_path / "src")
    ours = load_checkpoint(tmp_path / "src").eval()
    with torch.no_grad():  # new weights, so the test does not pass by copying the source files
        for p in ours.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_checkpoint(ours, tmp_path / "ours")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "ours").eval()
    hf.generation_config.eos_token_id = None
    tokens = _tokens(seed=2)
    with torch.no_grad():
        diff = (ours(tokens) - hf(tokens).logits).abs().max().item()
    assert diff <= 1e-4, f"{family}: max |logit diff| {diff}"
    prompt = tokens[:1, :8]
    assert generate_ids(ours, prompt.tolist(), 32) == hf_greedy(hf, prompt, 32)
