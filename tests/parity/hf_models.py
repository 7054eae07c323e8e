"""Tiny random transformers models of each family, built offline from a config."""

from __future__ import annotations

import torch

SHAPES = dict(vocab_size=96, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              initializer_range=0.2)


def hf_tiny(family: str):
    """A random HF causal LM of `family` (init std 0.2 so greedy choices are not near-ties)."""
    import transformers as tf

    torch.manual_seed(0)
    if family == "gpt2":
        cfg = tf.GPT2Config(vocab_size=96, n_embd=64, n_layer=2, n_head=4, n_positions=128,
                            initializer_range=0.2, bos_token_id=0, eos_token_id=0)
        model = tf.GPT2LMHeadModel(cfg)
    else:
        extra = {
            "llama": dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
            "mistral": dict(sliding_window=8),
            "qwen2": dict(tie_word_embeddings=True),
            "mixtral": dict(num_local_experts=4, num_experts_per_tok=2),
            "qwen3": dict(head_dim=16, tie_word_embeddings=True),
            "olmo2": dict(),
            "phi3": dict(pad_token_id=0, eos_token_id=1, bos_token_id=2, original_max_position_embeddings=16, rope_parameters={
                "rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.1, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0],
                "long_factor": [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0]}),
            "gemma2": dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=8, attn_logit_softcapping=5.0,
                           final_logit_softcapping=3.0, pad_token_id=0, eos_token_id=1, bos_token_id=2),
            "gemma3": dict(head_dim=16, query_pre_attn_scalar=16, sliding_window=8, pad_token_id=0, eos_token_id=1,
                           bos_token_id=2, layer_types=["sliding_attention", "full_attention"]),
        }[family]
        config_class, model_class = {
            "llama": (tf.LlamaConfig, tf.LlamaForCausalLM), "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM), "mixtral": (tf.MixtralConfig, tf.MixtralForCausalLM),
            "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM), "olmo2": (tf.Olmo2Config, tf.Olmo2ForCausalLM),
            "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM), "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM),
            "gemma3": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM),
        }[family]
        model = model_class(config_class(**SHAPES, **extra))
    model.generation_config.eos_token_id = None
    return model.eval()


def hf_greedy(model, tokens: torch.Tensor, n: int) -> list[list[int]]:
    out = model.generate(tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=n, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    return out[:, tokens.shape[1]:].tolist()
