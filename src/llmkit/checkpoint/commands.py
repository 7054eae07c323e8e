"""`llmkit export gguf`."""

from __future__ import annotations

from typing import Literal


def export_gguf(checkpoint: str, out: str, type: Literal["f16", "q8_0", "q4_0"] = "f16", overwrite: bool = False) -> None:
    """Write an HF-layout Llama, Mistral or Qwen2 checkpoint as one GGUF file for llama.cpp.

    Args:
        checkpoint: HF-layout checkpoint directory (with tokenizer.json for the vocabulary).
        out: the .gguf file to write (atomically).
        type: weight type of the matrices; 1-D tensors stay f32.
        overwrite: replace an existing --out that is not a GGUF file.
    """
    from pathlib import Path

    from llmkit.checkpoint.gguf_export import export_gguf as run

    path = run(checkpoint, out, type, overwrite)
    print(f"{checkpoint} -> {path} ({Path(path).stat().st_size / 2**20:.1f} MiB, {type})")


def convert(input: str, out: str, dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto",
            overwrite: bool = False) -> None:
    """Convert a GGUF file (llama.cpp) into an HF-layout checkpoint directory: config.json,
    safetensors, tokenizer.json, tokenizer_config.json (with the chat template) and
    generation_config.json. Quantized tensors are dequantized.

    Args:
        input: the .gguf file (architectures llama, qwen2, qwen3, gemma2, gemma3, phi3, olmo2, gpt2).
        out: the output directory.
        dtype: weight precision; auto keeps an F16/BF16 file's own, quantized files become float32.
        overwrite: write into a non-empty OUT that is not a model directory (only llmkit's files are replaced).
    """
    from pathlib import Path

    from llmkit.checkpoint.gguf_import import read_gguf
    from llmkit.checkpoint.io import resolve_dtype, save_state_dict
    from llmkit.fileio import check_output
    from llmkit.tokenizer import Tokenizer

    if not Path(input).is_file():
        from llmkit.errors import LlmkitError

        raise LlmkitError(f"--input {input} is not a file; give a .gguf file")
    check_output(out, "model", overwrite, [input])
    cfg, state, metadata = read_gguf(input, resolve_dtype(dtype))
    save_state_dict(state, cfg, out, Tokenizer.from_gguf_metadata(metadata), overwrite=overwrite)  # generation config from cfg
    count = sum(v.numel() for k, v in state.items())
    print(f"{input}: {cfg.family}, {cfg.n_layer} layers, {count:,} parameters, {next(iter(state.values())).dtype} -> {out}")
