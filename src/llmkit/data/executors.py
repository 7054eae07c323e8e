"""Where work units run: in this process, in a pool of local processes, or as Ray tasks.
Every job writes its own files and a done marker, so the order in which jobs finish never changes
the output, and a job already done is skipped on resume."""

from __future__ import annotations

import multiprocessing
from typing import Callable, Sequence

from tqdm.auto import tqdm

from llmkit.errors import LlmkitError


def run_jobs(fn: Callable, jobs: Sequence, workers: int = 1, executor: str = "local",
             desc: str = "units", progress: bool = True) -> None:
    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc=desc, unit="unit", disable=not progress, dynamic_ncols=True)
    try:
        if executor == "ray":
            _run_ray(fn, jobs, bar)
        elif executor != "local":
            raise LlmkitError(f"unknown executor {executor!r}; use local or ray")
        elif workers <= 1:
            for job in jobs:
                fn(job)
                bar.update()
        else:
            # spawn, not fork: workers must not inherit the parent's threads (torch, tokenizers)
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for _ in pool.imap_unordered(fn, jobs):
                    bar.update()
    finally:
        bar.close()


def _run_ray(fn: Callable, jobs: Sequence, bar) -> None:
    try:
        import ray
    except ImportError:
        raise LlmkitError("--executor ray needs Ray: pip install 'llmkit[ray]'") from None
    if not ray.is_initialized():
        ray.init(address="auto" if _cluster_available() else None, ignore_reinit_error=True,
                 include_dashboard=False, log_to_driver=False)
    remote = ray.remote(fn)
    pending = [remote.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)  # re-raises a job's exception here
        bar.update(len(done))


def _cluster_available() -> bool:
    import os

    return bool(os.environ.get("RAY_ADDRESS"))
