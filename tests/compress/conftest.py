import math

import pytest
import torch


@pytest.fixture(scope="session")
def trained_small(prepared_data, tmp_path_factory):
    """tiny-llama (d_model 128, 4 layers) pre-trained for 300 steps on the prepared shards: a model
    whose weights have structure, so compression quality can be compared on validation perplexity."""
    from llmkit.train.config import (
        DataConfig,
        OptimConfig,
        PretrainConfig,
        ScheduleConfig,
    )
    from llmkit.train.pretrain import run_pretrain

    out = tmp_path_factory.mktemp("compress") / "run"
    run_pretrain(PretrainConfig(data=str(prepared_data), out=str(out), model="tiny-llama", max_steps=300,
                                eval_every=0, progress=False, optim=OptimConfig(lr=3e-3),
                                schedule=ScheduleConfig(warmup_steps=20), batch=DataConfig(seq_len=64, batch_size=8)))
    return out / "final"


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
