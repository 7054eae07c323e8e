"""Serving under bounded load on loopback: `llmkit serve` processes driven by C concurrent
streaming clients (C = 1, 8, 32) over the same fixed set of requests.

Reports requests/s, output tokens/s, p50/p99 time to first token and inter-token latency, and
errors, against sequential serving of the same requests (a server that computes one request at a
time, `--max-num-seqs 1`, fed by one client) in the same run. A last run sends more clients than
`--max-queue` allows: the excess must get 429s and nothing else. Prints a table, writes JSON.

    .venv/bin/python benchmarks/serve_load.py [--requests 64] [--max-tokens 64] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch

from llmkit.checkpoint import save_checkpoint
from llmkit.data.corpus import default_corpus
from llmkit.model import build_model, named_config
from llmkit.tokenizer import train_bpe

CONFIG = dict(d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408, max_seq_len=2048)


def make_checkpoint(path: Path) -> list[str]:
    """The benchmark model (random weights) with a BPE tokenizer trained on the built-in corpus;
    returns documents to cut prompts from."""
    docs = default_corpus()
    tokenizer = train_bpe(docs[:2000], vocab_size=8192, show_progress=False)
    torch.manual_seed(0)
    cfg = named_config("tiny-llama").replace(name="llama-30m", vocab_size=tokenizer.vocab_size, **CONFIG)
    save_checkpoint(build_model(cfg, "cpu"), path, tokenizer=tokenizer)
    return docs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`llmkit serve` on a free loopback port; `with` waits for /health and stops it after."""

    def __init__(self, checkpoint: Path | None, *flags: str, command=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = command or (lambda port: [sys.executable, "-m", "llmkit", "serve", "--checkpoint", str(checkpoint),
                                            "--port", str(port), "--model-name", "bench", *flags])
        self.proc = subprocess.Popen(command(self.port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @classmethod
    def for_command(cls, command) -> Server:
        """Another OpenAI-compatible server: command(port) is its argv."""
        return cls(None, command=command)

    def __enter__(self) -> str:
        for _ in range(1200):  # up to 2 minutes; a loading server refuses connections or answers 503
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return self.url
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(60)


async def one_request(http: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> dict:
    body = {"model": "bench", "prompt": prompt, "max_tokens": max_tokens, "stream": True, "ignore_eos": True,
            "temperature": 0, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    stamps, tokens = [], 0
    async with http.stream("POST", url + "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return {"status": response.status_code}
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["text"]:
                stamps.append(time.perf_counter())
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return {"status": 200, "ttft": stamps[0] - start if stamps else None,
            "itl": [b - a for a, b in zip(stamps, stamps[1:])], "tokens": tokens}


async def load(url: str, prompts: list[str], max_tokens: int, concurrency: int) -> dict:
    queue = list(prompts)
    results = []

    async def client(http):
        while queue:
            results.append(await one_request(http, url, queue.pop(0), max_tokens))

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    ok = [r for r in results if r["status"] == 200]
    ttft = sorted(r["ttft"] for r in ok if r["ttft"] is not None)
    itl = sorted(x for r in ok for x in r["itl"])
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
    statuses = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {"concurrency": concurrency, "seconds": seconds, "requests": len(results), "requests_per_s": len(ok) / seconds,
            "output_tokens_per_s": sum(r["tokens"] for r in ok) / seconds,
            "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99), "itl_p50": pct(itl, 0.5), "itl_p99": pct(itl, 0.99),
            "itl_mean": statistics.fmean(itl) if itl else float("nan"), "statuses": statuses,
            "errors": len(results) - len(ok)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "bench"
        docs = make_checkpoint(checkpoint)
        long_docs = [d for d in docs if len(d) > 1500]
        prompts = [rng.choice(long_docs)[: rng.randint(200, 1200)] for _ in range(args.requests)]
        rows = []
        with Server(checkpoint, "--max-num-seqs", "1", "--max-queue", "1000") as url:
            asyncio.run(load(url, prompts[:2], args.max_tokens, 1))  # warm-up (kernel build, first allocations)
            sequential = asyncio.run(load(url, prompts, args.max_tokens, 1)) | {"mode": "sequential"}
        rows.append(sequential)
        with Server(checkpoint, "--max-num-seqs", "64", "--max-queue", "1000") as url:
            asyncio.run(load(url, prompts[:2], args.max_tokens, 1))
            for c in args.concurrency:
                rows.append(asyncio.run(load(url, prompts, args.max_tokens, c)) | {"mode": "continuous batching"})
        with Server(checkpoint, "--max-num-seqs", "64", "--max-queue", "16") as url:
            overload = asyncio.run(load(url, prompts, args.max_tokens, 48)) | {"mode": "48 clients, max-queue 16"}
        rows.append(overload)
    base = sequential["output_tokens_per_s"]
    print(f"llama-30m, fp32, {args.requests} requests x {args.max_tokens} output tokens, prompts 200-1200 characters")
    print(f"{'mode':<28}{'C':>4}{'req/s':>8}{'out tok/s':>11}{'vs seq':>8}{'TTFT p50':>10}{'p99':>8}"
          f"{'ITL p50':>9}{'p99':>8}{'errors':>8}")
    for r in rows:
        print(f"{r['mode']:<28}{r['concurrency']:>4}{r['requests_per_s']:>8.2f}{r['output_tokens_per_s']:>11.1f}"
              f"{r['output_tokens_per_s'] / base:>8.2f}{r['ttft_p50']:>10.3f}{r['ttft_p99']:>8.3f}"
              f"{r['itl_p50']:>9.3f}{r['itl_p99']:>8.3f}{r['errors']:>8}  {r['statuses']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serve_load.json").write_text(json.dumps({"args": vars(args), "config": CONFIG, "rows": rows}, indent=2))
    print(f"wrote {out / 'serve_load.json'}")


if __name__ == "__main__":
    main()
