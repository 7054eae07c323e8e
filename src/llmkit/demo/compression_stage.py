"""The demo's compression stage: `llmkit compress report` on the pre-trained model - quantization,
pruning and low-rank variants measured against it on the validation shards."""

from __future__ import annotations

from pathlib import Path

from llmkit.eval.compression_report import compression_report, markdown_table

DEMO_METHODS = ["int8", "int4", "gptq", "awq", "sparsegpt", "wanda-2:4", "lowrank", "channels"]


def run_compression_stage(checkpoint: Path, data: Path, out: Path) -> list[dict]:
    print(f"[demo] compression: {', '.join(DEMO_METHODS)} on {checkpoint} -> {out}", flush=True)
    rows = compression_report(checkpoint, data, DEMO_METHODS, out, progress=lambda m: print(m, flush=True))
    print(markdown_table(rows), flush=True)
    return rows


def quantize_for_serving(checkpoint: Path, out: Path) -> Path:
    """The aligned model quantized int8 weight-only (+0.01% perplexity on the demo model) and saved
    as a compressed checkpoint, which evaluate and serve load like any other."""
    from llmkit.compress.checkpoint import save_compressed
    from llmkit.compress.quantize import quantize_model
    from llmkit.infer.llm import LLM

    llm = LLM.load(checkpoint)
    quantize_model(llm.model, "int8")
    save_compressed(llm.model, out, "int8", llm.tokenizer)
    print(f"[demo] the DPO model quantized int8 -> {out}", flush=True)
    return out
