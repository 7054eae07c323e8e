"""Masking behaviour of each architecture, observed through the logits."""

import pytest
import torch

from llmkit.model import build_model, named_config

DECODERS = ["tiny-llama", "tiny-mistral", "tiny-qwen2", "tiny-mixtral", "tiny-gpt2", "tiny-glm", "tiny-qwen3",
            "tiny-gemma2", "tiny-gemma3", "tiny-phi3", "tiny-olmo2"]
VARIANTS = {  # position schemes and wirings not covered by a named tiny config
    "alibi": dict(position="alibi"), "sinusoidal": dict(position="sinusoidal"),
    "t5_relative": dict(position="t5_relative"), "parallel": dict(residual="parallel", norm="layernorm"),
    "mqa": dict(n_kv_head=1), "geglu": dict(activation="geglu"), "deepnorm": dict(residual="post", deepnorm=True),
}


def _model(name, **overrides):
    torch.manual_seed(0)
    return build_model(named_config(name).replace(**overrides), "cpu").eval()


def _variant_models():
    yield from ((n, _model(n)) for n in DECODERS)
    yield from ((n, _model("tiny-llama", **o)) for n, o in VARIANTS.items())


@pytest.mark.parametrize("name,model", list(_variant_models()))
def test_decoder_is_causal(name, model):
    tokens = torch.randint(0, 4096, (2, 12))
    changed = tokens.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 4096
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-5), name
    assert not torch.allclose(a[:, 8:], b[:, 8:], atol=1e-5), name
    assert torch.isfinite(a).all()


def test_prefix_decoder_sees_the_whole_prefix():
    model = _model("tiny-glm")
    tokens = torch.randint(0, 4096, (1, 10))
    changed = tokens.clone()
    changed[0, 5] += 1
    prefix = torch.tensor([6])
    with torch.no_grad():
        a, b = model(tokens, prefix_len=prefix), model(changed, prefix_len=prefix)
        c, d = model(tokens), model(changed)  # no prefix: plain causal
    assert not torch.allclose(a[:, 0], b[:, 0], atol=1e-5)  # position 0 sees position 5 (inside prefix)
    assert torch.allclose(c[:, :5], d[:, :5], atol=1e-5)


def test_prefix_decoder_continuation_stays_causal():
    model = _model("tiny-glm")
    tokens = torch.randint(0, 4096, (1, 10))
    changed = tokens.clone()
    changed[0, 8] += 1
    with torch.no_grad():
        a, b = model(tokens, prefix_len=torch.tensor([4])), model(changed, prefix_len=torch.tensor([4]))
    assert torch.allclose(a[:, :8], b[:, :8], atol=1e-5)


def test_sliding_window_limits_what_one_layer_sees():
    model = _model("tiny-mistral", n_layer=1, sliding_window=4)
    tokens = torch.randint(0, 4096, (1, 12))
    changed = tokens.clone()
    changed[0, 2] += 1
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert not torch.allclose(a[:, 5], b[:, 5], atol=1e-5)  # 5 - 4 < 2: inside the window
    assert torch.allclose(a[:, 6:], b[:, 6:], atol=1e-5)  # beyond it


def test_encoder_decoder_masks():
    model = _model("tiny-t5")
    src, tgt = torch.randint(0, 4096, (2, 9)), torch.randint(0, 4096, (2, 7))
    src2, tgt2 = src.clone(), tgt.clone()
    src2[:, -1] += 1
    tgt2[:, 4] += 1
    with torch.no_grad():
        base = model(src, tgt)
        enc_changed = model(src2, tgt)
        dec_changed = model(src, tgt2)
        memory, memory2 = model.encode(src), model.encode(src2)
    assert base.shape == (2, 7, 4096)
    assert not torch.allclose(memory[:, 0], memory2[:, 0], atol=1e-5)  # encoder is bidirectional
    assert not torch.allclose(base[:, 0], enc_changed[:, 0], atol=1e-5)  # decoder cross-attends
    assert torch.allclose(base[:, :4], dec_changed[:, :4], atol=1e-5)  # decoder is causal


def test_encoder_ignores_source_padding():
    model = _model("tiny-t5")
    src, tgt = torch.randint(0, 4096, (1, 6)), torch.randint(0, 4096, (1, 4))
    padded = torch.cat([src, torch.zeros(1, 3, dtype=torch.long)], dim=1)
    valid = torch.tensor([[True] * 6 + [False] * 3])
    with torch.no_grad():
        assert torch.allclose(model(src, tgt), model(padded, tgt, src_valid=valid), atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-glm", "tiny-t5", "tiny-mixtral", "tiny-gemma2", "tiny-olmo2"])
def test_training_step_gives_finite_gradients(name):
    model = _model(name).train()
    tokens = torch.randint(0, 4096, (2, 8))
    logits = model(tokens, tokens) if name == "tiny-t5" else model(tokens)
    logits.logsumexp(-1).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_half_precision_forward_is_close_to_fp32():
    model = _model("tiny-llama")
    tokens = torch.randint(0, 4096, (1, 8))
    with torch.no_grad():
        full = model(tokens)
        half = model.to(torch.bfloat16)(tokens).float()
    assert (full - half).abs().max() < 0.05 * full.abs().max()
