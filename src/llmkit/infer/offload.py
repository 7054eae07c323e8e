"""Memory scheduling for models larger than the compute device (the BMInf / FlexGen idea, arXiv
2303.06865): keep each Transformer block's weights in the slow tier and bring them in only while
that block runs, prefetching the next block while the current one computes.

Here the slow tier is the checkpoint itself, memory-mapped from disk (safetensors), and the fast
tier is the compute device (RAM on CPU, GPU memory on CUDA). Embeddings, the final norm and the
head stay resident. At most two blocks are resident at once: the one computing and the one being
prefetched. Hooks are attached from outside the model; the model code is unchanged.

    model, streamer = load_streaming("ckpt/", device="cuda")
    generate_ids(model, ...)            # as usual; streamer.stats tells what moved
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from llmkit.checkpoint.hf_config import hf_family
from llmkit.checkpoint.io import load_config, weight_files
from llmkit.checkpoint.keymaps import from_hf_tensor
from llmkit.errors import LlmkitError
from llmkit.model import build_model

BLOCK_KEY = re.compile(r"^layers\.(\d+)\.")


@dataclass
class StreamStats:
    loads: int = 0
    bytes_loaded: int = 0
    max_resident_blocks: int = 0
    wait_s: float = 0.0  # time compute waited for a block that was not ready
    events: list[str] = field(default_factory=list)  # "load i" / "run i", in order (first 200)

    def log(self, event: str) -> None:
        if len(self.events) < 200:
            self.events.append(event)


class LayerStreamer:
    def __init__(self, model: nn.Module, checkpoint_dir: Path, device: torch.device, dtype, prefetch: bool = True):
        if model.cfg.arch != "decoder" and model.cfg.arch != "prefix_decoder" or model.cfg.n_unique_layers:
            raise LlmkitError("layer streaming supports decoder-only models without shared layers")
        self.model, self.device, self.dtype, self.prefetch = model, device, dtype, prefetch
        self.cfg, self.family = model.cfg, hf_family(model.cfg)
        self.sources = self._index(checkpoint_dir)  # block -> [(file, hf key)]
        self.n_blocks = len(model.layers)
        self.resident: set[int] = set()
        self.pending: dict[int, Future] = {}
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmkit-prefetch")
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.stats = StreamStats()
        for i, block in enumerate(model.layers):
            block.register_forward_pre_hook(lambda module, args, i=i: self._before(i))
            block.register_forward_hook(lambda module, args, output, i=i: self._after(i))

    def _index(self, checkpoint_dir: Path) -> dict[int, list[tuple[Path, str]]]:
        sources = defaultdict(list)
        for file in weight_files(checkpoint_dir):
            if file.suffix != ".safetensors":
                raise LlmkitError(f"layer streaming reads safetensors; {file.name} is not (load it once without --offload and re-save it with llmkit.checkpoint.save_checkpoint)")
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    shape = handle.get_slice(key).get_shape()
                    for name in from_hf_tensor(key, torch.empty(shape, device="meta"), self.family, self.cfg):
                        match = BLOCK_KEY.match(name)
                        if match:
                            sources[int(match.group(1))].append((file, key))
        return sources

    def _load(self, i: int) -> dict[str, torch.Tensor]:
        """Read block i from the mapped files and move it to the device (runs on the loader thread)."""
        tensors = {}
        by_file = defaultdict(list)
        for file, key in self.sources[i]:
            by_file[file].append(key)
        context = torch.cuda.stream(self.copy_stream) if self.copy_stream is not None else contextlib.nullcontext()
        with context:
            for file, keys in by_file.items():
                with safe_open(str(file), framework="pt") as handle:
                    for key in keys:
                        for name, value in from_hf_tensor(key, handle.get_tensor(key), self.family, self.cfg).items():
                            if self.copy_stream is not None:
                                value = value.pin_memory()
                            tensors[name] = value.to(self.device, self.dtype or value.dtype, non_blocking=True)
            event = torch.cuda.Event() if self.copy_stream is not None else None
            if event is not None:
                event.record(self.copy_stream)
        tensors["__event__"] = event
        return tensors

    def _start(self, i: int) -> None:
        if i not in self.pending and i not in self.resident:
            self.stats.log(f"load {i}")
            self.pending[i] = self.loader.submit(self._load, i)
            self._count_resident()

    def _before(self, i: int) -> None:
        self._start(i)
        start = time.perf_counter()
        tensors = self.pending.pop(i).result() if i in self.pending else None
        self.stats.wait_s += time.perf_counter() - start
        if tensors is not None:
            event = tensors.pop("__event__")
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
            self._assign(i, tensors)
        if self.prefetch:
            self._start((i + 1) % self.n_blocks)  # the last block prefetches the first for the next pass
        self.stats.log(f"run {i}")

    def _after(self, i: int) -> None:
        self._assign(i, None)

    def _assign(self, i: int, tensors: dict[str, torch.Tensor] | None) -> None:
        """Put block i's weights in place (tensors) or drop them back to the meta device (None)."""
        block = self.model.layers[i]
        prefix = f"layers.{i}."
        for name, param in list(block.named_parameters()):
            module = block.get_submodule(name.rpartition(".")[0]) if "." in name else block
            attr = name.rpartition(".")[2]
            value = torch.empty_like(param, device="meta") if tensors is None else tensors[prefix + name]
            module._parameters[attr] = nn.Parameter(value, requires_grad=False)
        if tensors is None:
            self.resident.discard(i)
        else:
            self.resident.add(i)
            self.stats.loads += 1
            self.stats.bytes_loaded += sum(t.numel() * t.element_size() for t in tensors.values())
        self._count_resident()

    def _count_resident(self) -> None:
        """Blocks holding memory: in place, or loaded/being loaded by the prefetcher."""
        self.stats.max_resident_blocks = max(self.stats.max_resident_blocks, len(self.resident) + len(self.pending))


def load_streaming(checkpoint_dir: str | Path, device: str = "cpu", dtype: torch.dtype | None = None,
                   prefetch: bool = True) -> tuple[nn.Module, LayerStreamer]:
    """A model whose blocks stream from the checkpoint on disk; everything else is loaded now."""
    path, device = Path(checkpoint_dir), torch.device(device)
    cfg = load_config(path)
    family = hf_family(cfg)
    model = build_model(cfg)  # on meta: blocks stay there until they run
    resident = {}
    for file in weight_files(path):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                placeholder = torch.empty(handle.get_slice(key).get_shape(), device="meta")
                if all(BLOCK_KEY.match(name) for name in from_hf_tensor(key, placeholder, family, cfg)):
                    continue  # a block tensor: read when its block runs
                for name, value in from_hf_tensor(key, handle.get_tensor(key), family, cfg).items():
                    resident[name] = value.to(device, dtype or value.dtype)
    model.load_state_dict(resident, strict=False, assign=True)
    model.tie_weights()
    return model.eval(), LayerStreamer(model, path, device, dtype, prefetch)
