"""`llmkit finetune`."""

from __future__ import annotations


def finetune(args: list[str], prog: str, generate=None) -> None:
    """`generate` (for --context-prompts) is handed in by llmkit.cli, like align's."""
    from llmkit.config import parse_with_config
    from llmkit.finetune.run import FinetuneConfig, run_finetune

    run_finetune(parse_with_config(FinetuneConfig, args, prog), generate)


def align(args: list[str], prog: str, generate=None) -> None:
    """`generate` is the inference layer's rollout function, handed in by llmkit.cli (it sits above this layer)."""
    from llmkit.config import parse_with_config
    from llmkit.finetune.align import AlignConfig, run_align

    run_align(parse_with_config(AlignConfig, args, prog), generate)


def merge(checkpoint: str, adapter: str, out: str, overwrite: bool = False) -> None:
    """Fold a LoRA adapter (PEFT's layout, from llmkit or peft) into CHECKPOINT's weights and save the
    result as a plain HF-layout checkpoint with the tokenizer.

    Args:
        checkpoint: the base model's HF-layout checkpoint directory.
        adapter: a directory with adapter_config.json and adapter_model.safetensors.
        out: where to write the merged checkpoint.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    from pathlib import Path

    from llmkit.checkpoint import load_checkpoint, save_checkpoint
    from llmkit.fileio import check_output
    from llmkit.finetune.lora import load_adapter, merge_lora
    from llmkit.tokenizer import Tokenizer

    check_output(out, "model", overwrite, [checkpoint, adapter])
    model = load_checkpoint(checkpoint)
    load_adapter(model, adapter)
    merge_lora(model)
    tokenizer = Tokenizer.from_dir(checkpoint) if (Path(checkpoint) / "tokenizer.json").is_file() else None
    save_checkpoint(model, out, tokenizer=tokenizer, overwrite=overwrite)
    print(f"merged {adapter} into {checkpoint} -> {out}")


def reward_train(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.finetune.reward_train import RewardConfig, run_reward

    run_reward(parse_with_config(RewardConfig, args, prog))
