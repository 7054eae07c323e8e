"""Serving many LoRA adapters at once: 32 requests in flight spread over 4 adapters (rank 16 on
every block Linear), decoded in shared batches by one Engine over a multi-LoRA model, against the
same 32 requests on the plain base model. Random 34 M-parameter Llama (d_model 512, 8 layers),
fp32 on CPU; prints a table and writes JSON. Target: >= 0.7x the base model's throughput.

    .venv/bin/python benchmarks/multi_lora.py [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from llmkit.decode.engine import Engine, EngineConfig
from llmkit.decode.sampling_params import SamplingParams
from llmkit.finetune.peft.lora import LoraConfig, apply_lora, save_adapter
from llmkit.finetune.peft.multi_lora import MultiLoRA
from llmkit.model import build_model, named_config

REQUESTS, TOKENS, ADAPTERS, RANK = 32, 64, 4, 16
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_adapters(model, root: Path) -> list[Path]:
    paths = []
    for i in range(ADAPTERS):
        tuned = copy.deepcopy(model)
        apply_lora(tuned, LoraConfig(r=RANK, alpha=2.0 * RANK, target_modules=TARGETS))
        for module in tuned.modules():
            if hasattr(module, "lora_B"):
                torch.nn.init.normal_(module.lora_B.weight, std=0.02)
        save_adapter(tuned, root / f"adapter{i}")
        paths.append(root / f"adapter{i}")
    return paths


def timed(engine: Engine, slots: list[int]) -> tuple[float, int]:
    params = SamplingParams(max_tokens=TOKENS, ignore_eos=True)
    start = time.perf_counter()
    for i, slot in enumerate(slots):
        engine.add_request([5 + i, 9, 13, 21, 34], params, adapter_slot=slot, cache_salt=slot or None)
    tokens = 0
    while engine.has_work():
        tokens += sum(len(out.new_token_ids) for out in engine.step())
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = named_config("mini-llama").replace(d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408,
                                             vocab_size=4096, max_seq_len=512)
    base = build_model(cfg, "cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_adapters(base, Path(tmp))
        served = copy.deepcopy(base)
        multi = MultiLoRA(served, max_loras=ADAPTERS, max_rank=RANK)
        slots = [multi.load(f"a{i}", p) for i, p in enumerate(paths)]
    config = EngineConfig(max_num_seqs=REQUESTS)
    plain = Engine(base, config=config)
    mixed = Engine(served, config=config, select_adapters=multi.select)
    timed(plain, [0])  # warm-up (kernel build, allocator)
    timed(mixed, [slots[0]])
    rows = []
    for _ in range(2):  # alternate, so drift of the machine hits both sides
        seconds, tokens = timed(plain, [0] * REQUESTS)
        rows.append({"run": "base model", "seconds": seconds, "tokens_per_s": tokens / seconds})
        seconds, tokens = timed(mixed, [slots[i % ADAPTERS] for i in range(REQUESTS)])
        rows.append({"run": f"{ADAPTERS} adapters mixed", "seconds": seconds, "tokens_per_s": tokens / seconds})
    base_speed = max(r["tokens_per_s"] for r in rows if r["run"] == "base model")
    mixed_speed = max(r["tokens_per_s"] for r in rows if r["run"] != "base model")
    print(f"{'run':<22} {'s':>7} {'tok/s':>8}")
    for r in rows:
        print(f"{r['run']:<22} {r['seconds']:>7.2f} {r['tokens_per_s']:>8.1f}")
    print(f"{ADAPTERS} adapters (rank {RANK}, every block Linear) : base = {mixed_speed / base_speed:.2f}x "
          f"at {REQUESTS} requests in flight")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "multi_lora.json").write_text(json.dumps({"rows": rows, "ratio": mixed_speed / base_speed}, indent=1))


if __name__ == "__main__":
    main()
