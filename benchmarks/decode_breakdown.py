"""Where a batch-1 decode step's time goes: matmuls vs everything else, before and after the
inference preparation `LLM.load` applies (fused q/k/v and gate/up projections; bf16 weights
behind fp32 activations through the weight-only kernel instead of an all-bf16 model).

Per variant: decode tokens/s through the Engine (64 tokens after a 32-token prompt), and the time
of the step's matmuls alone, measured by running every Linear of the model once on one row in the
order a step runs them (the same weights streamed from memory); the rest of the step is norms,
rotary, attention, the KV write, sampling, the scheduler and Python. Random weights in the
SmolLM2-135M shape (30 blocks). Prints a table and writes JSON.

    .venv/bin/python benchmarks/decode_breakdown.py [--shape smollm2-135m] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from llmkit.compress.bf16_weights import BF16WeightLinear
from llmkit.compress.quant_linear import QuantLinear
from llmkit.compress.quantize import quantize_model
from llmkit.decode import generate_ids
from llmkit.host.ceilings import best_seconds, read_bandwidth
from llmkit.infer.decode_linear import FP32DecodeLinear
from llmkit.infer.fuse import fuse_projections, prepare_for_inference
from llmkit.model import build_model, named_config

LINEARS = (nn.Linear, BF16WeightLinear, QuantLinear, FP32DecodeLinear)


def variants(shape: str):
    """(name, build) pairs: the model before and after preparation, at each precision."""
    def base(dtype=torch.float32):
        torch.manual_seed(0)
        return build_model(named_config(shape), "cpu").to(dtype).eval()

    def quantized(method):
        model = base()
        quantize_model(model, method, group_size=32 if method == "int4" else None)
        return model

    return [("fp32, unfused (before)", base), ("fp32, fused", lambda: fuse_projections_of(base())),
            ("fp32, fused, decode kernel (after)", lambda: prepare_for_inference(base())),
            ("bf16: all-bf16 model (before)", lambda: base(torch.bfloat16)),
            ("bf16 weights, fp32 act (after)", lambda: prepare_for_inference(base(torch.bfloat16))),
            ("int8, dequantising (before)", lambda: without_kernels(quantized("int8"))),
            ("int8, kernel, fused (after)", lambda: prepare_for_inference(quantized("int8"))),
            ("int4, dequantising (before)", lambda: without_kernels(quantized("int4"))),
            ("int4, kernel, fused (after)", lambda: prepare_for_inference(quantized("int4")))]


class NoKernelQuantLinear(QuantLinear):
    """The dequantise-then-GEMM path every int4 call (and small int8 weights) took before the kernels."""

    def _kernel_layout(self) -> bool:
        return False


def without_kernels(model):
    for module in model.modules():
        if type(module) is QuantLinear:
            module.__class__ = NoKernelQuantLinear
    return model


def fuse_projections_of(model):
    fuse_projections(model)
    return model


def matmul_seconds(model, repeats: int) -> float:
    """One row through every Linear of the model, in module order (a decode step's matmuls)."""
    linears = [m for m in model.modules() if isinstance(m, LINEARS)]
    if model.cfg.tie_embeddings and not any(m is model.lm_head for m in linears):
        linears.append(model.lm_head)
    dtype = model.tok_embeddings.weight.dtype if not isinstance(model.lm_head, BF16WeightLinear) else torch.float32
    inputs = {m: torch.randn(1, 1, m.in_features, dtype=dtype) for m in linears}

    def step():
        for m in linears:
            m(inputs[m])

    with torch.inference_mode():
        return best_seconds(step, repeats)


def decode_seconds_per_token(model, new_tokens: int, repeats: int) -> float:
    prompt = [list(range(1, 33))]
    first, whole = (best_seconds(lambda n=n: generate_ids(model, prompt, n), repeats) for n in (1, new_tokens + 1))
    return (whole - first) / new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="smollm2-135m")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="run the variants whose name contains this text (e.g. fp32)")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    bandwidth = read_bandwidth()
    print(f"{args.shape}, {torch.get_num_threads()} threads, read bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'variant':<38}{'tok/s':>8}{'ms/token':>10}{'matmul ms':>11}{'other ms':>10}{'matmul share':>14}")
    rows = []
    for name, build in [v for v in variants(args.shape) if args.only in v[0]]:
        model = build()
        step = decode_seconds_per_token(model, args.new_tokens, args.repeats)
        matmul = min(matmul_seconds(model, args.repeats), step)
        rows.append({"variant": name, "tokens_per_s": 1 / step, "ms_per_token": step * 1e3, "matmul_ms": matmul * 1e3,
                     "other_ms": (step - matmul) * 1e3, "matmul_share": matmul / step})
        r = rows[-1]
        print(f"{name:<38}{r['tokens_per_s']:>8.1f}{r['ms_per_token']:>10.1f}{r['matmul_ms']:>11.1f}{r['other_ms']:>10.1f}"
              f"{r['matmul_share']:>14.0%}", flush=True)
        del model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_breakdown.json").write_text(json.dumps({"shape": args.shape, "read_bandwidth": bandwidth,
                                                           "rows": rows}, indent=2))
    print(f"wrote {out / 'decode_breakdown.json'}")


if __name__ == "__main__":
    main()
