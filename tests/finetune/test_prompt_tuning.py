import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.finetune.peft.lora import trainable_parameters
from llmkit.finetune.peft.prompt import (
    apply_prompt_tuning,
    load_prompt_adapter,
    save_prompt_adapter,
    soft_prompt,
)
from tests.finetune.helpers import train_trainable
from tests.finetune.test_lora import TOKENS, base  # noqa: F401 - the shared fixture
from tests.parity.hf_models import hf_tiny

SEQUENCE = torch.tensor([[5, 9, 13, 2, 40, 41, 42, 7, 5, 9, 13, 2]])


def with_soft_prompt(model, tokens: torch.Tensor) -> torch.Tensor:
    """Logits of the real tokens of a model whose soft prompt was loaded for decoding: its virtual
    token ids go first (as the Engine and scoring put them) and their positions are dropped."""
    prefix = torch.tensor([model.input_prefix_ids]).expand(len(tokens), -1)
    return model(torch.cat([prefix, tokens], dim=1))[:, prefix.shape[1]:]


def test_soft_prompt_matches_peft_both_ways(base, tmp_path):  # noqa: F811
    from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model

    ours = load_checkpoint(base).eval()
    trainable = apply_prompt_tuning(ours, n_virtual=4)
    assert trainable_parameters(ours)[0] == trainable == 4 * ours.cfg.d_model
    with torch.no_grad():
        logits = ours(TOKENS)
    assert logits.shape[1] == TOKENS.shape[1]  # virtual positions are dropped
    save_prompt_adapter(ours, tmp_path / "prompt")
    peft_model = PeftModel.from_pretrained(hf_tiny("llama"), tmp_path / "prompt").eval()
    with torch.no_grad():
        assert torch.allclose(peft_model(input_ids=TOKENS).logits[:, 4:], logits, atol=1e-4)

    trained = get_peft_model(hf_tiny("llama"), PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=3)).eval()
    trained.save_pretrained(tmp_path / "peft_prompt")
    again = load_checkpoint(base).eval()
    load_prompt_adapter(again, tmp_path / "peft_prompt")
    with torch.no_grad():
        assert torch.allclose(with_soft_prompt(again, TOKENS), trained(input_ids=TOKENS).logits[:, 3:], atol=1e-4)


def test_training_moves_only_the_prompt_and_lowers_the_loss(base):  # noqa: F811
    model = load_checkpoint(base)
    apply_prompt_tuning(model, n_virtual=8)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert [p for p in model.parameters() if p.requires_grad] == [soft_prompt(model).prompt]
    losses = train_trainable(model, SEQUENCE, steps=30, lr=0.1)
    assert losses[-1] < losses[0] * 0.8
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_p_tuning_trains_the_encoder_and_exports_plain_prompt_vectors(base, tmp_path):  # noqa: F811
    from llmkit.finetune.peft.prompt import apply_p_tuning

    model = load_checkpoint(base)
    trainable = apply_p_tuning(model, n_virtual=4, hidden=32)
    assert trainable_parameters(model)[0] == trainable == 4 * 64 + (64 * 32 + 32) + (32 * 64 + 64)
    losses = train_trainable(model, SEQUENCE, steps=30, lr=1e-2)
    assert losses[-1] < losses[0] * 0.8
    save_prompt_adapter(model, tmp_path / "p")  # the encoded vectors: a plain prompt-tuning adapter
    plain = load_checkpoint(base).eval()
    load_prompt_adapter(plain, tmp_path / "p")
    with torch.no_grad():
        assert torch.allclose(with_soft_prompt(plain, SEQUENCE), model.eval()(SEQUENCE), atol=1e-5)
