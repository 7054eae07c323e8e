"""GGUF files of any family, written with the gguf package the way llama.cpp's converter lays them
out (its tensor names, Gemma's 1 + w norms, Phi-3's fused tensors, GPT-2's fused qkv): the input
for the import tests of families `llmkit export gguf` does not write."""

from __future__ import annotations

import numpy as np
import torch

from llmkit.checkpoint.gguf_export import _add_tokenizer, add_shape_metadata

GGUF_BLOCK = {"attn_norm": "attn_norm", "attn.q_proj": "attn_q", "attn.k_proj": "attn_k", "attn.v_proj": "attn_v",
              "attn.o_proj": "attn_output", "attn.q_norm": "attn_q_norm", "attn.k_norm": "attn_k_norm",
              "mlp_norm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "attn_post_norm": "post_attention_norm", "mlp_post_norm": "post_ffw_norm"}
OLMO2 = {"attn_norm": "post_attention_norm", "mlp_norm": "post_ffw_norm"}
ARCH = {"qwen3": "qwen3", "gemma2": "gemma2", "gemma3": "gemma3", "phi3": "phi3", "olmo2": "olmo2", "gpt2": "gpt2"}


def _tensors(model) -> dict[str, np.ndarray]:
    cfg, state = model.cfg, {k: v.detach().float() for k, v in model.state_dict().items()}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight")
    out = {}
    for name, value in state.items():
        if cfg.norm_offset and name.endswith("norm.weight"):
            value = value + cfg.norm_offset
        out[_gguf_name(name, cfg.family)] = value
    for layer in range(cfg.n_layer):
        for kind in ("weight", "bias"):
            parts = [out.pop(f"blk.{layer}.attn_{p}.{kind}", None) for p in "qkv"]
            if cfg.family in ("phi3", "gpt2") and parts[0] is not None:
                out[f"blk.{layer}.attn_qkv.{kind}"] = torch.cat(parts)
            elif parts[0] is not None:
                out |= {f"blk.{layer}.attn_{p}.{kind}": t for p, t in zip("qkv", parts)}
        if cfg.family == "phi3":
            out[f"blk.{layer}.ffn_up.weight"] = torch.cat([out.pop(f"blk.{layer}.ffn_gate.weight"),
                                                           out[f"blk.{layer}.ffn_up.weight"]])
    return {k: v.numpy() for k, v in out.items()}


def _gguf_name(name: str, family: str) -> str:
    top = {"tok_embeddings.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
           "norm.bias": "output_norm.bias", "lm_head.weight": "output.weight", "positions.weight": "position_embd.weight"}
    if name in top:
        return top[name]
    _, index, rest = name.split(".", 2)
    module, leaf = rest.rsplit(".", 1)
    names = {**GGUF_BLOCK, **(OLMO2 if family == "olmo2" else {})}
    return f"blk.{index}.{names[module]}.{leaf}"


def write_family_gguf(model, tokenizer_dir, path) -> None:
    """F32 tensors and the metadata llama.cpp writes for this family."""
    import gguf

    cfg, arch = model.cfg, ARCH[model.cfg.family]
    writer = gguf.GGUFWriter(str(path), arch)
    add_shape_metadata(writer, cfg)
    if cfg.sliding_window:
        writer.add_sliding_window(cfg.sliding_window)
    if cfg.attn_softcap:
        writer.add_attn_logit_softcapping(cfg.attn_softcap)
        writer.add_final_logit_softcapping(cfg.final_softcap)
    _add_tokenizer(writer, tokenizer_dir, cfg)
    for name, array in _tensors(model).items():
        writer.add_tensor(name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
