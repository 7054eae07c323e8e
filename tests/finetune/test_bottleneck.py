import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.finetune.peft.bottleneck import (
    BottleneckConfig,
    apply_bottleneck_adapters,
    load_bottleneck_adapters,
    save_bottleneck_adapters,
)
from llmkit.finetune.peft.lora import trainable_parameters
from tests.finetune.helpers import train_trainable
from tests.finetune.test_lora import TOKENS, base  # noqa: F401 - the shared fixture


def test_adapters_start_neutral_train_alone_and_round_trip(base, tmp_path):  # noqa: F811
    model = load_checkpoint(base)
    with torch.no_grad():
        before = model(TOKENS)
    names = apply_bottleneck_adapters(model, BottleneckConfig(bottleneck=8))
    assert len(names) == 2 * model.cfg.n_layer
    with torch.no_grad():
        assert torch.equal(model(TOKENS), before)
    trainable, total = trainable_parameters(model)
    assert trainable == len(names) * (2 * 8 * model.cfg.d_model + 8 + model.cfg.d_model)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    losses = train_trainable(model, TOKENS, steps=20, lr=1e-2)
    assert losses[-1] < losses[0] * 0.7
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    save_bottleneck_adapters(model, tmp_path / "adapters")
    restored = load_checkpoint(base)
    load_bottleneck_adapters(restored, tmp_path / "adapters")
    with torch.no_grad():
        assert torch.allclose(restored(TOKENS), model(TOKENS), atol=1e-6)
