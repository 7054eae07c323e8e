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


def resolve_tasks(names: list[str], seed: int = 0) -> list[TaskSpec]:
    """Each name is a task YAML file (anything ending in .yaml/.yml or an existing file) or a built-in."""
    return [load_task_file(n) if n.endswith((".yaml", ".yml")) or Path(n).is_file() else builtin_task(n, seed=seed)
            for n in names]


def run_tasks(llm, tasks: list[TaskSpec], options: EvalOptions, progress=print) -> list[dict]:
    results = []
    for task in tasks:
        started = time.perf_counter()
        result = evaluate_task(llm, task, options) | {"seconds": time.perf_counter() - started}
        results.append(result)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(result["metrics"].items())[:4])
        progress(f"[evaluate] {task.name} ({result['n']} examples, {result['seconds']:.1f}s): {shown}")
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
