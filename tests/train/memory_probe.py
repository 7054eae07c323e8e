"""Run in a fresh process: peak resident memory of two real training steps (printed, bytes).
Fresh because the allocator keeps freed memory: a second measurement in one process reads low."""

import json
import sys

import torch

from llmkit.host.memory import process_memory_bytes, reset_peak_memory


def main() -> None:
    from llmkit.dist.parallelize import apply_activation_checkpointing
    from llmkit.model import build_model, named_config

    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = named_config("tiny-llama").replace(**spec["model"])
    reset_peak_memory()  # VmHWM := the current size
    base = process_memory_bytes("VmRSS")
    model = build_model(cfg, "cpu")
    apply_activation_checkpointing(model, "full" if spec["ac"] else "none")
    optimizer = torch.optim.AdamW(model.parameters(), foreach=True)
    tokens = torch.randint(0, cfg.vocab_size, (spec["batch"], spec["seq"] + 1))
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del loss
    print(process_memory_bytes("VmHWM") - base)


if __name__ == "__main__":
    main()
