"""The process engine: N spawn-started worker processes on this machine (``-j N``).

The workers are our own ``multiprocessing.Process`` objects, one pipe each, one shard in
flight per worker, so the driver always knows which shard a worker was writing when it
died, and can kill every worker on an error without reaching into a pool's internals.
Workers are started with ``spawn``: Zarr 3 runs its I/O on a background thread, and forking
after that thread exists can deadlock the child.

When a worker dies, the driver says why from what it knows first hand: the exception a worker
raised while starting (reported through the :data:`WORKER_REPORT_ENV` file when it fails
before it has a pipe, e.g. a script without an ``if __name__ == "__main__":`` guard), the
signal that killed it, or its exit status; "out of memory" only when nothing better is known.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from multiprocessing.connection import Connection, wait
from typing import Any, Iterator, Sequence

from ..errors import UsageError, WorkerDied
from .base import Report, ShardJob, Task, WorkerContext
from .local import LocalEngine, OnThisMachine

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2  # how often the progress bar is brought up to date
DEATH_GRACE_SECONDS = 2.0  # how long a worker whose pipe closed is given to finish dying

# A file the driver names in the environment (inherited by spawned workers): where a worker
# that fails before it has any other channel to the driver writes its exception.
WORKER_REPORT_ENV = "MMTOK_WORKER_REPORT"


def refuse_in_worker_bootstrap() -> None:
    """A script that calls ``tokenize(..., workers>1)`` without an ``if __name__ ==
    "__main__":`` guard is re-run by every spawned worker as it starts, and would call
    tokenize again from there; say what to do instead of failing on the store's lock."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        error = UsageError(
            "mmtok.tokenize() was called while a worker process was starting: workers are "
            "started with spawn and re-import the main script, so a script that calls "
            "mmtok.tokenize(..., workers=N) must do so under `if __name__ == \"__main__\":`")
        report = os.environ.get(WORKER_REPORT_ENV)
        if report:  # the driver reads it when the worker dies (no other channel exists yet)
            with open(report, "a", encoding="utf-8") as stream:
                stream.write(f"{type(error).__name__}: {error}\n")
        raise error


def death_reason(exitcode: int | None, started: bool, report: str | None) -> str:
    """Why a worker died, from what it left behind (never a guess when the exit status says
    more): its report while starting, the signal that killed it, or its exit status."""
    if report:
        return f"a worker failed while starting: {report}"
    if exitcode is None:
        return "killed by the system, out of memory, or a crashing decoder"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        why = {"SIGKILL": "the system's out-of-memory killer, or kill -9",
               "SIGSEGV": "a crashing native decoder", "SIGBUS": "a crashing native decoder",
               "SIGABRT": "a crashing native decoder"}.get(name, "a signal")
        return f"it was killed by {name}: {why}"
    if not started:
        return (f"it exited with status {exitcode} while starting, before running any mmtok "
                "code; its error is above on stderr")
    return f"it exited with status {exitcode}; its error, if any, is above on stderr"


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
    conn.send(("started", None))  # mmtok code runs: a later death is not a start-up failure
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C for everyone

    def count(samples: int = 1) -> None:
        with counter.get_lock():
            counter.value += samples

    try:
        state = job.setup(WorkerContext())
        while (task := conn.recv()) is not None:
            shard, payload = task
            conn.send(("marker", job.work(state, shard, payload, count)))
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
        self.started = False  # it has run mmtok code (its first message)

    def give(self, task: Task | None) -> None:
        self.shard = task[0] if task is not None else None
        try:
            self.conn.send(task)
        except (BrokenPipeError, ConnectionError):
            pass  # it died: its pipe reads EOF next, and the driver says why

    def exitcode(self) -> int | None:
        """Its exit status once dead (negative: the signal), None if it will not die."""
        self.process.join(DEATH_GRACE_SECONDS)
        return self.process.exitcode


class ProcessEngine(OnThisMachine):
    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> None:
        if len(tasks) <= 1:  # not worth a process start-up
            return LocalEngine().run(job, tasks, report)
        context = multiprocessing.get_context("spawn")
        counter = context.Value("q", 0)
        upcoming = iter(tasks)  # each payload made as its shard is handed out
        workers: list[_Worker] = []
        shown = 0
        with tempfile.NamedTemporaryFile("r", prefix="mmtok-worker-", suffix=".txt") as reports:
            try:
                with _environment(WORKER_REPORT_ENV, reports.name):  # inherited at start
                    for _ in range(min(self.workers, len(tasks))):
                        workers.append(_Worker(context, job, counter))
                for worker in workers:
                    worker.give(next(upcoming, None))
                busy = [w for w in workers if w.shard is not None]
                while busy:
                    ready = wait([w.conn for w in busy], timeout=POLL_SECONDS)
                    with counter.get_lock():
                        if counter.value > shown:
                            report.samples(counter.value - shown)
                            shown = counter.value
                    for worker in [w for w in busy if w.conn in ready]:
                        marker = self._receive(worker, reports)
                        if marker is not None:
                            report.marker(marker)
                            worker.give(next(upcoming, None))
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
    def _receive(worker: _Worker, reports: Any) -> dict | None:
        """The worker's next message: its shard's marker, or None for its start-up notice;
        raises the worker's exception, or WorkerDied saying why it died."""
        try:
            kind, value = worker.conn.recv()
        except (EOFError, ConnectionError):
            reason = death_reason(worker.exitcode(), worker.started,
                                  reports.read().strip() or None)
            raise WorkerDied(
                f"a worker process died while writing shard {worker.shard} ({reason}); "
                "committed shards are kept: rerun to resume, with -j 1 to see which sample "
                "fails") from None
        if kind == "started":
            worker.started = True
            return None
        if kind == "error":
            raise value
        return value


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration (restored afterwards)."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
