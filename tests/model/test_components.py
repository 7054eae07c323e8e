"""Each component against a float64 or closed-form reference."""

import math

import pytest
import torch

from llmkit.model import ModelConfig, build_model, named_config
from llmkit.model.mlp import MoE
from llmkit.model.norms import RMSNorm
from llmkit.model.positions import (SinusoidalPositions, alibi_slopes, apply_rotary, rope_inverse_frequencies,
                                    rotation_tables, t5_relative_bucket)


def test_rmsnorm_matches_float64_formula():
    x = torch.randn(3, 5, 16)
    norm = RMSNorm(16, eps=1e-6)
    norm.weight.data = torch.randn(16)
    x64 = x.double()
    expected = norm.weight.double() * x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + 1e-6)
    assert torch.allclose(norm(x).double(), expected, atol=1e-5)


def _rotation(cfg, positions):
    inv = rope_inverse_frequencies(cfg).double()
    return rotation_tables(torch.tensor(positions).double()[None, :, None] * inv)  # from (1, T, n_rot/2)


@pytest.mark.parametrize("rotary_pct", [1.0, 0.5])
def test_rope_scores_depend_only_on_relative_offset(rotary_pct):
    cfg = ModelConfig(n_head=1, d_model=32, rotary_pct=rotary_pct)
    q, k = torch.randn(1, 1, 1, 32).double(), torch.randn(1, 1, 1, 32).double()

    def score(pq, pk):
        rq = apply_rotary(q, _rotation(cfg, [pq]))
        rk = apply_rotary(k, _rotation(cfg, [pk]))
        return (rq * rk).sum().item()

    assert score(7, 3) == pytest.approx(score(107, 103), abs=1e-9)
    assert score(7, 3) != pytest.approx(score(7, 4), abs=1e-6)


def test_partial_rotary_leaves_the_pass_through_dims():
    cfg = ModelConfig(n_head=1, d_model=32, rotary_pct=0.25)
    x = torch.randn(1, 1, 3, 32).double()
    y = apply_rotary(x, _rotation(cfg, [0, 5, 9]))
    assert torch.equal(y[..., 8:], x[..., 8:])
    assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1))


def test_linear_rope_scaling_divides_frequencies():
    base = rope_inverse_frequencies(ModelConfig(n_head=1, d_model=64))
    scaled = rope_inverse_frequencies(ModelConfig(n_head=1, d_model=64, rope_scaling={"rope_type": "linear", "factor": 4.0}))
    assert torch.allclose(scaled, base / 4)


def test_alibi_slopes_follow_the_paper():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    twelve = alibi_slopes(12)  # 8 geometric slopes, then every other slope of the 16-head series
    assert torch.allclose(twelve[:8], alibi_slopes(8))
    assert torch.allclose(twelve[8:], torch.tensor([2.0 ** -(0.5 + i) for i in range(4)]))


def test_sinusoidal_positions_closed_form():
    pe = SinusoidalPositions(ModelConfig(n_head=2, d_model=8)).embed(torch.tensor([[0, 3]]))
    assert torch.allclose(pe[0, 1, 0], torch.tensor(math.sin(3.0)))
    assert torch.allclose(pe[0, 1, 3], torch.tensor(math.cos(3 / 10000 ** (2 / 8))))


@pytest.mark.parity
def test_t5_buckets_match_transformers():
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = torch.arange(-300, 300)[None, :]
    for bidirectional in (True, False):
        ours = t5_relative_bucket(relative, bidirectional, 32, 128)
        theirs = T5Attention._relative_position_bucket(relative, bidirectional, 32, 128)
        assert torch.equal(ours, theirs)


def test_moe_matches_dense_float64_reference():
    cfg = ModelConfig(d_model=16, n_head=2, d_ff=24, n_expert=4, n_expert_per_token=2)
    torch.manual_seed(0)
    moe = MoE(cfg).double()
    for p in moe.parameters():
        p.data.normal_(0, 0.3)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    probs = moe.router(x).softmax(-1)  # (B, T, E)
    top = probs.topk(2, dim=-1)
    every = torch.stack([e(x) for e in moe.experts], dim=-2)  # (B, T, E, C)
    weights = torch.zeros_like(probs).scatter(-1, top.indices, top.values / top.values.sum(-1, keepdim=True))
    expected = (weights[..., None] * every).sum(-2)
    assert torch.allclose(moe(x), expected, atol=1e-10)


def test_cross_layer_sharing_reuses_blocks():
    base = named_config("tiny-llama")
    shared = build_model(base.replace(n_unique_layers=2))
    plain = build_model(base)
    block = sum(p.numel() for p in plain.layers[0].parameters())
    assert sum(p.numel() for p in plain.parameters()) - sum(p.numel() for p in shared.parameters()) == 2 * block
    assert shared.layer_order == [0, 0, 1, 1]


def test_tied_embeddings_share_storage():
    model = build_model(named_config("tiny-gpt2"), "cpu")
    assert model.lm_head.weight is model.tok_embeddings.weight


def test_post_norm_output_is_normalised():
    cfg = named_config("tiny-glm")
    model = build_model(cfg, "cpu")
    x = torch.randn(2, 6, cfg.d_model) * 5
    ctx = model.context(torch.arange(6).expand(2, -1), False, None, None, x.dtype)
    y = model.layers[0](x, ctx, 0)  # a post-norm block ends in LayerNorm (weight 1, bias 0)
    assert torch.allclose(y.mean(-1), torch.zeros(2, 6), atol=1e-5)
    assert model.layers[0].alpha == pytest.approx((2 * cfg.n_layer) ** 0.25)
