"""`llmkit pretrain`: a model, token shards from `llmkit data prepare`, and the one training loop,
on one process or many (torchrun). Outputs:

    OUT/metrics.jsonl  OUT/loss_curve.png  OUT/checkpoints/step-000020/  OUT/final/ (HF layout + tokenizer)
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from llmkit.data.loader import TokenDataset, TokenLoader
from llmkit.dist.context import DistContext, init_distributed
from llmkit.dist.parallelize import parallelize
from llmkit.errors import LlmkitError
from llmkit.fileio import write_json
from llmkit.model import ModelConfig, build_model, count_parameters
from llmkit.tokenizer import Tokenizer
from llmkit.train.checkpointing import export_model, resume, save_training_checkpoint, weights_finite
from llmkit.train.config import PretrainConfig, ShardTrainingConfig
from llmkit.train.fake_quant import apply_fake_quant
from llmkit.train.metrics import plot_loss_curve
from llmkit.train.objectives import build_objective
from llmkit.train.task import IGNORE_INDEX, Task
from llmkit.train.trainer import Trainer


def resolve_model_config(spec: str, tokenizer: Tokenizer, announce) -> ModelConfig:
    """A named config, a config.json, or a checkpoint directory's config; vocabulary and special
    token ids follow the data's tokenizer."""
    from llmkit.checkpoint.hf_config import resolve_config

    cfg = resolve_config(spec)
    if cfg.vocab_size != tokenizer.vocab_size:
        announce(f"model {cfg.name}: vocabulary {cfg.vocab_size:,} -> {tokenizer.vocab_size:,} to match the data's tokenizer")
    specials = tokenizer.special_ids()
    return cfg.replace(vocab_size=tokenizer.vocab_size, eos_token_id=specials["eos"], bos_token_id=specials["bos"],
                       pad_token_id=specials["pad"])


def build_training_model(cfg: ShardTrainingConfig, model_cfg: ModelConfig, ctx: DistContext, transform=None):
    """Same seed on every rank gives identical initial weights; `transform` (QAT's fake quantization)
    swaps modules before parallelism wraps them, which then shards them. With pipeline stages the
    model is returned whole: each rank's stages are cut first and parallelized one by one."""
    torch.manual_seed(cfg.seed)
    model = build_model(model_cfg, device=ctx.device)
    if cfg.init_from:
        _load_weights(model, cfg.init_from)
    if transform is not None:
        transform(model)
    if ctx.degree("pp") > 1:
        return model
    return _parallelize(model, cfg, ctx)


def _parallelize(model, cfg: ShardTrainingConfig, ctx: DistContext, pipeline_stage: bool = False):
    return parallelize(model, ctx, cfg.parallel, cfg.activation_checkpointing, cfg.ac_every, cfg.compile,
                       pipeline_stage)


def _load_weights(model, checkpoint_dir: str) -> None:
    from llmkit.checkpoint import load_checkpoint

    source = load_checkpoint(checkpoint_dir).state_dict()
    try:
        with torch.no_grad():
            model.load_state_dict({k: v.to(model.lm_head.weight.device) for k, v in source.items()})
    except RuntimeError as err:
        raise LlmkitError(f"--init-from {checkpoint_dir}: its weights do not fit --model's config ({str(err)[:200]}); "
                          f"pass --model {checkpoint_dir} too") from None


def make_loaders(cfg: ShardTrainingConfig, ctx: DistContext, with_val: bool):
    data = TokenDataset(cfg.data, "train")
    train = TokenLoader(data, cfg.batch.seq_len, cfg.batch.batch_size, cfg.seed, cfg.batch.mode,
                        rank=ctx.dp_rank, world_size=ctx.dp_size)
    if not with_val:
        return train, None
    val_data = TokenDataset(cfg.data, "val")
    seq_len = min(cfg.batch.seq_len, len(val_data) - 2)
    factory = lambda: TokenLoader(val_data, seq_len, cfg.batch.batch_size, cfg.seed, "sequential",
                                  rank=ctx.dp_rank, world_size=ctx.dp_size)
    return train, factory


def _pipeline(model, cfg: ShardTrainingConfig, ctx: DistContext, objective_name: str):
    from llmkit.dist.pipeline import PipelineRunner

    if objective_name not in PIPELINE_OBJECTIVES or cfg.batch.grad_accum != 1:
        raise LlmkitError(f"pipeline parallelism runs the {', '.join(PIPELINE_OBJECTIVES)} objectives (fixed-shape "
                          "batches) with --batch.grad_accum 1 (its micro-batches are --parallel.pp_microbatches)")
    if cfg.parallel.sequence_parallel:
        raise LlmkitError("--parallel.sequence_parallel does not combine with --parallel.pp (stages would pass "
                          "sequence shards and lose the positions); use tensor parallelism without it")
    if cfg.parallel.zero1:
        raise LlmkitError("--parallel.zero1 does not combine with --parallel.pp; use FSDP (--parallel.dp_shard N)")
    if cfg.batch.batch_size % cfg.parallel.pp_microbatches:
        raise LlmkitError(f"--batch.batch_size {cfg.batch.batch_size} must divide into "
                          f"--parallel.pp_microbatches {cfg.parallel.pp_microbatches}")
    return PipelineRunner(model, ctx, cfg.parallel.pp_schedule, cfg.parallel.pp_microbatches,
                          cfg.parallel.pp_stages_per_rank, lambda stage: _parallelize(stage, cfg, ctx, True), IGNORE_INDEX)


# Objectives whose batches keep one shape (pipeline stages fix their buffers at the first step) and
# carry only tokens and prefix lengths between stages. Not: span_corruption (an encoder-decoder),
# blank_infilling (rows padded to each batch's longest).
PIPELINE_OBJECTIVES = ("clm", "prefix_lm", "mlm")


def _has_val(data_dir: str) -> bool:
    from llmkit.data.shards import read_index

    return bool(read_index(data_dir)["val"])


def run_pretrain(cfg: PretrainConfig) -> dict:
    """`llmkit pretrain`: cfg.objective's task, with QAT's fake quantization when asked."""
    qat = None
    if cfg.qat != "none":
        qat = lambda model: apply_fake_quant(model, 8 if cfg.qat == "int8" else 4, cfg.qat_group_size)
    return train_on_shards(cfg, lambda tokenizer, model_cfg: build_objective(cfg.objective, tokenizer,
                                                                             model_cfg.vocab_size),
                           cfg.objective, transform=qat)


def train_on_shards(cfg: ShardTrainingConfig, make_objective, objective_name: str, transform=None) -> dict:
    """Build the model, train it with the Task `make_objective(tokenizer, model_cfg)` on cfg.data's
    shards, export OUT/final. `objective_name` is what the log shows (and pipelines accept only clm)."""
    if not cfg.data:
        raise LlmkitError("--data DIR is required (the output of `llmkit data prepare`)")
    ctx = init_distributed(cfg.parallel, cfg.device)
    announce = (lambda msg: print(f"[pretrain] {msg}", flush=True)) if ctx.is_main else (lambda msg: None)
    out = Path(cfg.out)
    tokenizer = Tokenizer.from_dir(Path(cfg.data) / "tokenizer")
    model_cfg = resolve_model_config(cfg.model, tokenizer, announce)
    announce(f"{model_cfg.name}: {count_parameters(model_cfg):,} parameters, objective {objective_name}, "
             f"world {ctx.world_size} {ctx.degrees}, device {ctx.device}, precision {cfg.precision}")
    model = build_training_model(cfg, model_cfg, ctx, transform)
    objective: Task = make_objective(tokenizer, model_cfg)
    pipeline = None
    if ctx.degree("pp") > 1:
        pipeline = _pipeline(model, cfg, ctx, objective_name)
        model = pipeline.module
        announce(f"pipeline: {pipeline.n_stages} stages, schedule {cfg.parallel.pp_schedule}, "
                 f"{cfg.parallel.pp_microbatches} micro-batches; bubble fraction {pipeline.bubble:.3f} "
                 "(the schedule's idle share with equal forward/backward times)")
    train_loader, val_factory = make_loaders(cfg, ctx, with_val=_has_val(cfg.data) and pipeline is None)
    trainer = Trainer(model, objective, cfg, train_loader, ctx, out, val_factory, pipeline=pipeline)
    resume_from = resume(trainer, cfg.resume, announce)
    if resume_from is not None:
        announce(f"resumed from {resume_from} at step {trainer.state.step}")
    started = time.perf_counter()
    state = trainer.fit(checkpointer=lambda t, step: save_training_checkpoint(t, step, tokenizer))
    if cfg.save_every:  # fit() has published any save still in flight
        announce(f"checkpoint saves kept the loop waiting {trainer.checkpoint_wait_s:.2f} s in all"
                 f"{' (async: staging and the last wait)' if cfg.async_save else ''}")
    if not weights_finite(trainer):
        raise LlmkitError("training diverged: the weights hold NaN or inf, so no final model was written; "
                          "resume from the last checkpoint with a lower learning rate")
    final_eval = trainer.evaluate()  # {} without a validation split
    export_model(trainer, out / "final", tokenizer)
    summary = {"steps": state.step, "skipped_steps": state.skipped_steps, "tokens": state.tokens_seen,
               "final_loss": state.losses[-1] if state.losses else None, "seconds": time.perf_counter() - started,
               "checkpoint_wait_s": trainer.checkpoint_wait_s,
               **({"pipeline_bubble_fraction": pipeline.bubble} if pipeline is not None else {}), **final_eval}
    if ctx.is_main:
        plot_loss_curve(out / "metrics.jsonl", out / "loss_curve.png")
        write_json(out / "summary.json", summary)  # atomic, like every other output
        announce(f"done: {state.step} steps, final loss {summary['final_loss']:.4f}; model -> {out / 'final'}")
    return summary
