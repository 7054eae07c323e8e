"""The one training loop. Pre-training objectives, and later fine-tuning, distillation and
alignment, differ only in their Task (`make_batch` + `loss`) and in which parameters train.

Each step: `grad_accum` micro-batches; the summed token loss is divided by the token count of the
whole step over all data-parallel ranks (so accumulation and data parallelism give the gradient
of one big batch); fp16 loss scaling; non-finite losses skip the step and are reported; clipping;
AdamW; the schedule's learning rate; metrics; periodic validation and checkpoints.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from llmkit.dist.context import DistContext
from llmkit.dist.timeouts import collective_timed_out, explain_timeout
from llmkit.errors import LlmkitError
from llmkit.host.allocator import keep_freed_memory
from llmkit.train.config import RunConfig
from llmkit.train.fault_injection import maybe_fail
from llmkit.train.flops import flops_per_token, measured_peak
from llmkit.train.metrics import MetricsLog
from llmkit.train.precision import Precision
from llmkit.train.schedules import lr_multiplier, shorten_default_warmup
from llmkit.train.state import claim_run_dir
from llmkit.train.task import IGNORE_INDEX

MAX_CONSECUTIVE_SKIPS = 20


@dataclass
class TrainState:
    step: int = 0
    total_steps: int = 0  # the schedule's length (fixed once a time budget has been estimated)
    skipped_steps: int = 0
    tokens_seen: int = 0
    losses: list[float] = field(default_factory=list)


def build_optimizer(model: nn.Module, cfg: RunConfig, ctx: DistContext | None = None) -> torch.optim.Optimizer:
    """AdamW; matrices decay, vectors (norm weights, biases) do not. Groups are also split by
    device mesh, because foreach kernels cannot mix plain tensors with DTensors (TP, FSDP).
    With --parallel.zero1 (ZeRO-1, Rajbhandari et al., arXiv 1910.02054): each data-parallel rank
    keeps the AdamW states of its share of the parameters and updates only those, then broadcasts
    them (torch's ZeroRedundancyOptimizer); gradients are all-reduced in full, as by DDP."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = []
    for decay in (True, False):
        chosen = [p for p in params if (p.ndim >= 2) == decay]
        for group in _by_mesh(chosen):
            groups.append({"params": group, "weight_decay": cfg.optim.weight_decay if decay else 0.0})
    # The fused kernel (GPU, and CPU since torch 2.4) measured 5-7% faster per step than foreach on
    # this CPU; sharded DTensor parameters keep the foreach path.
    fused = not any(hasattr(p, "device_mesh") for p in params)
    options = dict(lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps, fused=fused, foreach=not fused)
    if getattr(getattr(cfg, "parallel", None), "zero1", False) and ctx is not None and ctx.dp_size > 1:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        if ctx.degree("dp_shard") > 1 or ctx.degree("tp") > 1 or ctx.degree("pp") > 1:
            raise LlmkitError("--parallel.zero1 shards the optimizer over DDP replicas: use it with "
                              "--parallel.dp_replicate N --parallel.dp_shard 1 (FSDP already shards optimizer states)")
        return ZeroRedundancyOptimizer(groups, optimizer_class=torch.optim.AdamW,
                                       process_group=ctx.mesh["dp_replicate"].get_group(), **options)
    return torch.optim.AdamW(groups, **options)


def gradient_sync(model: nn.Module, enabled: bool):
    """Skip the data-parallel gradient reduction on all but the last micro-batch."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()
    if hasattr(model, "no_sync") and not enabled:  # DDP
        return model.no_sync()
    return contextlib.nullcontext()


def micro_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """Corruption randomness as a function of (seed, step, micro-batch, rank): resumes exactly."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1009 + micro) * 65_537 + rank)


def _by_mesh(grads: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Gradients grouped so that foreach ops never mix plain tensors with DTensors of other meshes."""
    groups: dict[object, list] = {}
    for g in grads:
        groups.setdefault(id(g.device_mesh) if hasattr(g, "device_mesh") else None, []).append(g)
    return list(groups.values())


def global_grad_norm(groups: list[list[torch.Tensor]], stage_group=None) -> float:
    """L2 norm of all gradients: sharded DTensors (FSDP, TP) reduced once per mesh; plain tensors
    (replicated parameters, identical on every rank) counted once, or summed over pipeline stages,
    which hold different parameters."""
    squared = torch.zeros((), dtype=torch.float64)
    for group in groups:
        partial = torch.stack(torch._foreach_norm(group)).double().pow(2).sum()
        squared += (partial.full_tensor() if hasattr(partial, "full_tensor") else partial).cpu()
    if stage_group is not None:
        torch.distributed.all_reduce(squared, group=stage_group)
    return math.sqrt(squared.item())


class Trainer:
    def __init__(self, model, objective, cfg: RunConfig, loader, ctx: DistContext, out: Path,
                 val_loader_factory=None, optimizer=None, pipeline=None):
        self.model, self.objective, self.cfg, self.loader, self.ctx, self.out = model, objective, cfg, loader, ctx, out
        if out is not None:
            claim_run_dir(cfg, out, ctx)
        notice = shorten_default_warmup(cfg)
        if notice and ctx.is_main and cfg.progress:
            print(f"[train] {notice}", flush=True)
        self.pipeline = pipeline  # a PipelineRunner when --parallel.pp > 1; the model is then its stage
        self.val_loader_factory = val_loader_factory
        self.optimizer = optimizer or build_optimizer(model, cfg, ctx)
        self.precision = Precision(cfg.precision, ctx.device)
        self.state = TrainState(total_steps=cfg.max_steps)
        self.pending_save = None  # (future, tmp dir, final dir) of an --async-save being written
        self.checkpoint_wait_s = 0.0  # time the loop spent waiting on checkpoint saves
        self.base_model = model.module if hasattr(model, "module") else model
        self.nominal_positions = cfg.batch.batch_size * cfg.batch.seq_len * cfg.batch.grad_accum * ctx.dp_size
        self.flops_per_position = flops_per_token(self.base_model, cfg.batch.seq_len,
                                                  getattr(pipeline, "parameter_count", None))
        # MFU against the ceiling of the precision the matmuls run in (bf16 autocast: the bf16 units)
        matmul_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision, torch.float32)
        self.peak = (cfg.peak_flops or measured_peak(ctx.device.type, matmul_dtype)) * ctx.world_size
        if ctx.device.type == "cpu":
            keep_freed_memory()  # step-sized buffers stay mapped instead of page-faulting every step

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}

    def _positions(self, micro: list[dict]) -> int:
        """Token positions the model ran this step (all data-parallel replicas): what MFU counts. Padded
        fine-tuning batches run far fewer than batch x seq_len. A task with its own batch shape says
        how many through `positions(batch)`; otherwise the nominal batch x seq_len counts."""
        count = getattr(self.objective, "positions", None)
        if count is not None:
            local = sum(count(m) for m in micro)
        elif all(isinstance(m.get("tokens"), torch.Tensor) for m in micro):
            local = sum(m["tokens"].numel() + (m["src"].numel() if "src" in m else 0) for m in micro)
        else:
            return self.nominal_positions
        return local * self.ctx.dp_size

    def train_step(self) -> dict:
        cfg, step = self.cfg, self.state.step
        micro = [self.objective.make_batch(*next(self.loader)[:2], generator=micro_generator(
            cfg.seed, step, i, self.ctx.dp_rank)) for i in range(cfg.batch.grad_accum)]
        total_tokens = self.ctx.sum(sum(int((m["targets"] != IGNORE_INDEX).sum()) for m in micro))
        total_tokens /= self.ctx.degree("pp") * self.ctx.degree("tp")  # ranks of one replica share its batch
        loss_sum = 0.0
        self.model.train()
        for i, batch in enumerate(micro if self.pipeline is None else []):
            maybe_fail("forward", step + 1, self.ctx.rank)
            with gradient_sync(self.model, i == len(micro) - 1), self.precision.autocast():
                loss, _ = self.objective.loss(self.model, self._to_device(batch))
            maybe_fail("backward", step + 1, self.ctx.rank)
            self.precision.backward(loss * self.ctx.dp_size / max(total_tokens, 1))
            loss_sum += loss.item()
        if self.pipeline is not None:
            loss_sum = self.pipeline.step(micro[0], total_tokens)  # only last-stage ranks hold a loss
        # ranks that hold the same loss: a replica's tp ranks (and its pp ranks, without a pipeline)
        replicas = self.ctx.degree("tp") * (1 if self.pipeline is not None else self.ctx.degree("pp"))
        mean_loss = self.ctx.sum(loss_sum) / replicas / max(total_tokens, 1)
        lr = cfg.optim.lr * lr_multiplier(step, self.state.total_steps, cfg.schedule)
        record = {"step": step + 1, "loss": mean_loss, "lr": lr, "tokens": int(total_tokens),
                  "positions": self._positions(micro)}
        if not math.isfinite(mean_loss):
            self.optimizer.zero_grad(set_to_none=True)
            return record | {"skipped": True, "reason": "non-finite loss"}
        self.precision.unscale(self.optimizer)
        record["grad_norm"] = self._clip()
        if not math.isfinite(record["grad_norm"]) and not self.precision.scaler.is_enabled():
            # fp16's scaler skips such steps itself (and lowers its scale); elsewhere one inf gradient
            # would turn every weight into NaN
            self.optimizer.zero_grad(set_to_none=True)
            return record | {"grad_norm": None, "skipped": True, "reason": "non-finite gradient norm"}
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        maybe_fail("optimizer", step + 1, self.ctx.rank)
        if not self.precision.step(self.optimizer):
            record |= {"skipped": True, "reason": "fp16 overflow: loss scale halved"}
        self.optimizer.zero_grad(set_to_none=True)
        return record

    def _clip(self) -> float:
        groups = _by_mesh([p.grad for p in self.model.parameters() if p.grad is not None])
        stage_group = self.ctx.mesh["pp"].get_group() if self.ctx.degree("pp") > 1 else None
        norm = global_grad_norm(groups, stage_group)
        if self.cfg.optim.grad_clip > 0 and math.isfinite(norm):
            for group in groups:
                torch._foreach_mul_(group, min(1.0, self.cfg.optim.grad_clip / (norm + 1e-6)))
        return norm

    @torch.no_grad()
    def evaluate(self) -> dict:
        if self.val_loader_factory is None:
            return {}
        self.model.eval()
        loss_sum = tokens = 0.0
        for i, raw in zip(range(self.cfg.eval_batches), self.val_loader_factory()):
            batch = self.objective.make_batch(*raw[:2], generator=micro_generator(self.cfg.seed, -1, i, self.ctx.dp_rank))
            with self.precision.autocast():
                loss, count = self.objective.loss(self.model, self._to_device(batch))
            loss_sum, tokens = loss_sum + loss.item(), tokens + count
        val = self.ctx.sum(loss_sum) / max(self.ctx.sum(tokens), 1)
        return {"val_loss": val, "val_perplexity": math.exp(min(val, 50))}

    def fit(self, checkpointer=None) -> TrainState:
        """Train from self.state.step to the end; `checkpointer(trainer, step)` saves when asked."""
        cfg, started = self.cfg, time.perf_counter()
        log = MetricsLog(self.out, self.ctx.is_main, self.state.total_steps, self.state.step, cfg.progress, cfg.tensorboard)
        consecutive_skips, run_positions, run_tokens = 0, 0, 0  # this run only: a resumed run starts mid-way
        try:
            while self.state.step < self.state.total_steps:
                record = self.train_step()
                self.state.step += 1
                run_positions += record.pop("positions", self.nominal_positions)
                run_tokens += record["tokens"]
                elapsed = max(time.perf_counter() - started, 1e-9)
                record["tokens_per_s"] = run_tokens / elapsed  # loss tokens (targets) per second
                record["positions_per_s"] = run_positions / elapsed  # token positions run per second
                record["mfu"] = self.flops_per_position * run_positions / elapsed / self.peak
                consecutive_skips = consecutive_skips + 1 if record.get("skipped") else 0
                self.state.skipped_steps += bool(record.get("skipped"))
                self.state.tokens_seen += record["tokens"]
                if consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
                    raise FloatingPointError(f"{consecutive_skips} consecutive steps had non-finite losses or "
                                             "gradients; lower the learning rate or use bf16/fp32")
                if record.get("skipped") and self.ctx.is_main:
                    print(f"step {self.state.step}: skipped ({record['reason']})", flush=True)
                self.state.losses.append(record["loss"])
                if cfg.eval_every and self.state.step % cfg.eval_every == 0:
                    record |= self.evaluate()
                self._fit_budget(started, log)
                log.log(record)
                if checkpointer and cfg.save_every and self.state.step % cfg.save_every == 0:
                    checkpointer(self, self.state.step)
                if cfg.max_minutes is not None and time.perf_counter() - started >= cfg.max_minutes * 60:
                    break
            if checkpointer and cfg.save_every and self.state.step % cfg.save_every:
                checkpointer(self, self.state.step)  # the end is resumable too: a longer --max-steps continues it
            if self.pending_save is not None:  # an --async-save still being written
                from llmkit.train.checkpointing import finish_pending_save

                finish_pending_save(self)
        except RuntimeError as error:
            if self.ctx.distributed and collective_timed_out(error):
                raise explain_timeout(self.ctx, error, self.state.step + 1) from error
            raise
        finally:
            log.close()
        return self.state

    def _fit_budget(self, started: float, log: MetricsLog) -> None:
        """With a time budget, fix the schedule's length once the first steps are timed, so the
        learning rate still anneals by the end of the budget."""
        cfg, done = self.cfg, self.state.step
        if cfg.max_minutes is None or done != min(10, max(1, cfg.schedule.warmup_steps)) or \
                self.state.total_steps != cfg.max_steps:
            return
        per_step = (time.perf_counter() - started) / done
        self.state.total_steps = max(done, min(cfg.max_steps, int(cfg.max_minutes * 60 / per_step)))
        log.set_total(self.state.total_steps)

    def state_dict(self) -> dict:
        """JSON-able loop state; a task with state of its own (the RL tasks' rollout count) adds it."""
        return {"trainer": asdict(self.state), "loader": self.loader.state_dict(),
                "precision": self.precision.state_dict(), "max_steps": self.cfg.max_steps,
                "task": self.objective.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.state = TrainState(**state["trainer"])
        if state.get("max_steps", self.cfg.max_steps) != self.cfg.max_steps:  # asked for a longer (or shorter) run
            self.state.total_steps = max(self.cfg.max_steps, self.state.step)
        self.loader.load_state_dict(state["loader"])
        self.precision.load_state_dict(state["precision"])
        self.objective.load_state_dict(state.get("task", {}))
