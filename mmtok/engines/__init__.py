"""Where shards are written: ``local`` (this process, or a process pool when ``workers`` is
more than 1) or ``ray`` (Ray core tasks, or actors for embed, on a cluster). Every engine runs the
same shard function of the same frozen job (:mod:`.base`); :func:`run_step` is the one
lock -> prepare -> run -> summarise skeleton."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from .base import Engine, Report, ShardJob, Task, WorkerContext
from .local import LocalEngine
from .process import ProcessEngine
from .step import StepRun, run_step

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "Engine", "EngineOptions", "LocalEngine", "ProcessEngine", "Report",
           "ShardJob", "StepRun", "Task", "WorkerContext", "make_engine", "run_step"]


@dataclass(frozen=True)
class EngineOptions:
    """The engine choice as the CLI and the Python API take it, checked before any work."""

    engine: str = "local"
    workers: int = 1  # local: processes (tokenize); ray: tasks in flight (0: from the cluster)
    ray_address: str | None = None  # None: RAY_ADDRESS, else a local instance for the run
    ray_num_cpus: float | None = None  # CPUs per Ray task or actor
    ray_actors: int | None = None  # embed: CPU actors instead of one actor per GPU
    max_retries: int = 3  # Ray's retries of a task whose worker died

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.engine != "ray":
            given = [flag for flag, value in (("--ray-address", self.ray_address),
                                              ("--ray-num-cpus", self.ray_num_cpus),
                                              ("--ray-actors", self.ray_actors)) if value]
            if given:
                raise UsageError(f"{', '.join(given)} only apply with --engine ray")
        if self.ray_num_cpus is not None and self.ray_num_cpus <= 0:
            raise UsageError("--ray-num-cpus must be more than 0")
        if self.ray_actors is not None and self.ray_actors < 1:
            raise UsageError("--ray-actors must be at least 1")
        if self.max_retries < 0:
            raise UsageError("--max-retries must be 0 or more")


def make_engine(options: EngineOptions, context: WorkerContext | None = None) -> Engine:
    """The engine ``options`` ask for; Ray is imported only here, only when asked for."""
    if options.engine == "ray":
        from .ray import RayEngine

        return RayEngine(options)
    if options.workers > 1:
        return ProcessEngine(options.workers)
    return LocalEngine(context)
