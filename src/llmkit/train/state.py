"""Training checkpoints: everything needed to continue as if never stopped.

    OUT/checkpoints/step-000020/
        model/               HF-layout weights + config (+ tokenizer): loadable by `generate`
        optimizer.pt         AdamW state (tensors and numbers only: read with weights_only=True)
        trainer.json         step, schedule length, loader position, metrics so far
        rng-rank00000.pt     torch / numpy / python RNG states of each rank
        dcp/                 sharded model + optimizer (torch.distributed.checkpoint) for multi-rank runs

Written to a temporary directory and renamed, so a checkpoint is complete or absent; only the
newest `keep_last` are kept.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from llmkit.errors import LlmkitError

STEP_DIR = re.compile(r"^step-(\d{6,})$")


def checkpoint_dir(out: str | Path, step: int) -> Path:
    return Path(out) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(out: str | Path) -> list[Path]:
    root = Path(out) / "checkpoints"
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "trainer.json").is_file()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name)[1]))


def resolve_resume(resume: str, out: str | Path) -> Path | None:
    if resume == "none":
        return None
    if resume == "auto":
        found = list_checkpoints(out)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "trainer.json").is_file():
        raise LlmkitError(f"--resume {resume}: not a training checkpoint (no trainer.json); use auto or a step-N dir")
    return path


INPUT_FIELDS = ("data", "checkpoint", "init_from", "teacher", "reward_model", "model", "context_prompts")


def claim_run_dir(cfg, out: str | Path, ctx) -> None:
    """Check OUT before a run writes into it (an input inside it, or a directory of something else, is
    refused unless --overwrite) and mark it as a training run. Every rank checks before rank 0 marks,
    so no rank sees the marker half-written."""
    from llmkit.fileio import check_output, mark_output

    inputs = [value for name in INPUT_FIELDS if isinstance(value := getattr(cfg, name, None), str)
              and value and Path(value).exists()]
    check_output(out, "run", getattr(cfg, "overwrite", False), inputs)
    ctx.barrier()
    if ctx.is_main:
        mark_output(out, "run")


def rng_state() -> dict:
    """Every RNG as tensors, lists and numbers, so it reloads with weights_only=True."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(internal), gauss_next]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def prune(out: str | Path, keep_last: int) -> None:
    for old in list_checkpoints(out)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)


def load_rng(path: Path, rank: int) -> None:
    file = path / f"rng-rank{rank:05d}.pt"
    if file.is_file():  # a different world size on resume: ranks without a saved state keep their seed
        set_rng_state(torch.load(file, weights_only=True))
