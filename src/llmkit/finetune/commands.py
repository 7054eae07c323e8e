"""`llmkit finetune`."""

from __future__ import annotations


def finetune(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.finetune.run import FinetuneConfig, run_finetune

    run_finetune(parse_with_config(FinetuneConfig, args, prog))
