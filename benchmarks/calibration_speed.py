"""How long GPTQ and AWQ take on a SmolLM2-135M-shaped model (random weights; the shapes set the
cost): 30 blocks of d_model 576, 9 heads (3 key/value), MLP 1536, calibrated on 32 windows of 128
tokens, int4 in groups of 64 (576 inputs do not split into 128s). Prints a table and writes JSON.

    .venv/bin/python benchmarks/calibration_speed.py [--methods gptq awq] [--out runs/bench/calibration_speed.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from llmkit.compress.quantize import quantize_model
from llmkit.host.cpus import set_torch_threads
from llmkit.model import build_model, count_parameters, named_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["gptq", "awq"])
    parser.add_argument("--out", default="runs/bench/calibration_speed.json")
    args = parser.parse_args()
    threads = set_torch_threads()
    cfg = named_config("smollm2-135m").replace(max_seq_len=256)
    windows = torch.randint(0, cfg.vocab_size, (32, 128), generator=torch.Generator().manual_seed(0))
    rows = []
    for method in args.methods:
        torch.manual_seed(0)
        model = build_model(cfg, "cpu").eval()
        started = time.perf_counter()
        quantize_model(model, method, None, list(windows.split(8)))
        rows.append({"method": method, "seconds": time.perf_counter() - started, "parameters": count_parameters(cfg),
                     "threads": threads})
        print(f"| {method} | {rows[-1]['seconds']:.1f} s | {count_parameters(cfg):,} parameters | {threads} threads |",
              flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
