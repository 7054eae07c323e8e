"""Cross-layer weight sharing: block parameters fall by the group factor, a shared model of identical
layers is unchanged, and healing on data lowers the shared model's validation loss."""

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.compress.share import share_layers
from llmkit.model import build_model, named_config
from tests.compress.conftest import perplexity, windows


def test_sharing_identical_layers_changes_nothing_and_halves_block_parameters():
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(vocab_size=64), "cpu")
    for layer in model.layers[1:]:
        layer.load_state_dict(model.layers[0].state_dict())
    shared = share_layers(model, 2)
    tokens = torch.randint(0, 64, (2, 8))
    assert torch.allclose(shared(tokens), model(tokens), atol=1e-6)
    block = sum(p.numel() for p in model.layers.parameters())
    assert sum(p.numel() for p in shared.layers.parameters()) == block // 2


def test_share_then_heal_recovers_loss(trained_small, prepared_data, tmp_path):
    assert main(["compress", "share", "--checkpoint", str(trained_small), "--out", str(tmp_path / "shared"),
                 "--groups", "2"]) == 0
    assert main(["compress", "share", "--checkpoint", str(trained_small), "--out", str(tmp_path / "healed"),
                 "--groups", "2", "--heal-data", str(prepared_data), "--heal-steps", "40", "--heal-lr", "2e-3",
                 "--seq-len", "64"]) == 0
    val = windows(prepared_data, "val", count=16)
    shared, healed = (load_checkpoint(tmp_path / d) for d in ("shared", "healed"))
    assert healed.cfg.n_unique_layers == 2
    print(f"shared {perplexity(shared, val):.2f} healed {perplexity(healed, val):.2f}")
    assert perplexity(healed, val) < perplexity(shared, val)
