"""Peak memory of loading a checkpoint, measured in a fresh process (Linux /proc), for llmkit and
for transformers on the same directory: the figure `benchmarks/load_memory.py` reports and the
slow test checks.

    python -m llmkit.checkpoint.load_memory llmkit|transformers CHECKPOINT_DIR

prints JSON: {"baseline": RSS before loading, "peak": VmHWM after loading, "peak_forward": VmHWM
after one forward pass of 8 tokens (every weight read: a lazily mapped loader's pages are in by
then), "weight_bytes": ...}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def weight_bytes(checkpoint: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(checkpoint).glob("*.safetensors"))


def measure(loader: str, checkpoint: str | Path) -> dict:
    """Run the loader in a new process; the peak counts only what loading added to its baseline."""
    result = subprocess.run([sys.executable, "-m", "llmkit.checkpoint.load_memory", loader, str(checkpoint)],
                            capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["added"] = figures["peak"] - figures["baseline"]
    figures["ratio"] = figures["added"] / figures["weight_bytes"]
    figures["ratio_forward"] = (figures["peak_forward"] - figures["baseline"]) / figures["weight_bytes"]
    return figures


def _main(loader: str, checkpoint: str) -> None:
    import torch

    from llmkit.host.memory import process_memory_bytes, reset_peak_memory

    if loader == "transformers":
        from transformers import AutoModelForCausalLM
    else:
        from llmkit.checkpoint import load_checkpoint
    baseline = process_memory_bytes("VmRSS")
    reset_peak_memory()
    if loader == "transformers":
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype="auto")
    else:
        model = load_checkpoint(checkpoint)
    dtype = str(next(model.parameters()).dtype)
    peak = process_memory_bytes("VmHWM")
    with torch.no_grad():
        model(torch.zeros(1, 8, dtype=torch.long))
    print(json.dumps({"baseline": baseline, "peak": peak, "peak_forward": process_memory_bytes("VmHWM"),
                      "weight_bytes": weight_bytes(checkpoint), "dtype": dtype}))


if __name__ == "__main__":
    _main(sys.argv[1], sys.argv[2])
