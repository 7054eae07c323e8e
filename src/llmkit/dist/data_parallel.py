"""Data parallelism from outside the model.

- dp_shard > 1: FSDP2 `fully_shard` on every block, then the root (ZeRO-3: parameters, gradients
  and optimizer states sharded; all-gather before each block's forward and backward, reduce-scatter
  of gradients, next block's all-gather prefetched while this one computes). With
  reshard_after_forward=False parameters stay gathered from forward to backward (ZeRO-2 style:
  less communication, more memory). With dp_replicate > 1 too: HSDP, sharded inside a group and
  replicated (all-reduce) across groups. cpu_offload keeps parameters and optimizer state in host
  memory (FSDP2 needs an accelerator for that).
- dp_shard == 1, dp_replicate > 1: DDP (parameters replicated, gradients all-reduced in buckets
  overlapped with backward). A pipeline stage, which runs one backward per micro-batch, replicates
  through FSDP2 instead (HSDP with shards of one: the same all-reduce), as torchtitan does: DDP's
  bucket rebuilding asserts on it.
"""

from __future__ import annotations

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from llmkit.dist.context import DistContext
from llmkit.dist.stacks import all_blocks
from llmkit.errors import LlmkitError
from llmkit.dist.config import ParallelConfig


class DDP(DistributedDataParallel):
    """DDP that still answers `model.cfg`, like the model it wraps."""

    @property
    def cfg(self):
        return self.module.cfg


def fsdp_options(cfg: ParallelConfig, mesh) -> dict:
    from torch.distributed.fsdp import CPUOffloadPolicy

    options = {"mesh": mesh, "reshard_after_forward": cfg.reshard_after_forward}
    if cfg.cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy(pin_memory=True)
    return options


def apply_data_parallel(model: nn.Module, cfg: ParallelConfig, ctx: DistContext, pipeline_stage: bool = False) -> nn.Module:
    if ctx.degree("dp_shard") == 1 and not pipeline_stage:
        group = ctx.mesh["dp_replicate"].get_group()
        return DDP(model, process_group=group, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    from torch.distributed.fsdp import fully_shard

    if cfg.cpu_offload and ctx.device.type == "cpu":
        raise LlmkitError("--parallel.cpu_offload needs an accelerator: FSDP2 keeps shards in host memory and "
                          "computes on the GPU; on a CPU-only run the parameters are in host memory already")
    mesh = ctx.mesh["dp_shard"] if ctx.degree("dp_replicate") == 1 else ctx.mesh["dp_replicate", "dp_shard"]
    options = fsdp_options(cfg, mesh)
    for block in all_blocks(model):
        fully_shard(block, **options)
    fully_shard(model, **options)  # embeddings, final norm and head; also the root of prefetching
    return model
