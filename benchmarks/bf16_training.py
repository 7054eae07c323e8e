"""bf16 training on this CPU: the demo's model (mini-llama), data and settings trained for the same
number of steps in fp32 and under `--precision bf16` (bf16 autocast: matmuls in bf16 on the
matrix units, weights, reductions and AdamW in fp32), from the same seed. Reports tokens/s of each,
their ratio, the validation loss of each and the relative gap (target: bf16 within 2% of fp32),
with the machine's fp32/bf16 matmul ceilings measured in the same run. Writes JSON.

    .venv/bin/python benchmarks/bf16_training.py [--steps 300] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from llmkit.cli import main as llmkit
from llmkit.data.corpus import default_corpus
from llmkit.host.ceilings import describe, measure_ceilings
from llmkit.train.config import DataConfig, OptimConfig, PretrainConfig, ScheduleConfig
from llmkit.train.pretrain import run_pretrain


def train(data: Path, out: Path, precision: str, steps: int) -> dict:
    return run_pretrain(PretrainConfig(
        data=str(data), out=str(out), model="mini-llama", max_steps=steps, eval_batches=50, seed=0,
        precision=precision, progress=False, optim=OptimConfig(lr=2e-3),
        schedule=ScheduleConfig(warmup_steps=min(50, steps // 10 + 1)), batch=DataConfig(seq_len=256, batch_size=16)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    ceilings = measure_ceilings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "corpus.jsonl").write_text("".join(json.dumps({"text": doc}) + "\n" for doc in default_corpus()))
        assert llmkit(["data", "prepare", "--input", str(root / "corpus.jsonl"), "--out", str(root / "data"),
                       "--steps", "normalize,tokenize", "--vocab-size", "4096", "--no-progress"]) == 0
        results = {p: train(root / "data", root / p, p, args.steps) for p in ("fp32", "bf16")}
    fp32, bf16 = results["fp32"], results["bf16"]
    speed = {p: r["tokens"] / r["seconds"] for p, r in results.items()}
    gap = (bf16["val_loss"] - fp32["val_loss"]) / fp32["val_loss"]
    print(describe(ceilings))
    print(f"{'precision':<10}{'steps':>6}{'tokens/s':>10}{'val loss':>10}")
    for p, r in results.items():
        print(f"{p:<10}{r['steps']:>6}{speed[p]:>10.0f}{r['val_loss']:>10.4f}")
    print(f"bf16 : fp32 speed {speed['bf16'] / speed['fp32']:.2f}x; validation loss gap {gap:+.2%} (target within 2%)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bf16_training.json").write_text(json.dumps({"ceilings": ceilings, "results": results, "speed": speed,
                                                         "val_loss_gap": gap}, indent=1))


if __name__ == "__main__":
    main()
