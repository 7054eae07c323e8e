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
