import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.finetune.peft.ia3 import (
    IA3Config,
    apply_ia3,
    ia3_modules,
    load_ia3_adapter,
    merge_ia3,
    save_ia3_adapter,
)
from tests.finetune.test_lora import TOKENS, base  # noqa: F401 - the shared fixture
from tests.parity.hf_models import hf_tiny


def perturb(model):
    torch.manual_seed(2)
    with torch.no_grad():
        for module in ia3_modules(model).values():
            module.scale.add_(torch.randn_like(module.scale) * 0.3)


def test_ia3_starts_equal_merges_exactly_and_loads_in_peft(base, tmp_path):  # noqa: F811
    from peft import PeftModel

    ours = load_checkpoint(base).eval()
    with torch.no_grad():
        before = ours(TOKENS)
    apply_ia3(ours, IA3Config())
    with torch.no_grad():
        assert torch.equal(ours(TOKENS), before)
        perturb(ours)
        adapted = ours(TOKENS)
    assert not torch.allclose(adapted, before, atol=1e-3)
    save_ia3_adapter(ours, tmp_path / "ia3")
    peft_model = PeftModel.from_pretrained(hf_tiny("llama"), tmp_path / "ia3").eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=TOKENS).logits, adapted, atol=1e-4)
        assert torch.allclose(merge_ia3(ours)(TOKENS), adapted, atol=1e-5)
    assert not ia3_modules(ours)


def test_peft_ia3_adapter_loads_in_llmkit(base, tmp_path):  # noqa: F811
    from peft import IA3Config as PeftIA3Config
    from peft import get_peft_model

    trained = get_peft_model(hf_tiny("llama"), PeftIA3Config(target_modules=["q_proj", "up_proj"],
                                                             feedforward_modules=["up_proj"])).eval()
    with torch.no_grad():
        for name, p in trained.named_parameters():
            if "ia3_l" in name:
                p.add_(torch.randn_like(p) * 0.3)
    trained.save_pretrained(tmp_path / "peft_ia3")
    ours = load_checkpoint(base).eval()
    load_ia3_adapter(ours, tmp_path / "peft_ia3")
    with torch.no_grad():
        assert torch.allclose(ours(TOKENS), trained(input_ids=TOKENS).logits, atol=1e-4)
