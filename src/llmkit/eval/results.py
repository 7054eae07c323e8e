"""Evaluation results on disk: results.json (everything, with samples) and results.md (one row per
task and metric, with the standard error where the metric is a mean)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from llmkit.eval.builtin_tasks import builtin_task
from llmkit.eval.evaluator import EvalOptions, evaluate_task
from llmkit.eval.task_spec import TaskSpec, load_task_file
from llmkit.fileio import atomic_write_text, write_json


def resolve_tasks(names: list[str], seed: int = 0, data: dict[str, str] | None = None,
                  data_dir: str | None = None) -> list[TaskSpec]:
    """Each name is a task YAML file (anything ending in .yaml/.yml or an existing file), a standard
    benchmark read from local files (llmkit.eval.benchmarks; mmlu expands to its subjects), or a
    built-in. Names may also be given comma-separated."""
    from llmkit.eval.benchmarks import is_benchmark, load_benchmark

    specs = []
    for name in (part.strip() for n in names for part in n.split(",") if part.strip()):
        if name.endswith((".yaml", ".yml")) or Path(name).is_file():
            specs.append(load_task_file(name))
        elif is_benchmark(name):
            specs += load_benchmark(name, data, data_dir)
        else:
            specs.append(builtin_task(name, seed=seed))
    return specs


def run_tasks(llm, tasks: list[TaskSpec], options: EvalOptions, progress=print) -> list[dict]:
    """Every task's result, then the group averages (MMLU over its subjects)."""
    from llmkit.eval.benchmarks import group_rows

    results = []
    for task in tasks:
        started = time.perf_counter()
        result = evaluate_task(llm, task, options) | {"seconds": time.perf_counter() - started}
        results.append(result)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(result["metrics"].items())[:4])
        progress(f"[evaluate] {task.name} ({result['n']} examples, {result['seconds']:.1f}s): {shown}")
    for group in group_rows(results):
        results.append(group)
        progress(f"[evaluate] {group['task']} ({group['subjects']} subjects, {group['n']} examples): "
                 + ", ".join(f"{k} {v:.4g}" for k, v in group["metrics"].items()))
    return results


def markdown_table(results: list[dict]) -> str:
    lines = ["| task | type | n | metric | value | ± stderr |", "| --- | --- | ---: | --- | ---: | ---: |"]
    for r in results:
        for name, value in r["metrics"].items():
            err = r.get("stderr", {}).get(name)
            shown_err = f"{err:.4f}" if err is not None and not math.isnan(err) else ""
            lines.append(f"| {r['task']} | {r['type']} | {r['n']} | {name} | {value:.4f} | {shown_err} |")
    return "\n".join(lines) + "\n"


def _json_safe(value):
    """NaN (an undefined rate or stderr) as null, so results.json is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_results(out: str | Path, header: dict, results: list[dict]) -> None:
    out = Path(out)
    write_json(out / "results.json", _json_safe(header | {"results": results}))
    atomic_write_text(out / "results.md", f"# Evaluation of {header.get('checkpoint', 'a model')}\n\n"
                      + markdown_table(results))
