"""`ModelConfig` <-> Hugging Face `config.json`, for the families transformers knows
(llama, mistral, qwen2, qwen3, mixtral, gemma2, gemma3_text, phi3, olmo2, gpt2). Reads both the
transformers v4 (`rope_theta`, `rope_scaling`) and v5 (`rope_parameters`, per layer type for
Gemma 3) spellings. Other configs use llmkit's own keys.

Each family is the Llama layout plus the components it fixes (FAMILY_TRAITS): the config a
checkpoint of that family implies, and the test a config must pass to be written in its layout."""

from __future__ import annotations

from typing import Any

from llmkit.errors import LlmkitError
from llmkit.model.config import ModelConfig

LLAMA_LIKE = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM",
              "mixtral": "MixtralForCausalLM", "qwen3": "Qwen3ForCausalLM", "olmo2": "Olmo2ForCausalLM",
              "phi3": "Phi3ForCausalLM", "gemma2": "Gemma2ForCausalLM", "gemma3_text": "Gemma3ForCausalLM"}
MODEL_TYPE = {"gemma3": "gemma3_text"}  # llmkit family -> HF model_type where they differ
HF_ACT_TO_GLU = {"silu": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu_tanh", "gelu_new": "geglu_tanh",
                 "relu": "reglu"}
GLU_TO_HF_ACT = {"swiglu": "silu", "geglu": "gelu", "geglu_tanh": "gelu_pytorch_tanh", "reglu": "relu"}
PLAIN = {"residual": "pre", "qk_norm": "none", "norm_offset": 0.0, "attn_softcap": None, "final_softcap": None,
         "embed_scale": False, "layer_types": None, "rope_local_theta": None}
GEMMA = {"residual": "sandwich", "norm_offset": 1.0, "embed_scale": True, "activation": "geglu_tanh",
         "attn_qkv_bias": False, "attn_out_bias": False, "mlp_bias": False}
# What each family fixes: read from its checkpoints, and required to write a config in its layout.
FAMILY_TRAITS = {
    "llama": PLAIN, "mistral": PLAIN, "mixtral": PLAIN, "qwen2": PLAIN,
    "qwen3": dict(PLAIN, qk_norm="head"),
    "olmo2": dict(PLAIN, residual="post_sublayer", qk_norm="full"),
    "phi3": dict(PLAIN, attn_qkv_bias=False, attn_out_bias=False, mlp_bias=False),
    "gemma2": dict(GEMMA, qk_norm="none", rope_local_theta=None),
    "gemma3": dict(GEMMA, qk_norm="head", attn_softcap=None, final_softcap=None),
}
# Fields each HF family fixes; a config that differs cannot be written in that family's layout.
FIXED_FIELDS = {
    "llama": {},
    "mistral": {"attn_qkv_bias": False, "attn_out_bias": False, "mlp_bias": False},
    "mixtral": {"attn_qkv_bias": False, "attn_out_bias": False, "mlp_bias": False},
    "qwen2": {"attn_qkv_bias": True, "attn_out_bias": False, "mlp_bias": False},
}
GPT2_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu"}


def hf_family(cfg: ModelConfig) -> str:
    """The HF family whose layout can hold `cfg` exactly, or "llmkit" for llmkit's own layout."""
    decoder = cfg.arch == "decoder" and not cfg.n_unique_layers
    longrope = (cfg.rope_scaling or {}).get("rope_type") == "longrope"
    if cfg.family in FAMILY_TRAITS and decoder and cfg.position == "rope" and cfg.norm == "rmsnorm" \
            and cfg.activation in GLU_TO_HF_ACT and not cfg.norm_bias and (cfg.family == "mixtral") == bool(cfg.n_expert) \
            and all(getattr(cfg, k) == v for k, v in FIXED_FIELDS.get(cfg.family, {}).items()) \
            and all(getattr(cfg, k) == v for k, v in FAMILY_TRAITS[cfg.family].items()) \
            and longrope == (cfg.family == "phi3" and longrope) \
            and (cfg.family not in ("llama", "qwen3", "olmo2") or cfg.attn_qkv_bias == cfg.attn_out_bias):
        return cfg.family
    if cfg.family == "gpt2" and decoder and cfg.position == "learned" and cfg.norm == "layernorm" \
            and cfg.activation in ("gelu_tanh", "gelu", "relu") and cfg.n_kv_head == cfg.n_head \
            and cfg.attn_qkv_bias and cfg.attn_out_bias and cfg.mlp_bias and cfg.norm_bias:
        return "gpt2"
    return "llmkit"


def from_hf_config(d: dict[str, Any], name: str = "checkpoint") -> ModelConfig:
    model_type = d.get("model_type")
    if model_type == "llmkit":
        return ModelConfig.from_dict({k: v for k, v in d.items() if k != "model_type"})
    if model_type == "gemma3" and isinstance(d.get("text_config"), dict):
        raise LlmkitError("this is a multimodal Gemma 3 checkpoint; llmkit reads the text-only ones "
                          "(model_type gemma3_text, e.g. gemma-3-1b)")
    if model_type in LLAMA_LIKE:
        family = {v: k for k, v in MODEL_TYPE.items()}.get(model_type, model_type)
        return _from_llama_like(d, family, name)
    if model_type == "gpt2":
        return _from_gpt2(d, name)
    raise LlmkitError(f"config.json has model_type={model_type!r}; llmkit reads "
                      f"{', '.join([*LLAMA_LIKE, 'gpt2', 'llmkit'])}")


def _rope(d: dict[str, Any]) -> tuple[float, dict | None]:
    params = d.get("rope_parameters") or {}
    params = params.get("full_attention", params)  # Gemma 3 keys them by layer type
    theta = params.get("rope_theta", d.get("rope_theta", 10000.0))
    scaling = d.get("rope_scaling") or params
    kind = scaling.get("rope_type", scaling.get("type", "default")) if scaling else "default"
    kind = "longrope" if kind == "su" else kind
    if kind not in ("default", "linear", "llama3", "longrope"):
        raise LlmkitError(f"rope scaling {kind!r} is not supported yet (supported: linear, llama3, longrope)")
    scaling = None if kind == "default" else {k: v for k, v in scaling.items() if k not in ("rope_theta", "type")}
    if kind == "longrope":
        scaling |= {"rope_type": "longrope", "original_max_position_embeddings": scaling.get(
            "original_max_position_embeddings", d.get("original_max_position_embeddings"))}
    return float(theta), scaling


def _local_theta(d: dict[str, Any]) -> float | None:
    """Gemma 3's RoPE base for its sliding layers."""
    sliding = (d.get("rope_parameters") or {}).get("sliding_attention") or {}
    theta = sliding.get("rope_theta", d.get("rope_local_base_freq"))
    return None if theta is None else float(theta)


def _layer_types(d: dict[str, Any], family: str) -> list[str] | None:
    """Per-layer "sliding"/"full" for the Gemmas (from layer_types, or their fixed patterns)."""
    if family not in ("gemma2", "gemma3"):
        return None
    n, given = d["num_hidden_layers"], d.get("layer_types")
    if given:
        return ["sliding" if t == "sliding_attention" else "full" for t in given]
    period = 2 if family == "gemma2" else d.get("sliding_window_pattern", 6)
    return ["full" if (i + 1) % period == 0 else "sliding" for i in range(n)]


def _family_overrides(d: dict[str, Any], family: str) -> dict[str, Any]:
    """The config fields a family fixes, plus those it reads from its own keys."""
    fields = {k: v for k, v in FAMILY_TRAITS[family].items() if k not in ("layer_types", "rope_local_theta")}
    if family in ("gemma2", "gemma3"):
        scalar = d.get("query_pre_attn_scalar")
        fields |= {"layer_types": _layer_types(d, family), "attn_scale": None if scalar is None else scalar**-0.5,
                   "tie_embeddings": d.get("tie_word_embeddings", True)}
    if family == "gemma2":
        fields |= {"attn_softcap": d.get("attn_logit_softcapping"), "final_softcap": d.get("final_logit_softcapping")}
    if family == "gemma3":
        fields |= {"rope_local_theta": _local_theta(d) or 10000.0}
    return fields


def _from_llama_like(d: dict[str, Any], family: str, name: str) -> ModelConfig:
    theta, scaling = _rope(d)
    act = d.get("hidden_activation") or d.get("hidden_act") or "silu"
    if act not in HF_ACT_TO_GLU:
        raise LlmkitError(f"hidden_act={act!r} is not supported for {family} (supported: {list(HF_ACT_TO_GLU)})")
    window = d.get("sliding_window")
    if family in ("qwen2", "qwen3") and not d.get("use_sliding_window", False):
        window = None
    bias = bool(d.get("attention_bias", False))
    overrides = _family_overrides(d, family)
    return ModelConfig(
        name=name, family=family, vocab_size=d["vocab_size"], d_model=d["hidden_size"],
        n_layer=d["num_hidden_layers"], n_head=d["num_attention_heads"],
        n_kv_head=d.get("num_key_value_heads") or d["num_attention_heads"],
        head_dim=d.get("head_dim") or d["hidden_size"] // d["num_attention_heads"],
        d_ff=d["intermediate_size"], max_seq_len=d.get("max_position_embeddings", 2048),
        norm="rmsnorm", norm_eps=d.get("rms_norm_eps", 1e-6), activation=HF_ACT_TO_GLU[act],
        mlp_bias=d.get("mlp_bias", False), attn_qkv_bias=bias or family == "qwen2", attn_out_bias=bias,
        position="rope", rope_theta=theta, rope_scaling=scaling,
        rotary_pct=(d.get("rope_parameters") or {}).get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0)),
        sliding_window=window, tie_embeddings=d.get("tie_word_embeddings", False),
        n_expert=d.get("num_local_experts", 0), n_expert_per_token=d.get("num_experts_per_tok", 2),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), pad_token_id=d.get("pad_token_id"),
        init_std=d.get("initializer_range", 0.02),
    ).replace(**overrides)


def _from_gpt2(d: dict[str, Any], name: str) -> ModelConfig:
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if d.get(flag):
            raise LlmkitError(f"GPT-2 config sets {flag}=true, which llmkit does not implement")
    act = d.get("activation_function", "gelu_new")
    return ModelConfig(
        name=name, family="gpt2", vocab_size=d["vocab_size"], d_model=d["n_embd"], n_layer=d["n_layer"],
        n_head=d["n_head"], d_ff=d.get("n_inner") or 4 * d["n_embd"], max_seq_len=d["n_positions"],
        norm="layernorm", norm_bias=True, norm_eps=d.get("layer_norm_epsilon", 1e-5),
        activation=GPT2_ACT.get(act, "gelu_tanh"), position="learned", mlp_bias=True,
        attn_qkv_bias=True, attn_out_bias=True, tie_embeddings=d.get("tie_word_embeddings", True),
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), pad_token_id=d.get("pad_token_id"),
        init_std=d.get("initializer_range", 0.02),
    )


def to_hf_config(cfg: ModelConfig, dtype: str = "float32") -> dict[str, Any]:
    family = hf_family(cfg)
    common = {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id,
              "pad_token_id": cfg.pad_token_id, "tie_word_embeddings": cfg.tie_embeddings, "dtype": dtype}
    if family == "gpt2":
        act = {v: k for k, v in GPT2_ACT.items() if k != "gelu_pytorch_tanh"}[cfg.activation]
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg.vocab_size,
                "n_embd": cfg.d_model, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": cfg.d_ff,
                "n_positions": cfg.max_seq_len, "layer_norm_epsilon": cfg.norm_eps, "activation_function": act,
                "initializer_range": cfg.init_std, "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
                **common}
    if family == "llmkit":
        return {"model_type": "llmkit", "architectures": ["LlmkitModel"], **cfg.to_dict(), "dtype": dtype}
    rope = {"rope_type": "default", **(cfg.rope_scaling or {}), "rope_theta": cfg.rope_theta}
    if cfg.rotary_pct != 1.0:
        rope["partial_rotary_factor"] = cfg.rotary_pct
    model_type = MODEL_TYPE.get(family, family)
    d = {"architectures": [LLAMA_LIKE[model_type]], "model_type": model_type, "vocab_size": cfg.vocab_size,
         "hidden_size": cfg.d_model, "intermediate_size": cfg.d_ff, "num_hidden_layers": cfg.n_layer,
         "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim,
         "hidden_act": GLU_TO_HF_ACT[cfg.activation], "max_position_embeddings": cfg.max_seq_len,
         "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta, "rope_scaling": cfg.rope_scaling,
         "rope_parameters": rope, "attention_dropout": 0.0, "initializer_range": cfg.init_std, **common}
    d |= _family_fields(cfg, family)
    return d


def _family_fields(cfg: ModelConfig, family: str) -> dict[str, Any]:
    if family == "llama":
        return {"attention_bias": cfg.attn_qkv_bias, "mlp_bias": cfg.mlp_bias}
    if family in ("qwen3", "olmo2"):
        return {"attention_bias": cfg.attn_qkv_bias, "sliding_window": None, "use_sliding_window": False}
    if family == "phi3":
        scaling = cfg.rope_scaling or {}
        return {"sliding_window": cfg.sliding_window, "original_max_position_embeddings":
                scaling.get("original_max_position_embeddings", cfg.max_seq_len), "partial_rotary_factor": cfg.rotary_pct}
    if family in ("gemma2", "gemma3"):
        return _gemma_fields(cfg, family)
    if family == "qwen2":
        return {"use_sliding_window": cfg.sliding_window is not None, "sliding_window": cfg.sliding_window,
                "max_window_layers": cfg.n_layer}
    if family == "mixtral":
        return {"num_local_experts": cfg.n_expert, "num_experts_per_tok": cfg.n_expert_per_token,
                "sliding_window": cfg.sliding_window, "router_aux_loss_coef": 0.0}
    return {"sliding_window": cfg.sliding_window}


def _gemma_fields(cfg: ModelConfig, family: str) -> dict[str, Any]:
    scalar = round(cfg.attn_scale**-2) if cfg.attn_scale else cfg.head_dim
    d = {"hidden_activation": GLU_TO_HF_ACT[cfg.activation], "query_pre_attn_scalar": scalar,
         "sliding_window": cfg.sliding_window, "attention_bias": False,
         "layer_types": [f"{t}_attention" for t in (cfg.layer_types or ["full"] * cfg.n_layer)]}
    if family == "gemma2":
        return d | {"attn_logit_softcapping": cfg.attn_softcap, "final_logit_softcapping": cfg.final_softcap}
    full = {"rope_type": "default", **(cfg.rope_scaling or {}), "rope_theta": cfg.rope_theta}
    sliding = {"rope_type": "default", "rope_theta": cfg.rope_local_theta}
    return d | {"rope_parameters": {"full_attention": full, "sliding_attention": sliding},
                "rope_local_base_freq": cfg.rope_local_theta}


def resolve_config(spec: str) -> ModelConfig:
    """A named config (`llmkit models`), a checkpoint directory's config, or a config.json file."""
    from pathlib import Path

    from llmkit.fileio import read_json_object
    from llmkit.model import named_config

    path = Path(spec)
    if path.is_dir() or path.suffix == ".json":
        config_file = path / "config.json" if path.is_dir() else path
        return from_hf_config(read_json_object(config_file), name=path.name if path.is_dir() else path.stem)
    return named_config(spec)
