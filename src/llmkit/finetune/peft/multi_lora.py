"""Many LoRA adapters over one base model, mixed in one batch (Punica, arXiv 2310.18547; S-LoRA,
arXiv 2311.03285): every block Linear keeps stacked adapter weights, A (slots, r, in) and
B^T (slots, r, out), and each row of a batch gets its own adapter's update, so requests for
different adapters share every forward pass instead of running one batch per adapter.

    adapters = MultiLoRA(model, max_loras=4, max_rank=16)     # wraps the block Linears (a transform)
    slot = adapters.load("sql", "adapters/sql")                # PEFT-layout LoRA directory
    adapters.select([slot, 0, slot])                           # rows of the next forward pass (0: base)
    adapters.unload("sql")

Slot 0 holds zeros: a row without an adapter gets exactly the base output. Ranks below max_rank
are zero-padded, which adds nothing. DoRA adapters are refused (their magnitude rescales the base
output per adapter).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from torch import nn

from llmkit.errors import LlmkitError
from llmkit.finetune.peft.base import read_adapter_config
from llmkit.finetune.peft.lora import lora_tensors
from llmkit.finetune.peft.targets import wrap_modules

BLOCK_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "qkv_proj",
                 "gate_up_proj", "fc1", "fc2")


class SlotSelection:
    """The adapter slot of each row of the next forward pass, shared by every wrapped Linear."""

    def __init__(self):
        self.rows: torch.Tensor | None = None  # (B,) long; None or all zero: no adapter in this pass


class MultiLoRALinear(nn.Module):
    """y = W x + s_k B_k A_k x for each row's adapter k, as two thin GEMMs over all slots at once:
    x A_all^T (B, T, slots * r) has every adapter's projection, the columns of other slots are
    zeroed (and the own slot's scaled) per row, and (.) B_all (slots * r, out) sums what is left.
    With few adapters this costs far less than gathering each row's weights (Punica's BGMV does that
    gather on GPUs, where it is cheap)."""

    def __init__(self, base: nn.Linear, selection: SlotSelection, slots: int, max_rank: int):
        super().__init__()
        self.base, self.selection, self.slots, self.rank = base, selection, slots, max_rank
        kw = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.register_buffer("lora_A", torch.zeros(slots, max_rank, base.in_features, **kw), persistent=False)
        self.register_buffer("lora_B", torch.zeros(slots, max_rank, base.out_features, **kw), persistent=False)  # B^T
        self.register_buffer("scaling", torch.zeros(slots, **kw), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (B, T, out)
        rows = self.selection.rows
        if rows is None or x.dim() != 3:
            return y
        projected = x @ self.lora_A.view(-1, x.shape[-1]).T  # (B, T, slots * r): every adapter's A x
        own = torch.nn.functional.one_hot(rows, self.slots).to(x.dtype) * self.scaling  # (B, slots): s_k at k
        projected = projected.view(*x.shape[:2], self.slots, self.rank) * own[:, None, :, None]
        return y + projected.view(*x.shape[:2], -1) @ self.lora_B.view(-1, y.shape[-1])  # (B, T, out)


class MultiLoRA:
    def __init__(self, model: nn.Module, max_loras: int = 4, max_rank: int = 16):
        self.model, self.max_rank = model, max_rank
        self.selection = SlotSelection()
        self.names: dict[str, int] = {}  # adapter name -> slot
        self.uids: dict[str, int] = {}  # adapter name -> a number never reused (its KV-cache salt)
        self._uid = itertools.count(1)
        self.free = list(range(1, max_loras + 1))
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in BLOCK_LINEARS]
        self.modules: dict[str, MultiLoRALinear] = {}
        wrap_modules(model, names, lambda name, base: self.modules.setdefault(
            name, MultiLoRALinear(base, self.selection, max_loras + 1, max_rank)))

    def select(self, slots: list[int]) -> None:
        """The adapter slot of each row of the next forward pass (the Engine calls this)."""
        self.selection.rows = torch.tensor(slots, device=self.model.lm_head.weight.device) if any(slots) else None

    def load(self, name: str, adapter_dir: str | Path) -> int:
        """Put a PEFT-layout LoRA adapter into a free slot; returns the slot."""
        if name in self.names:
            raise LlmkitError(f"an adapter named {name!r} is already loaded; unload it first")
        if not self.free:
            raise LlmkitError(f"all {len(self.names)} adapter slots are in use (--max-loras); unload one first")
        path = Path(adapter_dir)
        config = read_adapter_config(path)
        if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
            raise LlmkitError(f"{path}: only LoRA adapters can be served side by side (this one is "
                              f"{'DoRA' if config.get('use_dora') else config.get('peft_type')}); merge it with `llmkit merge`")
        rank = int(config["r"])
        if rank > self.max_rank:
            raise LlmkitError(f"{path}: rank {rank} is above --max-lora-rank {self.max_rank}")
        scaling = config["lora_alpha"] / (rank ** 0.5 if config.get("use_rslora") else rank)
        weights = self._weights(path)
        slot = self.free.pop(0)
        with torch.no_grad():
            for module_name, parts in weights.items():
                module = self.modules[module_name]
                module.lora_A[slot, :rank] = parts["A"].to(module.lora_A.dtype)
                module.lora_B[slot, :rank] = parts["B"].T.to(module.lora_B.dtype)
                module.scaling[slot] = scaling
        self.names[name], self.uids[name] = slot, next(self._uid)
        return slot

    def _weights(self, path: Path) -> dict[str, dict[str, torch.Tensor]]:
        weights: dict[str, dict[str, torch.Tensor]] = {}
        for key, name, part, tensor in lora_tensors(path, self.model.cfg):
            if name not in self.modules:
                raise LlmkitError(f"{path}: adapter tensor {key} targets {name}, not a block Linear of this model")
            weights.setdefault(name, {})[part] = tensor
        return weights

    def unload(self, name: str) -> None:
        slot = self.names.pop(name, None)
        if slot is None:
            raise LlmkitError(f"no adapter named {name!r} is loaded")
        self.uids.pop(name)
        with torch.no_grad():
            for module in self.modules.values():
                module.lora_A[slot].zero_()
                module.lora_B[slot].zero_()
                module.scaling[slot] = 0
        self.free.append(slot)
