"""The skeleton every writing step shares: lock -> prepare -> run -> summarise.

The driver (this process) alone holds the store lock and writes the group's attrs
(``prepare_store``); workers, wherever an engine runs them, only write whole shards and
their markers. Progress and ``--max-errors`` are driven by the markers the engine reports;
progress is a tqdm bar on a terminal, plain lines when stderr is not one (:mod:`mmtok.progress`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import TooManyErrors
from ..store.layout import shard_bounds
from ..store.lock import StoreLock
from ..store.summary import RunSummary, counted, summarise_run
from ..store.writer import ResumeState, StoreSpec, prepare_store, writing
from .base import Engine, PendingTasks, Report, ShardJob


@dataclass(frozen=True)
class StepRun:
    """How one run of a step treats its store, fixed before the store is touched."""

    desc: str  # the progress bar's label
    spec: StoreSpec
    overwrite: bool = False
    repair: bool = False
    progress: bool = True
    max_errors: int | None = None


def run_step(run: StepRun, job: ShardJob, engine: Engine, payload: Callable[[int], Any],
             started: float) -> RunSummary:
    """Create or resume ``job.output``, have ``engine`` write its pending shards (each with
    ``payload(shard)``), and summarise the store."""
    output, spec = job.output, run.spec
    engine.prepare(job)
    try:
        with writing(output), StoreLock(output):
            resume = prepare_store(output, spec, run.overwrite, run.repair)
            done = set(resume.done)
            pending = [s for s in range(spec.num_shards) if s not in done]
            written = _run_pending(run, job, engine, PendingTasks(pending, payload), resume)
    finally:
        engine.close()
    return summarise_run(output, spec, written, len(done), time.perf_counter() - started,
                         resume.repaired, checked_checksums=run.repair)


def _run_pending(run: StepRun, job: ShardJob, engine: Engine, tasks: PendingTasks,
                 resume: ResumeState) -> int:
    """Run the tasks; returns how many samples were written."""
    from ..progress import progress_bar

    spec = run.spec
    todo = sum(stop - start for start, stop in
               (shard_bounds(s, spec.num_samples, spec.shard_size) for s in tasks.shards))
    bar = progress_bar(total=spec.num_samples, initial=spec.num_samples - todo, unit="sample",
                       desc=run.desc, disable=not run.progress)
    errors, written = resume.errors_in_done, 0

    def on_marker(marker: dict) -> None:
        nonlocal errors, written
        written += marker["stop"] - marker["start"]
        errors += len(marker["errors"])
        bar.set_postfix(errors=errors, refresh=False)
        if run.max_errors is not None and errors > run.max_errors:
            raise TooManyErrors(f"{counted(errors, 'sample')} failed, more than --max-errors "
                                f"{run.max_errors}; committed shards are kept, and "
                                f"`mmtok info {job.output} --errors` lists the failed samples")

    try:
        if tasks:
            engine.run(job, tasks, Report(marker=on_marker, samples=bar.update))
    finally:
        bar.close()
    return written
