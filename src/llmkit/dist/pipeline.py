"""Pipeline parallelism with torch.distributed.pipelining (GPipe, arXiv 1811.06965; 1F1B as in
PipeDream-Flush, arXiv 2006.09503).

The decoder is cut into `pp` contiguous runs of blocks; the first stage also embeds tokens and the
last applies the final norm and head. Each step the batch is split into micro-batches that flow
through the stages: GPipe runs all forwards then all backwards; 1F1B interleaves them so at most
`pp` micro-batches' activations are alive per stage. Activations and their gradients move between
neighbouring stages with point-to-point send/recv.

Stage modules keep the full model's parameter names (`layers.5.attn.q_proj.weight`), so their
checkpoints are in the same layout as any other run.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from llmkit.errors import LlmkitError
from llmkit.model.transformer import LanguageModelHead, StackParts, default_positions


def stage_layer_ids(n_layer: int, stages: int, stage: int) -> list[int]:
    """Contiguous, balanced split: earlier stages take the remainder."""
    base, extra = divmod(n_layer, stages)
    start = stage * base + min(stage, extra)
    return list(range(start, start + base + (stage < extra)))


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
        self.causal, self.window, self.positions = True, cfg.sliding_window, model.positions
        self.layer_kinds = model.layer_kinds  # sliding/full layers (Gemma) get their own context
        if hasattr(model, "local_positions"):
            self.local_positions = model.local_positions
        self.layer_ids = stage_layer_ids(cfg.n_layer, stages, stage)
        self.layers = nn.ModuleDict({str(i): model.layers[model.layer_order[i]] for i in self.layer_ids})
        if self.first:
            self.tok_embeddings = model.tok_embeddings
        if self.last:
            self.norm, self.lm_head = model.norm, model.lm_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens (B, T) on the first stage, hidden states (B, T, C) elsewhere."""
        if self.first:
            pos = default_positions(x)
            x = self.embed(x)  # the model's own embedding (Gemma scales it)
            added = self.positions.embed(pos)
            x = x if added is None else x + added.to(x.dtype)
        pos = default_positions(x[..., 0] if x.ndim == 3 else x)
        ctx = self.context(pos, False, None, None, x.dtype)
        for i in self.layer_ids:
            x = self.layers[str(i)](x, self.layer_context(i, ctx), i)
        return self.lm_head(self.norm(x)) if self.last else x


class PipelineRunner:
    """Runs one training step's forward and backward through the pipeline schedule."""

    def __init__(self, model: nn.Module, ctx, schedule: str, microbatches: int, ignore_index: int = -100):
        """ignore_index: the target id that marks positions without a loss (the trainer's IGNORE_INDEX)."""
        from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

        self.ctx, self.ignore_index = ctx, ignore_index
        self.stage_index, self.stages = ctx.mesh["pp"].get_local_rank(), ctx.degree("pp")
        self.module = PipelineStageModule(model, self.stage_index, self.stages)
        stage = PipelineStage(self.module, self.stage_index, self.stages, ctx.device, group=ctx.mesh["pp"].get_group())
        self.total_tokens = 1.0
        kind = {"gpipe": ScheduleGPipe, "1f1b": Schedule1F1B}[schedule]
        self.schedule = kind(stage, n_microbatches=microbatches, loss_fn=self._loss)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        summed = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=self.ignore_index,
                                 reduction="sum")
        return summed / self.total_tokens  # the mean over every target token of the step

    def step(self, batch: dict, total_tokens: float) -> float:
        """Forward + backward of one batch; returns this rank's share of the summed token loss."""
        self.total_tokens = total_tokens
        losses: list[torch.Tensor] = []
        tokens, targets = batch["tokens"].to(self.ctx.device), batch["targets"].to(self.ctx.device)
        if self.module.first:
            self.schedule.step(tokens)
        elif self.module.last:
            self.schedule.step(target=targets, losses=losses)
        else:
            self.schedule.step()
        return sum(l.item() for l in losses) * total_tokens
