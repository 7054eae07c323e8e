"""Compression trade-offs, one process, fp32 on CPU.

(1) Quality: every quantization and pruning method (50%, and 2:4) on a trained checkpoint (default: the demo model and its
    validation shards from `make demo`): size on disk, validation perplexity, batch-1 greedy decode
    tokens/s, each against the uncompressed model.
(2) Speed where it matters: batch-1 decode of int8 weight-only vs fp32 on a model large enough to be
    memory-bound (random weights; 4 layers of d_model 2048: ~330 M parameters, 1.3 GB in fp32).
Prints tables and writes JSON.

    .venv/bin/python benchmarks/compression.py [--checkpoint runs/demo/pretrain/final --data runs/demo/data]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.compress.calibration_data import calibration_windows
from llmkit.compress.checkpoint import load_compressed, save_compressed
from llmkit.compress.prune import prune_model
from llmkit.compress.quantize import quantize_model
from llmkit.data.loader import TokenDataset
from llmkit.infer import generate_ids
from llmkit.model import build_model, named_config
from llmkit.tokenizer import Tokenizer

BIG = dict(vocab_size=32000, d_model=2048, n_layer=4, n_head=16, n_kv_head=16, d_ff=5632, max_seq_len=1024)


def decode_tokens_per_s(model, new_tokens: int = 64, prompt_len: int = 16) -> float:
    """Decode steps only: (time for new_tokens) - (time for 4 tokens) covers new_tokens - 4 steps, so
    the prefill (where weight-only formats dequantise once) is left out."""
    prompt = [list(range(1, prompt_len + 1))]

    def seconds(n: int) -> float:
        start = time.perf_counter()
        generate_ids(model, prompt, n)
        return time.perf_counter() - start

    seconds(4)  # warm-up
    return (new_tokens - 4) / max(seconds(new_tokens) - seconds(4), 1e-9)


@torch.no_grad()
def perplexity(model, data_dir: str, seq_len: int = 256, windows: int = 32) -> float:
    data = TokenDataset(data_dir, "val")
    n = min(windows, (len(data) - 1) // (seq_len + 1))
    tokens = torch.stack([torch.from_numpy(data.tokens(i * (seq_len + 1), seq_len + 1)) for i in range(n)])
    losses = [torch.nn.functional.cross_entropy(model(t[None, :-1])[0], t[1:]).item() for t in tokens]
    return math.exp(sum(losses) / len(losses))


def size_mib(directory: Path) -> float:
    return sum(f.stat().st_size for f in directory.glob("*.safetensors")) / 2**20


def quality(checkpoint: str, data: str) -> list[dict]:
    tokenizer = Tokenizer.from_dir(checkpoint)
    calib = calibration_windows(data, tokenizer, 32, 256).split(8)
    base = load_checkpoint(checkpoint).eval()
    rows = [{"method": "fp32", "size_mib": size_mib(Path(checkpoint)), "perplexity": perplexity(base, data),
             "decode_tokens_per_s": decode_tokens_per_s(base)}]
    for method in ("int8", "int4", "gptq", "awq"):
        model = load_checkpoint(checkpoint)
        started = time.perf_counter()
        quantize_model(model, method, 128, calib)
        seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as tmp:
            save_compressed(model, tmp, method, tokenizer)
            reloaded = load_compressed(tmp)
            rows.append({"method": method, "size_mib": size_mib(Path(tmp)), "perplexity": perplexity(reloaded, data),
                         "decode_tokens_per_s": decode_tokens_per_s(reloaded), "compress_seconds": seconds})
    for method, pattern in (("magnitude", None), ("wanda", None), ("sparsegpt", None), ("wanda", "2:4"),
                            ("sparsegpt", "2:4")):
        model = load_checkpoint(checkpoint)
        started = time.perf_counter()
        prune_model(model, method, 0.5, pattern, calib)
        rows.append({"method": f"{method} {pattern or '50%'}", "size_mib": rows[0]["size_mib"],
                     "perplexity": perplexity(model, data), "decode_tokens_per_s": decode_tokens_per_s(model),
                     "compress_seconds": time.perf_counter() - started})
    for row in rows:
        row |= {"size_vs_fp32": row["size_mib"] / rows[0]["size_mib"],
                "perplexity_vs_fp32": row["perplexity"] / rows[0]["perplexity"],
                "decode_vs_fp32": row["decode_tokens_per_s"] / rows[0]["decode_tokens_per_s"]}
    return rows


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
    result = {}
    if Path(args.checkpoint).is_dir() and Path(args.data).is_dir():
        result["quality"] = quality(args.checkpoint, args.data)
        print(f"{'method':<16}{'MiB':>8}{'vs fp32':>9}{'ppl':>10}{'vs fp32':>9}{'tok/s':>8}{'vs fp32':>9}")
        for r in result["quality"]:
            print(f"{r['method']:<16}{r['size_mib']:>8.1f}{r['size_vs_fp32']:>9.1%}{r['perplexity']:>10.3f}"
                  f"{r['perplexity_vs_fp32'] - 1:>+9.2%}{r['decode_tokens_per_s']:>8.0f}{r['decode_vs_fp32']:>8.2f}x")
    else:
        print(f"skipping the quality table: {args.checkpoint} or {args.data} missing (run `make demo` first)")
    result["memory_bound"] = speed = memory_bound_speed()
    print(f"memory-bound decode ({speed['parameters'] / 1e6:.0f} M parameters): fp32 {speed['fp32_tokens_per_s']:.2f} "
          f"tokens/s, int8 {speed['int8_tokens_per_s']:.2f} tokens/s = {speed['int8_vs_fp32']:.2f}x")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compression.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'compression.json'}")


if __name__ == "__main__":
    main()
