"""The process engine: N spawn-started worker processes on this machine (``-j N``).

The workers are our own ``multiprocessing.Process`` objects, one pipe each, one shard in
flight per worker, so the driver always knows which shard a worker was writing when it
died, and can kill every worker on an error without reaching into a pool's internals.
Workers are started with ``spawn``: Zarr 3 runs its I/O on a background thread, and forking
after that thread exists can deadlock the child.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Sequence

from ..errors import WorkerDied
from .base import Report, ShardJob, Task, WorkerContext
from .local import LocalEngine

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2  # how often the progress bar is brought up to date


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this worker when the parent dies. A worker whose parent was
    SIGKILLed would otherwise live on: blocked forever on its pipe (holding memory), or still
    writing its shard after the lock is gone and a new run has started."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)


def _picklable(exc: BaseException) -> BaseException:
    """``exc`` if it survives the pipe, else a RuntimeError carrying its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"in a worker process:\n{text}")


def _worker_main(parent: int, job: ShardJob, conn: Connection, counter: Any) -> None:
    """A worker: set up once, then write the shards the driver sends until it sends None."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C for everyone

    def count_one() -> None:
        with counter.get_lock():
            counter.value += 1

    try:
        state = job.setup(WorkerContext())
        while (task := conn.recv()) is not None:
            shard, payload = task
            conn.send(("marker", job.work(state, shard, payload, count_one)))
    except BaseException as exc:  # handed to the driver, which re-raises it
        conn.send(("error", _picklable(exc)))


class _Worker:
    def __init__(self, context: Any, job: ShardJob, counter: Any) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, daemon=True,
                                       args=(os.getpid(), job, child, counter))
        self.process.start()
        child.close()  # else the driver would never see EOF when the worker dies
        self.shard: int | None = None

    def give(self, task: Task | None) -> None:
        self.shard = task[0] if task is not None else None
        self.conn.send(task)


class ProcessEngine:
    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def check_output(self, output: str) -> str:
        return output

    def prepare(self, job: ShardJob) -> None:
        pass

    def close(self) -> None:
        pass

    def run(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> None:
        if len(tasks) <= 1:  # not worth a process start-up
            return LocalEngine().run(job, tasks, report)
        context = multiprocessing.get_context("spawn")
        counter = context.Value("q", 0)
        queue = list(reversed(tasks))
        workers = [_Worker(context, job, counter) for _ in range(min(self.workers, len(tasks)))]
        shown = 0
        try:
            for worker in workers:
                worker.give(queue.pop() if queue else None)
            busy = [w for w in workers if w.shard is not None]
            while busy:
                ready = wait([w.conn for w in busy], timeout=POLL_SECONDS)
                with counter.get_lock():
                    report.samples(counter.value - shown)
                    shown = counter.value
                for worker in [w for w in busy if w.conn in ready]:
                    report.marker(self._result(worker))
                    worker.give(queue.pop() if queue else None)
                busy = [w for w in workers if w.shard is not None]
            for worker in workers:
                worker.process.join()
        except BaseException:
            # Stop now: unfinished shards have no marker, and a rerun redoes them.
            for worker in workers:
                worker.process.kill()
            for worker in workers:
                worker.process.join()
            raise

    @staticmethod
    def _result(worker: _Worker) -> dict:
        try:
            kind, value = worker.conn.recv()
        except (EOFError, ConnectionError):
            raise WorkerDied(
                f"a worker process died while writing shard {worker.shard} (killed by the "
                "system, out of memory, or a crashing decoder); committed shards are kept: "
                "rerun to resume, with -j 1 to see which sample fails") from None
        if kind == "error":
            raise value
        return value
