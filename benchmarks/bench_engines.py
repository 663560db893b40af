#!/usr/bin/env python
"""Engines side by side: image tokenize with ``--engine ray`` (2 tasks in flight) against the
local engine's 2-worker process pool, on the same generated files, in one run.

Measures:

1. Ray start-up (``ray.init`` of a local 2-CPU instance) and the first Ray run's warm-up
   (worker processes starting, importing mmtok), each reported on its own and never part of
   a throughput figure;
2. throughput of ``tokenize(workers=2)`` (local) and ``tokenize(engine="ray", workers=2)``,
   best of ``--reps`` interleaved repetitions on a fresh store each (goal: ray >= 0.9x
   local);
3. the driver's cost per shard: a job whose shard function returns its marker at once, run
   through the Ray engine, so that only scheduling, transfer and marker handling remain:
   wall seconds and driver CPU seconds per shard. From the CPU figure: how many busy cores
   one driver keeps fed at 224 px, 256-image shards (docs/engines.md).

Run from the repository root:

    .venv/bin/python benchmarks/bench_engines.py            # 480 images
    .venv/bin/python benchmarks/bench_engines.py --quick    # 192 images
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Ray's workers import mmtok from this checkout too
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent),
                                                         os.environ.get("PYTHONPATH")]))

from _common import (  # noqa: E402
    describe_machine,
    machine_line,
    photo_like_pixels,
    result_row,
    result_section,
    standard_args,
    write_result,
)

GOAL_RAY_VS_LOCAL = 0.9
NOOP_SHARDS = 400


def ensure_images(folder: Path, count: int, side: int) -> Path:
    import numpy as np
    from PIL import Image

    files = sorted(folder.glob("*/*.jpg"))
    if len(files) == count:
        return folder
    rng = np.random.default_rng(0)
    for i in range(count):
        (folder / f"c{i % 4}").mkdir(parents=True, exist_ok=True)
        pixels = photo_like_pixels(rng, side, side * 3 // 4, noise=8.0)
        Image.fromarray(pixels).save(folder / f"c{i % 4}" / f"{i:05d}.jpg", quality=90)
    return folder


def tokenize(folder: Path, out: Path, shard_size: int, **engine) -> float:
    import mmtok

    started = time.perf_counter()
    summary = mmtok.tokenize(folder, out, shard_size=shard_size, overwrite=True,
                             progress=False, **engine)
    seconds = time.perf_counter() - started
    if summary.status != "complete":
        raise SystemExit(f"tokenize did not complete: {summary.line()}")
    return seconds


@dataclass(frozen=True)
class NoopJob:
    """A shard function that does nothing: what remains is the engine's own cost."""

    output: str = "-"
    stateful = False

    def setup(self, context):
        return None

    def work(self, state, shard, payload, on_sample=None):
        return {"shard": shard, "start": shard, "stop": shard + 1, "errors": []}


def driver_overhead(in_flight: int) -> tuple[float, float]:
    """(wall s, driver CPU s) per shard of the no-op job on the Ray engine."""
    from mmtok.engines import EngineOptions, Report, make_engine

    engine = make_engine(EngineOptions("ray", workers=in_flight))
    job = NoopJob()
    engine.prepare(job)
    report = Report(lambda marker: None, lambda n: None)
    engine.run(job, [(s, None) for s in range(20)], report)  # warm the workers
    wall, cpu = time.perf_counter(), time.process_time()
    engine.run(job, [(s, None) for s in range(NOOP_SHARDS)], report)
    return ((time.perf_counter() - wall) / NOOP_SHARDS,
            (time.process_time() - cpu) / NOOP_SHARDS)


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="small run: 192 images", reps=2,
                           workdir=Path("/tmp/mmtok-bench-engines"))
    parser.add_sized("--images", 480, 192, "generated images")
    parser.add_argument("--shard-size", type=int, default=16)
    args = parser.parse_args(argv)
    images = args.images
    folder = ensure_images(args.workdir / f"images_{images}", images, 320)
    shards = -(-images // args.shard_size)
    print(f"{images} images (320x240 JPEG -> 224 px tokens), {shards} shards of "
          f"{args.shard_size}", flush=True)

    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=128 << 20)
    startup = time.perf_counter() - started
    print(f"ray start-up: {startup:.1f} s", flush=True)
    out = args.workdir / "t.zarr"
    warm = tokenize(folder, out, args.shard_size, engine="ray", workers=2)
    print(f"first ray run (workers start, import mmtok): {warm:.1f} s", flush=True)

    local_s, ray_s = [], []
    for rep in range(args.reps):
        local_s.append(tokenize(folder, out, args.shard_size, workers=2))
        ray_s.append(tokenize(folder, out, args.shard_size, engine="ray", workers=2))
        print(f"rep {rep + 1}: local -j 2 {images / local_s[-1]:.1f} img/s, ray -j 2 "
              f"{images / ray_s[-1]:.1f} img/s", flush=True)
    per_shard = {n: driver_overhead(n) for n in (2, 8)}
    ray.shutdown()

    local_ips, ray_ips = images / min(local_s), images / min(ray_s)
    ratio = ray_ips / local_ips
    core_seconds_per_shard = 256 * 2 / local_ips  # a 256-image shard on one core, measured
    driver_cpu = per_shard[8][1]
    cores = core_seconds_per_shard / driver_cpu
    machine = describe_machine({"ray": ray.__version__})
    lines = [
        "", machine_line(machine), "",
        "| Measurement | Value | Ratio | Goal |", "|---|---:|---:|---|",
        f"| local engine, 2 workers | {local_ips:.1f} img/s | 1.00x | - |",
        f"| ray engine, 2 tasks in flight | {ray_ips:.1f} img/s | {ratio:.3f}x vs local "
        f"| >= {GOAL_RAY_VS_LOCAL}x ({'pass' if ratio >= GOAL_RAY_VS_LOCAL else 'FAIL'}) |",
        f"| ray start-up (not in the figures above) | {startup:.1f} s | - | - |",
        f"| first ray run, warm-up (not in the figures above) | {warm:.1f} s | - | - |",
    ] + [
        f"| driver per shard, no-op job, {n} in flight | {wall * 1e3:.2f} ms wall, "
        f"{cpu * 1e3:.2f} ms driver CPU | - | - |" for n, (wall, cpu) in per_shard.items()
    ] + [
        "", f"A 256-image shard at 224 px takes about {core_seconds_per_shard:.1f} core-seconds "
        f"here; at {driver_cpu * 1e3:.2f} ms of driver CPU per shard one driver keeps about "
        f"{cores:,.0f} cores busy.",
    ]
    print("\n".join(lines), flush=True)
    rows = [
        result_row("tokenize --engine ray, 2 tasks in flight", round(ray_ips, 2), "img/s",
                   peer="tokenize --engine local -j 2", peer_value=round(local_ips, 2),
                   ratio=round(ratio, 3), ratio_of="vs local",
                   goal=f">= {GOAL_RAY_VS_LOCAL}x local", passed=ratio >= GOAL_RAY_VS_LOCAL),
        result_row("ray start-up (local 2-CPU instance)", round(startup, 2), "s"),
        result_row("first ray run (warm-up)", round(warm, 2), "s"),
    ] + [result_row(f"driver CPU per shard, no-op job, {n} in flight", round(cpu * 1e3, 3),
                    "ms", note=f"wall {wall * 1e3:.2f} ms") for n, (wall, cpu) in per_shard.items()]
    write_result(args.result, "engines", "Engines: local vs ray", [
        result_section("Image tokenize, 2 workers", rows,
                       [f"{images} images, {shards} shards of {args.shard_size}; best of "
                        f"{args.reps}", lines[-1]])],
        quick=args.quick, params={"images": images, "shard_size": args.shard_size,
                                  "reps": args.reps}, machine=machine)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
