"""`llmkit pretrain`: flags come from PretrainConfig (nested: --optim.lr, --parallel.dp_shard ...)."""

from __future__ import annotations


def pretrain(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.dist.context import shutdown
    from llmkit.train.config import PretrainConfig
    from llmkit.train.pretrain import run_pretrain

    cfg = parse_with_config(PretrainConfig, args, prog)
    try:
        run_pretrain(cfg)
    finally:
        shutdown()
