"""The process group and device mesh. Single process is world size 1 through the same code.

Started by torchrun (RANK/WORLD_SIZE/LOCAL_RANK in the environment), processes join a gloo (CPU)
or nccl (GPU) group and build a DeviceMesh with dims (pp, dp_replicate, dp_shard, tp); multi-node
runs use torchrun's own rendezvous flags (--nnodes, --rdzv-endpoint), nothing home-made.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from llmkit.errors import LlmkitError
from llmkit.dist.config import ParallelConfig


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    mesh: object = None  # DeviceMesh when world_size > 1
    degrees: dict | None = None  # {"pp", "dp_replicate", "dp_shard", "tp"}
    timeout_s: float = 600.0  # how long a collective may wait (the process group's timeout)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def degree(self, name: str) -> int:
        return (self.degrees or {}).get(name, 1)

    @property
    def dp_size(self) -> int:
        return self.degree("dp_replicate") * self.degree("dp_shard")

    @property
    def dp_rank(self) -> int:
        if not self.distributed:
            return 0
        coordinate = dict(zip(self.degrees, self.mesh.get_coordinate()))  # this rank's place on each mesh dim
        return coordinate["dp_replicate"] * self.degree("dp_shard") + coordinate["dp_shard"]

    def sum(self, value: float) -> float:
        """Sum of a number over all ranks (the data-parallel token count, for instance)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def pick_device(preference: str) -> torch.device:
    if preference != "auto":
        return torch.device(preference)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_degrees(cfg: ParallelConfig, world_size: int) -> dict[str, int]:
    fixed = cfg.pp * cfg.dp_replicate * cfg.tp
    shard = cfg.dp_shard if cfg.dp_shard != -1 else world_size // max(1, fixed)
    degrees = {"pp": cfg.pp, "dp_replicate": cfg.dp_replicate, "dp_shard": shard, "tp": cfg.tp}
    product = fixed * shard
    if product != world_size or min(degrees.values()) < 1:
        raise LlmkitError(f"parallel degrees {degrees} multiply to {product}, but the world size is {world_size}; "
                          "set --parallel.dp_shard -1 to fill the rest")
    return degrees


def init_distributed(cfg: ParallelConfig, device_preference: str = "auto") -> DistContext:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(device_preference)
    degrees = resolve_degrees(cfg, world_size)
    if world_size == 1:
        return DistContext(device=device, degrees=degrees)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        timeout = datetime.timedelta(seconds=cfg.timeout_s)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timeout,
                                store=_attempt_store(rank, world_size, timeout), rank=rank, world_size=world_size)
    from torch.distributed.device_mesh import init_device_mesh

    names = tuple(degrees)
    mesh = init_device_mesh(device.type, tuple(degrees[n] for n in names), mesh_dim_names=names)
    return DistContext(rank=rank, world_size=world_size, device=device, mesh=mesh, degrees=degrees,
                       timeout_s=cfg.timeout_s)


def _attempt_store(rank: int, world_size: int, timeout: datetime.timedelta):
    """torchrun's store (MASTER_ADDR/PORT) under a prefix per restart attempt. The keys a process
    group writes (each rank's gloo address, say) keep their names across `--max-restarts`
    attempts; without the prefix a restarted rank could read the address of a killed
    attempt's peer and fail to connect (seen in about one restart in ten)."""
    store, _, _ = next(dist.rendezvous("env://", rank, world_size, timeout=timeout))
    return dist.PrefixStore(f"llmkit/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)


def shutdown(synchronize: bool = False) -> None:
    """Leave the process group. `synchronize` (after a run that succeeded everywhere) first waits for
    every rank: a rank that tears its group down while another still works (rank 0 writing the loss
    curve, say) was seen to abort with 'terminate called without an active exception' under load."""
    if dist.is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()
