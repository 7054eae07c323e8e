"""Inference: llmkit vs transformers `generate()`, same checkpoint, one process, fp32 on CPU.

(a) batch-1 greedy decode tokens/s: llmkit's static-cache fast path vs `generate()`;
(b) offline throughput for 64 prompts of mixed lengths (32-512 tokens) and outputs (16-256):
    llmkit's continuous-batching engine vs `generate()` on padded static batches in arrival
    order (every row of a batch runs to the batch's longest output); useful tokens only;
(c) batch-1 decode as a fraction of the memory-bandwidth limit: weight bytes read per token over
    the copy bandwidth measured in this run (bytes of a 512 MiB tensor copied per second), and
    over the read bandwidth (a 512 MiB sum), since decoding only reads weights;
(d) memory: KV bytes per token and concurrent sequences of a given context in a KV budget;
(e) memory scheduling: batch-1 decode with block weights streamed from the memory-mapped
    checkpoint (at most two blocks resident), with and without next-block prefetch, vs in memory.
Prints a table and writes JSON.

    .venv/bin/python benchmarks/inference.py [--quick] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.host.allocator import keep_freed_memory
from llmkit.host.ceilings import copy_bandwidth, read_bandwidth
from llmkit.decode import generate_ids
from llmkit.decode.engine import Engine, EngineConfig
from llmkit.infer.offload import load_streaming
from llmkit.decode.paged_cache import PagedKVCache
from llmkit.decode.sampling_params import SamplingParams
from llmkit.model import build_model, named_config

CONFIG = dict(vocab_size=8192, d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408, max_seq_len=2048)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def workload(n: int, seed: int = 0) -> list[tuple[list[int], int]]:
    rng = random.Random(seed)
    return [([rng.randrange(1, CONFIG["vocab_size"]) for _ in range(rng.randint(32, 512))], rng.randint(16, 256))
            for _ in range(n)]


def hf_static_batches(hf, work, batch: int) -> float:
    """Seconds for `generate()` over padded batches in arrival order."""
    start = time.perf_counter()
    for i in range(0, len(work), batch):
        chunk = work[i:i + batch]
        width = max(len(p) for p, _ in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (p, _) in enumerate(chunk):
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        longest = max(n for _, n in chunk)
        hf.generate(ids, attention_mask=mask, max_new_tokens=longest, min_new_tokens=longest, do_sample=False,
                    pad_token_id=0)
    return time.perf_counter() - start


def engine_offline(model, work, kv_mib: float, kv_dtype: str = "auto") -> tuple[float, dict]:
    engine = Engine(model, config=EngineConfig(kv_cache_mib=kv_mib, max_num_seqs=64, max_tokens_per_step=512,
                                               kv_cache_dtype=kv_dtype))
    for prompt, n in work:
        engine.add_request(prompt, SamplingParams(max_tokens=n, ignore_eos=True))
    start = time.perf_counter()
    produced = 0
    while engine.has_work():
        produced += sum(len(o.new_token_ids) for o in engine.step())
    seconds = time.perf_counter() - start
    assert produced == sum(n for _, n in work), (produced, sum(n for _, n in work))
    return seconds, engine.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--hf-batch", type=int, nargs="+", default=[8, 32, 64],
                        help="static batch sizes tried for transformers; the fastest is the reference")
    parser.add_argument("--kv-mib", type=float, default=1024, help="llmkit's KV cache budget")
    parser.add_argument("--quick", action="store_true", help="16 prompts instead of 64 (smoke run)")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    keep_freed_memory()
    from transformers import AutoModelForCausalLM

    cfg = named_config("tiny-llama").replace(name="llama-30m", **CONFIG)
    torch.manual_seed(0)
    tmp_dir = tempfile.TemporaryDirectory()
    tmp = tmp_dir.name
    save_checkpoint(build_model(cfg, "cpu"), tmp)
    ours = load_checkpoint(tmp).eval()
    hf = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="sdpa").eval()
    hf.generation_config.eos_token_id = None
    prompt = list(range(1, 33))
    result: dict = {"config": CONFIG, "args": vars(args), "threads": torch.get_num_threads()}

    with torch.inference_mode():
        n = args.new_tokens
        hf_generate = lambda: hf.generate(torch.tensor([prompt]), max_new_tokens=n, min_new_tokens=n,
                                          do_sample=False, pad_token_id=0)
        ours_generate = lambda: generate_ids(ours, [prompt], n)
        decode = {"transformers": n / min(timed(hf_generate) for _ in range(3)),
                  "llmkit": n / min(timed(ours_generate) for _ in range(3))}
    weight_bytes = sum(p.numel() * p.element_size() for name, p in ours.named_parameters() if "tok_embeddings" not in name)
    bandwidth, read = copy_bandwidth(), read_bandwidth()
    limit, read_limit = bandwidth / weight_bytes, read / weight_bytes
    result["decode_tokens_per_s"] = decode
    result["bandwidth"] = {"copy_bytes_per_s": bandwidth, "read_bytes_per_s": read, "weight_bytes_per_token": weight_bytes,
                           "limit_tokens_per_s": limit, "fraction": {k: v / limit for k, v in decode.items()},
                           "read_limit_tokens_per_s": read_limit,
                           "fraction_of_read_limit": {k: v / read_limit for k, v in decode.items()}}

    work = workload(16 if args.quick else args.prompts)
    useful = sum(n for _, n in work)
    with torch.inference_mode():
        hf_by_batch = {b: hf_static_batches(hf, work, b) for b in args.hf_batch}
    best_batch = min(hf_by_batch, key=hf_by_batch.get)
    hf_s = hf_by_batch[best_batch]
    ours_s, stats = engine_offline(ours, work, args.kv_mib)
    result["offline"] = {"requests": len(work), "useful_output_tokens": useful, "transformers_s_by_batch": hf_by_batch,
                         "transformers_best_batch": best_batch,
                         "transformers_s": hf_s, "llmkit_s": ours_s, "transformers_tokens_per_s": useful / hf_s,
                         "llmkit_tokens_per_s": useful / ours_s, "ratio": hf_s / ours_s, "engine": stats}

    ours_bf16_s, _ = engine_offline(ours, work, args.kv_mib, "bfloat16")
    result["offline"] |= {"llmkit_bf16_kv_s": ours_bf16_s, "ratio_bf16_kv": hf_s / ours_bf16_s}

    streamed = {}
    for prefetch in (True, False):
        model, streamer = load_streaming(tmp, prefetch=prefetch)
        run = lambda m=model: generate_ids(m, [prompt], 32)
        run()
        streamed["prefetch" if prefetch else "no prefetch"] = 32 / min(timed(run) for _ in range(3))
        streamed[f"max resident blocks ({'prefetch' if prefetch else 'no prefetch'})"] = streamer.stats.max_resident_blocks
    result["streaming"] = streamed | {"in memory": decode["llmkit"]}
    tmp_dir.cleanup()

    kv_per_token = PagedKVCache.bytes_per_token(cfg, torch.float32)
    budget = args.kv_mib * 2**20
    result["memory"] = {"kv_bytes_per_token": kv_per_token, "kv_budget_bytes": budget,
                        "max_sequences": {ctx: int(budget // (kv_per_token * ctx)) for ctx in (512, 1024, 2048)}}

    print(f"llama-30m (8 x 512, vocab 8192), fp32, {torch.get_num_threads()} threads")
    print(f"(a) batch-1 decode tokens/s: " + ", ".join(f"{k} {v:.0f}" for k, v in decode.items())
          + f"  -> ratio {decode['llmkit'] / decode['transformers']:.2f}x")
    tried = ", ".join(f"batch {b}: {s:.1f} s" for b, s in hf_by_batch.items())
    print(f"(b) offline, {len(work)} requests, {useful} output tokens: transformers static batches ({tried}); "
          f"llmkit engine {ours_s:.1f} s -> {hf_s / ours_s:.2f}x the fastest")
    print(f"(c) bandwidth limit {limit:.0f} tokens/s ({weight_bytes / 1e6:.0f} MB per token at "
          f"{bandwidth / 1e9:.1f} GB/s copy): " + ", ".join(f"{k} {v / limit:.0%}" for k, v in decode.items())
          + f"; against read bandwidth {read / 1e9:.1f} GB/s ({read_limit:.0f} tokens/s): "
          + ", ".join(f"{k} {v / read_limit:.0%}" for k, v in decode.items()))
    print(f"    with bf16 KV storage: {ours_bf16_s:.1f} s -> {hf_s / ours_bf16_s:.2f}x")
    print(f"(e) weights streamed from disk, batch-1 decode tokens/s: prefetch {streamed['prefetch']:.0f}, "
          f"no prefetch {streamed['no prefetch']:.0f}, in memory {decode['llmkit']:.0f} "
          f"(at most {streamed['max resident blocks (prefetch)']} of {cfg.n_layer} blocks resident)")
    print(f"(d) KV {kv_per_token / 1024:.0f} KiB per token; in {args.kv_mib:.0f} MiB: "
          + ", ".join(f"{v} sequences of {k}" for k, v in result["memory"]["max_sequences"].items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'inference.json'}")


if __name__ == "__main__":
    main()
