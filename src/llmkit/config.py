"""YAML config files as serialised flag values: a file's keys are the verb's flag names (dashes
or underscores), and flags given on the command line win over the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmkit.errors import LlmkitError


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    file = Path(path)
    if not file.is_file():
        raise LlmkitError(f"config file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise LlmkitError(f"config file {file} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise LlmkitError(f"config file {file} must hold a mapping of settings, not {type(data).__name__}")
    return {key.replace("-", "_"): value for key, value in data.items()}


def given_flags(args: list[str]) -> set[str]:
    """The settings named on a command line (`--unit-mb 8`, `--no-rejected`, `--workers=2`), with
    underscores: what a config file may not override."""
    names = set()
    for arg in args:
        if arg.startswith("--") and len(arg) > 2:
            name = arg[2:].split("=", 1)[0].replace("-", "_")
            names.add(name)
            names.add(name.removeprefix("no_"))
    return names


def merge_settings(defaults: dict[str, Any], from_file: dict[str, Any], from_flags: dict[str, Any]) -> dict[str, Any]:
    """defaults < file < the flags given on the command line (`from_flags` holds only those)."""
    unknown = set(from_file) - set(defaults)
    if unknown:
        raise LlmkitError(f"unknown setting {sorted(unknown)[0]!r} in config file; known: {sorted(defaults)}")
    return {**defaults, **from_file, **from_flags}


def dataclass_from_dict(cls, values: dict[str, Any], where: str = "config"):
    """Build dataclass `cls` from nested dicts (YAML), naming any unknown key and its place."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise LlmkitError(f"unknown setting {where}.{key}; known: {sorted(fields)}")
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
            value = dataclass_from_dict(hints[name], value, f"{where}.{name}")
        elif isinstance(value, list) and "tuple" in str(hints[name]):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def parse_with_config(cls, args: list[str], prog: str):
    """tyro over `cls`, with defaults taken from `--config FILE` when given (flags still win)."""
    import tyro

    default = cls()
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            raise LlmkitError("--config needs a YAML file")
        default = dataclass_from_dict(cls, load_yaml(args[at + 1]))
        args = args[:at] + args[at + 2:]
    return tyro.cli(cls, args=args, default=default, prog=prog)
