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


def merge(checkpoint: str, adapter: str, out: str, overwrite: bool = False) -> None:
    """Fold an adapter (LoRA, DoRA, QLoRA or (IA)^3, in PEFT's layout, from llmkit or peft) into
    CHECKPOINT's weights and save the result as a plain HF-layout checkpoint with the tokenizer.
    Prefix, prompt and bottleneck adapters cannot be folded into weights: use --adapter DIR with
    generate, chat, serve or evaluate instead.

    Args:
        checkpoint: the base model's HF-layout checkpoint directory (or .gguf file).
        adapter: a directory with adapter_config.json and adapter_model.safetensors.
        out: where to write the merged checkpoint.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    from pathlib import Path

    from llmkit.checkpoint import load_checkpoint, save_checkpoint
    from llmkit.fileio import check_output
    from llmkit.finetune.peft import method_for
    from llmkit.tokenizer import Tokenizer

    chosen, config = method_for(adapter)
    if not chosen.mergeable:
        chosen.merge(None)  # raises the method's explanation
    check_output(out, "model", overwrite, [checkpoint, adapter])
    model = load_checkpoint(checkpoint)
    chosen.load(model, adapter, config)
    chosen.merge(model)
    path = Path(checkpoint)
    tokenizer = Tokenizer.from_dir(checkpoint) if (path / "tokenizer.json").is_file() or path.suffix == ".gguf" else None
    save_checkpoint(model, out, tokenizer=tokenizer, overwrite=overwrite)
    print(f"merged the {chosen.name} adapter {adapter} into {checkpoint} -> {out}")


def reward_train(args: list[str], prog: str) -> None:
    from llmkit.config import parse_with_config
    from llmkit.finetune.reward_train import RewardConfig, run_reward

    run_reward(parse_with_config(RewardConfig, args, prog))
