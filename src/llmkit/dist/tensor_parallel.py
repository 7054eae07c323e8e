"""Tensor parallelism (Megatron-LM, arXiv 1909.08053) with DTensor `parallelize_module` plans.

In each block the first projections are split by output columns and the second by input rows,
so a block needs one all-reduce in forward for attention and one for the MLP:

    q/k/v_proj, gate/up_proj   ColwiseParallel   (each rank holds n_head/tp heads, d_ff/tp units)
    o_proj, down_proj          RowwiseParallel   (partial sums all-reduced into a replicated output)

With `sequence_parallel`, norms and residuals run sharded along the sequence (Korthikanti et al.,
arXiv 2205.05198): the all-reduce becomes reduce-scatter + all-gather around each sublayer.
Embeddings, norms and the head stay replicated (their gradients are identical on every rank).
"""

from __future__ import annotations

from torch import nn

from llmkit.dist.stacks import all_blocks
from llmkit.errors import LlmkitError

BLOCK_PLAN = {
    "attn.q_proj": "colwise", "attn.k_proj": "colwise", "attn.v_proj": "colwise", "attn.o_proj": "rowwise",
    "mlp.gate_proj": "colwise", "mlp.up_proj": "colwise", "mlp.down_proj": "rowwise",
}


def _styles():
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel

    return {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}


def apply_tensor_parallel(model: nn.Module, tp_mesh, sequence_parallel: bool = False) -> None:
    from torch.distributed.tensor.parallel import parallelize_module

    cfg, size = model.cfg, tp_mesh.size()
    if sequence_parallel:
        _check_sequence_parallel(cfg, size)
    if cfg.n_expert:
        raise LlmkitError("tensor parallelism of Mixture-of-Experts layers is not supported; use FSDP")
    if cfg.n_head % size or cfg.n_kv_head % size or cfg.d_ff % size:
        raise LlmkitError(f"--parallel.tp {size} must divide n_head={cfg.n_head}, n_kv_head={cfg.n_kv_head} "
                          f"and d_ff={cfg.d_ff}")
    styles = _styles()
    for block in all_blocks(model):
        plan = {name: styles[style]() for name, style in BLOCK_PLAN.items() if _has(block, name)}
        if sequence_parallel:
            plan |= _sequence_parallel_block_plan()
        parallelize_module(block, tp_mesh, plan)  # attention reads its head counts off the sharded projections
    if sequence_parallel:
        parallelize_module(model, tp_mesh, _sequence_parallel_model_plan())


def _check_sequence_parallel(cfg, size: int) -> None:
    if cfg.arch != "decoder" or cfg.tie_embeddings or cfg.position in ("learned", "sinusoidal") or cfg.vocab_size % size:
        raise LlmkitError("sequence parallelism needs a decoder-only model with untied embeddings, no added "
                          f"position embedding, and a vocabulary divisible by tp={size}")


def _sequence_parallel_block_plan() -> dict:
    """Norms on sequence shards; attention and MLP gather the sequence first and reduce-scatter after."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import PrepareModuleInput, RowwiseParallel, SequenceParallel

    gather = lambda: PrepareModuleInput(input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),))
    return {"attn_norm": SequenceParallel(), "mlp_norm": SequenceParallel(),
            "attn": PrepareModuleInput(input_layouts=(Shard(1), None, None), desired_input_layouts=(Replicate(), None, None)),
            "mlp": gather(),
            "attn.o_proj": RowwiseParallel(output_layouts=Shard(1)), "mlp.down_proj": RowwiseParallel(output_layouts=Shard(1))}


def _sequence_parallel_model_plan() -> dict:
    """Vocabulary-sharded embeddings emit a sequence-sharded residual stream; the head gathers it."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, SequenceParallel

    return {"tok_embeddings": RowwiseParallel(input_layouts=Replicate(), output_layouts=Shard(1)),
            "norm": SequenceParallel(),
            "lm_head": ColwiseParallel(input_layouts=Shard(1), output_layouts=Replicate())}


def _has(module: nn.Module, dotted: str) -> bool:
    for part in dotted.split("."):
        if not hasattr(module, part):
            return False
        module = getattr(module, part)
    return True
