"""Evaluation speed: the same lm-evaluation-harness requests answered by llmkit's model
(`--model llmkit`, llmkit.eval.lm_eval_adapter) and by lm-eval's own Hugging Face model (`--model
hf`) on the same checkpoint, in one process, fp32 on CPU, the same batch size:

(a) loglikelihood: 100 four-way multiple-choice questions (400 requests, arithmetic-mc);
(b) loglikelihood_rolling: perplexity of 64 documents of the built-in corpus (~1 k tokens each);
(c) generate_until: 64 greedy completions of up to 32 tokens.

The checkpoint is a random 34 M-parameter Llama (d_model 512, 8 layers) with the demo's tokenizer
(HF layout, so both load it). Prints a table and writes JSON.

    .venv/bin/python benchmarks/evaluate.py [--tokenizer runs/demo/pretrain/final] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from llmkit.checkpoint import save_checkpoint
from llmkit.data.corpus import pydoc_topics
from llmkit.eval.builtin_tasks import builtin_task
from llmkit.eval.lm_eval_adapter import LlmkitLM
from llmkit.model import build_model, named_config
from llmkit.tokenizer import Tokenizer

CONFIG = dict(d_model=512, n_layer=8, n_head=8, n_kv_head=8, d_ff=1408, max_seq_len=1024)
BATCH = 16


def requests(tokenizer: Tokenizer) -> dict[str, list[Instance]]:
    mc = builtin_task("arithmetic-mc", n=100)
    pairs = [(r["prompt"], " " + c) for r in mc.records for c in r["choices"]]
    docs = [d for d in pydoc_topics() if len(d) > 3000][:64]
    docs = [tokenizer.decode(tokenizer.encode(d, add_special_tokens=False)[:1000]) for d in docs]
    prompts = [d[:400] for d in docs]
    make = lambda kind, args: [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]
    return {"loglikelihood": make("loglikelihood", pairs),
            "loglikelihood_rolling": make("loglikelihood_rolling", [(d,) for d in docs]),
            "generate_until": make("generate_until", [(p, {"until": ["\n\n"], "max_gen_toks": 32}) for p in prompts])}


def timed(model, kind: str, batch: list[Instance]) -> tuple[float, list]:
    start = time.perf_counter()
    out = getattr(model, kind)(batch)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", default="runs/demo/pretrain/final", help="a checkpoint directory whose tokenizer to use")
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    tokenizer = Tokenizer.from_dir(args.tokenizer)
    torch.manual_seed(0)
    cfg = named_config("tiny-llama").replace(vocab_size=tokenizer.vocab_size, bos_token_id=tokenizer.bos_id,
                                             eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id, **CONFIG)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(build_model(cfg, "cpu"), tmp, tokenizer=tokenizer)
        ours = LlmkitLM(checkpoint=tmp, batch_size=BATCH)
        reference = HFLM(pretrained=tmp, device="cpu", batch_size=BATCH, dtype="float32")
        for kind, batch in requests(tokenizer).items():
            timed(ours, kind, batch[:BATCH]), timed(reference, kind, batch[:BATCH])  # warm-up
            ours_s, ours_out = timed(ours, kind, batch)
            ref_s, ref_out = timed(reference, kind, batch)
            agree = None
            if kind != "generate_until":
                first = lambda r: r[0] if isinstance(r, tuple) else r
                agree = max(abs(first(a) - first(b)) for a, b in zip(ours_out, ref_out))
            rows.append({"request": kind, "n": len(batch), "llmkit_s": ours_s, "hf_s": ref_s, "speedup": ref_s / ours_s,
                         "max_abs_loglik_diff": agree})
    print(f"{'request':<24}{'n':>5}{'llmkit s':>10}{'hf s':>9}{'speedup':>9}{'max |dlogp|':>13}")
    for r in rows:
        diff = "" if r["max_abs_loglik_diff"] is None else f"{r['max_abs_loglik_diff']:.1e}"
        print(f"{r['request']:<24}{r['n']:>5}{r['llmkit_s']:>10.2f}{r['hf_s']:>9.2f}{r['speedup']:>8.2f}x{diff:>13}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "evaluate.json").write_text(json.dumps({"parameters": sum(
        p.numel() for p in build_model(cfg).parameters()), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
