"""The last phase of `data prepare`: surviving documents to docs/ (or through the tokenize step to
token shards), rejected documents to rejected/, input errors to errors.jsonl, and the summed
stats. Outputs are assembled under .work/final and moved into OUT only when complete."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmkit.data.sources import WorkUnit
from llmkit.data.stages import build_step, read_stage_records, stage_dir
from llmkit.data.stats import merge_step_lists


def finalize(cfg, work: Path, out: Path, stages, final, units: list[WorkUnit]) -> dict:

    staging = work / "final"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    last = stage_dir(work, stages[-1].index)
    survivors = [last / f"unit{u.index:05d}.jsonl" for u in units]
    step_lists = [[] for _ in units]
    for stage in stages:
        for i, unit in enumerate(units):
            step_lists[i] += json.loads((stage_dir(work, stage.index) / f"stats{unit.index:05d}.json").read_text())["steps"]
    if final is None:
        _write_docs(survivors, staging / "docs", cfg.text_field, read_stage_records)
        final_stats = []
    else:
        tokenize = build_step(final)
        final_stats = [tokenize.run(survivors, work / "tokens", staging, cfg, read_stage_records)]
    errors = _collect_errors(work, units, stage_dir)
    if cfg.keep_rejected:
        _write_rejected(work, stages, units, staging / "rejected", stage_dir)
    if errors:
        with open(staging / "errors.jsonl", "w", encoding="utf-8") as handle:
            for error in errors:
                handle.write(json.dumps(error, ensure_ascii=False) + "\n")
    steps = merge_step_lists(step_lists) + final_stats
    docs_in = steps[0]["docs_in"] if steps else 0
    docs_out = steps[-1]["docs_out"] if steps else docs_in
    _publish(staging, out)
    return {"steps": steps, "docs_in": docs_in, "docs_out": docs_out, "input_errors": len(errors)}


def _write_docs(survivors: list[Path], docs_dir: Path, text_field: str, read_records) -> None:
    docs_dir.mkdir()
    for part, path in enumerate(survivors):
        lines = [json.dumps({**record, text_field: text}, ensure_ascii=False)
                 for record, text in read_records(path)]
        if lines:
            (docs_dir / f"part-{part:05d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_rejected(work: Path, stages, units, rejected_dir: Path, stage_dir) -> None:
    rejected_dir.mkdir()
    for part, unit in enumerate(units):
        chunks = [(stage_dir(work, s.index) / f"rejected{unit.index:05d}.jsonl").read_text(encoding="utf-8")
                  for s in stages]
        if any(chunks):
            (rejected_dir / f"part-{part:05d}.jsonl").write_text("".join(chunks), encoding="utf-8")


def _collect_errors(work: Path, units, stage_dir) -> list[dict]:
    errors = []
    for unit in units:
        errors += json.loads((stage_dir(work, 0) / f"stats{unit.index:05d}.json").read_text())["errors"]
    return errors


def _publish(staging: Path, out: Path) -> None:
    """Move each finished output into OUT, replacing what an earlier run left (OUT was checked to
    be a `data prepare` output, or --overwrite was given); each is recorded as written by llmkit."""
    from llmkit.fileio import mark_output

    mark_output(out, "data", [entry.name for entry in staging.iterdir()])
    for entry in sorted(staging.iterdir()):
        target = out / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        entry.rename(target)


def step_seconds(work: Path, stages, units) -> dict[str, float]:
    """Time spent in each step, summed over units (CPU-seconds across workers; for benchmarks).
    A corpus step counts all three phases: keys per unit, the global decision, and applying it."""

    totals: dict[str, float] = {}
    for stage in stages:
        decision = stage_dir(work, stage.index) / "decision_seconds.json"
        for name, value in (json.loads(decision.read_text()) if decision.is_file() else {}).items():
            totals[name] = totals.get(name, 0.0) + value
        for unit in units:
            seconds = json.loads((stage_dir(work, stage.index) / f"stats{unit.index:05d}.json").read_text())["seconds"]
            for name, value in seconds.items():
                totals[name] = totals.get(name, 0.0) + value
    return totals
