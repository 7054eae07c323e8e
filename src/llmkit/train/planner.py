"""Memory and cost planner: for a model, sequence, batch, precision and cluster, the memory each
strategy needs per device, whether it fits, and the time and price of a token budget.

Memory per device (bytes), P parameters, sharding degree S (ZeRO stage decides what is divided):
    parameters      P x 4 (fp32 master weights)           / S for ZeRO-3, / TP / PP
    gradients       P x 4                                  / S for ZeRO-2 and 3
    optimizer       P x 8 (AdamW: two fp32 moments)        / S for ZeRO-1, 2 and 3
    activations     per block and token: (10 d + 4 ff + 2 kv) values saved for backward (pre-norm
                    block with fused SDPA attention, no T^2 term), x layers / PP, / TP for the
                    sharded parts; only the block inputs with full activation checkpointing; plus
                    two blocks' worth alive at the backward peak (recomputation and gradient
                    temporaries of the block being differentiated)
    logits          B T V x 3 fp32 values at the backward peak (log-softmax, its gradient, the
                    logits' gradient; the logits themselves are not kept by the loss)
Time: 6 N D FLOPs for D tokens (Kaplan et al. 2020) at an assumed MFU.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmkit.model import ModelConfig, count_parameters

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass
class Hardware:
    memory_gb: float = 80.0  # per device
    devices_per_node: int = 8
    nodes: int = 1
    peak_tflops: float = 989.0  # per device, dense, in the training precision
    price_per_device_hour: float = 2.5
    mfu: float = 0.4  # assumed model FLOPs utilisation

    @property
    def devices(self) -> int:
        return self.devices_per_node * self.nodes


@dataclass
class Strategy:
    name: str
    dp: int = 1
    zero: int = 0  # 0 = DDP; 1, 2, 3 = ZeRO stage (FSDP2 full sharding = 3)
    tp: int = 1
    pp: int = 1
    activation_checkpointing: bool = False
    cpu_offload: bool = False
    trainable_fraction: float = 1.0  # LoRA trains a small fraction
    weight_bytes: float = 4.0  # QLoRA keeps frozen weights in 4 bits (0.5 bytes + scales)


def activation_values_per_token(cfg: ModelConfig) -> float:
    """Values one pre-norm block saves for backward per token (inputs of each matmul, norm and
    activation), with a fused attention kernel (no T^2 attention matrix)."""
    kv = 2 * cfg.n_kv_head * cfg.head_dim
    gated = cfg.activation in ("swiglu", "geglu", "reglu")
    return 10 * cfg.d_model + (4 if gated else 2) * cfg.d_ff + kv


def memory_per_device(cfg: ModelConfig, s: Strategy, seq_len: int, micro_batch: int, precision: str = "fp32") -> dict:
    params = count_parameters(cfg)
    model_split = s.tp * s.pp
    shard = s.dp if s.zero else 1
    trainable = params * s.trainable_fraction
    weights = params * s.weight_bytes / model_split / (shard if s.zero >= 3 else 1)
    grads = trainable * 4 / model_split / (shard if s.zero >= 2 else 1)
    optimizer = trainable * 8 / model_split / (shard if s.zero >= 1 else 1)
    if s.cpu_offload:
        weights, optimizer = weights * 0.05, 0.0  # only the block being computed stays on the device
    tokens = seq_len * micro_batch
    act_bytes = BYTES[precision]
    layers = cfg.n_layer / s.pp
    full_block = activation_values_per_token(cfg) / s.tp
    saved = cfg.d_model if s.activation_checkpointing else full_block
    transient = 2 * full_block  # the block being differentiated: recomputed values and their gradients
    activations = tokens * (layers * saved + transient) * act_bytes + tokens * cfg.d_model * 4  # + embeddings
    logits = tokens * cfg.vocab_size * 3 * 4 / s.tp
    total = weights + grads + optimizer + activations + logits
    return {"parameters": weights, "gradients": grads, "optimizer": optimizer, "activations": activations,
            "logits": logits, "total": total}


def standard_strategies(devices: int) -> list[Strategy]:
    """The strategies `llmkit pretrain` runs (each maps to flags: `launch_flags`), pipeline stages
    alone or composed with FSDP and tensor parallelism (3-D, one mesh)."""
    out = [Strategy("DDP", dp=devices)]
    out += [Strategy(f"ZeRO-{z}", dp=devices, zero=z) for z in (1, 2, 3)]
    out += [Strategy("ZeRO-3 + AC", dp=devices, zero=3, activation_checkpointing=True),
            Strategy("ZeRO-3 + AC + offload", dp=devices, zero=3, activation_checkpointing=True, cpu_offload=True)]
    for tp in (2, 4, 8):
        if devices % tp == 0 and tp <= devices:
            out.append(Strategy(f"TP{tp} x ZeRO-3 + AC", dp=devices // tp, zero=3, tp=tp, activation_checkpointing=True))
    for pp in (2, 4, 8):
        if devices % pp or pp > devices:
            continue
        dp = devices // pp
        if dp == 1:
            out.append(Strategy(f"PP{pp} + AC", pp=pp, activation_checkpointing=True))
            continue
        out.append(Strategy(f"PP{pp} x ZeRO-3 + AC", dp=dp, zero=3, pp=pp, activation_checkpointing=True))
        if dp % 2 == 0 and dp >= 4:  # 3-D: pipeline x tensor x data parallel
            out.append(Strategy(f"PP{pp} x TP2 x ZeRO-3 + AC", dp=dp // 2, zero=3, tp=2, pp=pp,
                                activation_checkpointing=True))
    out += [Strategy("LoRA (r=16) + ZeRO-3", dp=devices, zero=3, trainable_fraction=0.005),
            Strategy("QLoRA (NF4) + ZeRO-3", dp=devices, zero=3, trainable_fraction=0.005, weight_bytes=0.55)]
    return out


def launch_flags(s: Strategy) -> list[str]:
    """`llmkit pretrain` flags that run strategy s (LoRA/QLoRA rows are `llmkit finetune` methods)."""
    if s.pp > 1:
        flags = ["--parallel.pp", str(s.pp)] + (["--parallel.tp", str(s.tp)] if s.tp > 1 else [])
        flags += ["--parallel.dp_shard", "-1" if s.dp > 1 else "1"]
    elif s.zero <= 1:  # DDP; ZeRO-1 shards the optimizer states over its replicas
        flags = ["--parallel.dp_replicate", str(s.dp), "--parallel.dp_shard", "1"] + (["--parallel.zero1"] if s.zero else [])
    else:
        flags = (["--parallel.tp", str(s.tp)] if s.tp > 1 else []) + ["--parallel.dp_shard", "-1"]
        flags += ["--parallel.no-reshard-after-forward"] if s.zero == 2 else []
    flags += ["--parallel.cpu_offload"] if s.cpu_offload else []
    flags += ["--activation-checkpointing", "full"] if s.activation_checkpointing else []
    return flags


def launch_command(model: str, s: Strategy, hw: Hardware, seq_len: int, micro_batch: int, precision: str) -> str:
    """The torchrun command line for strategy s on hw (DATA and OUT to fill in)."""
    if hw.nodes > 1:
        launcher = (f"torchrun --nnodes {hw.nodes} --nproc_per_node {hw.devices_per_node} --rdzv-backend c10d "
                    "--rdzv-endpoint HOST:29500 --rdzv-id RUN_ID")
    else:
        launcher = f"torchrun --standalone --nproc_per_node {hw.devices_per_node}"
    flags = " ".join(launch_flags(s))
    return (f"{launcher} -m llmkit pretrain --model {model} --data DATA --out OUT --batch.seq_len {seq_len} "
            f"--batch.batch_size {micro_batch} --precision {precision} {flags}")


def training_time_and_cost(cfg: ModelConfig, tokens: float, hw: Hardware) -> tuple[float, float]:
    """(hours, price) for `tokens` tokens at the assumed MFU on all devices."""
    flops = 6 * count_parameters(cfg) * tokens
    seconds = flops / (hw.devices * hw.peak_tflops * 1e12 * hw.mfu)
    hours = seconds / 3600
    return hours, hours * hw.devices * hw.price_per_device_hour


def kv_cache_bytes_per_token(cfg: ModelConfig, precision: str = "bf16") -> int:
    return 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * BYTES[precision]


def plan(cfg: ModelConfig, seq_len: int, micro_batch: int, precision: str, hw: Hardware, tokens: float,
         model_ref: str | None = None) -> dict:
    """Every strategy's memory, the time and cost, and the recommended strategy with its torchrun
    command (`model_ref`: how the user named the model; default the config's name)."""
    rows = []
    for strategy in standard_strategies(hw.devices):
        memory = memory_per_device(cfg, strategy, seq_len, micro_batch, precision)
        rows.append({"strategy": strategy.name, "strategy_spec": strategy, "memory": memory,
                     "fits": memory["total"] <= hw.memory_gb * 1e9 * 0.9})  # 10% for the allocator/runtime
    hours, cost = training_time_and_cost(cfg, tokens, hw)
    weights = count_parameters(cfg) * BYTES[precision]
    kv = kv_cache_bytes_per_token(cfg, precision)
    free = hw.memory_gb * 1e9 * 0.9 - weights
    inference = {"kv_bytes_per_token": kv, "max_tokens_in_cache": max(0, int(free // kv)),
                 "max_batch_at_seq_len": max(0, int(free // (kv * seq_len)))}
    fitting = [r for r in rows if r["fits"] and not r["strategy"].startswith(("LoRA", "QLoRA"))]
    cheapest = min(fitting, key=lambda r: _comm_rank(r["strategy"]), default=None)
    return {"rows": rows, "hours": hours, "cost": cost, "inference": inference,
            "recommended": cheapest["strategy"] if cheapest else None,
            "command": launch_command(model_ref or cfg.name, cheapest["strategy_spec"], hw, seq_len, micro_batch, precision)
            if cheapest else None}


def _comm_rank(name: str) -> int:
    """Simpler strategies (less communication, no recomputation) first, when several fit."""
    order = ["DDP", "ZeRO-1", "ZeRO-2", "ZeRO-3", "ZeRO-3 + AC", "TP2", "PP2", "TP4", "PP4", "TP8", "PP8", "ZeRO-3 + AC + offload"]
    return next((i for i, prefix in enumerate(order) if name.startswith(prefix)), len(order))


def format_plan(cfg: ModelConfig, result: dict, hw: Hardware, tokens: float) -> str:
    gb = lambda b: f"{b / 1e9:7.1f}"
    lines = [f"{cfg.name}: {count_parameters(cfg):,} parameters on {hw.nodes} x {hw.devices_per_node} devices "
             f"of {hw.memory_gb:.0f} GB", "",
             f"{'strategy':<26}{'params':>8}{'grads':>8}{'optim':>8}{'activ':>8}{'logits':>8}{'total GB':>9}  fits"]
    for row in result["rows"]:
        m = row["memory"]
        lines.append(f"{row['strategy']:<26}{gb(m['parameters'])}{gb(m['gradients'])}{gb(m['optimizer'])}"
                     f"{gb(m['activations'])}{gb(m['logits'])}{gb(m['total']):>9}  {'yes' if row['fits'] else 'no'}")
    lines += ["", f"{tokens:.3g} tokens: {result['hours']:,.1f} h on {hw.devices} devices at {hw.mfu:.0%} MFU, "
                  f"about ${result['cost']:,.0f} at ${hw.price_per_device_hour}/device-hour",
              f"recommended (cheapest that fits, least communication): {result['recommended'] or 'none fits'}",
              *([f"run it: {result['command']}"] if result["command"] else []),
              f"inference: KV cache {result['inference']['kv_bytes_per_token'] / 1024:.1f} KiB/token; "
              f"{result['inference']['max_tokens_in_cache']:,} tokens fit beside the weights on one device "
              f"(batch {result['inference']['max_batch_at_seq_len']} at this sequence length)"]
    return "\n".join(lines)


