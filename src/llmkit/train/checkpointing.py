"""Saving and resuming training runs, one code path for 1 or N processes.

Model and optimizer go through torch.distributed.checkpoint (DCP), which stores sharded tensors
with their global layout, so a checkpoint written by 2 FSDP ranks loads on 1 process and the
reverse. Rank 0 also writes the full model in the HF layout, for `generate` and friends.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import time
import warnings
from dataclasses import asdict
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
from llmkit.errors import LlmkitError
from llmkit.train.dcp_reader import SafeFileSystemReader, SafeLoadPlanner, read_dcp_metadata
from llmkit.train.fault_injection import maybe_fail
from llmkit.train.state import checkpoint_dir, prune, rng_state

# One process is a supported layout for DCP here, not an accident worth a warning each save.
warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
WRAPPER_PARTS = re.compile(r"(_orig_mod\.|_checkpoint_wrapped_module\.)")  # torch.compile and AC wrappers


# Optimizer states and hyper-parameters keyed by parameter name, not by position in param_groups: a
# pipeline stage's groups differ from its neighbour's, and tensor/data parallel runs group parameters
# by device mesh, so only names survive a change of layout (e.g. 3-D parallel -> one process).
FLAT_OPTIMIZER = StateDictOptions(flatten_optimizer_state_dict=True)


def _flat_optimizer_layout(metadata) -> bool:
    """False for checkpoints written before FLAT_OPTIMIZER (param_groups stored as a list)."""
    return not any(re.match(r"optim\.param_groups\.\d+\.params", key) for key in metadata.state_dict_metadata)


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


def weights_finite(trainer) -> bool:
    """True when no parameter on any rank holds NaN or inf (collective)."""
    local = lambda p: p.to_local() if hasattr(p, "to_local") else p
    bad = sum(int(not torch.isfinite(local(p).detach()).all()) for p in trainer.model.parameters())
    return trainer.ctx.sum(bad) == 0


def data_fingerprint(path: str) -> str:
    """What identifies the training data: a prepared directory's index, or a file's size and head."""
    source = Path(path)
    if (source / "index.json").is_file():
        source = source / "index.json"
    if not source.is_file():
        return ""
    with open(source, "rb") as handle:
        head = handle.read(2**20)
    return hashlib.sha256(head + str(source.stat().st_size).encode()).hexdigest()[:16]


def run_identity(trainer) -> dict:
    """The model config and data a checkpoint belongs to (compared on resume)."""
    config = json.loads(json.dumps(asdict(trainer.base_model.cfg), default=str))
    config.pop("name", None)
    return {"model_config": config, "data": data_fingerprint(getattr(trainer.cfg, "data", "") or "")}


def save_training_checkpoint(trainer, step: int, tokenizer, export: bool = True) -> Path | None:
    """OUT/checkpoints/step-N: the resumable state (DCP), this rank's RNG, trainer.json and, with
    `export`, the plain HF-layout model (fine-tuning runs with adapters skip it: their modules are
    not HF's; the state alone resumes them). Weights holding NaN or inf are never saved."""
    if not weights_finite(trainer):
        if trainer.ctx.is_main:
            print(f"step {step}: not saving a checkpoint: the weights hold NaN or inf (training diverged)", flush=True)
        return None
    finish_pending_save(trainer)  # one save in flight at a time
    started = time.perf_counter()
    ctx, final = trainer.ctx, checkpoint_dir(trainer.out, step)
    tmp = final.parent / f".{final.name}.tmp"
    if ctx.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    ctx.barrier()
    zero1 = is_zero1(trainer.optimizer)
    background = trainer.cfg.async_save and not zero1
    if zero1:  # DCP does not know ZeroRedundancyOptimizer: its states gather on rank 0
        trainer.optimizer.consolidate_state_dict(to=0)
        if ctx.is_main:
            torch.save(trainer.optimizer.state_dict(), tmp / ZERO1_FILE)
        dcp.save({"model": get_model_state_dict(trainer.model)}, checkpoint_id=str(tmp / "dcp"))
    else:
        model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer, options=FLAT_OPTIMIZER)
        state = {"model": model_state, "optim": optim_state}
        if background:  # the state is staged (copied) now; the shards are written by a background thread
            future = dcp.async_save(state, checkpoint_id=str(tmp / "dcp"), process_group=_checkpoint_group(ctx))
        else:
            dcp.save(state, checkpoint_id=str(tmp / "dcp"))
    maybe_fail("checkpoint", step, ctx.rank)  # a rank lost mid-save: the .tmp directory is never renamed
    torch.save(rng_state(), tmp / f"rng-rank{ctx.rank:05d}.pt")
    if export:
        export_model(trainer, tmp / "model", tokenizer)
    if ctx.is_main:
        write_json(tmp / "trainer.json", trainer.state_dict() | {"world_size": ctx.world_size} | run_identity(trainer))
    trainer.checkpoint_wait_s += time.perf_counter() - started
    if background:
        trainer.pending_save = (future, tmp, final)
        return final
    _publish(trainer, tmp, final)
    return final


def _publish(trainer, tmp: Path, final: Path) -> None:
    """Every rank has written its part: rename the directory, so the checkpoint appears whole."""
    ctx = trainer.ctx
    ctx.barrier()
    if ctx.is_main:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)  # the checkpoint appears whole, or not at all
        prune(trainer.out, trainer.cfg.keep_last)
    ctx.barrier()


def finish_pending_save(trainer) -> None:
    """Wait for the background save in flight (the time counts as the loop waiting), then publish it."""
    if trainer.pending_save is None:
        return
    started = time.perf_counter()
    future, tmp, final = trainer.pending_save
    trainer.pending_save = None
    future.result()
    trainer.checkpoint_wait_s += time.perf_counter() - started
    _publish(trainer, tmp, final)


def _checkpoint_group(ctx):
    """Background saves talk over a gloo group of their own, so they never interleave with the
    training loop's collectives on the default group."""
    return _new_gloo_group() if ctx.distributed else None


@functools.cache
def _new_gloo_group():
    import torch.distributed as dist

    return dist.new_group(backend="gloo")


def load_training_checkpoint(trainer, path: Path) -> None:
    """Restore model, optimizer, loader position, schedule, scaler and this rank's RNG, after checking
    that the checkpoint belongs to this run's model and data; weights holding NaN/inf are refused."""
    from llmkit.train.state import load_rng

    saved = read_trainer_json(path)
    check_same_run(saved, run_identity(trainer), path)
    metadata_file = path / "dcp" / ".metadata"
    if not metadata_file.is_file():
        raise LlmkitError(f"{path} has no dcp/.metadata: the checkpoint is incomplete; resume from another step")
    metadata = read_dcp_metadata(metadata_file.read_bytes(), str(metadata_file))  # a clear error before DCP wraps it
    if is_zero1(trainer.optimizer):
        _load_zero1(trainer, path)
    else:
        options = FLAT_OPTIMIZER if _flat_optimizer_layout(metadata) else StateDictOptions()
        model_state, optim_state = get_state_dict(trainer.model, trainer.optimizer, options=options)
        state = {"model": model_state, "optim": optim_state}
        dcp.load(state, storage_reader=SafeFileSystemReader(path / "dcp"), planner=SafeLoadPlanner())
        # the kernel choice (fused for plain tensors, foreach for DTensors) is this layout's, not the saver's
        kernels = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in trainer.optimizer.param_groups]
        set_state_dict(trainer.model, trainer.optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"],
                       options=options)
        for group, kernel in zip(trainer.optimizer.param_groups, kernels):
            group.update(kernel)
    trainer.load_state_dict(saved)
    load_rng(path, trainer.ctx.rank)
    if not weights_finite(trainer):
        raise NonFiniteCheckpoint(f"{path} holds NaN or inf weights; resume from an earlier checkpoint")


ZERO1_FILE = "optim-zero1.pt"


def is_zero1(optimizer) -> bool:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return isinstance(optimizer, ZeroRedundancyOptimizer)


def _load_zero1(trainer, path: Path) -> None:
    """The model through DCP; the optimizer from its consolidated file (every rank keeps its share)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    if not (path / ZERO1_FILE).is_file():
        raise LlmkitError(f"{path} holds no ZeRO-1 optimizer state ({ZERO1_FILE}); resume it without --parallel.zero1")
    state = {"model": get_model_state_dict(trainer.model)}
    dcp.load(state, storage_reader=SafeFileSystemReader(path / "dcp"), planner=SafeLoadPlanner())
    set_model_state_dict(trainer.model, state["model"])
    trainer.optimizer.load_state_dict(torch.load(path / ZERO1_FILE, weights_only=True))


class NonFiniteCheckpoint(LlmkitError):
    pass


def read_trainer_json(path: Path) -> dict:
    try:
        return json.loads((path / "trainer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LlmkitError(f"{path / 'trainer.json'} is unreadable ({error}); resume from another checkpoint") from None


def check_same_run(saved: dict, current: dict, path: Path) -> None:
    """A checkpoint resumes only the run it came from: same model config, same data."""
    old = saved.get("model_config")
    if old is not None and old != current["model_config"]:
        fields = sorted(k for k in set(old) | set(current["model_config"]) if old.get(k) != current["model_config"].get(k))
        raise LlmkitError(f"{path} was trained with another model config (differs in {', '.join(fields[:5])}); "
                          "resume with the run's own --model, or start a new run in another --out")
    if saved.get("data") and current["data"] and saved["data"] != current["data"]:
        raise LlmkitError(f"{path} was trained on other data than --data; resume with the same data, or start a "
                          "new run in another --out")


def resume(trainer, spec: str, announce) -> Path | None:
    """Load --resume's checkpoint (auto: the newest usable one, skipping any with NaN/inf weights)."""
    from llmkit.train.state import list_checkpoints, resolve_resume

    if spec != "auto":
        path = resolve_resume(spec, trainer.out)
        if path is not None:
            load_training_checkpoint(trainer, path)
        return path
    for path in reversed(list_checkpoints(trainer.out)):
        try:
            load_training_checkpoint(trainer, path)
            return path
        except NonFiniteCheckpoint as error:
            announce(f"skipping {path.name}: {error}")
    return None
