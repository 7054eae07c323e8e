"""Safety context distillation (Llama 2, arXiv 2307.09288 section 4.2.4; Askell et al., arXiv
2112.00861): the model answers prompts *with* a safety pre-prompt in front, and is then fine-tuned
on the same prompts and answers *without* it, so the behaviour the pre-prompt produced no longer
needs the pre-prompt. `llmkit finetune --context-prompts FILE` runs it: the answers are written to
OUT/context_distillation.jsonl, then SFT runs on that file.

Generation goes through the function the CLI hands in (llmkit.infer.rollout.sample_completions).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.data.safety_sets import context_distillation_records
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_write_text, check_output, mark_output
from llmkit.finetune.rollouts import GenerateFn
from llmkit.tokenizer import Tokenizer


def _read_prompt_texts(path: str) -> list[str]:
    from llmkit.finetune.rl_run import read_prompts

    return [r["prompt"] for r in read_prompts(path)]


@torch.no_grad()
def write_distillation_data(cfg, generate: GenerateFn | None) -> Path:
    """Greedy answers to cfg.context_prompts under cfg.preprompt, as SFT records without it."""
    if generate is None:
        raise LlmkitError("--context-prompts needs a generation function; run it through the `llmkit finetune` CLI")
    tokenizer = Tokenizer.from_dir(cfg.checkpoint)
    model = load_checkpoint(cfg.checkpoint).eval()
    stops = {i for i in (tokenizer.eos_id, tokenizer.token_id("<|im_end|>")) if i is not None}
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0

    def answer(conversations: list[list[dict]]) -> list[str]:
        ids = [tokenizer.encode(tokenizer.apply_chat_template(m, add_generation_prompt=True), add_special_tokens=False)
               for m in conversations]
        return [tokenizer.decode(c).strip() for c in generate(model, ids, cfg.context_max_new_tokens, 0.0, cfg.seed, stops, pad)]

    check_output(cfg.out, "run", cfg.overwrite, [cfg.checkpoint, cfg.context_prompts])
    records = context_distillation_records(answer, _read_prompt_texts(cfg.context_prompts), cfg.preprompt)
    path = Path(cfg.out) / "context_distillation.jsonl"
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    mark_output(cfg.out, "run", [path.name])
    print(f"[finetune] context distillation: {len(records)} answers generated with the pre-prompt -> {path}", flush=True)
    return path
