"""Per-family tensor-name maps between llmkit's state dict and the HF checkpoint layout.

Each rule is (llmkit template, HF template); `{name}` matches one dotted component and is copied
across. The first matching rule wins, so specific rules come before general ones. GPT-2 needs two
extra steps: its Conv1D weights are stored transposed, and q/k/v live fused in `c_attn`.
"""

from __future__ import annotations

import re

import torch

from llmkit.errors import LlmkitError
from llmkit.model.config import ModelConfig

LLAMA_RULES = [
    ("tok_embeddings.weight", "model.embed_tokens.weight"),
    ("layers.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
    ("layers.{i}.attn.{proj}.{kind}", "model.layers.{i}.self_attn.{proj}.{kind}"),
    ("layers.{i}.mlp_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
    ("layers.{i}.mlp.router.weight", "model.layers.{i}.block_sparse_moe.gate.weight"),
    ("layers.{i}.mlp.experts.{e}.gate_proj.weight", "model.layers.{i}.block_sparse_moe.experts.{e}.w1.weight"),
    ("layers.{i}.mlp.experts.{e}.down_proj.weight", "model.layers.{i}.block_sparse_moe.experts.{e}.w2.weight"),
    ("layers.{i}.mlp.experts.{e}.up_proj.weight", "model.layers.{i}.block_sparse_moe.experts.{e}.w3.weight"),
    ("layers.{i}.mlp.{proj}.{kind}", "model.layers.{i}.mlp.{proj}.{kind}"),
    ("norm.weight", "model.norm.weight"),
    ("lm_head.weight", "lm_head.weight"),
]
def _with_norms(names: dict[str, str]) -> list[tuple[str, str]]:
    """Llama's rules with a family's own names for the block norms (llmkit name -> HF name)."""
    norms = [(f"layers.{{i}}.{ours}.weight", f"model.layers.{{i}}.{theirs}.weight") for ours, theirs in names.items()]
    return LLAMA_RULES[:1] + norms + [r for r in LLAMA_RULES[1:] if "_norm.weight" not in r[0]]


OLMO2_RULES = _with_norms({"attn_norm": "post_attention_layernorm", "mlp_norm": "post_feedforward_layernorm"})
GEMMA_RULES = _with_norms({"attn_norm": "input_layernorm", "attn_post_norm": "post_attention_layernorm",
                           "mlp_norm": "pre_feedforward_layernorm", "mlp_post_norm": "post_feedforward_layernorm"})
# Checkpoint tensors that hold several llmkit tensors, concatenated along dim 0 (Phi-3).
FUSED = {"phi3": {"attn.qkv_proj": ("q_proj", "k_proj", "v_proj"), "mlp.gate_up_proj": ("gate_proj", "up_proj")}}
GPT2_RULES = [
    ("tok_embeddings.weight", "transformer.wte.weight"),
    ("positions.weight", "transformer.wpe.weight"),
    ("layers.{i}.attn_norm.{kind}", "transformer.h.{i}.ln_1.{kind}"),
    ("layers.{i}.attn.o_proj.{kind}", "transformer.h.{i}.attn.c_proj.{kind}"),
    ("layers.{i}.mlp_norm.{kind}", "transformer.h.{i}.ln_2.{kind}"),
    ("layers.{i}.mlp.up_proj.{kind}", "transformer.h.{i}.mlp.c_fc.{kind}"),
    ("layers.{i}.mlp.down_proj.{kind}", "transformer.h.{i}.mlp.c_proj.{kind}"),
    ("norm.{kind}", "transformer.ln_f.{kind}"),
    ("lm_head.weight", "lm_head.weight"),
]
RULES = {"llama": LLAMA_RULES, "mistral": LLAMA_RULES, "qwen2": LLAMA_RULES, "mixtral": LLAMA_RULES,
         "qwen3": LLAMA_RULES, "phi3": LLAMA_RULES, "olmo2": OLMO2_RULES, "gemma2": GEMMA_RULES,
         "gemma3": GEMMA_RULES, "gpt2": GPT2_RULES}
FUSED_PART = re.compile(r"^layers\.(\d+)\.(attn|mlp)\.(\w+)\.weight$")
# Keys some HF checkpoints carry that are buffers, not weights.
IGNORED_HF_KEYS = re.compile(r"(\.attn\.(masked_)?bias$|rotary_emb\.inv_freq$)")
GPT2_CONV1D = re.compile(r"^transformer\.h\.\d+\.(attn|mlp)\.c_\w+\.weight$")
GPT2_QKV = re.compile(r"^layers\.(\d+)\.attn\.([qkv])_proj\.(weight|bias)$")
GPT2_FUSED = re.compile(r"^transformer\.h\.(\d+)\.attn\.c_attn\.(weight|bias)$")


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^.]+)", re.escape(template)) + "$")


def _rename(key: str, rules: list[tuple[str, str]], reverse: bool) -> str | None:
    for ours, theirs in rules:
        source, target = (theirs, ours) if reverse else (ours, theirs)
        match = _compile(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def to_hf_state_dict(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """llmkit names -> HF names for `family` ("llmkit" keeps the names)."""
    if family == "llmkit":
        return dict(state)
    out, fused = {}, {}
    state = _fuse(state, family)
    for key, tensor in state.items():
        qkv = GPT2_QKV.match(key) if family == "gpt2" else None
        if qkv:
            fused.setdefault((qkv[1], qkv[3]), {})[qkv[2]] = tensor
            continue
        hf_key = _rename(key, RULES[family], reverse=False)
        if hf_key is None:
            raise LlmkitError(f"tensor {key!r} has no place in the {family} checkpoint layout")
        out[hf_key] = tensor.t().contiguous() if GPT2_CONV1D.match(hf_key) else tensor
    for (layer, kind), parts in fused.items():
        joined = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)  # (3C, C) or (3C,)
        out[f"transformer.h.{layer}.attn.c_attn.{kind}"] = joined.t().contiguous() if kind == "weight" else joined
    return out


def _fuse(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """Concatenate the parts a family stores as one tensor (Phi-3's qkv_proj, gate_up_proj)."""
    groups = FUSED.get(family, {})
    if not groups:
        return state
    out, parts = {}, {}
    for key, tensor in state.items():
        match = FUSED_PART.match(key)
        owner = next((f for f, names in groups.items() if match and f.startswith(match[2] + ".")
                      and match[3] in names), None)
        if owner is None:
            out[key] = tensor
        else:
            parts.setdefault((match[1], owner), {})[match[3]] = tensor
    for (layer, owner), found in parts.items():
        out[f"layers.{layer}.{owner}.weight"] = torch.cat([found[n] for n in groups[owner]], dim=0)
    return out


def _split_sizes(owner: str, cfg: ModelConfig) -> list[int]:
    if owner == "attn.qkv_proj":
        return [cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim]
    return [cfg.d_ff, cfg.d_ff]


def from_hf_tensor(key: str, tensor: torch.Tensor, family: str, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """One HF tensor -> the llmkit tensor(s) it holds (GPT-2's c_attn and Phi-3's qkv_proj hold three); {} for buffers."""
    if family == "llmkit":
        return {key: tensor}
    if IGNORED_HF_KEYS.search(key):
        return {}
    for owner, names in FUSED.get(family, {}).items():
        fused = re.match(rf"^model\.layers\.(\d+)\.(self_attn|mlp)\.{owner.split('.')[1]}\.weight$", key)
        if fused:
            sub = "attn" if fused[2] == "self_attn" else "mlp"
            pieces = tensor.split(_split_sizes(owner, cfg), dim=0)
            return {f"layers.{fused[1]}.{sub}.{name}.weight": p for name, p in zip(names, pieces, strict=True)}
    if family == "gpt2":
        key = key if key.startswith(("transformer.", "lm_head.")) else f"transformer.{key}"
        fused = GPT2_FUSED.match(key)
        if fused:
            layer, kind = fused.groups()
            parts = (tensor.t() if kind == "weight" else tensor).split(cfg.d_model, dim=0)
            return {f"layers.{layer}.attn.{p}_proj.{kind}": t.contiguous() for p, t in zip("qkv", parts)}
        if GPT2_CONV1D.match(key):
            tensor = tensor.t().contiguous()
    ours = _rename(key, RULES[family], reverse=True)
    if ours is None:
        raise LlmkitError(f"checkpoint tensor {key!r} is not part of a {family} model")
    return {ours: tensor}


def hf_module_name(module: str, family: str) -> str:
    """HF dotted name of an llmkit Linear module (e.g. for adapter files): layers.0.attn.q_proj ->
    model.layers.0.self_attn.q_proj. Fused GPT-2 projections have no single HF module."""
    if family == "gpt2" and GPT2_QKV.match(f"{module}.weight"):
        raise LlmkitError(f"{module} is fused into GPT-2's c_attn; adapters on it have no HF-layout name")
    renamed = _rename(f"{module}.weight", RULES[family], reverse=False) if family in RULES else f"{module}.weight"
    if renamed is None:
        raise LlmkitError(f"module {module!r} has no place in the {family} checkpoint layout")
    return renamed.removesuffix(".weight")


def llmkit_module_name(hf_module: str, family: str) -> str:
    """The inverse of hf_module_name."""
    renamed = _rename(f"{hf_module}.weight", RULES[family], reverse=True) if family in RULES else f"{hf_module}.weight"
    if renamed is None:
        raise LlmkitError(f"{hf_module!r} is not a module of a {family} model")
    return renamed.removesuffix(".weight")
