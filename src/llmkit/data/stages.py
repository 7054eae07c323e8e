"""The stage plan of a curation pipeline (document steps cut at each corpus step), one cached
instance per step, and the stages' files in the work directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from llmkit.data.steps import step_class
from llmkit.errors import LlmkitError

StepSpec = tuple[str, dict]  # (step name, options)


@dataclass(frozen=True)
class Stage:
    index: int
    apply: StepSpec | None  # corpus step whose decision opens this stage
    steps: tuple[StepSpec, ...]  # document steps
    keys: StepSpec | None  # corpus step whose keys close this stage


def _spec(entry: dict) -> StepSpec:
    options = {k: v for k, v in entry.items() if k not in ("name", "enabled")}
    return entry["name"], options


def plan_stages(steps: list[dict]) -> tuple[list[Stage], StepSpec | None]:
    """Stages cut at corpus steps, and the final tokenize step if the list ends with one."""
    specs = [_spec(s) for s in steps if s.get("enabled", True)]
    final = specs.pop() if specs and specs[-1][0] == "tokenize" else None
    if any(name == "tokenize" for name, _ in specs):
        raise LlmkitError("the tokenize step must come last")
    stages, current, opening = [], [], None
    for name, options in specs:
        step_class(name).from_dict(options)  # validates names and options before any work
        if step_class(name).scope == "corpus":
            stages.append(Stage(len(stages), opening, tuple(current), (name, options)))
            current, opening = [], (name, options)
        else:
            current.append((name, options))
    stages.append(Stage(len(stages), opening, tuple(current), None))
    return stages, final


_STEP_CACHE: dict[str, Any] = {}


def build_step(spec: StepSpec):
    """One instance per process and spec, set up once (models and word lists load once)."""
    key = json.dumps(spec, sort_keys=True)
    if key not in _STEP_CACHE:
        step = step_class(spec[0]).from_dict(spec[1])
        step.setup()
        _STEP_CACHE[key] = step
    return _STEP_CACHE[key]


def stage_dir(work: str | Path, index: int) -> Path:
    return Path(work) / f"stage{index}"


def read_stage_records(path: Path) -> Iterator[tuple[dict, str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            item = json.loads(line)
            yield item["record"], item["text"]
