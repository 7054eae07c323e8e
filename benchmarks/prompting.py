"""Does chain of thought help, and does self-consistency add to it? Two LoRA fine-tunes of the same
pre-trained checkpoint on the built-in two-digit additions, identical but for the answers they are
shown: the bare sum, or a worked solution ("20 + 50 = 70 and 3 + 8 = 11, so 70 + 11 = 81. The
answer is 81.") after the zero-shot trigger; 1,300 training additions. Then `llmkit evaluate`'s
scoring on the 200 other additions: greedy direct answers, greedy chain of thought, and chain of
thought with a majority vote over 5 samples against one sample at the same temperature (0.7 and
0.3). Prints a table and writes JSON.

    .venv/bin/python benchmarks/prompting.py [--checkpoint runs/demo/pretrain/final] [--steps 600]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from llmkit.data.synthetic_tasks import generate_task
from llmkit.eval.builtin_tasks import arithmetic_rationale, builtin_task
from llmkit.eval.evaluator import EvalOptions, evaluate_task
from llmkit.eval.prompting import COT_TRIGGER, PromptOptions
from llmkit.finetune.peft.lora import LoraConfig
from llmkit.finetune.run import FinetuneConfig, run_finetune
from llmkit.infer.llm import LLM
from llmkit.train.config import DataConfig, OptimConfig, ScheduleConfig

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def sft_file(records: list[dict], cot: bool, path: Path) -> Path:
    lines = []
    for r in records:
        if cot:
            user, reply = f"{r['prompt']} {COT_TRIGGER}", f"{r['rationale']} The answer is {r['answer']}."
        else:
            user, reply = r["prompt"], r["answer"]
        lines.append(json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]}))
    path.write_text("\n".join(lines) + "\n")
    return path


def tune(checkpoint: str, data: Path, out: Path, steps: int) -> Path:
    run_finetune(FinetuneConfig(
        checkpoint=checkpoint, data=str(data), out=str(out), method="lora", max_steps=steps, seed=0, progress=False,
        lora=LoraConfig(r=16, alpha=32, target_modules=ALL_LINEAR), optim=OptimConfig(lr=3e-3),
        schedule=ScheduleConfig(warmup_steps=20), batch=DataConfig(seq_len=96, batch_size=16)))
    return out / "final"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/pretrain/final")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    sets = generate_task("arithmetic", n_train=1300, n_test=200, seed=1)  # disjoint; 1,600 additions exist
    train = [r | {"rationale": arithmetic_rationale(r["prompt"], r["answer"])} for r in sets["train"]]
    test = builtin_task("arithmetic")
    test.records = [{"prompt": r["prompt"], "answer": r["answer"]} for r in sets["test"]]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for cot in (False, True):
            started = time.perf_counter()
            model = LLM.load(tune(args.checkpoint, sft_file(train, cot, tmp / f"sft-{cot}.jsonl"), tmp / f"m-{cot}",
                                  args.steps))
            tuned_s = time.perf_counter() - started
            runs = [("greedy", EvalOptions(PromptOptions(chat=True, cot=cot)))]
            if cot:
                for temperature in (0.7, 0.3):
                    for n in (1, 5):
                        runs.append((f"{'1 sample' if n == 1 else 'majority of 5'}, T={temperature}",
                                     EvalOptions(PromptOptions(chat=True, cot=True), self_consistency=n,
                                                 temperature=temperature)))
            for decoding, options in runs:
                result = evaluate_task(model, test, options)
                rows.append({"fine-tuned on": "worked solutions" if cot else "bare answers", "decoding": decoding,
                             "exact_match": result["metrics"]["exact_match"], "stderr": result["stderr"]["exact_match"],
                             "n": result["n"], "fine_tune_s": tuned_s, "example": result["samples"][0]["output"]})
    print(f"{'fine-tuned on':<18}{'decoding':<26}{'exact match':>12}{'±':>7}")
    for r in rows:
        print(f"{r['fine-tuned on']:<18}{r['decoding']:<26}{r['exact_match']:>12.1%}{r['stderr']:>7.1%}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "prompting.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
