"""Prefix tuning: attention with a prefix equals attention over [prefix; keys] computed directly in
float64, only the prefixes train and the loss falls, and cached generation agrees with full forwards."""

import math

import torch

from llmkit.finetune.peft.prefix import (
    apply_prefix_tuning,
    load_prefix,
    save_prefix,
)
from llmkit.decode import generate_ids
from llmkit.model.attention import Attention, KeyValuePrefix
from llmkit.model import build_model, named_config
from tests.finetune.helpers import train_trainable


def tiny(seed=0, **over):
    torch.manual_seed(seed)
    return build_model(named_config("tiny-llama").replace(vocab_size=64, **over), "cpu")


def test_prefix_attention_equals_direct_float64_attention():
    model = tiny()
    apply_prefix_tuning(model, n_virtual=3)
    model.double()
    attention = model.layers[0].attn
    assert isinstance(attention, Attention) and isinstance(attention.prefix, KeyValuePrefix)
    torch.manual_seed(1)
    x = torch.randn(2, 5, model.cfg.d_model, dtype=torch.float64)
    captured = {}
    model.layers[0].attn.register_forward_hook(lambda m, args, out: captured.update(ctx=args[1]))
    model(torch.randint(0, 64, (2, 5)))
    got = attention(x, captured["ctx"], 0)
    a, n = attention, 3
    q = a._heads(a.q_proj(x))
    k, v = a._heads(a.k_proj(x)), a._heads(a.v_proj(x))
    from llmkit.model.positions import apply_rotary

    q, k = apply_rotary(q, captured["ctx"].rotation), apply_rotary(k, captured["ctx"].rotation)
    group = a.n_head // a.n_kv_head
    keys = torch.cat([a.prefix.keys.expand(2, -1, -1, -1), k], 2).repeat_interleave(group, 1)
    values = torch.cat([a.prefix.values.expand(2, -1, -1, -1), v], 2).repeat_interleave(group, 1)
    scores = q @ keys.transpose(-1, -2) / math.sqrt(a.head_dim)  # (B, H, 5, 3 + 5)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    scores[..., n:] = scores[..., n:].masked_fill(future, float("-inf"))  # prefix columns always visible
    want = a.o_proj((scores.softmax(-1) @ values).transpose(1, 2).reshape(2, 5, -1))
    assert torch.allclose(got, want, atol=1e-10)


def test_only_prefixes_train_and_the_loss_falls(tmp_path):
    model = tiny()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = apply_prefix_tuning(model, n_virtual=4)
    cfg = model.cfg
    assert trainable == cfg.n_layer * 2 * 4 * cfg.n_kv_head * cfg.head_dim
    assert all((".prefix." in n) == p.requires_grad for n, p in model.named_parameters())
    torch.manual_seed(2)
    tokens = torch.randint(0, 64, (4, 17))
    losses = train_trainable(model, tokens, steps=30, lr=5e-2)
    assert losses[-1] < losses[0] - 0.3, losses
    frozen = {k: v for k, v in model.state_dict().items() if ".prefix." not in k}
    assert all(torch.equal(frozen[k], base[k]) for k in base)
    save_prefix(model, tmp_path / "prefix")
    fresh = tiny()
    load_prefix(fresh, tmp_path / "prefix")
    assert torch.allclose(fresh(tokens), model(tokens), atol=1e-6)


def test_cached_generation_with_a_prefix_matches_full_forwards():
    model = tiny()
    apply_prefix_tuning(model, n_virtual=3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0, 1.0)  # a prefix that changes the output
    prompt = [5, 9, 11, 2]
    out = generate_ids(model.eval(), [prompt], max_new_tokens=6)[0]
    seq = list(prompt)
    with torch.no_grad():
        for _ in range(6):
            seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
    assert out == seq[len(prompt):]
