"""Named configs as data (in the spirit of gpt-fast's `transformer_configs`).

Each entry is a family base plus the fields that differ. Parameter counts are never typed in:
`llmkit models` builds each model on the meta device and counts.
"""

from __future__ import annotations

import difflib
from typing import Any

from llmkit.errors import LlmkitError
from llmkit.model.config import ModelConfig

LLAMA = dict(family="llama", norm="rmsnorm", activation="swiglu", position="rope")
GPT2 = dict(
    family="gpt2", vocab_size=50257, max_seq_len=1024, norm="layernorm", norm_bias=True,
    activation="gelu_tanh", position="learned", mlp_bias=True, attn_qkv_bias=True,
    attn_out_bias=True, tie_embeddings=True, bos_token_id=50256, eos_token_id=50256,
)
LLAMA2 = dict(LLAMA, vocab_size=32000, max_seq_len=4096, bos_token_id=1, eos_token_id=2)
LLAMA3 = dict(LLAMA, vocab_size=128256, max_seq_len=8192, rope_theta=500000.0,
              bos_token_id=128000, eos_token_id=128001)
LLAMA32 = dict(LLAMA3, max_seq_len=131072, tie_embeddings=True, rope_scaling={
    "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})
MISTRAL = dict(LLAMA, family="mistral", vocab_size=32000, max_seq_len=32768, bos_token_id=1, eos_token_id=2)
QWEN25 = dict(LLAMA, family="qwen2", vocab_size=151936, max_seq_len=32768, attn_qkv_bias=True,
              norm_eps=1e-6, rope_theta=1000000.0, eos_token_id=151643)
T5 = dict(family="llmkit", arch="encoder_decoder", vocab_size=32128, max_seq_len=512, norm="rmsnorm",
          norm_eps=1e-6, activation="relu", position="t5_relative", attn_scale=1.0,
          tie_embeddings=True, init_std=1.0, pad_token_id=0, eos_token_id=1)
# GLM-130B's recipe (arXiv 2210.02414): prefix decoder, DeepNorm post-LN, GeGLU, RoPE.
GLM = dict(family="llmkit", arch="prefix_decoder", norm="layernorm", norm_bias=True, residual="post",
           deepnorm=True, activation="geglu", position="rope", attn_qkv_bias=True, attn_out_bias=True,
           mlp_bias=True)
TINY = dict(vocab_size=4096, d_model=128, n_layer=4, n_head=4, d_ff=384, max_seq_len=512)

NAMED_CONFIGS: dict[str, dict[str, Any]] = {
    "gpt2": dict(GPT2, d_model=768, n_layer=12, n_head=12, d_ff=3072),
    "gpt2-medium": dict(GPT2, d_model=1024, n_layer=24, n_head=16, d_ff=4096),
    "gpt2-large": dict(GPT2, d_model=1280, n_layer=36, n_head=20, d_ff=5120),
    "gpt2-xl": dict(GPT2, d_model=1600, n_layer=48, n_head=25, d_ff=6400),
    "llama-2-7b": dict(LLAMA2, d_model=4096, n_layer=32, n_head=32, d_ff=11008),
    "llama-2-13b": dict(LLAMA2, d_model=5120, n_layer=40, n_head=40, d_ff=13824),
    "llama-2-70b": dict(LLAMA2, d_model=8192, n_layer=80, n_head=64, n_kv_head=8, d_ff=28672),
    "llama-3-8b": dict(LLAMA3, d_model=4096, n_layer=32, n_head=32, n_kv_head=8, d_ff=14336),
    "llama-3-70b": dict(LLAMA3, d_model=8192, n_layer=80, n_head=64, n_kv_head=8, d_ff=28672),
    "llama-3.2-1b": dict(LLAMA32, d_model=2048, n_layer=16, n_head=32, n_kv_head=8, d_ff=8192),
    "llama-3.2-3b": dict(LLAMA32, d_model=3072, n_layer=28, n_head=24, n_kv_head=8, d_ff=8192),
    "mistral-7b": dict(MISTRAL, d_model=4096, n_layer=32, n_head=32, n_kv_head=8, d_ff=14336,
                       sliding_window=4096),
    "mixtral-8x7b": dict(MISTRAL, family="mixtral", d_model=4096, n_layer=32, n_head=32, n_kv_head=8,
                         d_ff=14336, n_expert=8, n_expert_per_token=2, rope_theta=1000000.0),
    "qwen2.5-0.5b": dict(QWEN25, d_model=896, n_layer=24, n_head=14, n_kv_head=2, d_ff=4864,
                         tie_embeddings=True),
    "qwen2.5-1.5b": dict(QWEN25, d_model=1536, n_layer=28, n_head=12, n_kv_head=2, d_ff=8960,
                         tie_embeddings=True),
    "qwen2.5-7b": dict(QWEN25, vocab_size=152064, d_model=3584, n_layer=28, n_head=28, n_kv_head=4,
                       d_ff=18944),
    "t5-base": dict(T5, d_model=768, n_layer=12, n_head=12, d_ff=3072),
    "glm-style-1b": dict(GLM, vocab_size=50304, max_seq_len=2048, d_model=2048, n_layer=20, n_head=16,
                         d_ff=5461),
    # tiny debug flavours of each family: a few million parameters, for tests and the demo
    "tiny-llama": dict(LLAMA, **TINY, n_kv_head=2, bos_token_id=1, eos_token_id=2),
    "tiny-mistral": dict(MISTRAL, **dict(TINY, max_seq_len=512), n_kv_head=2, sliding_window=64),
    "tiny-qwen2": dict(QWEN25, **TINY, n_kv_head=2, tie_embeddings=True),
    "tiny-mixtral": dict(MISTRAL, **TINY, family="mixtral", n_kv_head=2, n_expert=4, n_expert_per_token=2),
    "tiny-gpt2": dict(GPT2, **dict(TINY, d_ff=512)),
    "tiny-t5": dict(T5, **dict(TINY, n_layer=2, d_ff=512), init_std=0.05),
    "tiny-glm": dict(GLM, **TINY),
    # the `llmkit demo` model: small enough to pre-train for a few minutes on two CPU cores
    "mini-llama": dict(LLAMA, vocab_size=4096, d_model=256, n_layer=6, n_head=8, n_kv_head=4, d_ff=768,
                       max_seq_len=1024),
}


def named_config(name: str) -> ModelConfig:
    """The config called `name`; an unknown name lists the closest ones."""
    key = name.lower()
    if key not in NAMED_CONFIGS:
        close = difflib.get_close_matches(key, NAMED_CONFIGS, n=4, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise LlmkitError(f"unknown model name {name!r}.{hint} Run `llmkit models` for the full list.")
    return ModelConfig(name=key, **NAMED_CONFIGS[key])


def config_names() -> list[str]:
    return list(NAMED_CONFIGS)
