"""The curation pipeline: steps over work units, in stages, resumable and deterministic.

Steps are cut into stages at every corpus step (deduplication):

    stage 0: [normalize, language, gopher] -> keys of exact_dedup   (per unit, in parallel)
             decide exact_dedup over all units                        (once, in unit order)
    stage 1: apply exact_dedup, [pii]      -> keys of near_dedup      (per unit, in parallel)
             decide near_dedup ...
    final:   docs/ JSONL, or the tokenize step (train BPE if needed, encode per unit, pack shards)

Every unit of every stage writes its outputs under OUT/.work and then a done marker, so a killed
run resumes where it stopped, `--task i/n` can run a slice of stage 0 on another machine, and
the final files are byte-identical whatever the number of workers or interruptions (all but
timings.json, which records how long each step took).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from llmkit.data.executors import maybe_die, run_jobs
from llmkit.data.sources import InputError, WorkUnit, expand_inputs, plan_units, read_unit
from llmkit.data.stats import StepStats
from llmkit.data.finalize import finalize, step_seconds
from llmkit.data.stages import Stage, build_step, plan_stages, read_stage_records, stage_dir
from llmkit.errors import LlmkitError
from llmkit.fileio import check_output, mark_output, write_json

@dataclass
class PrepareConfig:
    inputs: list[str]
    out: str
    steps: list[dict] = field(default_factory=list)  # [{"name": ..., option: value}] in order
    text_field: str = "text"
    workers: int = 1
    unit_mb: float = 32.0
    keep_rejected: bool = True
    task: str | None = None  # "i/n": run only this slice of stage 0 (merge later without --task)
    overwrite: bool = False  # write into a non-empty OUT that is not a `data prepare` output
    executor: str = "local"
    ray_address: str | None = None  # an existing Ray cluster (else RAY_ADDRESS, else a local Ray)
    progress: bool = True
    keep_work: bool = False


@dataclass(frozen=True)
class UnitJob:
    work: str
    stage: Stage
    unit: WorkUnit
    text_field: str
    keep_rejected: bool


def _source(job: UnitJob, errors: list[InputError]) -> Iterator[tuple[dict, str]]:
    if job.stage.index == 0:
        for record in read_unit(job.unit, job.text_field, errors):
            # a web page's HTML is not carried along (html_extract turns it into the text)
            yield record, record.pop(job.text_field) if record.get("format") == "html" else record[job.text_field]
    else:
        yield from read_stage_records(stage_dir(job.work, job.stage.index - 1) / f"unit{job.unit.index:05d}.jsonl")


def run_stage_unit(job: UnitJob) -> None:
    """Process one unit through one stage; writes survivors, rejected, stats, keys, then a marker."""
    out, u = stage_dir(job.work, job.stage.index), job.unit.index
    if (out / f"unit{u:05d}.done").exists():
        return
    steps = [build_step(spec) for spec in job.stage.steps]
    appliers, stats = [], []
    if job.stage.apply is not None:
        decision = dict(np.load(stage_dir(job.work, job.stage.index - 1) / f"decision{u:05d}.npz"))
        appliers.append(build_step(job.stage.apply).applier(decision))
        stats.append(StepStats(job.stage.apply[0]))
    appliers += steps
    stats += [StepStats(spec[0]) for spec in job.stage.steps]
    for step in steps:
        step.counters.clear()
    errors: list[InputError] = []
    kept_path, rejected_path = out / f"unit{u:05d}.jsonl", out / f"rejected{u:05d}.jsonl"
    timings = [0.0] * len(appliers)
    with open(f"{kept_path}.tmp", "w", encoding="utf-8") as kept, open(f"{rejected_path}.tmp", "w", encoding="utf-8") as rejected:
        for record, text in _source(job, errors):
            for i, (fn, step_stats) in enumerate(zip(appliers, stats)):
                started = time.perf_counter()
                new_text, reason = fn(text, record) if getattr(fn, "reads_record", False) else fn(text)
                timings[i] += time.perf_counter() - started
                step_stats.record(text, new_text, reason)
                if new_text is None:
                    if job.keep_rejected:
                        rejected.write(json.dumps({"step": step_stats.name, "reason": reason, "document": record},
                                                  ensure_ascii=False) + "\n")
                    break
                text = new_text
            else:
                kept.write(json.dumps({"record": record, "text": text}, ensure_ascii=False) + "\n")
    for step, step_stats in zip(steps, stats[-len(steps):] if steps else []):
        step_stats.counts.update(step.counters)
    maybe_die(job)  # fault injection (LLMKIT_DATA_FAULT): a worker lost with its output half done
    Path(f"{kept_path}.tmp").replace(kept_path)
    Path(f"{rejected_path}.tmp").replace(rejected_path)
    seconds = dict(zip([s.name for s in stats], timings))
    if job.stage.keys is not None:
        started = time.perf_counter()
        keys = build_step(job.stage.keys).keys(text for _, text in read_stage_records(kept_path))
        np.savez(out / f"keys{u:05d}.npz", **keys)
        seconds[job.stage.keys[0]] = time.perf_counter() - started  # the corpus step's per-unit phase
    write_json(out / f"stats{u:05d}.json", {
        "steps": [s.to_dict() for s in stats], "errors": [asdict(e) for e in errors], "seconds": seconds,
    })
    (out / f"unit{u:05d}.done").touch()


def decide_stage(work: Path, stage: Stage, units: list[WorkUnit]) -> None:
    out = stage_dir(work, stage.index)
    if stage.keys is None or (out / "decision.done").exists():
        return
    started = time.perf_counter()
    step = build_step(stage.keys)
    decisions = step.decide([out / f"keys{u.index:05d}.npz" for u in units])
    for unit, decision in zip(units, decisions):
        np.savez(out / f"decision{unit.index:05d}.npz", **decision)
    write_json(out / "decision_seconds.json", {stage.keys[0]: time.perf_counter() - started})
    (out / "decision.done").touch()


def _plan_record(cfg: PrepareConfig, files: list[Path], units: list[WorkUnit]) -> dict:
    return {"inputs": [[str(f), f.stat().st_size, int(f.stat().st_mtime)] for f in files],
            "units": [[u.path, u.start, u.end] for u in units], "steps": cfg.steps,
            "text_field": cfg.text_field, "unit_mb": cfg.unit_mb}


def _check_plan(out: Path, work: Path, plan: dict) -> bool:
    """True when OUT already holds this exact run, finished; an unfinished different run is an error."""
    for existing in (work / "plan.json", out / "plan.json"):
        if existing.is_file() and json.loads(existing.read_text()) != plan:
            raise LlmkitError(f"{out} holds a run with other inputs or steps; use a new --out or delete it")
    return (out / "stats.json").is_file() and (out / "plan.json").is_file()


def prepare(cfg: PrepareConfig) -> dict:
    """Run the pipeline; returns the stats dict (also written to OUT/stats.json)."""

    out, started = Path(cfg.out), time.perf_counter()
    work = out / ".work"
    stages, final = plan_stages(cfg.steps)
    files = expand_inputs(cfg.inputs)
    step_inputs = [v for step in cfg.steps for k in ("tokenizer", "model") if isinstance(v := step.get(k), str)]
    check_output(out, "data", cfg.overwrite, [*files, *step_inputs,
                                              *(f for step in cfg.steps for f in step.get("eval_files", []))])
    mark_output(out, "data")
    units = plan_units(files, max(1, int(cfg.unit_mb * 2**20)))
    plan = _plan_record(cfg, files, units)
    if _check_plan(out, work, plan):
        print(f"{out} is complete already; nothing to do")
        return json.loads((out / "stats.json").read_text())
    for stage in stages:
        stage_dir(work, stage.index).mkdir(parents=True, exist_ok=True)
    write_json(work / "plan.json", plan)
    selected = _task_units(cfg.task, units)
    if cfg.executor == "ray":  # cluster workers run elsewhere: absolute paths (on storage they all see)
        work, selected = work.resolve(), [replace(u, path=str(Path(u.path).resolve())) for u in selected]
    for stage in stages:
        jobs = [UnitJob(str(work), stage, u, cfg.text_field, cfg.keep_rejected) for u in selected]
        run_jobs(run_stage_unit, jobs, cfg.workers, cfg.executor, f"stage {stage.index}", cfg.progress,
                 cfg.ray_address)
        if cfg.task is not None:
            print(f"task {cfg.task}: {len(selected)} of {len(units)} units done; run again without --task to merge")
            return {}
        decide_stage(work, stage, units)
    stats = finalize(cfg, work, out, stages, final, units)
    seconds = time.perf_counter() - started
    write_json(out / "timings.json", {"wall_seconds": seconds, "step_seconds": step_seconds(work, stages, units)})
    write_json(out / "plan.json", plan)
    write_json(out / "stats.json", stats)  # written last: its presence means the run is complete
    _report(stats, seconds, sum(f.stat().st_size for f in files), out)
    if not cfg.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return stats


def _task_units(task: str | None, units: list[WorkUnit]) -> list[WorkUnit]:
    if task is None:
        return units
    try:
        index, count = (int(x) for x in task.split("/"))
        assert 0 <= index < count
    except (ValueError, AssertionError):
        raise LlmkitError(f"--task must be i/n with 0 <= i < n, got {task!r}") from None
    return [u for u in units if u.index % count == index]


def _report(stats: dict, seconds: float, input_bytes: int, out: Path) -> None:
    print(f"{'step':<15}{'docs in':>10}{'docs out':>10}  removed")
    for s in stats["steps"]:
        removed = ", ".join(f"{k}={v}" for k, v in s["removed"].items()) or "-"
        print(f"{s['name']:<15}{s['docs_in']:>10}{s['docs_out']:>10}  {removed}")
    print(f"{stats['docs_in']} documents in, {stats['docs_out']} out, {stats['input_errors']} input errors; "
          f"{stats['docs_in'] / max(seconds, 1e-9):.0f} docs/s, {input_bytes / 2**20 / max(seconds, 1e-9):.1f} MB/s")
    if stats["input_errors"]:
        errors = (out / "errors.jsonl").read_text(encoding="utf-8").splitlines()
        for line in errors[:3]:
            error = json.loads(line)
            print(f"  input error at {error['location']}: {error['message']}")
        print(f"  (all {len(errors)} in {out / 'errors.jsonl'})")
