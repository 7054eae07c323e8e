"""Export to GGUF, llama.cpp's file format, with the `gguf` package: the llama family (Llama,
Mistral; llama.cpp arch "llama") and Qwen2 ("qwen2"), weights in f16, q8_0 or q4_0 (blocks of 32
along each row; 1-D tensors stay f32 and matrices whose rows do not split into blocks of 32 fall
back to f16), the model's hyper-parameters and its byte-level BPE vocabulary and merges.

Llama-family query and key rows are permuted from HF's rotate-half rotary layout to the
interleaved pairs llama.cpp's "llama" architecture rotates, as llama.cpp's own converter does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from llmkit.checkpoint.io import load_checkpoint
from llmkit.errors import LlmkitError
from llmkit.fileio import check_output_file
from llmkit.tokenizer import Tokenizer

TYPES = ("f16", "q8_0", "q4_0")
BLOCK_NAMES = {"attn_norm": "attn_norm", "attn.q_proj": "attn_q", "attn.k_proj": "attn_k", "attn.v_proj": "attn_v",
               "attn.o_proj": "attn_output", "mlp_norm": "ffn_norm", "mlp.gate_proj": "ffn_gate",
               "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}


def gguf_name(name: str) -> str:
    if name == "tok_embeddings.weight":
        return "token_embd.weight"
    if name == "norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    _, index, rest = name.split(".", 2)  # layers.{i}.<module>.<weight|bias>
    module, leaf = rest.rsplit(".", 1)
    if module not in BLOCK_NAMES:
        raise LlmkitError(f"tensor {name!r} has no GGUF name (only dense llama-family blocks export)")
    return f"blk.{index}.{BLOCK_NAMES[module]}.{leaf}"


def rotary_interleave(weight: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows of each head from [first halves | second halves] to interleaved pairs (llama.cpp's rope)."""
    return weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _tensor_type(array: np.ndarray, kind: str):
    from gguf import GGMLQuantizationType as T

    if array.ndim == 1:
        return T.F32
    if kind == "f16" or array.shape[-1] % 32:
        return T.F16
    return {"q8_0": T.Q8_0, "q4_0": T.Q4_0}[kind]


def _add_tokenizer(writer, checkpoint: Path, cfg) -> None:
    file = checkpoint / "tokenizer.json"
    if not file.is_file():
        return
    spec = json.loads(file.read_text())
    if spec.get("model", {}).get("type") != "BPE":
        raise LlmkitError("GGUF export supports byte-level BPE tokenizers (tokenizer.json model type BPE)")
    vocab = spec["model"]["vocab"]
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    ids = {**vocab, **specials}
    tokens = [f"[PAD{i}]" for i in range(max(cfg.vocab_size, max(ids.values(), default=-1) + 1))]
    for token, index in ids.items():
        tokens[index] = token
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(spec))
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges(merges)
    for setter, value in (("add_bos_token_id", cfg.bos_token_id), ("add_eos_token_id", cfg.eos_token_id),
                          ("add_pad_token_id", cfg.pad_token_id)):
        if value is not None:
            getattr(writer, setter)(value)
    tokenizer = Tokenizer.from_dir(checkpoint)  # the chat template from tokenizer_config.json or chat_template.jinja
    if isinstance(tokenizer.config.get("chat_template"), str):
        writer.add_chat_template(tokenizer.config["chat_template"])
    writer.add_add_bos_token(adds_bos(spec, tokenizer.config))


# Pre-tokenizer split patterns of tokenizer.json -> llama.cpp's names for them (its converter finds
# the same by hashing the tokenization of a test text).
PRE_TOKENIZERS = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "llama-bpe",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "qwen2",
}


def pre_tokenizer_name(spec: dict) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer (Llama 3's or Qwen2's split), else "default"."""
    pre = spec.get("pre_tokenizer") or {}
    for step in [pre, *pre.get("pretokenizers", [])]:
        pattern = (step.get("pattern") or {}).get("Regex") if isinstance(step, dict) else None
        if pattern in PRE_TOKENIZERS:
            return PRE_TOKENIZERS[pattern]
    return "default"


def adds_bos(spec: dict, config: dict) -> bool:
    """Whether encoding starts with bos: tokenizer_config's add_bos_token, else the post-processor's template."""
    if isinstance(config.get("add_bos_token"), bool):
        return config["add_bos_token"]
    single = ((spec.get("post_processor") or {}).get("single") or [])
    first = single[0] if single else {}
    return "SpecialToken" in first


def add_shape_metadata(writer, cfg) -> None:
    """The hyper-parameters llama.cpp reads for every architecture."""
    writer.add_context_length(cfg.max_seq_len)
    writer.add_embedding_length(cfg.d_model)
    writer.add_block_count(cfg.n_layer)
    writer.add_feed_forward_length(cfg.d_ff)
    writer.add_head_count(cfg.n_head)
    writer.add_head_count_kv(cfg.n_kv_head)
    writer.add_key_length(cfg.head_dim)
    writer.add_rope_freq_base(cfg.rope_theta)
    if cfg.norm == "layernorm":
        writer.add_layer_norm_eps(cfg.norm_eps)
    else:
        writer.add_layer_norm_rms_eps(cfg.norm_eps)


def export_gguf(checkpoint: str | Path, out_file: str | Path, kind: str = "f16", overwrite: bool = False) -> Path:
    import gguf

    if kind not in TYPES:
        raise LlmkitError(f"unknown GGUF type {kind!r}; choose one of {', '.join(TYPES)}")
    checkpoint, out_file = Path(checkpoint), check_output_file(out_file, b"GGUF", overwrite)
    model = load_checkpoint(checkpoint)
    cfg = model.cfg
    if cfg.family not in ARCH or cfg.arch != "decoder" or cfg.n_expert:
        raise LlmkitError(f"GGUF export supports dense Llama, Mistral and Qwen2 checkpoints, not {cfg.family!r}")
    arch = ARCH[cfg.family]
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_name(checkpoint.name)
    add_shape_metadata(writer, cfg)
    writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
                          "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}[kind])
    _add_tokenizer(writer, checkpoint, cfg)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_embeddings:
            continue
        tensor = tensor.detach().float()
        if arch == "llama" and name.endswith("attn.q_proj.weight"):
            tensor = rotary_interleave(tensor, cfg.n_head)
        elif arch == "llama" and name.endswith("attn.k_proj.weight"):
            tensor = rotary_interleave(tensor, cfg.n_kv_head)
        array = tensor.numpy()
        qtype = _tensor_type(array, kind)
        data = array.astype(np.float16) if qtype == gguf.GGMLQuantizationType.F16 else \
            array if qtype == gguf.GGMLQuantizationType.F32 else gguf.quants.quantize(array, qtype)
        writer.add_tensor(gguf_name(name), data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, out_file)  # the file appears whole or not at all
    return out_file
