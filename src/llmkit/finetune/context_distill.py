"""Safety context distillation (Llama 2, arXiv 2307.09288 section 4.2.4; Askell et al., arXiv
2112.00861): the model answers prompts *with* a safety pre-prompt in front, and is then fine-tuned
on the same prompts and answers *without* it, so the behaviour the pre-prompt produced no longer
needs the pre-prompt. `llmkit finetune --context-prompts FILE` runs it: the answers are written to
OUT/context_distillation.jsonl, then SFT runs on that file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.data.safety_sets import context_distillation_records
from llmkit.decode.chat import chat_replies
from llmkit.fileio import atomic_write_text, check_output, mark_output
from llmkit.finetune.datasets import read_prompts
from llmkit.tokenizer import Tokenizer


@torch.no_grad()
def write_distillation_data(cfg) -> Path:
    """Greedy answers to cfg.context_prompts under cfg.preprompt, as SFT records without it."""
    tokenizer = Tokenizer.from_dir(cfg.checkpoint)
    model = load_checkpoint(cfg.checkpoint).eval()
    stops = {i for i in (tokenizer.eos_id, tokenizer.token_id("<|im_end|>")) if i is not None}

    def answer(conversations: list[list[dict]]) -> list[str]:
        return [reply.strip() for reply in chat_replies(model, tokenizer, conversations, cfg.context_max_new_tokens, stops)]

    check_output(cfg.out, "run", cfg.overwrite, [cfg.checkpoint, cfg.context_prompts])
    records = context_distillation_records(answer, [r["prompt"] for r in read_prompts(cfg.context_prompts)], cfg.preprompt)
    path = Path(cfg.out) / "context_distillation.jsonl"
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))
    mark_output(cfg.out, "run", [path.name])
    print(f"[finetune] context distillation: {len(records)} answers generated with the pre-prompt -> {path}", flush=True)
    return path
