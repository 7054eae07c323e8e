"""llmkit vs llama.cpp on the same weights, in the same run, with the same thread count.

Random weights in a published model's shape (SmolLM2-135M, Llama-3.2-1B) are saved as an llmkit
checkpoint and exported to GGUF by llmkit (f16, q8_0, q4_0). Pairs at equal precision:

    llmkit bf16 weights (fp32 activations)   vs  llama.cpp f16
    llmkit int8 weight-only (per channel)    vs  llama.cpp q8_0
    llmkit int4 weight-only (groups of 32)   vs  llama.cpp q4_0

Rows: batch-1 greedy decode tokens/s after a 32-token prompt (prefill excluded on both sides), as a
fraction of the weight bytes' read-bandwidth limit measured in this run; prefill tokens/s of a
512-token prompt; and, with --llama-server, 32 concurrent streaming clients against `llmkit serve`
and llama.cpp's own server (`llama-server -np 32`, continuous batching) on the same prompts and
output lengths: output tokens/s and time-to-first-token p50. Ceilings (fp32/bf16/int8 GEMM, read
and copy bandwidth) are measured first and printed. Writes JSON.

llama.cpp runs in a Python that has llama-cpp-python (built from source, native flags):

    python3 -m venv /tmp/lcp && CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/lcp/bin/pip install \\
        'llama-cpp-python==0.3.36' numpy                                      # ~10 min on 2 cores
    .venv/bin/python benchmarks/llama_cpp.py --llama-python /tmp/lcp/bin/python \\
        [--llama-server PATH/llama-server] [--shapes smollm2-135m llama-3.2-1b]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.checkpoint.gguf_export import export_gguf
from llmkit.compress.quantize import quantize_model
from llmkit.decode import generate_ids
from llmkit.host.ceilings import best_seconds, describe, measure_ceilings
from llmkit.infer.fuse import prepare_for_inference
from llmkit.model import build_model, named_config
from llmkit.tokenizer import train_bpe

PAIRS = [("bf16", "f16"), ("int8", "q8_0"), ("int4", "q4_0")]

# run by the llama-cpp-python interpreter: argv = gguf, threads, JSON {prompt, long, new, repeats}
LLAMA_SIDE = """
import json, sys, time, numpy as np
from llama_cpp import Llama
path, threads, job = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
llm = Llama(model_path=path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads,
            verbose=False)
def decode():
    llm.reset(); llm.eval(job["prompt"])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    start = time.perf_counter()
    for _ in range(job["new"]):
        llm.eval([token]); token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
    return time.perf_counter() - start
def prefill():
    llm.reset(); start = time.perf_counter(); llm.eval(job["long"]); return time.perf_counter() - start
decode(); prefill()  # warm-up
print(json.dumps({"decode_s": min(decode() for _ in range(job["repeats"])),
                  "prefill_s": min(prefill() for _ in range(job["repeats"]))}))
"""


def make_checkpoint(shape: str, path: Path) -> None:
    """Random weights in `shape` with a small trained BPE tokenizer (the GGUF export pads the token
    list to the model's vocabulary; both sides are fed token ids)."""
    from llmkit.data.corpus import default_corpus

    tokenizer = train_bpe(default_corpus()[:500], vocab_size=2048, show_progress=False)
    torch.manual_seed(0)
    cfg = named_config(shape).replace(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                                      pad_token_id=tokenizer.pad_id, max_seq_len=2048)
    save_checkpoint(build_model(cfg, "cpu"), path, tokenizer=tokenizer)


def llmkit_model(checkpoint: Path, precision: str):
    if precision == "bf16":
        model = load_checkpoint(checkpoint, dtype=torch.bfloat16).eval()
    else:
        model = load_checkpoint(checkpoint).eval()
        quantize_model(model, precision, group_size=32 if precision == "int4" else None)
    return prepare_for_inference(model)


def weight_bytes_per_token(model) -> int:
    """Bytes a decode step reads: every tensor once, less the embedding table unless the output
    head is that table (then it is read whole, as the head)."""
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    embedding = model.tok_embeddings.weight
    return total - (0 if model.cfg.tie_embeddings else embedding.numel() * embedding.element_size())


def llmkit_side(checkpoint: Path, precision: str, job: dict) -> dict:
    model = llmkit_model(checkpoint, precision)
    with torch.inference_mode():
        first = best_seconds(lambda: generate_ids(model, [job["prompt"]], 1), job["repeats"])
        whole = best_seconds(lambda: generate_ids(model, [job["prompt"]], job["new"] + 1), job["repeats"])
        prefill = best_seconds(lambda: generate_ids(model, [job["long"]], 1), job["repeats"])
    return {"decode_s": whole - first, "prefill_s": prefill, "weight_bytes": weight_bytes_per_token(model)}


def llama_side(python: str, gguf: Path, threads: int, job: dict) -> dict:
    done = subprocess.run([python, "-c", LLAMA_SIDE, str(gguf), str(threads), json.dumps(job)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare_shape(shape: str, args, ceilings: dict, tmp: Path) -> list[dict]:
    checkpoint = tmp / shape
    make_checkpoint(shape, checkpoint)
    vocab = named_config(shape).vocab_size
    gen = torch.Generator().manual_seed(1)
    job = {"prompt": torch.randint(3, vocab, (32,), generator=gen).tolist(),
           "long": torch.randint(3, vocab, (args.prompt_len,), generator=gen).tolist(),
           "new": args.new_tokens, "repeats": args.repeats}
    rows = []
    for ours, theirs in PAIRS:
        gguf = tmp / f"{shape}-{theirs}.gguf"
        export_gguf(checkpoint, gguf, theirs)
        them = llama_side(args.llama_python, gguf, args.threads, job)
        us = llmkit_side(checkpoint, ours, job)
        limit = ceilings["read_bytes_per_s"] / us["weight_bytes"]
        row = {"shape": shape, "llmkit": ours, "llama_cpp": theirs, "gguf_mib": gguf.stat().st_size / 2**20,
               "weight_mib": us["weight_bytes"] / 2**20, "read_limit_tokens_per_s": limit,
               "decode_llmkit": args.new_tokens / us["decode_s"], "decode_llama_cpp": args.new_tokens / them["decode_s"],
               "prefill_llmkit": args.prompt_len / us["prefill_s"],
               "prefill_llama_cpp": args.prompt_len / them["prefill_s"]}
        row["decode_ratio"] = row["decode_llmkit"] / row["decode_llama_cpp"]
        row["prefill_ratio"] = row["prefill_llmkit"] / row["prefill_llama_cpp"]
        row["decode_of_read_limit"] = row["decode_llmkit"] / limit
        rows.append(row)
        print(f"{shape:<14}{ours:>5} vs {theirs:<5}{row['decode_llmkit']:>8.1f}{row['decode_llama_cpp']:>8.1f}"
              f"{row['decode_ratio']:>7.2f}x{row['decode_of_read_limit']:>7.0%}{row['prefill_llmkit']:>9.0f}"
              f"{row['prefill_llama_cpp']:>9.0f}{row['prefill_ratio']:>7.2f}x", flush=True)
        gguf.unlink()
    return rows


def llama_server(binary: str, gguf: Path, slots: int, context_per_slot: int, threads: int):
    """llama.cpp's own OpenAI-compatible server with `slots` parallel sequences (continuous
    batching), started and stopped like serve_load's llmkit server."""
    from serve_load import Server

    return Server.for_command(lambda port: [binary, "-m", str(gguf), "--port", str(port), "-np", str(slots),
                                            "-c", str(slots * context_per_slot), "-t", str(threads), "-tb",
                                            str(threads), "--alias", "bench", "--no-webui"])


def serving(args, tmp: Path) -> list[dict]:
    """32 streaming clients, the same prompts and output lengths, against each server."""
    from serve_load import Server, load

    from llmkit.data.corpus import default_corpus

    shape = args.shapes[0]
    checkpoint = tmp / shape
    if not checkpoint.exists():
        make_checkpoint(shape, checkpoint)
    gguf = tmp / f"{shape}-f16.gguf"
    export_gguf(checkpoint, gguf, "f16")
    docs = [d for d in default_corpus() if len(d) > 400]
    prompts = [docs[i][:400] for i in range(args.requests)]
    rows = []
    runs = [("llmkit serve (bf16)", lambda: Server(checkpoint, "--dtype", "bf16", "--max-num-seqs", str(args.clients))),
            ("llama-server (f16)", lambda: llama_server(args.llama_server, gguf, args.clients, 512, args.threads))]
    for name, server in runs:
        with server() as url:
            asyncio.run(load(url, prompts[:4], args.serve_tokens, 4))  # warm-up
            result = asyncio.run(load(url, prompts, args.serve_tokens, args.clients))
        result["server"] = name
        rows.append(result)
        print(f"{name:<22}{result['output_tokens_per_s']:>10.1f} tok/s  TTFT p50 {result['ttft_p50']:.2f} s  "
              f"errors {result['errors']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-python", required=True, help="a Python interpreter with llama-cpp-python")
    parser.add_argument("--llama-server", help="llama.cpp's llama-server binary: adds the serving rows")
    parser.add_argument("--shapes", nargs="+", default=["smollm2-135m", "llama-3.2-1b"])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--serve-tokens", type=int, default=64)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ceilings = measure_ceilings()
    print(describe(ceilings))
    print(f"{'shape':<14}{'pair':>14}{'decode tok/s':>16}{'ratio':>8}{'of lim':>7}{'prefill tok/s':>18}{'ratio':>8}")
    print(f"{'':<28}{'llmkit':>8}{'l.cpp':>8}{'':>15}{'llmkit':>9}{'l.cpp':>9}")
    result = {"ceilings": ceilings, "args": vars(args), "torch": torch.__version__, "rows": [], "serving": []}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            result["rows"] += compare_shape(shape, args, ceilings, Path(tmp))
        if args.llama_server:
            result["serving"] = serving(args, Path(tmp))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "llama_cpp.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'llama_cpp.json'}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))  # serve_load's client and server helpers
    main()
