"""How a run is spread over processes: the degree of each parallelism and its options."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class ParallelConfig:
    """Degrees multiply to the world size; dp_shard=-1 takes what the others leave."""

    dp_replicate: int = 1  # DDP-style replicas (HSDP when combined with dp_shard > 1)
    dp_shard: int = -1  # FSDP2 shards (ZeRO-3; see reshard_after_forward)
    tp: int = 1  # tensor parallel (DTensor)
    sequence_parallel: bool = False  # with tp: norms and residuals sharded along the sequence
    pp: int = 1  # pipeline stages
    # gpipe | 1f1b | interleaved_1f1b | zero_bubble | zbv (see llmkit.dist.pipeline_schedules)
    pp_schedule: Literal["gpipe", "1f1b", "interleaved_1f1b", "zero_bubble", "zbv"] = "1f1b"
    pp_microbatches: int = 4
    pp_stages_per_rank: int = 0  # virtual stages per rank; 0: the schedule's own (1, or 2 when interleaved)
    reshard_after_forward: bool = True  # False keeps parameters gathered until backward (ZeRO-2 style)
    zero1: bool = False  # with DDP (dp_replicate N, dp_shard 1): optimizer states sharded over the replicas
    cpu_offload: bool = False  # FSDP2 parameter/optimizer offload (needs an accelerator)
    timeout_s: float = 600.0  # a collective that waits longer (a rank hung or stopped) fails the run
