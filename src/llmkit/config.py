"""YAML config files as serialised flag values: a file's keys are the verb's flag names (dashes
or underscores; nested mappings for dotted flags such as --optim.lr), and flags given on the
command line win over the file. Every verb takes `--config FILE.yaml`."""

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


def pop_config_file(args: list[str]) -> tuple[str | None, list[str]]:
    """`--config FILE` (or `--config=FILE`) taken out of a verb's arguments."""
    for i, arg in enumerate(args):
        if arg == "--config" or arg.startswith("--config="):
            if "=" in arg:
                return arg.split("=", 1)[1], args[:i] + args[i + 1:]
            if i + 1 >= len(args):
                raise LlmkitError("--config needs a YAML file")
            return args[i + 1], args[:i] + args[i + 2:]
    return None, args


def with_file_defaults(function, path: str):
    """`function` (a verb) with its parameters' defaults taken from YAML file `path`: the flags given on
    the command line still win, because tyro parses them over these defaults."""
    import functools
    import inspect

    values = load_yaml(path)
    known = [name for name in inspect.signature(function).parameters]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise LlmkitError(f"unknown setting {unknown[0]!r} in config file {path}; known: {known}")
    return functools.partial(function, **values)


def parse_with_config(cls, args: list[str], prog: str):
    """tyro over `cls`, with defaults taken from `--config FILE` when given (flags still win)."""
    import tyro

    path, args = pop_config_file(args)
    default = dataclass_from_dict(cls, load_yaml(path)) if path else cls()
    return tyro.cli(cls, args=args, default=default, prog=prog)
