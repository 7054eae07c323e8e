"""`llmkit compress quantize | prune | lowrank | share | distill`."""

from __future__ import annotations

from typing import Literal

from llmkit.fileio import atomic_dir, check_output


def quantize(checkpoint: str, out: str, method: Literal["int8", "int4", "gptq", "awq", "nf4", "dynamic-int8"] = "int8",
             group_size: int | None = None, calib: str | None = None, calib_windows: int = 32, calib_len: int = 128,
             overwrite: bool = False) -> None:
    """Quantize a checkpoint's block Linears and save a checkpoint that `generate`, `serve` and `chat` load.

    int8 is weight-only per output channel; int4 is group-wise round to nearest; gptq and awq are
    int4 group-wise with calibration (GPTQ's error-compensating rounding, AWQ's activation-aware
    scaling); nf4 is QLoRA's 4-bit NormalFloat; dynamic-int8 also quantizes activations per token
    and multiplies integers. Embeddings (and, except for int8, the output head) stay in full precision.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        out: output directory (compression.json + compressed.safetensors + config + tokenizer).
        method: quantization method.
        group_size: inputs per scale for int4/gptq/awq (int8 is per channel); default: 128, or the largest
            of 64 and 32 that divides every layer's inputs (the choice is printed).
        calib: calibration text for gptq/awq: a prepared data directory, .txt or .jsonl ("text" field).
        calib_windows: how many token windows of calibration text to use.
        calib_len: tokens per calibration window.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    from pathlib import Path

    from llmkit.checkpoint import load_checkpoint
    from llmkit.compress.calibration_data import calibration_windows
    from llmkit.compress.checkpoint import save_compressed
    from llmkit.compress.quantize import quantize_model
    from llmkit.tokenizer import Tokenizer

    check_output(out, "model", overwrite, [checkpoint, calib])
    tokenizer = Tokenizer.from_dir(checkpoint)
    model = load_checkpoint(checkpoint)
    batches = None if calib is None else calibration_windows(calib, tokenizer, calib_windows, calib_len).split(8)
    cfg = quantize_model(model, method, group_size, batches)
    save_compressed(model, out, method, tokenizer, overwrite)
    size = lambda d: sum(f.stat().st_size for f in Path(d).glob("*.safetensors"))
    groups = f" in groups of {cfg.group_size}" + (" (chosen: it divides every layer)" if group_size is None else "")
    print(f"{method}: {len(cfg.modules)} Linears quantized{groups if cfg.bits == 4 else ''}; "
          f"{size(checkpoint) / 2**20:.1f} MiB -> "
          f"{size(out) / 2**20:.1f} MiB on disk -> {out}")


def prune(checkpoint: str, out: str,
          method: Literal["magnitude", "wanda", "sparsegpt", "nm", "heads", "channels", "layers"] = "wanda",
          sparsity: float = 0.5, pattern: str | None = None, calib: str | None = None, calib_windows: int = 32,
          calib_len: int = 128, overwrite: bool = False) -> None:
    """Prune a checkpoint and save it: unstructured or N:M zeros, or a smaller model.

    magnitude drops the smallest weights of each matrix; wanda the smallest |W| x ||X|| in each row;
    sparsegpt prunes with second-order error compensation; nm is wanda with --pattern (default 2:4).
    heads, channels and layers remove that share of attention head groups, MLP channels or blocks
    by importance on calibration text, and save a smaller model with a valid config. All but
    magnitude read calibration text.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        out: output directory (a plain HF-layout checkpoint with zeros where weights were pruned).
        method: pruning method.
        sparsity: share of weights (or of heads, channels, layers) to remove (ignored with --pattern).
        pattern: N:M semi-structured pattern, e.g. 2:4 (N of every M consecutive inputs pruned).
        calib: calibration text for wanda/sparsegpt: a prepared data directory, .txt or .jsonl.
        calib_windows: how many token windows of calibration text to use.
        calib_len: tokens per calibration window.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    from llmkit.checkpoint import load_checkpoint, save_checkpoint
    from llmkit.compress.calibration_data import calibration_windows
    from llmkit.compress.prune import prune_model
    from llmkit.errors import LlmkitError
    from llmkit.tokenizer import Tokenizer

    check_output(out, "model", overwrite, [checkpoint, calib])
    tokenizer = Tokenizer.from_dir(checkpoint)
    model = load_checkpoint(checkpoint)
    batches = None if calib is None else calibration_windows(calib, tokenizer, calib_windows, calib_len).split(8)
    if method in ("heads", "channels", "layers"):
        from llmkit.compress.structured import prune_structure

        if batches is None:
            raise LlmkitError(f"--method {method} needs calibration text: pass --calib FILE (or the data directory)")
        counts = prune_structure(model, method, 1 - sparsity, batches)
        save_checkpoint(model, out, tokenizer=tokenizer, overwrite=overwrite)
        print(f"{method}: {counts['parameters_before']:,} -> {counts['parameters_after']:,} parameters "
              f"({1 - counts['parameters_after'] / counts['parameters_before']:.1%} fewer) -> {out}")
        return
    if method == "nm":
        method, pattern = "wanda", pattern or "2:4"
    achieved = prune_model(model, method, sparsity, pattern, batches)
    save_checkpoint(model, out, tokenizer=tokenizer, overwrite=overwrite)
    mean = sum(achieved.values()) / len(achieved)
    print(f"{method}{' ' + pattern if pattern else ''}: {len(achieved)} Linears pruned, mean sparsity {mean:.1%} -> {out}")


def distill(args: list[str], prog: str) -> None:
    """Train a student (--model NAME or config) on prepared shards with a teacher's soft targets, or on
    its greedy generations (--sequence-level)."""
    from llmkit.compress.distill import DistillConfig, run_distill
    from llmkit.config import parse_with_config

    run_distill(parse_with_config(DistillConfig, args, prog))


def lowrank(checkpoint: str, out: str, rank_ratio: float = 0.5, activation_aware: bool = False,
            calib: str | None = None, calib_windows: int = 32, calib_len: int = 128, overwrite: bool = False) -> None:
    """Replace each block Linear by two thin ones from a truncated SVD, and save the smaller model.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        out: output directory (compression.json + compressed.safetensors + config + tokenizer).
        rank_ratio: kept share of each matrix's parameters (the rank follows from it).
        activation_aware: truncate for the layers' actual inputs (SVD-LLM whitening); needs --calib.
        calib: calibration text: a prepared data directory, .txt or .jsonl.
        calib_windows: how many token windows of calibration text to use.
        calib_len: tokens per calibration window.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    from llmkit.checkpoint import load_checkpoint
    from llmkit.compress.calibration_data import calibration_windows
    from llmkit.compress.checkpoint import save_compressed
    from llmkit.compress.lowrank import lowrank_model
    from llmkit.tokenizer import Tokenizer

    check_output(out, "model", overwrite, [checkpoint, calib])
    tokenizer = Tokenizer.from_dir(checkpoint)
    model = load_checkpoint(checkpoint)
    before = sum(p.numel() for p in model.parameters())
    batches = None if calib is None else calibration_windows(calib, tokenizer, calib_windows, calib_len).split(8)
    ranks = lowrank_model(model, rank_ratio, activation_aware, batches)
    save_compressed(model, out, "svd-whitened" if activation_aware else "svd", tokenizer, overwrite)
    after = sum(p.numel() for p in model.parameters())
    print(f"{len(ranks)} Linears factorised; {before:,} -> {after:,} parameters -> {out}")


def share(checkpoint: str, out: str, groups: int = 2, heal_data: str | None = None, heal_steps: int = 200,
          heal_lr: float = 3e-4, seq_len: int = 256, batch_size: int = 8, overwrite: bool = False) -> None:
    """Share weights across layers (ALBERT-style): every GROUPS consecutive blocks become one block
    (their mean), then optionally heal with a short continued pre-training on prepared shards.

    Args:
        checkpoint: HF-layout checkpoint directory with its tokenizer.
        out: output directory (the shared model; healed when --heal-data is given).
        groups: consecutive layers per shared block.
        heal_data: prepared data directory (`llmkit data prepare`) to heal on.
        heal_steps: healing steps.
        heal_lr: healing learning rate.
        seq_len: healing window length.
        batch_size: healing windows per step.
        overwrite: write into a non-empty --out that is not a model directory (only llmkit's files are replaced).
    """
    import shutil
    from pathlib import Path

    from llmkit.checkpoint import load_checkpoint, save_checkpoint
    from llmkit.compress.share import share_layers
    from llmkit.tokenizer import Tokenizer

    check_output(out, "model", overwrite, [checkpoint, heal_data])
    model = load_checkpoint(checkpoint)
    before = sum(p.numel() for p in model.parameters())
    shared = share_layers(model, groups)
    tokenizer = Tokenizer.from_dir(checkpoint)
    after = sum(p.numel() for p in shared.parameters())
    if heal_data is None:
        save_checkpoint(shared, out, tokenizer=tokenizer, overwrite=overwrite)
        print(f"{before:,} -> {after:,} parameters ({groups} layers per block) -> {out}")
        return
    from llmkit.train.config import DataConfig, OptimConfig, PretrainConfig
    from llmkit.train.pretrain import run_pretrain

    staged, run = Path(out).with_name(f".{Path(out).name}.shared"), Path(out).with_name(f".{Path(out).name}.heal")
    save_checkpoint(shared, staged, tokenizer=tokenizer)
    result = run_pretrain(PretrainConfig(data=heal_data, out=str(run), model=str(staged), init_from=str(staged),
                                         max_steps=heal_steps, optim=OptimConfig(lr=heal_lr), eval_every=0,
                                         batch=DataConfig(seq_len=seq_len, batch_size=batch_size)))
    with atomic_dir(out, kind="model", overwrite=overwrite) as tmp:  # the healed model replaces only llmkit's files
        for entry in (run / "final").iterdir():
            entry.rename(tmp / entry.name)
    shutil.rmtree(staged, ignore_errors=True)
    print(f"{before:,} -> {after:,} parameters ({groups} layers per block); healed {result['steps']} steps "
          f"(validation loss {result.get('val_loss', float('nan')):.3f}) -> {out}; healing run in {run}")
