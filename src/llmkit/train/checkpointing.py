"""Saving and resuming training runs, one code path for 1 or N processes.

Model and optimizer go through torch.distributed.checkpoint (DCP), which stores sharded tensors
with their global layout, so a checkpoint written by 2 FSDP ranks loads on 1 process and the
reverse. Rank 0 also writes the full model in the HF layout, for `generate` and friends.
"""

from __future__ import annotations

import json
import re
import shutil
import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

from llmkit.checkpoint import save_state_dict
from llmkit.fileio import write_json
from llmkit.train.state import checkpoint_dir, prune, rng_state

# One process is a supported layout for DCP here, not an accident worth a warning each save.
warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
WRAPPER_PARTS = re.compile(r"(_orig_mod\.|_checkpoint_wrapped_module\.)")  # torch.compile and AC wrappers


def full_model_state(model, every_rank: bool = False) -> dict[str, torch.Tensor]:
    """The unsharded state dict in llmkit names (collective: every rank must call it). By default
    only rank 0 receives the tensors (cpu_offload); `every_rank` gives each rank its own."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=not every_rank)
    state = get_model_state_dict(model, options=options)
    return {WRAPPER_PARTS.sub("", k): v.cpu() for k, v in state.items()}


def export_model(trainer, out: Path, tokenizer) -> None:
    """The plain HF-layout checkpoint with its tokenizer (collective; rank 0 writes)."""
    pipelined = trainer.ctx.degree("pp") > 1
    state = full_model_state(trainer.model, every_rank=pipelined)
    if pipelined:  # each stage holds different layers: merge them
        parts = [None] * trainer.ctx.degree("pp")
        torch.distributed.all_gather_object(parts, state, group=trainer.ctx.mesh["pp"].get_group())
        state = {k: v for part in parts for k, v in part.items()}
    if trainer.ctx.is_main:
        cfg = trainer.base_model.cfg
        save_state_dict(state, cfg, out, tokenizer=tokenizer,
                        generation_config={"eos_token_id": cfg.eos_token_id, "pad_token_id": cfg.pad_token_id})
    trainer.ctx.barrier()


def save_training_checkpoint(trainer, step: int, tokenizer, export: bool = True) -> Path:
    """OUT/checkpoints/step-N: the resumable state (DCP), this rank's RNG, trainer.json and, with
    `export`, the plain HF-layout model (fine-tuning runs with adapters skip it: their modules are
    not HF's; the state alone resumes them)."""
    ctx, final = trainer.ctx, checkpoint_dir(trainer.out, step)
    tmp = final.parent / f".{final.name}.tmp"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    ctx.barrier()
    model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / "dcp"))
    torch.save(rng_state(), tmp / f"rng-rank{ctx.rank:05d}.pt")
    if export:
        export_model(trainer, tmp / "model", tokenizer)
    if ctx.is_main:
        write_json(tmp / "trainer.json", trainer.state_dict() | {"world_size": ctx.world_size})
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # the checkpoint appears whole, or not at all
        prune(trainer.out, trainer.cfg.keep_last)
    ctx.barrier()
    return final


def load_training_checkpoint(trainer, path: Path) -> None:
    """Restore model, optimizer, loader position, schedule, scaler and this rank's RNG."""
    from llmkit.train.state import load_rng

    model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer)
    state = {"model": model_state, "optim": optim_state}
    dcp.load(state, checkpoint_id=str(path / "dcp"))
    set_state_dict(trainer.model, trainer.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    trainer.load_state_dict(json.loads((path / "trainer.json").read_text()))
    load_rng(path, trainer.ctx.rank)
