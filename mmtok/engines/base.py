"""What every engine shares: the job a step hands it, and the one signature engines have.

A step (tokenize, embed) builds one frozen, picklable :class:`ShardJob` before any work
starts. The job knows how to set up a worker (``setup``, once per process or actor) and how
to write one whole shard (``work``, the step's only shard function). An engine only decides
where ``work`` runs: :func:`Engine.run` receives the job, the pending shards each with what
that shard needs (its slice of the sample list, never the whole list) and a :class:`Report`
through which the driver learns about progress and each shard's commit marker.
"""

from __future__ import annotations

import collections.abc
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

Task = tuple[int, Any]  # (shard index, what that shard's work needs)


class PendingTasks(collections.abc.Sequence):
    """The pending shards as a sequence of tasks whose payloads are made when a task is
    taken: a shard's slice of the sample list (its ``Sample`` objects and ids) exists while
    that shard is queued to a worker, not for every shard from the start (that list grew
    with the number of samples: 177 bytes a time-series window)."""

    def __init__(self, shards: Sequence[int], payload: Callable[[int], Any]) -> None:
        self.shards = list(shards)
        self._payload = payload

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [(shard, self._payload(shard)) for shard in self.shards[index]]
        shard = self.shards[index]
        return shard, self._payload(shard)


@dataclass(frozen=True)
class WorkerContext:
    """What the engine tells a worker about where it runs. ``device`` None: the job's own
    choice (the local engine); Ray actors name the device their resources map to."""

    device: str | None = None
    threads: int | None = None


class ShardJob:
    """One step's work, frozen and picklable: sent once to every worker.

    ``stateful`` jobs (embed: the model is loaded once) run on Ray actors, the others
    (tokenize) as Ray tasks.
    """

    output: str
    stateful = False

    def setup(self, context: WorkerContext) -> Any:
        """Per-worker state shared by every shard this worker writes."""
        raise NotImplementedError

    def work(self, state: Any, shard: int, payload: Any,
             on_sample: Callable[..., None] | None = None) -> dict:
        """Write shard ``shard`` whole, marker last; returns the commit marker.
        ``on_sample(n=1)`` is called as samples are done (progress): once per sample, or
        with a count (embed: once per batch)."""
        raise NotImplementedError

    def work_in_order(self, state: Any, tasks: Iterable[Task],
                      on_sample: Callable[..., None] | None = None) -> Iterator[dict]:
        """``work`` over ``tasks`` in one process; a job may overlap reading ahead."""
        for shard, payload in tasks:
            yield self.work(state, shard, payload, on_sample)


@dataclass
class Report:
    """How an engine tells the driver what happened. ``marker`` may raise (``--max-errors``):
    the engine then stops its workers and lets the exception through."""

    marker: Callable[[dict], None]
    samples: Callable[[int], None]


class Engine(Protocol):
    name: str

    def run(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> None:
        """Run every task; ``report.marker`` once per written shard. Raises when a shard
        cannot be written (after the engine's own retries)."""
        ...

    def check_output(self, output: str) -> str:
        """The path workers are given; refuses, before any work, one they cannot reach."""
        ...

    def prepare(self, job: ShardJob) -> None:
        """Connect and check resources, before the store is touched."""
        ...

    def close(self) -> None:
        """Release what ``prepare`` started (a local Ray instance)."""
        ...
