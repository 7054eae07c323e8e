"""Low-rank factorisation: exact at full rank, the stated parameter count, activation-aware SVD
closer on real inputs than plain SVD, and a factorised checkpoint that saves, reloads and generates."""

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.compress.lowrank import factorise, lowrank_model
from tests.compress.conftest import layer_output_error


def test_full_rank_factorisation_is_exact():
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 16)
    low = factorise(linear, 16)
    x = torch.randn(5, 24)
    assert torch.allclose(low(x), linear(x), atol=1e-5)


def test_rank_ratio_sets_the_parameter_count(trained_small):
    model = load_checkpoint(trained_small)
    q = model.layers[0].attn.q_proj
    ranks = lowrank_model(model, 0.5)
    assert ranks["layers.0.attn.q_proj"] == int(0.5 * q.in_features * q.out_features / (q.in_features + q.out_features))
    low = model.layers[0].attn.q_proj
    assert low.up.weight.numel() + low.down.weight.numel() <= 0.5 * q.weight.numel()


def test_activation_aware_svd_fits_real_inputs_better(trained_small, prepared_data):
    error = lambda aware: layer_output_error(trained_small, prepared_data,
                                             lambda model, calib: lowrank_model(model, 0.3, aware, calib))
    plain, aware = error(False), error(True)
    print(f"output error: svd {plain:.2f} activation-aware {aware:.2f}")
    assert aware < 0.9 * plain


def test_lowrank_cli_checkpoint_reloads_and_generates(trained_small, prepared_data, tmp_path):
    from llmkit.compress.checkpoint import load_compressed
    from llmkit.infer.llm import LLM

    assert main(["compress", "lowrank", "--checkpoint", str(trained_small), "--out", str(tmp_path / "l"),
                 "--rank-ratio", "0.5", "--activation-aware", "--calib", str(prepared_data), "--calib-windows", "4",
                 "--calib-len", "64"]) == 0
    model = load_compressed(tmp_path / "l")
    full = load_checkpoint(trained_small)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in full.parameters())
    assert isinstance(LLM.load(tmp_path / "l").generate("The", max_new_tokens=3), str)
