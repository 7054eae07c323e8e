"""The demo's post-training stages: LoRA SFT on the built-in copy task (exact match on held-out
prompts before and after), then DPO on the recall task's preference pairs (held-out preference
accuracy before and after; beta 0.5 keeps the policy near the SFT model, whose copy skill lower betas
were seen to destroy), and the copy exact match again after DPO. Both run through the same code as
`llmkit finetune` and `llmkit align`."""

from __future__ import annotations

import json
import time
from pathlib import Path

from llmkit.data.synthetic_tasks import write_task
from llmkit.eval.exact_match import exact_match_rate
from llmkit.finetune.align import AlignConfig, run_align
from llmkit.finetune.peft.lora import LoraConfig
from llmkit.finetune.run import FinetuneConfig, run_finetune
from llmkit.infer.llm import LLM
from llmkit.train.config import DataConfig, OptimConfig, ScheduleConfig

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def log(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run_sft_stage(checkpoint: Path, out: Path, steps: int, seed: int, progress: bool) -> dict:
    paths = write_task("copy", out / "tasks" / "copy", n_train=2000, n_test=100, seed=seed)
    test = [json.loads(line) for line in paths["test"].read_text().splitlines()]
    before = exact_match_rate(LLM.load(checkpoint), test)["exact_match"]
    log(f"SFT (LoRA) on the copy task ({paths['train']}): held-out exact match before {before:.0%}")
    started = time.perf_counter()
    result = run_finetune(FinetuneConfig(
        checkpoint=str(checkpoint), data=str(paths["train"]), out=str(out / "sft"), method="lora", max_steps=steps,
        seed=seed, progress=progress, lora=LoraConfig(r=16, alpha=32, target_modules=ALL_LINEAR),
        optim=OptimConfig(lr=3e-3), schedule=ScheduleConfig(warmup_steps=10),
        batch=DataConfig(seq_len=64, batch_size=16)))
    after = exact_match_rate(LLM.load(out / "sft" / "final"), test)
    log(f"SFT: held-out exact match {before:.0%} -> {after['exact_match']:.0%} "
        f"(e.g. {after['examples'][0]['prompt']!r} -> {after['examples'][0]['reply']!r})")
    return {"task": "copy", "exact_match_before": before, "exact_match_after": after["exact_match"],
            "examples": after["examples"], "seconds": time.perf_counter() - started,
            "first_loss": result["first_loss"], "final_loss": result["final_loss"],
            "trainable_parameters": result["trainable_parameters"]}


def run_dpo_stage(checkpoint: Path, out: Path, steps: int, seed: int, progress: bool) -> dict:
    """DPO from the SFT model; also re-measures the SFT task, so a regression would show."""
    paths = write_task("recall", out / "tasks" / "recall", n_train=2000, n_test=100, seed=seed)
    log(f"DPO on the recall task's preference pairs ({paths['preferences_train']}): correct value chosen over a wrong one")
    result = run_align(AlignConfig(
        checkpoint=str(checkpoint), data=str(paths["preferences_train"]), out=str(out / "dpo"), method="dpo",
        max_steps=steps, seed=seed, progress=progress, held_out=0.05, beta=0.5,
        lora=LoraConfig(r=16, alpha=32, target_modules=ALL_LINEAR), optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(warmup_steps=10), batch=DataConfig(seq_len=64, batch_size=16)))
    copy_test = [json.loads(line) for line in (out / "tasks" / "copy" / "test.jsonl").read_text().splitlines()]
    kept = exact_match_rate(LLM.load(out / "dpo" / "final"), copy_test)["exact_match"]
    log(f"DPO: the copy task's exact match after DPO {kept:.0%}")
    return {key: result[key] for key in ("preference_accuracy_before", "preference_accuracy_after",
                                         "likelihood_preference_before", "likelihood_preference_after",
                                         "pairs_held_out", "seconds", "first_loss", "final_loss",
                                         "trainable_parameters")} | {
        "copy_exact_match_after_dpo": kept}
