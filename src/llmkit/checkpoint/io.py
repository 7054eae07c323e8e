"""Read and write checkpoint directories in the Hugging Face layout:

    config.json  model.safetensors | model-0000i-of-0000n.safetensors + model.safetensors.index.json
    tokenizer.json  tokenizer_config.json  generation_config.json

Loading builds the model on the meta device and assigns tensors read from the memory-mapped
safetensors files (`load_state_dict(assign=True)`), so no second copy of the weights is made.
Saving is atomic: the whole directory is written aside and renamed into place.

A checkpoint directory is untrusted input: shard names in the index must stay inside it, a config
whose weights could not fit in this machine's memory is refused before anything is allocated,
`.bin` files are read with `weights_only=True` (legacy non-zip ones are refused), and weights
holding NaN or inf are reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from llmkit.checkpoint.hf_config import from_hf_config, hf_family, to_hf_config
from llmkit.checkpoint.keymaps import from_hf_tensor, to_hf_state_dict
from llmkit.checkpoint.safetensors_map import mapped_tensors
from llmkit.checkpoint.size_check import check_fits_in_memory
from llmkit.errors import LlmkitError
from llmkit.fileio import atomic_dir, write_json
from llmkit.model import ModelConfig, build_model

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
DEFAULT_SHARD_BYTES = 5 * 1024**3


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise LlmkitError(f"missing file {path}: expected a checkpoint directory with config.json and model.safetensors")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LlmkitError(f"{path} is not valid JSON ({err}); re-save or re-download the checkpoint") from None


def load_config(checkpoint_dir: str | Path) -> ModelConfig:
    """The ModelConfig of a checkpoint directory or .gguf file, refused if it could not fit in memory."""
    path = Path(checkpoint_dir)
    if path.suffix == ".gguf" and path.is_file():
        from llmkit.checkpoint.gguf_import import gguf_config

        cfg = gguf_config(path)
    elif path.is_dir():
        cfg = from_hf_config(read_json(path / "config.json"), name=path.name)
    else:
        raise LlmkitError(f"checkpoint directory {path} does not exist")
    check_fits_in_memory(cfg, path)
    return cfg


DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


def resolve_dtype(spec: torch.dtype | str | None) -> torch.dtype | None:
    """None for "auto" (the checkpoint's own dtype), else the torch dtype named."""
    if spec is None or isinstance(spec, torch.dtype):
        return spec
    if spec == "auto":
        return None
    if spec not in DTYPES:
        raise LlmkitError(f"--dtype {spec!r}: choose auto, bf16, fp16 or fp32")
    return DTYPES[spec]


def weight_files(path: Path) -> list[Path]:
    if (path / INDEX_FILE).is_file():
        index = read_json(path / INDEX_FILE)
        names = list(dict.fromkeys(index.get("weight_map", {}).values()))
        root = path.resolve()
        for name in names:
            if not isinstance(name, str) or not (path / name).resolve().is_relative_to(root):
                raise LlmkitError(f"{path / INDEX_FILE} points outside the checkpoint directory ({name!r}); "
                                  "it was not loaded")
        return [path / name for name in names]
    for name in (SINGLE_FILE, TORCH_FILE):
        if (path / name).is_file():
            return [path / name]
    raise LlmkitError(f"no weights in {path}: expected {SINGLE_FILE} or {INDEX_FILE} (+ shards)")


def _read_tensors(file: Path):
    """Yield (name, tensor) from one weights file; never unpickles arbitrary objects."""
    if not file.is_file():
        raise LlmkitError(f"missing weights file {file} (listed in {INDEX_FILE})")
    if file.suffix == ".bin":
        yield from _read_torch_file(file).items()
        return
    yield from mapped_tensors(file)  # views of the mapped file: the weights are not copied


def _read_torch_file(file: Path) -> dict:
    """A pytorch_model.bin through torch's restricted unpickler (tensors and plain containers only)."""
    import pickle
    import zipfile

    if not zipfile.is_zipfile(file):
        raise LlmkitError(f"{file} is in PyTorch's legacy (pre-1.6, non-zip) format, which cannot be read safely; "
                          "re-save it with a current torch or convert it to safetensors")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise LlmkitError(f"{file} was refused: it holds more than tensors, or is damaged ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise LlmkitError(f"{file} does not hold a state dict of tensors")
    return state


def warn_non_finite(state: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Names of floating-point tensors holding NaN or inf, reported on stderr (the model still loads)."""
    bad = [name for name, tensor in state.items()
           if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all()]
    if bad:
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        print(f"warning: {path} has NaN or inf weights in {', '.join(bad[:3])}{more}; its outputs will be "
              "NaN", file=sys.stderr)
    return bad


def load_checkpoint(checkpoint_dir: str | Path, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> nn.Module:
    """A model with the checkpoint's weights; `model.cfg` is its ModelConfig. A .gguf file is converted
    in memory (nothing is written)."""
    path = Path(checkpoint_dir)
    if path.suffix == ".gguf" and path.is_file():
        from llmkit.checkpoint.gguf_import import read_gguf

        cfg, converted, _ = read_gguf(path, dtype)
        tensors = ((name, value, path) for name, value in converted.items())
    else:
        cfg = load_config(path)
        tensors = _hf_tensors(path, cfg)
    model = build_model(cfg)  # meta: no memory until weights are assigned
    expected = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for name, value, file in tensors:
        _check_shape(name, value, expected, file)
        state[name] = value.to(device=device, dtype=dtype or value.dtype)
    _check_complete(state, expected, cfg, path)
    warn_non_finite(state, path)
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    return model


def _hf_tensors(path: Path, cfg: ModelConfig):
    """(llmkit name, tensor, file) for every weight of an HF-layout directory."""
    family = hf_family(cfg)
    for file in weight_files(path):
        for hf_name, tensor in _read_tensors(file):
            for name, value in from_hf_tensor(hf_name, tensor, family, cfg).items():
                yield name, value, file


def _check_shape(name: str, value: torch.Tensor, expected: dict[str, torch.Tensor], file: Path) -> None:
    if name not in expected:
        raise LlmkitError(f"{file.name}: tensor {name!r} does not belong to the model described by config.json")
    if tuple(value.shape) != tuple(expected[name].shape):
        raise LlmkitError(f"{file.name}: tensor {name!r} has shape {tuple(value.shape)} but config.json "
                          f"implies {tuple(expected[name].shape)}; the config and the weights do not match")


def _check_complete(state, expected, cfg: ModelConfig, path: Path) -> None:
    missing = [k for k in expected if k not in state and not (cfg.tie_embeddings and k == "lm_head.weight")]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise LlmkitError(f"checkpoint {path} lacks tensors {missing[:3]}{more}; it is incomplete or for another model")


def save_checkpoint(model: nn.Module, out_dir: str | Path, tokenizer=None,
                    generation_config: dict[str, Any] | None = None,
                    max_shard_bytes: int = DEFAULT_SHARD_BYTES, overwrite: bool = False) -> Path:
    """Write `model` (and `tokenizer`, anything with `save(dir)`) as an HF-layout directory, atomically.
    A non-empty `out_dir` that is not a model directory is refused unless `overwrite`."""
    return save_state_dict(model.state_dict(), model.cfg, out_dir, tokenizer, generation_config, max_shard_bytes,
                           overwrite)


def save_state_dict(state: dict[str, torch.Tensor], cfg: ModelConfig, out_dir: str | Path, tokenizer=None,
                    generation_config: dict[str, Any] | None = None,
                    max_shard_bytes: int = DEFAULT_SHARD_BYTES, overwrite: bool = False) -> Path:
    """As `save_checkpoint`, from a full (unsharded) state dict in llmkit names."""
    family = hf_family(cfg)
    state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # safetensors stores each tensor once; the tie is in config.json
    hf_state = to_hf_state_dict(state, family)
    dtype = str(next(iter(hf_state.values())).dtype).removeprefix("torch.")
    with atomic_dir(out_dir, kind="model", overwrite=overwrite) as tmp:
        write_json(tmp / "config.json", to_hf_config(cfg, dtype))
        _write_weights(hf_state, tmp, max_shard_bytes)
        write_json(tmp / "generation_config.json", generation_config or _generation_config(cfg))
        if tokenizer is not None:
            tokenizer.save(tmp)
    return Path(out_dir)


def _generation_config(cfg: ModelConfig) -> dict[str, Any]:
    return {"bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id, "pad_token_id": cfg.pad_token_id}


def _write_weights(state: dict[str, torch.Tensor], out: Path, max_shard_bytes: int) -> None:
    shards, current, size = [], {}, 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if current and size + nbytes > max_shard_bytes:
            shards.append(current)
            current, size = {}, 0
        current[name], size = tensor, size + nbytes
    shards.append(current)
    metadata = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], out / SINGLE_FILE, metadata=metadata)
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, start=1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, out / file, metadata=metadata)
        weight_map |= {name: file for name in shard}
        total += sum(t.numel() * t.element_size() for t in shard.values())
    write_json(out / INDEX_FILE, {"metadata": {"total_size": total}, "weight_map": weight_map})
