"""Where work units run: in this process, in a pool of local processes, or as Ray tasks.
Every job writes its own files and a done marker, so the order in which jobs finish never changes
the output, and a job already done is skipped on resume."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from llmkit.errors import LlmkitError


def run_jobs(fn: Callable, jobs: Sequence, workers: int = 1, executor: str = "local",
             desc: str = "units", progress: bool = True, ray_address: str | None = None) -> None:
    if not jobs:
        return
    bar = tqdm(total=len(jobs), desc=desc, unit="unit", disable=not progress, dynamic_ncols=True)
    try:
        if executor == "ray":
            _run_ray(fn, jobs, bar, ray_address)
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


# A task whose worker process dies (a node lost, the OOM killer, a kill) runs again elsewhere; every
# job rewrites its own files and renames them into place before its done marker, so a retry neither
# duplicates nor loses documents.
RAY_TASK_RETRIES = 3


def _run_ray(fn: Callable, jobs: Sequence, bar, address: str | None) -> None:
    try:
        import ray
    except ImportError:
        raise LlmkitError("--executor ray needs Ray: pip install 'llmkit[ray]'") from None
    if not ray.is_initialized():
        # an existing cluster, else a new local Ray ("local": never a leftover instance found in /tmp/ray)
        address = address or os.environ.get("RAY_ADDRESS") or "local"
        env = {k: v for k, v in os.environ.items() if k.startswith("LLMKIT_")}  # thread counts, fault tests
        try:
            ray.init(address=address, ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env} if env else None)
        except ConnectionError as error:
            raise LlmkitError(f"cannot reach the Ray cluster at {address} ({error}); start it with `ray start --head` "
                              "or check --ray-address") from None
    remote = ray.remote(max_retries=RAY_TASK_RETRIES, retry_exceptions=False)(fn)
    pending = [remote.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done)  # re-raises a job's exception here
        bar.update(len(done))


def maybe_die(job) -> None:
    """LLMKIT_DATA_FAULT=STAGE:UNIT kills the worker process running that unit of that stage, once
    (a marker in the work directory remembers), after it has written its output but before it
    renames it into place: the test of a retried task (Ray, or a resumed local run)."""
    spec = os.environ.get("LLMKIT_DATA_FAULT")
    if not spec or not hasattr(job, "unit"):
        return
    stage, unit = (int(x) for x in spec.split(":"))
    marker = Path(job.work) / f"fault-{stage}-{unit}.fired"
    if (job.stage.index, job.unit.index) == (stage, unit) and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
