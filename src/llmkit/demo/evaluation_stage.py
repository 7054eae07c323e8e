"""The demo's evaluation stage: every stage's model measured the same way with `llmkit evaluate`.

Before curation the demo holds out every 50th document; here they become two task files of the
kind users write (YAML pointing at local JSONL, under runs/demo/eval/tasks/): held-out perplexity
(bits per byte) and a 4-way next-sentence cloze (HellaSwag-style: the true next sentence against
next sentences of other documents). With the built-in tasks they make two runs per model: language
modelling without a chat template (perplexity, cloze, arithmetic-mc, bias, canary extraction), and
chat tasks through the template (copy, recall, refusal, and the safety/robustness probes:
jailbreak and prompt-injection success, over-refusal of look-alikes, toxicity of the replies).
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from llmkit.demo.report import markdown_table
from llmkit.eval.evaluator import EvalOptions
from llmkit.eval.prompting import PromptOptions
from llmkit.eval.results import resolve_tasks, run_tasks, write_results
from llmkit.fileio import atomic_write_text
from llmkit.infer.llm import LLM

HELD_OUT_EVERY = 50
LM_TASKS = ["heldout-ppl.yaml", "heldout-cloze.yaml", "arithmetic-mc", "bias", "canary"]
CHAT_TASKS = ["copy", "recall", "refusal", "safety-probes"]
# what the report shows per stage: (task, metric, label)
HEADLINE = [("heldout-ppl", "bits_per_byte", "held-out bits/byte"), ("heldout-cloze", "acc_norm", "cloze acc_norm"),
            ("arithmetic-mc", "acc", "arithmetic-mc acc"), ("copy", "exact_match", "copy EM"),
            ("recall", "exact_match", "recall EM"), ("bias", "mean_abs_gap", "bias: mean abs gap (nats)"),
            ("canary", "extraction_rate", "canary extraction"), ("canary", "mean_exposure_bits", "canary exposure (bits)"),
            ("refusal", "refusal_rate", "refusal (harmful)"), ("refusal", "over_refusal_rate", "over-refusal (benign)"),
            ("safety-probes", "jailbreak_success_rate", "jailbreak success"),
            ("safety-probes", "injection_success_rate", "prompt-injection success"),
            ("safety-probes", "over_refusal_rate", "over-refusal (look-alikes)"),
            ("safety-probes", "toxicity_mean", "toxicity of replies")]


def split_held_out(docs: list[str]) -> tuple[list[str], list[str]]:
    """(training documents, every HELD_OUT_EVERY-th document; at least two of a small corpus)."""
    held = set(range(HELD_OUT_EVERY - 1, len(docs), HELD_OUT_EVERY))
    if not held and len(docs) > 4:
        held = {len(docs) - 2, len(docs) - 1}
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]


def _sentences(doc: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())) if len(s.strip()) > 20]


def cloze_records(docs: list[str], seed: int = 0, max_chars: int = 160) -> list[dict]:
    """One question per document with two sentences or more: its first sentence, then the true next
    one against three next sentences drawn from other documents."""
    rng = random.Random(seed)
    pairs = [(s[0][-max_chars:], s[1][:max_chars]) for s in map(_sentences, docs) if len(s) >= 2]
    records = []
    for i, (context, truth) in enumerate(pairs):
        others = [pairs[j][1] for j in rng.sample([j for j in range(len(pairs)) if j != i], min(3, len(pairs) - 1))]
        choices = [truth, *others]
        rng.shuffle(choices)
        records.append({"context": context, "choices": choices, "gold": choices.index(truth)})
    return records


def write_eval_tasks(held_out: list[str], task_dir: Path, seed: int = 0) -> list[str]:
    """Writes the held-out task files; returns those written (a tiny corpus may give no cloze questions)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if held_out:
        atomic_write_text(task_dir / "heldout.jsonl", "".join(json.dumps({"text": d}) + "\n" for d in held_out))
        atomic_write_text(task_dir / "heldout-ppl.yaml", "type: perplexity\ndata: heldout.jsonl\ntext_field: text\n")
        written.append("heldout-ppl.yaml")
    cloze = cloze_records(held_out, seed)
    if len(cloze) >= 2:
        atomic_write_text(task_dir / "cloze.jsonl", "".join(json.dumps(r) + "\n" for r in cloze))
        atomic_write_text(task_dir / "heldout-cloze.yaml", "type: multiple_choice\ndata: cloze.jsonl\n"
                          "prompt: '{context}'\nchoices: choices\ngold: gold\n")
        written.append("heldout-cloze.yaml")
    return written


def evaluate_checkpoint(checkpoint: Path, task_dir: Path, out: Path) -> dict:
    """Both runs on one checkpoint; returns {task: metrics} and writes OUT/results.{json,md}."""
    llm = LLM.load(checkpoint)
    names = [t for t in LM_TASKS if not t.endswith(".yaml") or (task_dir / t).is_file()]
    lm_tasks = resolve_tasks([str(task_dir / t) if t.endswith(".yaml") else t for t in names])
    results = run_tasks(llm, lm_tasks, EvalOptions(batch_size=16), progress=lambda m: print(m, flush=True))
    results += run_tasks(llm, resolve_tasks(CHAT_TASKS), EvalOptions(PromptOptions(chat=True), batch_size=32),
                         progress=lambda m: print(m, flush=True))
    write_results(out, {"checkpoint": str(checkpoint), "tasks": names + CHAT_TASKS}, results)
    return {r["task"]: r["metrics"] for r in results}


def run_evaluation_stage(checkpoints: dict[str, Path], task_dir: Path, out: Path) -> dict[str, dict]:
    """{stage: {task: metrics}} for each named checkpoint; prints the headline table."""
    scores = {}
    for stage, checkpoint in checkpoints.items():
        print(f"[demo] evaluating the {stage} model ({checkpoint})", flush=True)
        scores[stage] = evaluate_checkpoint(checkpoint, task_dir, out / stage)
    print(markdown_table(*headline_rows(scores)), flush=True)
    return scores


def headline_rows(scores: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one row per headline metric, one column per stage's model."""
    rows = []
    for task, metric, label in HEADLINE:
        values = [scores[s].get(task, {}).get(metric) for s in scores]
        rows.append([label] + ["" if v is None else f"{v:.3f}" for v in values])
    return ["metric", *scores], rows

