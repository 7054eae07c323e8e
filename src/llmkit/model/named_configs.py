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
LLAMA31 = dict(LLAMA3, max_seq_len=131072, rope_scaling={
    "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192})
SMOLLM2 = dict(LLAMA, vocab_size=49152, max_seq_len=8192, tie_embeddings=True, rope_theta=100000.0,
               bos_token_id=1, eos_token_id=2)
QWEN3 = dict(LLAMA, family="qwen3", vocab_size=151936, max_seq_len=40960, qk_norm="head", head_dim=128,
             norm_eps=1e-6, rope_theta=1000000.0, bos_token_id=151643, eos_token_id=151645)
GEMMA = dict(LLAMA, activation="geglu_tanh", residual="sandwich", norm_offset=1.0, embed_scale=True,
             tie_embeddings=True, norm_eps=1e-6, head_dim=256, attn_scale=256**-0.5, bos_token_id=2,
             eos_token_id=1, pad_token_id=0)
GEMMA2 = dict(GEMMA, family="gemma2", vocab_size=256000, max_seq_len=8192, sliding_window=4096,
              attn_softcap=50.0, final_softcap=30.0)
GEMMA3 = dict(GEMMA, family="gemma3", vocab_size=262144, max_seq_len=32768, sliding_window=512, qk_norm="head",
              rope_theta=1000000.0, rope_local_theta=10000.0, eos_token_id=[1, 106])
PHI3 = dict(LLAMA, family="phi3", vocab_size=32064, norm_eps=1e-5, bos_token_id=1, eos_token_id=32000,
            pad_token_id=32000)
OLMO2 = dict(LLAMA, family="olmo2", vocab_size=100352, max_seq_len=4096, residual="post_sublayer", qk_norm="full",
             norm_eps=1e-6, rope_theta=500000.0, eos_token_id=100257, pad_token_id=100277)
TINY = dict(vocab_size=4096, d_model=128, n_layer=4, n_head=4, d_ff=384, max_seq_len=512)


def alternating(n_layer: int, period: int) -> list[str]:
    """Gemma's layer pattern: every period-th layer global ("full"), the rest sliding."""
    return ["full" if (i + 1) % period == 0 else "sliding" for i in range(n_layer)]

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
    "llama-3.1-8b": dict(LLAMA31, d_model=4096, n_layer=32, n_head=32, n_kv_head=8, d_ff=14336),
    "llama-3.1-70b": dict(LLAMA31, d_model=8192, n_layer=80, n_head=64, n_kv_head=8, d_ff=28672),
    "smollm2-135m": dict(SMOLLM2, d_model=576, n_layer=30, n_head=9, n_kv_head=3, d_ff=1536),
    "smollm2-360m": dict(SMOLLM2, d_model=960, n_layer=32, n_head=15, n_kv_head=5, d_ff=2560),
    "smollm2-1.7b": dict(SMOLLM2, d_model=2048, n_layer=24, n_head=32, n_kv_head=32, d_ff=8192, rope_theta=130000.0),
    "qwen3-0.6b": dict(QWEN3, d_model=1024, n_layer=28, n_head=16, n_kv_head=8, d_ff=3072, tie_embeddings=True),
    "qwen3-1.7b": dict(QWEN3, d_model=2048, n_layer=28, n_head=16, n_kv_head=8, d_ff=6144, tie_embeddings=True),
    "qwen3-4b": dict(QWEN3, d_model=2560, n_layer=36, n_head=32, n_kv_head=8, d_ff=9728, tie_embeddings=True),
    "qwen3-8b": dict(QWEN3, d_model=4096, n_layer=36, n_head=32, n_kv_head=8, d_ff=12288),
    "gemma-2-2b": dict(GEMMA2, d_model=2304, n_layer=26, n_head=8, n_kv_head=4, d_ff=9216,
                       layer_types=alternating(26, 2)),
    "gemma-2-9b": dict(GEMMA2, d_model=3584, n_layer=42, n_head=16, n_kv_head=8, d_ff=14336,
                       layer_types=alternating(42, 2)),
    "gemma-3-1b": dict(GEMMA3, d_model=1152, n_layer=26, n_head=4, n_kv_head=1, d_ff=6912,
                       layer_types=alternating(26, 6)),
    "phi-3-mini": dict(PHI3, d_model=3072, n_layer=32, n_head=32, d_ff=8192, max_seq_len=4096, sliding_window=2047),
    "olmo-2-7b": dict(OLMO2, d_model=4096, n_layer=32, n_head=32, d_ff=11008),
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
    "tiny-qwen3": dict(QWEN3, **TINY, n_kv_head=2, head_dim=32, tie_embeddings=True),
    "tiny-gemma2": dict(GEMMA2, **TINY, n_kv_head=2, head_dim=32, attn_scale=32**-0.5, sliding_window=64,
                        layer_types=alternating(4, 2)),
    "tiny-gemma3": dict(GEMMA3, **TINY, n_kv_head=2, head_dim=32, attn_scale=32**-0.5, sliding_window=64,
                        layer_types=alternating(4, 2)),
    "tiny-phi3": dict(PHI3, **TINY, n_kv_head=2),
    "tiny-olmo2": dict(OLMO2, **TINY, n_kv_head=2),
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
