"""Compression trade-offs, one process, fp32 on CPU.

(1) Quality: every method of `llmkit compress report` on a trained checkpoint (default: the demo
    model and its shards from `make demo`): size on disk, weight memory, peak memory of a fresh
    process that loads the saved checkpoint and decodes, batch-1 decode tokens/s and validation
    perplexity, each against the uncompressed model.
(2) Speed where it matters: batch-1 decode of int8 weight-only vs fp32 on a model large enough to be
    memory-bound (random weights; 4 layers of d_model 2048: ~337 M parameters, 1.3 GB in fp32).
Prints tables and writes JSON (and the report's PNG).

    .venv/bin/python benchmarks/compression.py [--checkpoint runs/demo/pretrain/final --data runs/demo/data]
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

import torch

from llmkit.compress.quantize import quantize_model
from llmkit.eval.compression_report import (
    ALL_METHODS,
    compression_report,
    decode_tokens_per_s,
    markdown_table,
)
from llmkit.model import build_model, named_config

BIG = dict(vocab_size=32000, d_model=2048, n_layer=4, n_head=16, n_kv_head=16, d_ff=5632, max_seq_len=1024)


def memory_bound_speed() -> dict:
    torch.manual_seed(0)
    model = build_model(named_config("tiny-llama").replace(**BIG), "cpu").eval()
    params = sum(p.numel() for p in model.parameters())
    fp32 = decode_tokens_per_s(model, 32)
    quantize_model(model, "int8")
    int8 = decode_tokens_per_s(model, 32)
    return {"parameters": params, "fp32_tokens_per_s": fp32, "int8_tokens_per_s": int8, "int8_vs_fp32": int8 / fp32,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/pretrain/final")
    parser.add_argument("--data", default="runs/demo/data")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    out, result = Path(args.out), {}
    if Path(args.checkpoint).is_dir() and Path(args.data).is_dir():
        result["quality"] = compression_report(args.checkpoint, args.data, list(ALL_METHODS), out / "compression",
                                               peak_memory=True)
        print(markdown_table(result["quality"]))
    else:
        print(f"skipping the quality table: {args.checkpoint} or {args.data} missing (run `make demo` first)")
    result["memory_bound"] = speed = memory_bound_speed()
    print(f"memory-bound decode ({speed['parameters'] / 1e6:.0f} M parameters): fp32 {speed['fp32_tokens_per_s']:.2f} "
          f"tokens/s, int8 {speed['int8_tokens_per_s']:.2f} tokens/s = {speed['int8_vs_fp32']:.2f}x")
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'compression.json'}")


if __name__ == "__main__":
    main()
