"""LoRA: exact merge/unmerge, and adapters that load both ways with the `peft` library."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.errors import LlmkitError
from llmkit.finetune.peft.lora import (
    LoraConfig,
    apply_lora,
    load_lora_adapter as load_adapter,
    lora_modules,
    merge_lora,
    save_adapter,
    trainable_parameters,
)
from tests.parity.hf_models import hf_tiny

TOKENS = torch.tensor([[5, 9, 13, 2, 40, 41, 42, 7]])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    hf = hf_tiny("llama")
    path = tmp_path_factory.mktemp("lora_base")
    hf.save_pretrained(path)
    return path


def randomise(model):
    torch.manual_seed(1)
    for module in lora_modules(model).values():
        torch.nn.init.normal_(module.lora_B.weight, std=0.1)  # B starts at zero: make the adapter matter


@pytest.mark.parametrize("rslora", [False, True])
def test_starts_equal_and_merge_unmerge_is_exact(base, rslora):
    model = load_checkpoint(base).eval()
    with torch.no_grad():
        before = model(TOKENS)
    names = apply_lora(model, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                                         use_rslora=rslora))
    assert len(names) == 3 * model.cfg.n_layer
    with torch.no_grad():
        assert torch.equal(model(TOKENS), before)  # B = 0
        randomise(model)
        adapted = model(TOKENS)
        for m in lora_modules(model).values():
            m.merge()
        merged = model(TOKENS)
        for m in lora_modules(model).values():
            m.unmerge()
        unmerged = model(TOKENS)
    assert not torch.allclose(adapted, before, atol=1e-3)
    assert torch.allclose(merged, adapted, atol=1e-5) and torch.allclose(unmerged, adapted, atol=1e-5)
    merge_lora(model)
    with torch.no_grad():
        assert torch.allclose(model(TOKENS), adapted, atol=1e-5)  # folded into plain Linears
    trainable, total = trainable_parameters(model)
    assert trainable == sum(p.numel() for m in lora_modules(model).values() for p in (m.lora_A.weight, m.lora_B.weight))
    assert trainable < total / 10


def test_llmkit_adapter_loads_in_peft_with_the_same_logits(base, tmp_path):
    from peft import PeftModel

    ours = load_checkpoint(base).eval()
    apply_lora(ours, LoraConfig(r=4, alpha=16, target_modules=["q_proj", "v_proj", "gate_proj"]))
    randomise(ours)
    save_adapter(ours, tmp_path / "adapter", base_model=str(base))
    peft_model = PeftModel.from_pretrained(hf_tiny("llama"), tmp_path / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(ours(TOKENS), peft_model(input_ids=TOKENS).logits, atol=1e-4)


def test_peft_trained_adapter_loads_in_llmkit(base, tmp_path):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    hf = hf_tiny("llama")
    peft_model = get_peft_model(hf, PeftLoraConfig(r=4, lora_alpha=8, target_modules=["k_proj", "o_proj", "up_proj"],
                                                   init_lora_weights=False, use_rslora=True)).eval()
    peft_model.save_pretrained(tmp_path / "peft_adapter")
    ours = load_checkpoint(base).eval()
    load_adapter(ours, tmp_path / "peft_adapter")
    with torch.no_grad():
        assert torch.allclose(ours(TOKENS), peft_model(input_ids=TOKENS).logits, atol=1e-4)


def test_merge_lora_returns_plain_linears(base):
    model = load_checkpoint(base).eval()
    apply_lora(model, LoraConfig(r=2))
    randomise(model)
    with torch.no_grad():
        adapted = model(TOKENS)
        merged = merge_lora(model)(TOKENS)
    assert not lora_modules(model) and torch.allclose(merged, adapted, atol=1e-5)


def test_unknown_target_names_the_modules_there_are(base):
    with pytest.raises(LlmkitError, match="q_proj"):
        apply_lora(load_checkpoint(base), LoraConfig(target_modules=["query"]))


def test_dora_starts_equal_merges_exactly_and_matches_peft_both_ways(base, tmp_path):
    from peft import LoraConfig as PeftLoraConfig
    from peft import PeftModel, get_peft_model

    ours = load_checkpoint(base).eval()
    with torch.no_grad():
        before = ours(TOKENS)
    apply_lora(ours, LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], use_dora=True))
    with torch.no_grad():
        assert torch.allclose(ours(TOKENS), before, atol=1e-5)
        randomise(ours)
        for m in lora_modules(ours).values():
            m.magnitude.mul_(1.1)
        adapted = ours(TOKENS)
        for m in lora_modules(ours).values():
            m.merge()
        assert torch.allclose(ours(TOKENS), adapted, atol=1e-5)
        for m in lora_modules(ours).values():
            m.unmerge()
        assert torch.allclose(ours(TOKENS), adapted, atol=1e-5)
    save_adapter(ours, tmp_path / "dora")
    peft_model = PeftModel.from_pretrained(hf_tiny("llama"), tmp_path / "dora").eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=TOKENS).logits, adapted, atol=1e-4)

    trained = get_peft_model(hf_tiny("llama"), PeftLoraConfig(r=4, lora_alpha=8, target_modules=["k_proj", "down_proj"],
                                                               use_dora=True, init_lora_weights=False)).eval()
    trained.save_pretrained(tmp_path / "peft_dora")
    again = load_checkpoint(base).eval()
    load_adapter(again, tmp_path / "peft_dora")
    with torch.no_grad():
        assert torch.allclose(again(TOKENS), trained(input_ids=TOKENS).logits, atol=1e-4)
