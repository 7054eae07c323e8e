"""`llmkit models`."""

from __future__ import annotations


def models(json: bool = False) -> None:
    """List the named model configs with their parameter counts, computed on the meta device.

    Args:
        json: print {name: parameter_count} as JSON instead of a table.
    """
    import json as json_lib

    from llmkit.model import config_names, count_parameters, named_config

    counts = {name: count_parameters(named_config(name)) for name in config_names()}
    if json:
        print(json_lib.dumps(counts, indent=2))
        return
    print(f"{'name':<15} {'family':<8} {'architecture':<16} {'parameters':>15}")
    for name, count in counts.items():
        cfg = named_config(name)
        print(f"{name:<15} {cfg.family:<8} {cfg.arch:<16} {count:>15,d}")
