"""Peak resident memory of serving a checkpoint: a fresh process loads it (compressed or not),
decodes, and reports the high-water mark of its resident set (VmHWM) above what the process held
after its imports. A fresh process per checkpoint keeps earlier methods' freed heap out of the
number. Linux only (it reads /proc); elsewhere the peak is None.

    python -m llmkit.eval.decode_memory CHECKPOINT_DIR [NEW_TOKENS]   # prints one JSON line
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llmkit.host.memory import process_memory_bytes


def peak_decode_memory(checkpoint: str | Path, new_tokens: int = 64) -> int | None:
    """Bytes of peak resident memory above the imports, measured in a child process."""
    done = subprocess.run([sys.executable, "-m", "llmkit.eval.decode_memory", str(checkpoint), str(new_tokens)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def main(argv: list[str]) -> None:
    # imported before the baseline: the libraries are not the model's cost
    from llmkit.infer.llm import LLM

    base = process_memory_bytes("VmRSS")
    llm = LLM.load(argv[0])
    llm.generate("The", max_new_tokens=int(argv[1]) if len(argv) > 1 else 64)
    peak = process_memory_bytes("VmHWM")
    print(json.dumps({"peak_bytes": None if peak is None or base is None else peak - base}))


if __name__ == "__main__":
    main(sys.argv[1:])
