"""Pipeline parallelism with torch.distributed.pipelining (GPipe, arXiv 1811.06965; 1F1B as in
PipeDream-Flush, arXiv 2006.09503; interleaved 1F1B, arXiv 2104.04473; zero bubble, arXiv 2401.10241).

The decoder is cut into `pp x v` contiguous runs of blocks (v virtual stages per rank for the
interleaved and zero-bubble schedules); the first stage also embeds tokens and the last applies the
final norm and head. Each step the batch is split into micro-batches that flow through the stages;
activations and their gradients move between stages with point-to-point send/recv.

Composed as torchtitan does (3-D parallelism): each rank's stage modules are cut from the model
first, then tensor parallelism, activation checkpointing, compile and FSDP/DDP are applied to each
stage module from outside (`prepare_stage`), over the mesh's tp and dp dimensions; the pipeline runs
over its pp dimension. Stage modules keep the full model's parameter names
(`layers.5.attn.q_proj.weight`), so checkpoints are in the same layout as any other run.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.dist.pipeline_schedules import (
    bubble_fraction,
    rank_stages,
    schedule_kind,
    single_stage_order,
    stages_per_rank as stages_per_rank_for,
    torch_order,
)
from llmkit.errors import LlmkitError
from llmkit.model.transformer import LanguageModelHead, StackParts, default_positions


def stage_layer_ids(n_layer: int, stages: int, stage: int) -> list[int]:
    """Contiguous, balanced split: earlier stages take the remainder."""
    base, extra = divmod(n_layer, stages)
    start = stage * base + min(stage, extra)
    return list(range(start, start + base + (stage < extra)))


# The batch entries a stage passes on: tokens (then hidden states) and, for prefix decoders
# (prefix_lm, mlm), each row's bidirectional prefix length, which every stage's attention needs.
STAGE_INPUTS = ("tokens", "prefix_len")


class PipelineStageModule(StackParts, LanguageModelHead):
    """One pipeline stage's share of a decoder: its blocks (and the embedding on the first stage, the
    final norm and head on the last), run with the model's own context building and embedding."""

    def __init__(self, model: nn.Module, stage: int, stages: int):
        super().__init__()
        cfg = model.cfg
        if cfg.arch == "encoder_decoder" or cfg.tie_embeddings or list(model.positions.parameters()) and stage > 0 \
                or cfg.n_unique_layers:
            raise LlmkitError("pipeline parallelism supports decoder-only models with untied embeddings, "
                              "unshared layers and parameter-free positions beyond the first stage (e.g. tiny-llama)")
        self.cfg, self.first, self.last = cfg, stage == 0, stage == stages - 1
        self.causal, self.window, self.positions = model.causal, cfg.sliding_window, model.positions
        self.layer_kinds = model.layer_kinds  # sliding/full layers (Gemma) get their own context
        if hasattr(model, "local_positions"):
            self.local_positions = model.local_positions
        self.layer_ids = stage_layer_ids(cfg.n_layer, stages, stage)
        self.layers = nn.ModuleDict({str(i): model.layers[model.layer_order[i]] for i in self.layer_ids})
        if self.first:
            self.tok_embeddings = model.tok_embeddings
        if self.last:
            self.norm, self.lm_head = model.norm, model.lm_head

    def forward(self, x: torch.Tensor, prefix_len: torch.Tensor | None = None):
        """Tokens (B, T) on the first stage, hidden states (B, T, C) elsewhere; prefix_len (B,) for
        prefix decoders travels with them (every stage builds its own attention mask from it)."""
        if self.first:
            pos = default_positions(x)
            x = self.embed(x)  # the model's own embedding (Gemma scales it)
            added = self.positions.embed(pos)
            x = x if added is None else x + added.to(x.dtype)
        pos = default_positions(x[..., 0] if x.ndim == 3 else x)
        ctx = self.context(pos, False, None, prefix_len, x.dtype)
        for i in self.layer_ids:
            x = self.layers[str(i)](x, self.layer_context(i, ctx), i)
        if self.last:
            return self.lm_head(self.norm(x))
        return x if prefix_len is None else (x, prefix_len)


class LocalStages(nn.Module):
    """What one rank holds of the model: the blocks, embedding, final norm and head of all its stages
    under the full model's names (the trainer's optimizer, checkpoints and export see this)."""

    def __init__(self, stage_modules: list[PipelineStageModule]):
        super().__init__()
        self.cfg = stage_modules[0].cfg
        self.layers = nn.ModuleDict({key: block for m in stage_modules for key, block in m.layers.items()})
        for m in stage_modules:
            if m.first:
                self.tok_embeddings = m.tok_embeddings
            if m.last:
                self.norm, self.lm_head = m.norm, m.lm_head


class PipelineRunner:
    """Runs one training step's forward and backward through the pipeline schedule."""

    def __init__(self, model: nn.Module, ctx, schedule: str, microbatches: int, stages_per_rank: int = 0,
                 prepare_stage=lambda module: module, ignore_index: int = -100):
        """prepare_stage(stage module) -> the module to run (tensor/data parallelism applied from
        outside); ignore_index: the target id that marks positions without a loss."""
        from torch.distributed import pipelining
        from torch.distributed.pipelining import PipelineStage

        self.ctx, self.ignore_index, self.schedule_name = ctx, ignore_index, schedule
        pp, pp_rank = ctx.degree("pp"), ctx.mesh["pp"].get_local_rank()
        per_rank = stages_per_rank_for(schedule, stages_per_rank)
        self.n_stages = pp * per_rank
        if self.n_stages > model.cfg.n_layer:
            raise LlmkitError(f"{pp} pipeline ranks x {per_rank} stages each need at least {self.n_stages} "
                              f"layers; the model has {model.cfg.n_layer}")
        self.parameter_count = sum(p.numel() for p in model.parameters())  # the whole model's (for MFU)
        indices = rank_stages(schedule, pp, per_rank, pp_rank)
        self.stage_modules = [PipelineStageModule(model, s, self.n_stages) for s in indices]
        self.module = LocalStages(self.stage_modules)
        self.holds_first = any(m.first for m in self.stage_modules)
        self.holds_last = any(m.last for m in self.stage_modules)
        group = ctx.mesh["pp"].get_group()
        stages = [PipelineStage(prepare_stage(m), s, self.n_stages, ctx.device, group=group)
                  for m, s in zip(self.stage_modules, indices)]
        kind = schedule_kind(schedule)
        runner = getattr(pipelining, kind.torch_class)
        # the loss is already a mean over the step's tokens: torch must not divide by the micro-batches again
        self.schedule = runner(stages if kind.multi else stages[0], n_microbatches=microbatches,
                               loss_fn=self._loss, scale_grads=False)
        self.dp_size, self.total_tokens = ctx.dp_size, 1.0
        self.bubble = self._bubble(kind, pp, microbatches)

    def _bubble(self, kind, pp: int, microbatches: int) -> float:
        if kind.multi:
            orders = {rank: torch_order(self.schedule, rank) for rank in range(pp)}
        else:
            orders = {rank: single_stage_order(self.schedule_name, pp, microbatches, rank) for rank in range(pp)}
        return bubble_fraction(orders, self.n_stages)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        summed = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=self.ignore_index,
                                 reduction="sum")
        # the mean over every target token of the step; x dp_size because FSDP/DDP average gradients
        # over the data-parallel replicas
        return summed * self.dp_size / self.total_tokens

    def step(self, batch: dict, total_tokens: float) -> float:
        """Forward + backward of one batch; returns this rank's summed token loss (last stage)."""
        unknown = set(batch) - set(STAGE_INPUTS) - {"targets"}
        if unknown:
            raise LlmkitError(f"pipeline stages pass only {', '.join(STAGE_INPUTS)} between them; this "
                              f"objective's batch also has {', '.join(sorted(unknown))}: train it without --parallel.pp")
        self.total_tokens = total_tokens
        losses: list[torch.Tensor] = []
        inputs = [batch[k].to(self.ctx.device) for k in STAGE_INPUTS if k in batch] if self.holds_first else []
        last = {"target": batch["targets"].to(self.ctx.device), "losses": losses} if self.holds_last else {}
        self.schedule.step(*inputs, **last)
        return sum(l.item() for l in losses) * total_tokens / self.dp_size
