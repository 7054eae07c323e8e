"""`llmkit finetune`: supervised fine-tuning on the one training loop. The method is a model
transform (full: everything trains; lora: adapters on chosen Linears, the rest frozen) and the
task is next-token loss on assistant tokens (llmkit.finetune.sft_data).

    OUT/metrics.jsonl, OUT/loss_curve.png, OUT/summary.json
    OUT/final/       HF-layout checkpoint with the tokenizer (LoRA merged in), ready for generate/serve
    OUT/adapter/     LoRA, QLoRA, DoRA, (IA)^3: the adapter alone, in PEFT's layout
    OUT/soft_prompt/ prompt, ptuning, full --with-soft-prompt: the soft prompt (PEFT's PROMPT_TUNING
                     layout); prompt and ptuning leave the model unchanged and write no final/
    OUT/adapter/     adapter (Houlsby bottleneck adapters) and OUT/prefix/ (prefix tuning): these cannot be
                     folded into the weights, so no final/
Every adapter directory loads onto its base model with `--adapter DIR` (generate, chat, serve,
evaluate), `LLM.load(path, adapter=DIR)` or llmkit.finetune.peft.load_adapter; the methods are
llmkit.finetune.peft's registry.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.data.safety_sets import SAFETY_PREPROMPT
from llmkit.dist.context import init_distributed, shutdown
from llmkit.errors import LlmkitError
from llmkit.fileio import write_json
from llmkit.finetune.peft import method
from llmkit.finetune.peft.bottleneck import BottleneckConfig
from llmkit.finetune.peft.ia3 import IA3Config
from llmkit.finetune.peft.lora import LoraConfig, load_lora_adapter, merge_lora, trainable_parameters
from llmkit.finetune.peft.prompt import SoftPromptEmbedding, apply_prompt_tuning, save_prompt_adapter
from llmkit.finetune.sft_data import (
    PackedSFTLoader,
    SFTLoader,
    read_conversations,
    sft_examples,
)
from llmkit.tokenizer import Tokenizer
from llmkit.train.checkpointing import export_model, resume, save_training_checkpoint
from llmkit.dist.config import ParallelConfig
from llmkit.train.config import OptimConfig, RunConfig
from llmkit.train.metrics import plot_loss_curve
from llmkit.train.objectives import CausalLM, PackedCausalLM
from llmkit.train.trainer import Trainer


@dataclass
class FinetuneConfig(RunConfig):
    """The training loop's settings (optimizer, schedule, batch, precision...) plus what to tune.
    `data` is a JSONL file of conversations; `batch.seq_len` caps each example's length."""

    checkpoint: str = ""  # HF-layout checkpoint directory (or .gguf file) with its tokenizer
    data: str = ""  # JSONL of conversations ({"messages": [...]}) or {"prompt", "answer"} records; loss on the answers
    out: str = "runs/finetune"  # output directory: final/ (merged model), adapter/, metrics.jsonl, checkpoints/
    # qlora: frozen base in NF4, LoRA on top; prompt / ptuning: frozen model, trained soft prompt
    # adapter: Houlsby bottleneck adapters; prefix: per-layer trained key/value prefixes
    method: Literal["full", "lora", "qlora", "dora", "ia3", "adapter", "prefix", "prompt", "ptuning"] = "lora"
    prompt_tokens: int = 20  # virtual tokens for prefix / prompt / ptuning; with --method full, 0 means none
    lora: LoraConfig = field(default_factory=LoraConfig)
    ia3: IA3Config = field(default_factory=IA3Config)
    adapter: BottleneckConfig = field(default_factory=BottleneckConfig)
    with_soft_prompt: bool = False  # --method full --with-soft-prompt: prompt + LM tuning
    pack: bool = False  # pack several conversations per row, attention kept within each (decoder models)
    # safety context distillation: answer these prompts (JSONL with "prompt") under --preprompt, then
    # fine-tune on the answers without it; --data is then not needed
    context_prompts: str = ""  # JSONL of prompts for safety context distillation (then --data is not needed)
    preprompt: str = SAFETY_PREPROMPT  # the safety pre-prompt whose effect context distillation moves into the model
    context_max_new_tokens: int = 48  # length of each answer generated under the pre-prompt
    max_steps: int = 200  # optimizer steps to train (each of --batch.batch_size x --batch.grad_accum examples)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4))


def data_parallel_only() -> ParallelConfig:
    """Under torchrun, fine-tuning replicates the (mostly frozen) model on every rank: DDP over all
    ranks (tensor, pipeline and FSDP sharding are pre-training's, so these verbs have no such flags)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return ParallelConfig(dp_replicate=world, dp_shard=1)


def data_parallel(model, cfg, ctx, loader):
    """(model wrapped in DDP, loader sharded by rank) when several ranks train; unchanged otherwise."""
    if ctx.dp_size == 1:
        return model, loader
    from llmkit.dist.data_parallel import apply_data_parallel

    return apply_data_parallel(model, data_parallel_only(), ctx), loader.shard(ctx.dp_rank, ctx.dp_size)


def fit_resumable(trainer, cfg, tokenizer):
    """trainer.fit with periodic checkpoints (--save-every) and --resume auto|DIR, as pre-training does.
    Checkpoints hold the whole training state (adapters, frozen base, optimizer, loader, RNG)."""
    announce = (lambda msg: print(f"[finetune] {msg}", flush=True)) if trainer.ctx.is_main else (lambda msg: None)
    resume_from = resume(trainer, cfg.resume, announce)
    if resume_from is not None:
        announce(f"resumed from {resume_from} at step {trainer.state.step}")
    return trainer.fit(checkpointer=lambda t, step: save_training_checkpoint(t, step, tokenizer, export=False))


def load_tuned(cfg, tune: str):
    """The checkpoint's model made ready to tune (LoRA-wrapped or all trainable), its tokenizer,
    the (single-process) context, and the trainable/total parameter counts."""
    ctx = init_distributed(data_parallel_only(), cfg.device)
    path = Path(cfg.checkpoint)
    tokenizer = Tokenizer.from_dir(path)
    torch.manual_seed(cfg.seed)
    model = load_checkpoint(path, device=ctx.device)
    if tune != "full":
        method(tune).apply(model, cfg)
    elif getattr(cfg, "prompt_tokens", 0) and getattr(cfg, "with_soft_prompt", False):
        apply_prompt_tuning(model, cfg.prompt_tokens)  # prompt + LM tuning: everything trains
        for p in model.parameters():
            p.requires_grad_(True)
    trainable, total = trainable_parameters(model)
    if ctx.is_main:
        print(f"[finetune] {tune}: {trainable:,} of {total:,} parameters train ({trainable / total:.2%})", flush=True)
    return model, tokenizer, ctx, trainable, total


def export_tuned(trainer, model, tune: str, out: Path, tokenizer, base: str) -> None:
    """OUT/<the method's output_dir> (the adapter, PEFT's layout) and OUT/final (merged, HF layout)
    where the method folds into the weights; QLoRA's adapter is merged into the full-precision base,
    which is what users serve. Every rank calls it (the final export is collective); only rank 0 writes."""
    main = trainer.ctx.is_main
    if tune == "full":
        if isinstance(model.tok_embeddings, SoftPromptEmbedding):  # --with-soft-prompt: both are results
            if main:
                save_prompt_adapter(model, out / "soft_prompt")
            model.tok_embeddings, model.lm_head = model.tok_embeddings.embed, model.lm_head.head
        export_model(trainer, out / "final", tokenizer)
        return
    chosen = method(tune)
    if main:
        chosen.save(model, out / chosen.output_dir, base_model=str(base))
    if not chosen.mergeable:
        return  # prompt, ptuning, prefix, adapter: the model's own weights did not change
    if chosen.merges_into_full_precision_base:
        trainer.ctx.barrier()
        if not main:
            return
        full = load_checkpoint(base)
        load_lora_adapter(full, out / chosen.output_dir)
        save_checkpoint(merge_lora(full), out / "final", tokenizer=tokenizer)
        return
    chosen.merge(model)
    export_model(trainer, out / "final", tokenizer)


def finish_run(out: Path, state, started: float, ctx=None, **fields) -> dict:
    """The run's summary (fields + steps, first/final loss, seconds), written atomically to
    OUT/summary.json with the loss curve beside it (by rank 0); then leaves the process group."""
    summary = {**fields, "steps": state.step, "first_loss": state.losses[0] if state.losses else None,
               "final_loss": state.losses[-1] if state.losses else None, "seconds": time.perf_counter() - started}
    if ctx is None or ctx.is_main:
        plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
        write_json(out / "summary.json", summary)
    if ctx is not None and ctx.distributed:
        shutdown(synchronize=True)
    return summary


def run_finetune(cfg: FinetuneConfig) -> dict:
    if cfg.context_prompts and cfg.checkpoint:
        from llmkit.finetune.context_distill import write_distillation_data

        cfg = replace(cfg, data=str(write_distillation_data(cfg)))
    if not cfg.checkpoint or not cfg.data:
        raise LlmkitError("--checkpoint DIR and --data FILE.jsonl (or --context-prompts FILE) are required")
    model, tokenizer, ctx, trainable, total = load_tuned(cfg, cfg.method)
    out = Path(cfg.out)
    examples = sft_examples(tokenizer, read_conversations(cfg.data), cfg.batch.seq_len)
    pad = tokenizer.padding_id
    if cfg.pack:
        loader, task = PackedSFTLoader(examples, cfg.batch.seq_len, cfg.batch.batch_size, pad, cfg.seed), PackedCausalLM()
        print(f"[finetune] packed {len(examples)} examples into {len(loader.items)} rows of {cfg.batch.seq_len} tokens",
              flush=True)
    else:
        loader, task = SFTLoader(examples, cfg.batch.batch_size, pad, cfg.seed), CausalLM()
    trained, loader = data_parallel(model, cfg, ctx, loader)
    trainer = Trainer(trained, task, cfg, loader, ctx, out)
    started = time.perf_counter()
    state = fit_resumable(trainer, cfg, tokenizer)
    export_tuned(trainer, model, cfg.method, out, tokenizer, cfg.checkpoint)
    summary = finish_run(out, state, started, ctx, method=cfg.method, trainable_parameters=trainable, parameters=total,
                         examples=len(examples), world_size=ctx.world_size)
    if not ctx.is_main:
        return summary
    made = out / "final" if (out / "final").is_dir() else out / ("soft_prompt" if cfg.method == "full" else method(cfg.method).output_dir)
    print(f"[finetune] done: {state.step} steps, loss {summary['first_loss']:.3f} -> {summary['final_loss']:.3f}; "
          f"-> {made}", flush=True)
    return summary
