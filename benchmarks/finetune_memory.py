"""Peak memory and tokens/s of full fine-tuning vs LoRA vs QLoRA on the same model and batch.

Each method runs in a fresh process with glibc told to return freed buffers at once, so resident
size follows live tensors. The peak of the training steps (VmHWM, reset once the model is built,
quantised and wrapped) minus the resident size after imports covers weights, gradients, optimizer
state and activations (activation checkpointing on by default, for all three methods). Tokens/s
come from a second fresh process per method with the trainer's allocator setting. Prints a table, writes JSON.

    .venv/bin/python benchmarks/finetune_memory.py [--batch 4] [--seq-len 128] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from llmkit.host.memory import process_memory_bytes, reset_peak_memory

CONFIG = dict(vocab_size=8192, d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408, max_seq_len=1024)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def track_live_memory() -> None:
    """Make resident size follow live tensors: glibc serves every allocation above 64 KiB with its own
    mapping and unmaps it on free (its default raises that threshold as the process frees memory,
    after which freed buffers stay resident and RSS overstates the live peak)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    libc.mallopt(-1, 64 * 1024)  # M_TRIM_THRESHOLD


def _warm_up_runtime(torch, build_model, named_config, task_class) -> None:
    """One step of a tiny model first, so that libraries' lazily loaded kernels and thread pools are
    resident before the baseline is read; they would otherwise be charged to whichever method ran."""
    import gc

    tiny = build_model(named_config("tiny-llama"), "cpu")
    task = task_class()
    tokens = torch.randint(0, tiny.cfg.vocab_size, (2, 17))
    loss, count = task.loss(tiny, task.make_batch(tokens[:, :-1], tokens[:, 1:]))
    (loss / count).backward()
    torch.optim.AdamW(tiny.parameters(), lr=1e-4, fused=True).step()  # the fused optimizer imports torch._dynamo
    del tiny, loss
    gc.collect()


def probe(method: str, batch: int, seq_len: int, steps: int, checkpointing: bool, measure: str) -> dict:
    if measure == "memory":
        track_live_memory()
    else:
        from llmkit.host.allocator import keep_freed_memory

        keep_freed_memory()  # as the trainer runs
    import torch

    from llmkit.dist.parallelize import apply_activation_checkpointing
    from llmkit.finetune.peft.lora import LoraConfig, apply_lora, trainable_parameters
    from llmkit.model import build_model, named_config
    from llmkit.quant.nf4 import quantize_model_nf4
    from llmkit.train.objectives import CausalLM

    torch.manual_seed(0)
    _warm_up_runtime(torch, build_model, named_config, CausalLM)
    base = process_memory_bytes("VmRSS")
    model = build_model(named_config("tiny-llama").replace(name="llama-34m", **CONFIG), "cpu")
    if method == "qlora":
        quantize_model_nf4(model)
    if method in ("lora", "qlora"):
        apply_lora(model, LoraConfig(r=16, alpha=32, target_modules=TARGETS))
    apply_activation_checkpointing(model, "full" if checkpointing else "none")
    trainable, total = trainable_parameters(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    resident = process_memory_bytes("VmRSS") - base  # the prepared model
    reset_peak_memory()  # peak := now: build and quantisation transients do not count
    tokens = torch.randint(0, CONFIG["vocab_size"], (batch, seq_len + 1))
    task, times = CausalLM(), []
    for _ in range(steps):
        start = time.perf_counter()
        loss, count = task.loss(model, task.make_batch(tokens[:, :-1], tokens[:, 1:]))
        (loss / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return {"method": method, "trainable_parameters": trainable, "parameters": total,
            "model_bytes": resident, "peak_bytes": process_memory_bytes("VmHWM") - base, "tokens_per_s": batch * seq_len / min(times[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--activation-checkpointing", action=argparse.BooleanOptionalAction, default=True,
                        help="recompute each block in backward (all three methods; QLoRA's own recipe uses it)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--measure", default="memory", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(args.probe, args.batch, args.seq_len, args.steps, args.activation_checkpointing,
                               args.measure)))
        return
    rows = []
    for method in ("full", "lora", "qlora"):
        runs = {}
        for measure in ("memory", "speed"):  # memory: glibc returns freed buffers (slow); speed: as the trainer
            result = subprocess.run([sys.executable, __file__, "--probe", method, "--measure", measure,
                                     "--batch", str(args.batch), "--seq-len", str(args.seq_len), "--steps", str(args.steps),
                                     "--activation-checkpointing" if args.activation_checkpointing
                                     else "--no-activation-checkpointing"],
                                    capture_output=True, text=True, check=True)
            runs[measure] = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(runs["memory"] | {"tokens_per_s": runs["speed"]["tokens_per_s"]})
    full = rows[0]["peak_bytes"]
    print(f"llama-34m, fp32, batch {args.batch} x {args.seq_len}, AdamW, activation checkpointing "
          f"{'on' if args.activation_checkpointing else 'off'}; LoRA/QLoRA r=16 on all 7 block projections")
    print(f"{'method':<8}{'trainable':>14}{'of':>14}{'model MiB':>11}{'step peak MiB':>15}{'vs full':>9}{'tokens/s':>10}")
    for r in rows:
        print(f"{r['method']:<8}{r['trainable_parameters']:>14,}{r['parameters']:>14,}{r['model_bytes'] / 2**20:>11.0f}"
              f"{r['peak_bytes'] / 2**20:>15.0f}{r['peak_bytes'] / full:>9.1%}{r['tokens_per_s']:>10.0f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "finetune_memory.json").write_text(json.dumps({"args": vars(args), "config": CONFIG, "rows": rows}, indent=2))
    print(f"wrote {out / 'finetune_memory.json'}")


if __name__ == "__main__":
    main()
