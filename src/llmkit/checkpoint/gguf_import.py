"""Import from GGUF, llama.cpp's file format: the model config from the metadata, weights
dequantized by the `gguf` package (every type it reads: F32, F16, BF16, Q4_0 ... Q8_0, the K-quants,
the IQ types) into llmkit's names, and the tokenizer from `tokenizer.ggml.*`.

What llama.cpp's converter changed is undone: the "llama" architecture's query/key rows are
permuted back from interleaved pairs to HF's rotate-half layout; Gemma's norm weights, stored as
1 + w, lose the 1; Phi-3's fused qkv and gate/up tensors are split; GPT-2's fused qkv too.

    cfg, state, metadata = read_gguf("model.gguf")   # Tokenizer.from_gguf_metadata(metadata): the tokenizer
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmkit.checkpoint.size_check import check_fits_in_memory
from llmkit.errors import LlmkitError
from llmkit.model import ModelConfig
from llmkit.model.named_configs import alternating

FAMILY = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2", "gemma3": "gemma3",
          "phi3": "phi3", "olmo2": "olmo2", "gpt2": "gpt2"}
BLOCK = {"attn_norm": "attn_norm", "attn_q": "attn.q_proj", "attn_k": "attn.k_proj", "attn_v": "attn.v_proj",
         "attn_output": "attn.o_proj", "attn_q_norm": "attn.q_norm", "attn_k_norm": "attn.k_norm",
         "ffn_norm": "mlp_norm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
# Norm names that differ by family: Gemma's pre/post norms, OLMo 2's norms on sub-layer outputs.
BLOCK_BY_FAMILY = {
    "gemma2": {"post_attention_norm": "attn_post_norm", "post_ffw_norm": "mlp_post_norm"},
    "gemma3": {"post_attention_norm": "attn_post_norm", "post_ffw_norm": "mlp_post_norm"},
    "olmo2": {"post_attention_norm": "attn_norm", "post_ffw_norm": "mlp_norm"},
}
GLOBAL = {"token_embd": "tok_embeddings", "output_norm": "norm", "output": "lm_head", "position_embd": "positions"}
LLAMA3_PARAMS = [dict(factor=f, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192)
                 for f in (8.0, 32.0, 16.0)]


def read_metadata(reader) -> dict[str, Any]:
    """Every key-value field, decoded (strings as str, arrays as lists)."""
    return {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def model_config(meta: dict[str, Any], shapes: dict[str, list[int]], name: str) -> ModelConfig:
    """`shapes`: tensor name -> shape as GGUF lists it (innermost first)."""
    arch = meta.get("general.architecture")
    if arch not in FAMILY:
        raise LlmkitError(f"GGUF architecture {arch!r} is not supported; llmkit converts {', '.join(FAMILY)}")
    get = lambda key, default=None: meta.get(f"{arch}.{key}", default)
    d_model, n_head = get("embedding_length"), get("attention.head_count")
    n_head = n_head[0] if isinstance(n_head, list) else n_head
    head_dim = get("attention.key_length") or d_model // n_head
    fields = dict(
        name=name, family=FAMILY[arch], vocab_size=int(shapes["token_embd.weight"][1]), d_model=d_model,
        n_layer=get("block_count"), n_head=n_head, n_kv_head=_first(get("attention.head_count_kv")) or n_head,
        head_dim=head_dim, d_ff=_first(get("feed_forward_length")), max_seq_len=get("context_length", 2048),
        norm_eps=get("attention.layer_norm_rms_epsilon") or get("attention.layer_norm_epsilon") or 1e-5,
        rope_theta=float(get("rope.freq_base", 10000.0)), tie_embeddings="output.weight" not in shapes,
        rotary_pct=(get("rope.dimension_count") or head_dim) / head_dim, sliding_window=get("attention.sliding_window"),
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id"), eos_token_id=meta.get("tokenizer.ggml.eos_token_id"),
        pad_token_id=meta.get("tokenizer.ggml.padding_token_id"), activation="swiglu", norm="rmsnorm",
        position="rope")
    fields |= FAMILY_FIELDS.get(arch, lambda meta, get, fields: {})(meta, get, fields)
    return ModelConfig(**fields)


def _first(value):
    return value[0] if isinstance(value, list) else value


def _llama(meta, get, fields):
    scaling = get("rope.scaling.type")
    if scaling == "linear":
        return {"rope_scaling": {"rope_type": "linear", "factor": float(get("rope.scaling.factor"))}}
    return {}


def _gemma(meta, get, fields):
    gemma3 = fields["family"] == "gemma3"
    extra = dict(activation="geglu_tanh", residual="sandwich", norm_offset=1.0, embed_scale=True,
                 attn_scale=fields["head_dim"] ** -0.5, tie_embeddings=True,
                 layer_types=alternating(fields["n_layer"], 6 if gemma3 else 2))
    if gemma3:
        factor = get("rope.scaling.factor")
        extra |= dict(qk_norm="head", rope_local_theta=10000.0,
                      rope_scaling={"rope_type": "linear", "factor": float(factor)} if factor else None)
    else:
        extra |= dict(attn_softcap=get("attn_logit_softcapping"), final_softcap=get("final_logit_softcapping"))
    return extra


def _phi3(meta, get, fields):
    original = get("rope.scaling.original_context_length")
    return {"rope_scaling": {"rope_type": "longrope", "original_max_position_embeddings": original}} if original else {}


def _gpt2(meta, get, fields):
    return dict(norm="layernorm", norm_bias=True, activation="gelu_tanh", position="learned", mlp_bias=True,
                attn_qkv_bias=True, attn_out_bias=True, norm_eps=get("attention.layer_norm_epsilon", 1e-5))


FAMILY_FIELDS = {"llama": _llama, "gemma2": _gemma, "gemma3": _gemma, "phi3": _phi3, "gpt2": _gpt2,
                 "qwen2": lambda meta, get, fields: {"attn_qkv_bias": True},
                 "qwen3": lambda meta, get, fields: {"qk_norm": "head"},
                 "olmo2": lambda meta, get, fields: {"residual": "post_sublayer", "qk_norm": "full"}}


def _dequantized(tensor) -> torch.Tensor:
    import gguf

    shape = [int(d) for d in reversed(tensor.shape)]  # GGUF lists the innermost dimension first
    array = gguf.quants.dequantize(np.asarray(tensor.data), tensor.tensor_type)
    return torch.from_numpy(np.array(array, dtype=np.float32).reshape(shape))  # a writable copy


def llmkit_name(gguf_name: str, family: str) -> str | None:
    """blk.3.attn_q.weight -> layers.3.attn.q_proj.weight; None for tensors with no llmkit place."""
    match = re.match(r"^blk\.(\d+)\.(\w+)\.(weight|bias)$", gguf_name)
    if match:
        names = {**BLOCK, **BLOCK_BY_FAMILY.get(family, {})}
        module = names.get(match[2]) or {"attn_qkv": "attn.qkv_proj"}.get(match[2])
        return None if module is None else f"layers.{match[1]}.{module}.{match[3]}"
    base, _, leaf = gguf_name.rpartition(".")
    return f"{GLOBAL[base]}.{leaf}" if base in GLOBAL else None


def rotary_deinterleave(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's interleaved pairs back to HF's [first halves | second halves] per head."""
    return weight.reshape(n_head, weight.shape[0] // n_head // 2, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def convert_tensor(name: str, value: torch.Tensor, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """One dequantized tensor in llmkit names, with the converter's changes undone."""
    if cfg.norm_offset and name.endswith("norm.weight"):
        value = value - cfg.norm_offset  # Gemma files store 1 + w
    if cfg.family == "llama" and name.endswith(("attn.q_proj.weight", "attn.k_proj.weight")):
        value = rotary_deinterleave(value, cfg.n_head if ".q_proj" in name else cfg.n_kv_head)
    if name.endswith("attn.qkv_proj.weight") or name.endswith("attn.qkv_proj.bias"):
        q, kv = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
        prefix, leaf = name.rsplit(".qkv_proj.", 1)
        return {f"{prefix}.{p}_proj.{leaf}": t.contiguous() for p, t in zip("qkv", value.split([q, kv, kv]))}
    if cfg.family == "phi3" and name.endswith("mlp.up_proj.weight") and value.shape[0] == 2 * cfg.d_ff:
        gate, up = value.split(cfg.d_ff)
        return {name.replace("up_proj", "gate_proj"): gate.contiguous(), name: up.contiguous()}
    return {name: value}


def read_gguf(path: str | Path, dtype: torch.dtype | None = None):
    """(ModelConfig, state dict in llmkit names, decoded metadata) from a GGUF file; a config that
    could not fit in memory is refused before any tensor is read. `dtype`: None keeps F16/BF16
    files' precision (quantized and F32 tensors become float32)."""
    import gguf

    path = Path(path)
    try:
        reader = gguf.GGUFReader(str(path))
    except (ValueError, OSError, IndexError) as err:
        raise LlmkitError(f"{path} is not a readable GGUF file ({err})") from None
    meta = read_metadata(reader)
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}
    names = set(shapes)
    cfg = model_config(meta, shapes, path.stem)
    check_fits_in_memory(cfg, path)
    dtype = dtype or _file_dtype(reader)
    state: dict[str, torch.Tensor] = {}
    factors = {}
    for tensor in reader.tensors:
        if tensor.name in ("rope_factors_long.weight", "rope_factors_short.weight"):
            factors[tensor.name.split("_")[2].split(".")[0]] = _dequantized(tensor).tolist()
            continue
        name = llmkit_name(tensor.name, cfg.family)
        if name is None:
            continue  # buffers llama.cpp adds (rope_freqs) carry nothing the config does not
        for key, value in convert_tensor(name, _dequantized(tensor), cfg).items():
            state[key] = value.to(dtype)
    if factors:
        cfg.rope_scaling = {**(cfg.rope_scaling or {}), "long_factor": factors["long"], "short_factor": factors["short"]}
    if "rope_freqs.weight" in names and cfg.family == "llama":
        cfg.rope_scaling = _llama3_scaling(reader, cfg)
    return cfg, state, meta


def gguf_config(path: str | Path) -> ModelConfig:
    """Only the model config of a GGUF file (no tensor is read)."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return model_config(read_metadata(reader), {t.name: [int(d) for d in t.shape] for t in reader.tensors},
                        Path(path).stem)


def _file_dtype(reader) -> torch.dtype:
    kinds = {t.tensor_type.name for t in reader.tensors if len(t.shape) > 1}
    return torch.bfloat16 if kinds == {"BF16"} else torch.float16 if kinds == {"F16"} else torch.float32


def _llama3_scaling(reader, cfg: ModelConfig) -> dict | None:
    """Llama 3.1's frequency scaling, which llama.cpp stores as per-frequency factors: the known
    parameter sets are tried until one reproduces the stored factors."""
    from llmkit.model.positions import rope_inverse_frequencies

    stored = next(_dequantized(t) for t in reader.tensors if t.name == "rope_freqs.weight")
    plain = rope_inverse_frequencies(cfg.replace(rope_scaling=None))
    for params in LLAMA3_PARAMS:
        scaling = {"rope_type": "llama3", **params}
        scaled = rope_inverse_frequencies(cfg.replace(rope_scaling=scaling))
        if torch.allclose(plain / scaled, stored, rtol=1e-3):
            return scaling
    raise LlmkitError("this GGUF file's rope_freqs factors match no known Llama 3 scaling; it was not converted")
