"""`llmkit pretrain`: flags come from PretrainConfig (nested: --optim.lr, --parallel.dp_shard ...)."""

from __future__ import annotations


def pretrain(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.dist.context import shutdown
    from llmkit.train.config import PretrainConfig
    from llmkit.train.pretrain import run_pretrain

    cfg = parse_with_config(PretrainConfig, args, prog)
    succeeded = False
    try:
        run_pretrain(cfg)
        succeeded = True
    finally:
        shutdown(synchronize=succeeded)


def plan(model: str, seq_len: int = 4096, micro_batch: int = 1, precision: str = "bf16", gpus_per_node: int = 8,
         nodes: int = 1, gpu_memory_gb: float = 80.0, peak_tflops: float = 989.0, price: float = 2.5,
         mfu: float = 0.4, tokens: float = 1e12) -> None:
    """Memory per device for each training strategy, what fits, and the time and cost of a token budget.

    Strategies (only those `llmkit pretrain` runs): DDP, ZeRO-1/2/3, activation checkpointing, CPU
    offload, TP degrees x ZeRO-3, pipeline stages, LoRA and QLoRA; plus the inference KV cache per
    token and the largest batch. Prints the torchrun command that runs the recommended strategy. Memory model and formulas
    are in llmkit/train/planner.py (validated against measured CPU runs within 15%).

    Args:
        model: named config (see `llmkit models`), a checkpoint directory, or its config.json.
        seq_len: training sequence length.
        micro_batch: sequences per device per micro-batch.
        precision: fp32, bf16 or fp16 (activations and the KV cache).
        gpus_per_node: devices per node.
        nodes: number of nodes.
        gpu_memory_gb: memory of one device.
        peak_tflops: dense peak TFLOP/s of one device in this precision (H100 bf16: 989).
        price: price per device-hour.
        mfu: assumed model FLOPs utilisation.
        tokens: the training token budget.
    """
    from llmkit.train.planner import Hardware, format_plan, plan as make_plan

    from llmkit.checkpoint.hf_config import resolve_config

    cfg = resolve_config(model)
    hw = Hardware(memory_gb=gpu_memory_gb, devices_per_node=gpus_per_node, nodes=nodes, peak_tflops=peak_tflops,
                  price_per_device_hour=price, mfu=mfu)
    print(format_plan(cfg, make_plan(cfg, seq_len, micro_batch, precision, hw, tokens, model_ref=model), hw, tokens))
