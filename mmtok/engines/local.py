"""The in-process engine: every shard in this process, in order (``-j 1``, and embed)."""

from __future__ import annotations

from typing import Sequence

from .base import Report, ShardJob, Task, WorkerContext


class OnThisMachine:
    """What the engines that run on this machine share: the output path is the one given,
    and there is nothing to connect to before a run or to release after it."""

    def check_output(self, output: str) -> str:
        return output

    def prepare(self, job: ShardJob) -> None:
        pass

    def close(self) -> None:
        pass


class LocalEngine(OnThisMachine):
    name = "local"

    def __init__(self, context: WorkerContext | None = None) -> None:
        self.context = context or WorkerContext()

    def run(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> None:
        state = job.setup(self.context)
        for marker in job.work_in_order(state, tasks, lambda samples=1: report.samples(samples)):
            report.marker(marker)
