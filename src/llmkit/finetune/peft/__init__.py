"""Parameter-efficient fine-tuning methods behind one interface (llmkit.finetune.peft.base), one
module each: lora, dora, qlora, ia3, bottleneck (--method adapter), prefix, prompt, ptuning. A
module that defines a `@register`ed AdapterMethod is found by listing this package, so adding a
method is one new file (plus its tests).

    method("lora").apply(model, cfg)            # for training
    load_adapter(model, "runs/ft/adapter")      # any saved adapter onto its base model, ready to decode
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from torch import nn

from llmkit.errors import LlmkitError
from llmkit.finetune.peft.base import AdapterMethod, read_adapter_config

_METHODS: dict[str, AdapterMethod] = {}
_NOT_METHODS = {"base", "targets"}
_discovered = False


def register(cls: type[AdapterMethod]) -> type[AdapterMethod]:
    _METHODS[cls.name] = cls()
    return cls


def _discover() -> dict[str, AdapterMethod]:
    global _discovered
    if not _discovered:  # importing a method's module registers it
        for info in pkgutil.iter_modules(__path__):
            if info.name not in _NOT_METHODS:
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True
    return _METHODS


def method_names() -> list[str]:
    return sorted(_discover())


def method(name: str) -> AdapterMethod:
    methods = _discover()
    if name not in methods:
        raise LlmkitError(f"unknown fine-tuning method {name!r}; choose from {', '.join(sorted(methods))}")
    return methods[name]


def method_for(adapter_dir: str | Path) -> tuple[AdapterMethod, dict]:
    """The method that wrote an adapter directory, from its adapter_config.json."""
    config = read_adapter_config(adapter_dir)
    found = [m for m in _discover().values() if m.matches(config)]
    if not found:
        raise LlmkitError(f"{adapter_dir}: adapter type {config.get('peft_type')!r} is not one llmkit reads "
                          f"(LORA, IA3, PREFIX_TUNING, PROMPT_TUNING, LLMKIT_BOTTLENECK)")
    return found[0], config


def load_adapter(model: nn.Module, adapter_dir: str | Path) -> AdapterMethod:
    """Put a saved adapter (any method) onto its base model, ready to generate; returns its method."""
    found, config = method_for(adapter_dir)
    found.load(model, adapter_dir, config)
    return found
