"""Training throughput: llmkit vs transformers' LlamaForCausalLM, same config, batch, sequence and
AdamW (fused, for both), in one process, their steps interleaved; eager and torch.compile; fp32 and
bf16 autocast (what `--precision bf16` trains with). Each side computes its loss the way its trainer
does (llmkit: the clm objective's fused cross-entropy; HF: F.cross_entropy). MFU is measured against
the matmul ceiling of the same precision measured in the same run (llmkit.host.ceilings: best of 5
square 2048 matmuls), and the ceilings are printed. Prints a table and writes JSON.

    .venv/bin/python benchmarks/train_throughput.py [--steps 5] [--no-compile] [--precisions fp32 bf16] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.host.allocator import keep_freed_memory
from llmkit.host.ceilings import describe, measure_ceilings
from llmkit.model import build_model, named_config
from llmkit.train.flops import flops_per_token
from llmkit.train.objectives import CausalLM

CONFIG = dict(vocab_size=8192, d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408, max_seq_len=1024)


def time_steps(models: list, tokens: torch.Tensor, steps: int, losses: list) -> list[float]:
    """Seconds per optimizer step (forward, backward, AdamW) of each model, best of `steps` after 2
    warm-ups, the models' steps interleaved (A B A B ...) so that the machine's drift during the run
    (measured: the same side moved 15% between identical runs) hits every side alike."""
    optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True) for m in models]  # what llmkit trains with
    best = [float("inf")] * len(models)
    for i in range(steps + 2):
        for k, (model, optimizer, loss_of) in enumerate(zip(models, optimizers, losses, strict=True)):
            start = time.perf_counter()
            loss_of(model, tokens).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= 2:
                best[k] = min(best[k], time.perf_counter() - start)
    return best


def in_bf16(loss_of):
    """The loss under bf16 autocast (matmuls in bf16, reductions and the optimizer in fp32)."""
    def loss(model, tokens):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return loss_of(model, tokens)
    return loss


def llmkit_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """What llmkit's trainer computes: the clm objective's summed token loss over the token count."""
    total, count = CausalLM().loss(model, CausalLM().make_batch(tokens[:, :-1], tokens[:, 1:]))
    return total / count


def hf_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    logits = model(input_ids=tokens[:, :-1]).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--keep-freed-memory", action=argparse.BooleanOptionalAction, default=True,
                        help="raise glibc's mmap threshold as llmkit's trainer does (process-wide: both sides)")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    if args.keep_freed_memory:
        keep_freed_memory()
    from transformers import AutoModelForCausalLM

    cfg = named_config("tiny-llama").replace(name="llama-34m", **CONFIG)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:  # identical weights for both
        save_checkpoint(build_model(cfg, "cpu"), tmp)
        make_ours = lambda: load_checkpoint(tmp)
        make_hf = lambda: AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="sdpa")
        ours, hf = make_ours(), make_hf()
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1))
    ceilings = measure_ceilings()
    flops_per_step = flops_per_token(ours, args.seq_len) * args.batch * args.seq_len
    runs = {"eager": (ours, hf)}
    if args.compile:
        runs["compiled"] = (torch.compile(ours), torch.compile(hf))
    rows = {}
    for precision in args.precisions:
        peak = ceilings[f"{precision}_flops"]
        losses = [llmkit_loss, hf_loss] if precision == "fp32" else [in_bf16(llmkit_loss), in_bf16(hf_loss)]
        for mode, (a, b) in runs.items():
            ours_s, hf_s = time_steps([a, b], tokens, args.steps, losses)
            rows[f"{mode} {precision}"] = {"llmkit_tokens_per_s": args.batch * args.seq_len / ours_s,
                                           "hf_tokens_per_s": args.batch * args.seq_len / hf_s,
                                           "llmkit_mfu": flops_per_step / ours_s / peak, "hf_mfu": flops_per_step / hf_s / peak}
    params = sum(p.numel() for p in ours.parameters())
    print(f"{cfg.name}: {params / 1e6:.1f} M parameters, batch {args.batch} x {args.seq_len}")
    print(describe(ceilings))
    print(f"{'run':<16}{'llmkit tok/s':>14}{'HF tok/s':>10}{'ratio':>7}{'llmkit MFU':>12}{'HF MFU':>8}   (MFU: of the run's precision)")
    for mode, r in rows.items():
        print(f"{mode:<16}{r['llmkit_tokens_per_s']:>14.0f}{r['hf_tokens_per_s']:>10.0f}"
              f"{r['llmkit_tokens_per_s'] / r['hf_tokens_per_s']:>7.2f}{r['llmkit_mfu']:>12.1%}{r['hf_mfu']:>8.1%}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_throughput.json").write_text(json.dumps(
        {"config": CONFIG, "parameters": params, "args": vars(args), "ceilings": ceilings, "rows": rows}, indent=2))
    print(f"wrote {out / 'train_throughput.json'}")


if __name__ == "__main__":
    main()
