"""What the demo's report says: its notes, images and the commands that redo each stage on your own
data (the same code paths the demo ran, as CLI verbs); llmkit.demo.report lays them out."""

from __future__ import annotations

from pathlib import Path

from llmkit.demo.evaluation_stage import headline_rows
from llmkit.demo.report import write_report


def reproduce_commands(model: str) -> list[tuple[str, str]]:
    run = "runs/mine"
    return [
        ("curate your corpus and train a BPE tokenizer (JSONL with a text field, .txt, .parquet, ...)",
         f"llmkit data prepare --input my_corpus.jsonl --out {run}/data --workers 2"),
        ("pre-train (add --max-minutes / --max-steps; torchrun --nproc_per_node N -m llmkit pretrain for data parallel)",
         f"llmkit pretrain --data {run}/data --model {model} --out {run}/pretrain --max-minutes 30"),
        ("supervised fine-tuning with LoRA on chat JSONL ({\"messages\": [...]}) or instruction/input/output",
         f"llmkit finetune --checkpoint {run}/pretrain/final --data my_sft.jsonl --method lora --out {run}/sft"),
        ("preference optimisation on {prompt, chosen, rejected} pairs",
         f"llmkit align --checkpoint {run}/sft/final --data my_prefs.jsonl --method dpo --beta 0.5 --out {run}/dpo"),
        ("compare compression methods, then quantize the aligned model",
         f"llmkit compress report --checkpoint {run}/pretrain/final --eval {run}/data --out {run}/compress\n"
         f"llmkit compress quantize --checkpoint {run}/dpo/final --method int8 --out {run}/dpo-int8"),
        ("evaluate on your task YAMLs (local JSONL) and the built-in checks",
         f"llmkit evaluate --checkpoint {run}/dpo-int8 --tasks my_task.yaml canary bias --out {run}/eval\n"
         f"llmkit evaluate --checkpoint {run}/dpo-int8 --tasks copy refusal --chat --out {run}/eval-chat"),
        ("or with lm-evaluation-harness (pip install 'llmkit[lm-eval]')",
         f"llmkit lm-eval run --model llmkit --model_args checkpoint={run}/dpo/final --tasks my_task "
         f"--include_path my_tasks/"),
        ("serve it (OpenAI-compatible; binds 127.0.0.1)", f"llmkit serve --checkpoint {run}/dpo-int8 --api-key KEY"),
    ]


def write_lifecycle_report(out: Path, summary: dict) -> tuple[Path, Path]:
    cfg = summary["config"]
    minutes = summary["total_seconds"] / 60
    notes = [
        f"{cfg['model']} ({summary['parameters']:,} parameters) taken through the whole lifecycle on this machine in "
        f"{minutes:.1f} minutes: {summary['documents']:,} training documents ({summary['documents_held_out']} held "
        f"out for evaluation), {summary['train_tokens']:,} training tokens after curation.",
        "Peak RSS is the whole process's resident memory at its highest during the stage (Python, torch and "
        "earlier stages' objects included). Tokens/s: token positions trained per second (pre-training, SFT, "
        "and DPO's chosen + rejected sequences), batch-1 decode for compression (the fp32 reference), "
        "completion tokens for the served request.",
        "Evaluation: the same tasks for every stage's model. Held-out perplexity and the next-sentence cloze "
        "use documents the model never trained on; canary extraction asks for secrets planted in the training "
        "data; the bias gap is the log-likelihood difference between paired prompts; copy and recall are the "
        "fine-tuning and preference tasks, scored through the chat template.",
    ]
    images = {"pre-training loss": out / "pretrain" / "loss_curve.png", "SFT (LoRA) loss": out / "sft" / "loss_curve.png",
              "DPO loss": out / "dpo" / "loss_curve.png",
              "compression trade-off (size vs perplexity)": out / "compress" / "tradeoff.png"}
    return write_report(out, "llmkit lifecycle report", summary["stages"], headline_rows(summary["evaluation"]),
                        images, notes, reproduce_commands(cfg["model"]))
