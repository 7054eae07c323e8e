"""Does llama.cpp run what `llmkit export gguf` writes? Exports a checkpoint as f16, q8_0 and q4_0,
loads each file in llama.cpp (through the llama-cpp-python bindings, in a Python that has them),
and compares its tokenization and logits with llmkit's fp32 model on the same text. Prints a table
and writes JSON. Not part of the test suite: llama-cpp-python builds llama.cpp from source.

    python3 -m venv /tmp/lcp && /tmp/lcp/bin/pip install llama-cpp-python==0.3.2 numpy   # ~2 min build
    .venv/bin/python benchmarks/gguf_llama_cpp.py --llama-python /tmp/lcp/bin/python \\
        [--checkpoint runs/demo/pretrain/final]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from llmkit.checkpoint import load_checkpoint
from llmkit.checkpoint.gguf_export import export_gguf
from llmkit.tokenizer import Tokenizer

TEXT = "The old lamp stood by the river, and the bird sang over the water until night came."

# run by the llama-cpp-python interpreter: argv = gguf path, text, token ids (JSON), output .npy
LLAMA_CPP_SIDE = """
import json, sys, numpy as np
from llama_cpp import Llama
path, text, ids, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
llm = Llama(model_path=path, n_ctx=len(ids) + 8, logits_all=True, verbose=False)
llm.eval(ids)
np.save(out, np.array(llm.scores[: len(ids)], dtype=np.float32))
print(json.dumps(llm.tokenize(text.encode(), add_bos=False, special=False)))
"""


def compare(checkpoint: str, llama_python: str, kinds: list[str]) -> list[dict]:
    tokenizer = Tokenizer.from_dir(checkpoint)
    ids = tokenizer.encode(TEXT)
    with torch.no_grad():
        reference = load_checkpoint(checkpoint).eval()(torch.tensor([ids]))[0].numpy()  # (T, V)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            gguf, scores = Path(tmp) / f"model-{kind}.gguf", Path(tmp) / f"{kind}.npy"
            export_gguf(checkpoint, gguf, kind)
            done = subprocess.run([llama_python, "-c", LLAMA_CPP_SIDE, str(gguf), TEXT, json.dumps(ids), str(scores)],
                                  capture_output=True, text=True, check=True)
            logits = np.load(scores)
            rows.append({"type": kind, "mib": gguf.stat().st_size / 2**20, "tokens": len(ids),
                         "same_tokenization": json.loads(done.stdout.strip().splitlines()[-1]) == ids,
                         "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                         "argmax_agreement": float((logits.argmax(-1) == reference.argmax(-1)).mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/demo/pretrain/final")
    parser.add_argument("--llama-python", required=True, help="a Python interpreter with llama-cpp-python installed")
    parser.add_argument("--types", nargs="+", default=["f16", "q8_0", "q4_0"])
    parser.add_argument("--out", default="runs/benchmarks")
    args = parser.parse_args()
    rows = compare(args.checkpoint, args.llama_python, args.types)
    print(f"{'type':<6}{'MiB':>7}{'same tokens':>13}{'max |dlogit|':>14}{'argmax agree':>14}")
    for r in rows:
        print(f"{r['type']:<6}{r['mib']:>7.1f}{str(r['same_tokenization']):>13}{r['max_abs_logit_diff']:>14.4f}"
              f"{r['argmax_agreement']:>14.0%}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gguf_llama_cpp.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
