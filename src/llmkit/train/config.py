"""Typed configuration of a training run. The CLI flags (`--optim.lr 3e-4`, `--parallel.dp_shard 2`)
and YAML files (`--config train.yaml`, the same keys nested) are both generated from these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from llmkit.dist.config import ParallelConfig

Objective = Literal["clm", "prefix_lm", "span_corruption", "blank_infilling", "mlm"]


@dataclass
class OptimConfig:
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 disables clipping


@dataclass
class ScheduleConfig:
    kind: Literal["cosine", "wsd", "linear", "constant"] = "cosine"
    warmup_steps: int | None = None  # None: 100, or 10% of a run shorter than 1,000 steps
    min_lr_ratio: float = 0.1  # the floor the decay ends at, as a fraction of lr
    decay_fraction: float = 0.2  # wsd: the last fraction of steps that decays


@dataclass
class DataConfig:
    seq_len: int = 512
    batch_size: int = 8  # sequences per rank per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    mode: Literal["random", "sequential"] = "random"


@dataclass
class RunConfig:
    """What the one training loop (llmkit.train.trainer) reads: every training verb's config is this
    plus its own fields, so `--help` lists only flags that verb uses."""

    out: str = "runs/pretrain"
    max_steps: int = 1000
    max_minutes: float | None = None
    save_every: int = 0  # 0: only the final checkpoint
    async_save: bool = False  # write checkpoint shards in the background (DCP async_save) while training goes on
    keep_last: int = 3
    eval_every: int = 0
    eval_batches: int = 20
    seed: int = 0
    resume: str = "none"  # none | auto (newest checkpoint in OUT) | a checkpoint directory
    overwrite: bool = False  # write into a non-empty OUT that is not a training run (only llmkit's files are replaced)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    device: str = "auto"
    peak_flops: float | None = None  # per device, for MFU; None measures a matmul at start-up
    tensorboard: bool = False
    progress: bool = True
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    batch: DataConfig = field(default_factory=DataConfig)


@dataclass
class ShardTrainingConfig(RunConfig):
    """A run that builds a model (named, a config.json, or a checkpoint's) and trains it on token shards
    from `llmkit data prepare`, on one process or spread by torchrun: what `pretrain` and `compress
    distill` share."""

    data: str = ""  # directory written by `llmkit data prepare`
    model: str = "mini-llama"  # named config (see `llmkit models`) or a config.json / checkpoint directory
    init_from: str = ""  # a checkpoint directory whose weights start the run (continued pre-training, healing)
    activation_checkpointing: Literal["none", "full", "selective"] = "none"
    ac_every: int = 2  # selective: checkpoint every n-th block
    compile: bool = False
    parallel: ParallelConfig = field(default_factory=ParallelConfig)


@dataclass
class PretrainConfig(ShardTrainingConfig):
    """`llmkit pretrain`: a shard-training run plus the objective and quantization-aware training."""

    objective: Objective = "clm"
    qat: Literal["none", "int8", "int4"] = "none"  # quantization-aware training: fake-quantized block weights
    qat_group_size: int = 128  # int4 QAT: inputs per scale (int8 is per channel)
