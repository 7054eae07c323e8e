"""Structured pruning yields a genuinely smaller model: the stated parameter reduction, a valid config
that reloads from disk with the same outputs, and the lowest-influence blocks removed."""

import pytest
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.cli import main
from llmkit.compress.structured import block_influence, prune_structure
from llmkit.model import count_parameters
from tests.compress.conftest import perplexity, windows


@pytest.mark.parametrize("kind,keep", [("heads", 0.5), ("channels", 0.5), ("layers", 0.5)])
def test_pruned_model_is_smaller_with_a_valid_config(trained_small, prepared_data, tmp_path, kind, keep):
    model = load_checkpoint(trained_small)
    old = model.cfg
    counts = prune_structure(model, kind, keep, windows(prepared_data, "train", count=8).split(4))
    new = model.cfg
    assert counts["parameters_after"] == count_parameters(new) < counts["parameters_before"] == count_parameters(old)
    expected = {"heads": (new.n_kv_head, old.n_kv_head // 2), "channels": (new.d_ff, old.d_ff // 2),
                "layers": (new.n_layer, old.n_layer // 2)}[kind]
    assert expected[0] == expected[1]
    from llmkit.checkpoint import save_checkpoint

    save_checkpoint(model, tmp_path / "small")
    tokens = windows(prepared_data, "val", count=2)[:, :-1]
    with torch.no_grad():
        assert torch.allclose(load_checkpoint(tmp_path / "small")(tokens), model(tokens), atol=1e-5)
    val = windows(prepared_data, "val", count=16)
    print(kind, perplexity(load_checkpoint(trained_small), val), perplexity(model, val))


def test_layer_pruning_removes_the_least_influential_blocks(trained_small, prepared_data):
    model = load_checkpoint(trained_small)
    calib = list(windows(prepared_data, "train", count=8).split(4))
    influence = block_influence(model, calib)
    removed = sorted(set(range(model.cfg.n_layer)) - set(influence.topk(3).indices.tolist()))
    from llmkit.compress.structured import prune_layers

    assert prune_layers(model, 0.75, calib) == removed


def test_prune_cli_structured(trained_small, prepared_data, tmp_path, capsys):
    assert main(["compress", "prune", "--checkpoint", str(trained_small), "--out", str(tmp_path / "c"),
                 "--method", "channels", "--sparsity", "0.25", "--calib", str(prepared_data), "--calib-windows", "4",
                 "--calib-len", "64"]) == 0
    assert "fewer" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "c").cfg.d_ff == 288
