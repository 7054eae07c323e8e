import math

import torch


def windows(data_dir, split: str, seq_len: int = 64, count: int = 16) -> torch.Tensor:
    """`count` consecutive (seq_len + 1)-token windows of a split, (count, seq_len + 1)."""
    from llmkit.data.loader import TokenDataset

    data = TokenDataset(data_dir, split)
    n = min(count, (len(data) - 1) // (seq_len + 1))
    return torch.stack([torch.from_numpy(data.tokens(i * (seq_len + 1), seq_len + 1)) for i in range(n)])


@torch.no_grad()
def perplexity(model, tokens: torch.Tensor) -> float:
    logits = model(tokens[:, :-1])
    return math.exp(torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten()).item())


def layer_output_error(checkpoint, data_dir, transform) -> float:
    """Summed ||layer(X) - reference layer(X)||^2 over every block Linear on held-out activations X,
    after transform(model, calibration batches) changed the model's Linears in place."""
    from llmkit.checkpoint import load_checkpoint
    from llmkit.compress.calibration import collect_input_stats, linear_targets

    reference = load_checkpoint(checkpoint)
    names = linear_targets(reference)
    held = collect_input_stats(reference, list(windows(data_dir, "val", count=16).split(8)), names, keep_rows=1024)
    model = load_checkpoint(checkpoint)
    transform(model, list(windows(data_dir, "train", count=32).split(8)))
    with torch.no_grad():
        return sum((model.get_submodule(n)(held[n].sample) - reference.get_submodule(n)(held[n].sample)).pow(2).sum().item()
                   for n in names)
