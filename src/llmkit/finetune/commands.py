"""`llmkit finetune`."""

from __future__ import annotations


def finetune(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.finetune.run import FinetuneConfig, run_finetune

    run_finetune(parse_with_config(FinetuneConfig, args, prog))


def align(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.finetune.align import AlignConfig, run_align

    run_align(parse_with_config(AlignConfig, args, prog))
