"""The Ray engine: the same shard function on a Ray cluster (``--engine ray``).

Tokenize runs as Ray core tasks, one per pending shard, a bounded number in flight
(``ray.wait``); embed (a ``stateful`` job: the model is loaded once) runs on actors, one
per GPU, or ``--ray-actors N`` CPU actors. Ray only schedules and retries: a task whose
worker died (OOM, SIGKILL, a lost node) is retried ``max_retries`` times, which is safe
because a shard is a pure function written whole, marker last, with identical bytes on
every attempt. A sample's own error is recorded in its shard's marker, never retried. The
driver (this process) holds the store lock and alone writes the group's attrs.

Ray is imported only here, and this module only when ``--engine ray`` is asked for.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any, Sequence

from ..errors import MmtokError, UsageError, WorkerDied
from .base import Report, ShardJob, Task, WorkerContext

EXTRA = "pip install 'mmtok[ray]'"
WAIT_SECONDS = 1.0  # ray.wait's timeout: Ctrl-C is handled at least this often
CANCEL_GRACE_SECONDS = 10.0  # how long the driver waits for cancelled tasks to stop


class ShardsFailed(WorkerDied):
    """Shards whose task failed after Ray's retries (exit code 6, as a dead local worker)."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray, an optional extra: {EXTRA} (ray 2.60), "
                         "or use --engine local") from None
    return ray


# --- worker side: runs in Ray's worker processes ----------------------------------------
_STATE: dict[str, Any] = {}  # run id -> the job's per-worker state (one run at a time)


def _shard_task(job: ShardJob, run_id: str, shard: int, payload: Any) -> dict:
    """One Ray task: set the job up once per worker process, then write one shard."""
    if run_id not in _STATE:
        _STATE.clear()  # a worker reused by a later run drops the earlier run's state
        _STATE[run_id] = job.setup(WorkerContext())
    return job.work(_STATE[run_id], shard, payload)


class _ShardActor:
    """Holds one job's state (a loaded model) and writes one shard per call."""

    def __init__(self, job: ShardJob, context: WorkerContext) -> None:
        self.job, self.state = job, job.setup(context)

    def work(self, shard: int, payload: Any) -> dict:
        return self.job.work(self.state, shard, payload)

    def placement(self) -> dict:
        """Where this actor runs, as Ray placed it (for tests and logs)."""
        return {"pid": os.getpid(), "CUDA_VISIBLE_DEVICES": os.environ.get(
            "CUDA_VISIBLE_DEVICES"), "gpu_ids": [str(g) for g in _ray().get_gpu_ids()]}


def _ray() -> Any:
    import ray

    return ray


# --- driver side ------------------------------------------------------------------------
class RayEngine:
    name = "ray"

    def __init__(self, options: Any) -> None:
        self.ray = import_ray()
        self.options = options
        self.address = options.ray_address or os.environ.get("RAY_ADDRESS") or None
        self.placements: list[dict] = []  # filled by stateful runs (one entry per actor)

    @property
    def remote(self) -> bool:
        """A cluster that may span other machines (any address but a local instance)."""
        return self.address not in (None, "local")

    def check_output(self, output: str) -> str:
        """The path every node writes to: refused when relative on a cluster, since each
        node would resolve it against its own working directory."""
        if "://" in output:  # a URL names the same place from every node
            return output
        if self.remote and not os.path.isabs(output):
            raise UsageError(
                f"{output} is a relative path, but the Ray cluster at {self.address} may run "
                "tasks on other machines: give an absolute path on a file system every node "
                "mounts (e.g. /shared/data/tokens.zarr)")
        return os.path.abspath(output)

    def prepare(self, job: ShardJob) -> None:
        """Join the cluster and check the job's resources before the store is touched."""
        self._started_here = self._connect()
        if job.stateful:
            self._shape = self._actor_shape(job)

    def close(self) -> None:
        if getattr(self, "_started_here", False):
            self.ray.shutdown()
            self._started_here = False

    def run(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> None:
        if job.stateful:
            failed = self._run_actors(job, tasks, report)
        else:
            failed = self._run_tasks(job, tasks, report)
        if failed:
            raise self._failure(failed)

    def _connect(self) -> bool:
        """Join the cluster; True when this run started (and so stops) a local instance."""
        ray = self.ray
        if ray.is_initialized():  # a caller (a notebook, a test session) already joined one
            return False
        address = self.address or "local"  # never join some other user's `ray start` silently
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING,
                     log_to_driver=False, configure_logging=True)
        except (ConnectionError, ValueError) as exc:
            cause = f": {str(exc.__cause__).splitlines()[0][:300]}" if exc.__cause__ else ""
            raise UsageError(f"cannot connect to the Ray cluster at {address} ({exc}{cause}); "
                             "check --ray-address / RAY_ADDRESS (and, for a cluster with token "
                             "authentication, RAY_AUTH_TOKEN), or leave both unset to start a "
                             "local instance") from None
        return address == "local"

    # tokenize: one task per shard ----------------------------------------------------
    def _run_tasks(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> list:
        ray, options = self.ray, self.options
        per_task = options.ray_num_cpus or 1
        remote = ray.remote(_shard_task).options(
            num_cpus=per_task, max_retries=options.max_retries, retry_exceptions=False)
        limit = self._in_flight(per_task)
        job_ref, run_id = ray.put(job), uuid.uuid4().hex  # the job travels once, not per task
        return self._drive(tasks, report, _TaskSlots(
            limit, lambda shard, payload: remote.remote(job_ref, run_id, shard, payload)))

    def _in_flight(self, per_task: float) -> int:
        """``-j N`` tasks in flight, or (``-j 1``, the default) as many as the cluster's CPUs
        run at once: one task at a time is never what a cluster is for."""
        if self.options.workers > 1:
            return self.options.workers
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // per_task))

    def _drive(self, tasks: Sequence[Task], report: Report, slots: Any) -> list:
        """Keep ``slots`` busy until every task returned or failed for good; returns the
        failures ``[(shard, reason)]``."""
        ray = self.ray
        # positions of the tasks not yet submitted: each payload is made as it is submitted
        queue, in_flight, failed = list(range(len(tasks)))[::-1], {}, []
        try:
            while queue or in_flight:
                while queue and slots.free():
                    shard, payload = tasks[queue.pop()]
                    in_flight[slots.submit(shard, payload)] = shard
                if not in_flight:  # nowhere left to run them (every actor is gone)
                    failed += [(tasks[i][0], "no live actor left") for i in queue]
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=WAIT_SECONDS)
                for ref in ready:
                    shard = in_flight.pop(ref)
                    marker = self._marker(ref, shard, failed)
                    slots.done(ref, ok=marker is not None)
                    if marker is not None:
                        report.samples(marker["stop"] - marker["start"])
                        report.marker(marker)
        except BaseException:
            self._cancel(list(in_flight))
            raise
        return failed

    def _marker(self, ref: Any, shard: int, failed: list) -> dict | None:
        """The shard's marker; None (and the shard in ``failed``) when Ray gave up on it."""
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            # the shard function itself raised: --strict, a full disk, or a bug; never retried
            cause = getattr(exc, "cause", None)
            if isinstance(cause, (MmtokError, OSError)):
                raise cause from None
            raise
        except exceptions.RayError as exc:  # the worker, its node or its actor died
            failed.append((shard, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
            return None

    def _cancel(self, refs: list) -> None:
        """Stop tasks still running, and wait a little for them to be gone: a cancelled
        task must not still be writing after the driver released the lock."""
        ray = self.ray
        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # an actor call cannot be force-cancelled; its actor is killed
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_SECONDS)

    def _failure(self, failed: list) -> ShardsFailed:
        shards = ", ".join(str(shard) for shard, _ in sorted(failed))
        reasons = sorted({reason for _, reason in failed})
        return ShardsFailed(
            f"{len(failed)} shard(s) failed after {self.options.max_retries} retries (shards "
            f"{shards}; {'; '.join(reasons[:3])}); committed shards are kept: rerun the same "
            "command to resume, or `mmtok validate` to see what is missing")

    # embed: one actor per GPU, or CPU actors ---------------------------------------
    def _run_actors(self, job: ShardJob, tasks: Sequence[Task], report: Report) -> list:
        ray = self.ray
        gpu, count, per_actor = self._shape
        context = WorkerContext(device="cuda" if gpu else "cpu",
                                threads=max(1, int(per_actor)))
        actor_class = ray.remote(_ShardActor).options(
            num_cpus=per_actor, num_gpus=1 if gpu else 0,
            max_restarts=self.options.max_retries, max_task_retries=self.options.max_retries)
        # the job goes inline, not by object ref: a restarted actor must still find it
        actors = [actor_class.remote(job, context) for _ in range(count)]
        try:
            self.placements = ray.get([a.placement.remote() for a in actors])
            return self._drive_actors(actors, tasks, report)
        finally:
            for actor in actors:  # frees their GPUs at once, also in a shared session
                ray.kill(actor)

    def _actor_shape(self, job: ShardJob) -> tuple[bool, int, float]:
        """(one GPU per actor?, how many actors, CPUs per actor), checked against the
        cluster's resources: asking for GPUs a cluster lacks is an error, not a hang."""
        resources = self.ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), resources.get("CPU", 0)
        device = getattr(job, "device", "cpu")
        if device.startswith("cuda") and gpus == 0:
            raise UsageError(
                f"--device {device} with --engine ray, but the Ray cluster has no GPUs "
                f"(resources: {int(cpus)} CPUs); start its nodes with GPUs, or pass "
                "--device cpu --ray-actors N for CPU actors")
        gpu = device.startswith("cuda") or (device == "auto" and gpus > 0)
        count = self.options.ray_actors or (gpus if gpu else 1)
        if gpu and count > gpus:
            raise UsageError(f"--ray-actors {count} GPU actors, but the Ray cluster has "
                             f"{gpus} GPU(s); pass --ray-actors {gpus} or fewer")
        per_actor = self.options.ray_num_cpus or 1
        largest = max((n["Resources"].get("CPU", 0) for n in self.ray.nodes() if n["Alive"]),
                      default=0)
        if per_actor > largest:  # Ray would wait forever for a node that big
            raise UsageError(f"--ray-num-cpus {per_actor:g}, but the largest node of the Ray "
                             f"cluster has {largest:g} CPUs; ask for {largest:g} or fewer")
        return gpu, count, per_actor

    def _drive_actors(self, actors: list, tasks: Sequence[Task], report: Report) -> list:
        return self._drive(tasks, report, _ActorSlots(actors))


class _TaskSlots:
    """At most ``limit`` tasks in flight (a bounded driver: memory and Ray's queue)."""

    def __init__(self, limit: int, submit) -> None:
        self.limit, self._submit, self.running = limit, submit, 0

    def free(self) -> bool:
        return self.running < self.limit

    def submit(self, shard: int, payload: Any) -> Any:
        self.running += 1
        return self._submit(shard, payload)

    def done(self, ref: Any, ok: bool) -> None:
        self.running -= 1


class _ActorSlots:
    """One call in flight per actor; an actor Ray gave up on (restarts exhausted) gets no
    more shards."""

    def __init__(self, actors: list) -> None:
        self.idle, self.busy = list(actors), {}

    def free(self) -> bool:
        return bool(self.idle)

    def submit(self, shard: int, payload: Any) -> Any:
        actor = self.idle.pop()
        ref = actor.work.remote(shard, payload)
        self.busy[ref] = actor
        return ref

    def done(self, ref: Any, ok: bool) -> None:
        actor = self.busy.pop(ref)
        if ok:
            self.idle.append(actor)
