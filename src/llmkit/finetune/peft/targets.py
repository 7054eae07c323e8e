"""Choosing the modules a parameter-efficient method wraps: by the last component of their name
(q_proj, down_proj, ...), as PEFT's `target_modules` does; wrapping them, and swapping the
wrappers back out (merging, export)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from llmkit.errors import LlmkitError


def freeze_and_select(model: nn.Module, target_modules: list[str], kinds: tuple[type, ...] = (nn.Linear,),
                      exclude: tuple[str, ...] = ()) -> list[str]:
    """Freeze every parameter of `model`; return the names of the `kinds` modules whose last name
    component is in `target_modules` (minus `exclude`). No match is an error listing what there is."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = [name for name, module in model.named_modules()
             if isinstance(module, kinds) and name.rsplit(".", 1)[-1] in target_modules and name not in exclude]
    if not names:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, kinds)})
        raise LlmkitError(f"no Linear module is named like {target_modules}; this model has {linear}")
    return names


def wrap_modules(model: nn.Module, names: list[str], wrap: Callable[[str, nn.Module], nn.Module]) -> list[str]:
    """Replace each named module by wrap(name, module); returns the names."""
    for name in names:
        model.set_submodule(name, wrap(name, model.get_submodule(name)))
    return names


def modules_of(model: nn.Module, kind: type) -> dict[str, nn.Module]:
    """Every `kind` module of the model (a method's wrappers), by name."""
    return {name: module for name, module in model.named_modules() if isinstance(module, kind)}


def replace_modules(model: nn.Module, kind: type, replacement: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Replace every `kind` module by replacement(module) (an adapter by its merged Linear)."""
    for name, module in modules_of(model, kind).items():
        model.set_submodule(name, replacement(module))
    return model
