"""llmkit vs HF transformers on the same weights, same process, on CPU, at equal precision.

Measures (a) prefill throughput (tokens/s of a forward pass over B x T tokens) and (b) batch-1
greedy decode (new tokens/s, llmkit's Engine vs `generate()`), for a Llama-shaped model, in fp32
and in bf16 (transformers: the model in bf16). llmkit's model is prepared as
`LLM.load(fast_cpu=True)` prepares it: fused projections, and in bf16, bf16 weights behind fp32
activations. Prints a table and writes JSON. Ratios > 1 mean llmkit is faster.

    .venv/bin/python benchmarks/forward_and_decode.py [--model mini-llama] [--out runs/benchmarks]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from llmkit.checkpoint import load_checkpoint, save_checkpoint
from llmkit.decode import generate_ids
from llmkit.host.ceilings import best_seconds
from llmkit.infer.fuse import prepare_for_inference
from llmkit.model import build_model, named_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mini-llama", help="a llama-family named config")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = named_config(args.model)
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len))
    prompt = tokens[:1, :32]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(build_model(cfg, "cpu"), tmp)
        for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            ours = prepare_for_inference(load_checkpoint(tmp, dtype=dtype).eval())
            hf = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="sdpa", dtype=dtype).eval()
            hf.generation_config.eos_token_id = None
            with torch.inference_mode():
                rows[f"{precision} prefill tokens/s"] = [tokens.numel() / best_seconds(lambda m=m: m(tokens), args.repeats)
                                                         for m in (ours, hf)]
                ours_decode = best_seconds(lambda: generate_ids(ours, prompt.tolist(), args.new_tokens), args.repeats)
                hf_decode = best_seconds(lambda: hf.generate(prompt, max_new_tokens=args.new_tokens,
                                                        min_new_tokens=args.new_tokens, do_sample=False,
                                                        pad_token_id=0), args.repeats)
                rows[f"{precision} decode tokens/s (batch 1)"] = [args.new_tokens / ours_decode,
                                                                  args.new_tokens / hf_decode]
    print(f"model {args.model}, {torch.get_num_threads()} threads")
    print(f"{'metric':<33}{'llmkit':>12}{'transformers':>14}{'ratio':>8}")
    for name, (a, b) in rows.items():
        print(f"{name:<33}{a:>12.0f}{b:>14.0f}{a / b:>8.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": args.model, "args": vars(args), "torch": torch.__version__,
              "rows": {k: {"llmkit": a, "transformers": b, "ratio": a / b} for k, (a, b) in rows.items()}}
    (out / "forward_and_decode.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'forward_and_decode.json'}")


if __name__ == "__main__":
    main()
