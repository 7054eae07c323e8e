"""`llmkit compress report` (it measures compressed models, so it lives above inference)."""

from __future__ import annotations


def compression_report(checkpoint: str, eval: str, out: str, methods: list[str] | None = None,
                       peak_memory: bool = False) -> None:
    """Apply each compression method to CHECKPOINT and compare size, weight memory, decode speed and
    validation perplexity against the uncompressed model: OUT/report.md, report.json, tradeoff.png.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        eval: a prepared data directory (`llmkit data prepare`): its val split scores, its train split calibrates.
        out: output directory.
        methods: methods to compare (default: all of int8 int4 gptq awq magnitude wanda sparsegpt
            wanda-2:4 sparsegpt-2:4 lowrank heads channels layers).
        peak_memory: also measure the peak resident memory of a fresh process that loads each saved
            checkpoint and decodes (Linux; a few seconds per method).
    """
    from llmkit.eval.compression_report import ALL_METHODS, markdown_table
    from llmkit.eval.compression_report import compression_report as run

    rows = run(checkpoint, eval, list(methods or ALL_METHODS), out, peak_memory=peak_memory)
    print(markdown_table(rows))
    print(f"-> {out}/report.md, report.json, tradeoff.png")
