"""Run under torchrun by test_zero_memory: one training step of a tiny model under a ZeRO stage,
then this rank's optimizer-state and gradient bytes beside what the planner predicts (JSON line)."""

import json
import sys
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor

from llmkit.dist.config import ParallelConfig
from llmkit.dist.context import init_distributed, shutdown
from llmkit.dist.parallelize import parallelize
from llmkit.model import build_model, named_config
from llmkit.train.config import PretrainConfig
from llmkit.train.planner import Strategy, memory_per_device
from llmkit.train.trainer import build_optimizer


def local_bytes(t: torch.Tensor) -> int:
    t = t.to_local() if isinstance(t, DTensor) else t
    return t.numel() * t.element_size()


def main() -> None:
    zero = int(sys.argv[1])
    parallel = {1: ParallelConfig(dp_replicate=2, dp_shard=1, zero1=True), 2: ParallelConfig(dp_shard=2, reshard_after_forward=False),
                3: ParallelConfig(dp_shard=2)}[zero]
    ctx = init_distributed(parallel, "cpu")
    torch.manual_seed(0)
    cfg = named_config("tiny-llama").replace(vocab_size=512)
    model = parallelize(build_model(cfg, "cpu"), ctx, parallel)
    optimizer = build_optimizer(model, PretrainConfig(data="unused", parallel=parallel), ctx)
    model(torch.randint(0, 512, (2, 32))).float().logsumexp(-1).mean().backward()
    optimizer.step()
    local = optimizer.optim if hasattr(optimizer, "optim") else optimizer  # ZeRO-1 wraps this rank's AdamW
    states = sum(local_bytes(v) for s in local.state.values() for k, v in s.items() if k != "step")
    grads = sum(local_bytes(p.grad) for p in model.parameters() if p.grad is not None)
    predicted = memory_per_device(cfg, Strategy("x", dp=2, zero=zero), 32, 1)
    row = {"rank": ctx.rank, "optimizer": states, "gradients": grads, "predicted_optimizer": predicted["optimizer"],
           "predicted_gradients": predicted["gradients"]}
    (Path(sys.argv[2]) / f"rank{ctx.rank}.json").write_text(json.dumps(row))  # one file per rank: no interleaving
    shutdown(synchronize=True)


if __name__ == "__main__":
    main()
