"""Peak memory of loading a bf16 checkpoint of about 1 GB: llmkit (memory-mapped safetensors
assigned to a model built on meta) against transformers' from_pretrained(dtype="auto"), each in a
fresh process, as the peak resident memory loading added over the process's baseline, divided by
the weight bytes. Prints a table and writes JSON.

    .venv/bin/python benchmarks/load_memory.py [--gb 1.0] [--out runs/bench/load_memory.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import torch

from llmkit.checkpoint import save_state_dict
from llmkit.checkpoint.load_memory import measure
from llmkit.model import build_model, named_config


def write_bf16_checkpoint(out: Path, gb: float) -> Path:
    """A random Llama-shaped bf16 checkpoint of about `gb` GB (weights drawn tensor by tensor)."""
    base = named_config("tiny-llama").replace(vocab_size=32000, d_model=2048, n_head=16, n_kv_head=4, d_ff=5632)
    per_layer = 2 * (2048 * 2048 * 2 + 2048 * 512 * 2 + 3 * 2048 * 5632)
    layers = max(1, round((gb * 1e9 - 2 * 2 * 32000 * 2048) / per_layer))
    cfg = base.replace(n_layer=layers)
    torch.manual_seed(0)
    state = {name: (torch.randn(p.shape) * 0.02).to(torch.bfloat16) for name, p in build_model(cfg).state_dict().items()}
    return save_state_dict(state, cfg, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--out", default="runs/bench/load_memory.json")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="llmkit-load-"))
    try:
        checkpoint = write_bf16_checkpoint(root / "ckpt", args.gb)
        rows = {loader: measure(loader, checkpoint) for loader in ("llmkit", "transformers")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("| loader | weights MB | load: peak added MB | x weights | after 1 forward: x weights | dtype |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for loader, r in rows.items():
        print(f"| {loader} | {r['weight_bytes'] / 1e6:,.0f} | {r['added'] / 1e6:,.0f} | {r['ratio']:.2f}x | "
              f"{r['ratio_forward']:.2f}x | {r['dtype']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
