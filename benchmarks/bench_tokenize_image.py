#!/usr/bin/env python
"""Image tokenize throughput and memory benchmark, all on the same generated files.

Measures, in one run:

1. floor: a single-process "PIL decode + resize" loop done the plain torchvision way
   (``Image.open(p).convert('RGB')``, shorter side to 224 with BICUBIC, centre crop 224,
   ``np.asarray``): what any image pipeline has to pay per file;
2. ``mmtok.tokenize(..., workers=1)`` in this process, as a ratio of the floor (goal >= 0.8x);
3. ``mmtok.tokenize(..., workers=2)``, as a ratio of the floor loop run in two processes on
   halves of the files, measured in the same run (goal >= 0.95x): two processes gain only
   1.64-1.72x on the 2-core machine even for the bare loop, so a fixed 1.7x over workers=1
   sat at the hardware's own ceiling; its ratio to workers=1 is still printed;
4. peak RSS (VmHWM) of a fresh ``python -c`` process tokenizing N/4 and N images, workers=1
   (goal: the two peaks within 10 %: memory must not grow with the data set).

Throughput figures are the best of ``--reps`` (default 2) repetitions, interleaved
(floor, workers=1, workers=2, floor, ...) so that drift hits every contestant alike. The
generated files are read from the page cache in every measurement (they were just written
or read), so disk speed is out of the picture. Generating the images is not timed; the
folder is reused when it already holds the same set.

Run from the repository root:

    .venv/bin/python benchmarks/bench_tokenize_image.py            # 2000 images
    .venv/bin/python benchmarks/bench_tokenize_image.py --quick    # ~1 minute smoke run
    .venv/bin/python benchmarks/bench_tokenize_image.py --json     # also write results JSON
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
from _common import (
    cpu_snapshot,
    describe_machine,
    fmt_seconds,
    foreign_cpu,
    foreign_cpu_notes,
    generated_folder,
    link_or_copy,
    open_workdir,
    photo_like_pixels,
    result_row,
    result_section,
    results_table_head,
    standard_args,
    verdict,
    write_result,
    write_run_json,
)
from PIL import Image

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "tokenize_image.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-image"
GEN_VERSION = 1  # bump when the generator changes, so old folders are not reused
SEED = 1234
NUM_CLASSES = 4
SIZE = 224
GOAL_W1_VS_FLOOR = 0.8
GOAL_W2_VS_FLOOR2 = 0.95  # workers=2 vs the floor loop in 2 processes (the machine's ceiling)
GOAL_RSS_SPREAD = 0.10


# --------------------------------------------------------------------------------------
# data generation (not timed)
# --------------------------------------------------------------------------------------


def _photo_like(index: int) -> tuple[str, Image.Image]:
    """A deterministic photo-like RGB image: smooth colour field, gradient, texture, noise."""
    rng = np.random.default_rng([SEED, index])
    w = int(rng.integers(500, 801))
    h = int(round(w * rng.uniform(0.70, 0.80)))  # around 4:3
    if rng.random() < 0.2:  # some portrait shots
        w, h = h, w
    pixels = photo_like_pixels(rng, w, h, noise=8)
    fmt = "png" if (index // NUM_CLASSES) % 4 == 3 else "jpg"  # 1 in 4 is a PNG
    return fmt, Image.fromarray(pixels, "RGB")


def _write_one(args: tuple[str, int]) -> int:
    folder, index = args
    fmt, image = _photo_like(index)
    path = Path(folder) / f"class_{index % NUM_CLASSES}" / f"img_{index:05d}.{fmt}"
    if fmt == "jpg":
        image.save(path, "JPEG", quality=90)
    else:
        image.save(path, "PNG", compress_level=1)
    return path.stat().st_size


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in (".jpg", ".png") and not p.name.startswith("."))


def ensure_images(folder: Path, count: int) -> tuple[list[Path], bool]:
    """The ``count`` generated files under ``folder`` (reused if present); (files, reused)."""
    wanted = {"count": count, "seed": SEED, "classes": NUM_CLASSES, "version": GEN_VERSION}

    def generate() -> None:
        import multiprocessing

        jobs = [(str(folder), i) for i in range(count)]
        processes = max(1, min(os.cpu_count() or 1, 8))
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            for _ in pool.imap_unordered(_write_one, jobs, chunksize=16):
                pass

    return generated_folder(folder, wanted, count, NUM_CLASSES, _image_files, generate)


def subset_folder(folder: Path, files: list[Path], every: int, target: Path) -> Path:
    """Hard links to every ``every``-th file (all classes kept), reused if complete."""
    chosen = files[::every]
    if target.exists() and len(_image_files(target)) == len(chosen):
        return target
    if target.exists():
        shutil.rmtree(target)
    for path in chosen:
        link_or_copy(path, target / path.relative_to(folder))
    return target


# --------------------------------------------------------------------------------------
# contestants
# --------------------------------------------------------------------------------------


def decode_resize_loop(files: list[Path]) -> float:
    """The floor: plain torchvision-style Resize(224) + CenterCrop(224) with Pillow; seconds."""
    bicubic = Image.Resampling.BICUBIC
    checksum = 0
    started = time.perf_counter()
    for path in files:
        image = Image.open(path).convert("RGB")
        w, h = image.size
        if w <= h:
            nw, nh = SIZE, int(SIZE * h / w)
        else:
            nw, nh = int(SIZE * w / h), SIZE
        image = image.resize((nw, nh), bicubic)
        left, top = int(round((nw - SIZE) / 2.0)), int(round((nh - SIZE) / 2.0))
        image = image.crop((left, top, left + SIZE, top + SIZE))
        pixels = np.asarray(image)
        checksum += int(pixels[0, 0, 0])
    seconds = time.perf_counter() - started
    assert checksum >= 0
    return seconds


def _ready(_: int) -> None:
    """Pool warm-up task; the pause makes each of the two workers take one."""
    time.sleep(0.5)


def decode_resize_two_processes(files: list[Path], pool) -> float:
    """The floor loop on two halves in two already-started processes; wall seconds.

    Informational: the parallel speed-up this machine gives for this very work, with no
    process start-up, pickling or writing in it (the ceiling for mmtok's workers=2).
    """
    started = time.perf_counter()
    pool.map(decode_resize_loop, [files[0::2], files[1::2]], chunksize=1)
    return time.perf_counter() - started


def mmtok_tokenize(folder: Path, out: Path, workers: int, shard_size: int | None,
                   expected: int, **options) -> tuple[float, dict]:
    """One fresh ``mmtok.tokenize`` run; (wall seconds, summary dict)."""
    import mmtok

    if out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    summary = mmtok.tokenize(folder, out, "image", workers=workers, progress=False,
                             overwrite=True, shard_size=shard_size, **options)
    seconds = time.perf_counter() - started
    if summary.status != "complete" or summary.num_valid != expected:
        raise SystemExit(f"mmtok run did not complete cleanly: {summary.line()}")
    shutil.rmtree(out, ignore_errors=True)
    return seconds, summary.to_dict()


# The peak is read from /proc/self/status VmHWM (high-water RSS of this process's own
# address space). ru_maxrss is printed too but is NOT used: on Linux a child's
# RUSAGE_SELF ru_maxrss starts from the parent's peak RSS at fork/exec time (the kernel
# folds the pre-exec memory map's high-water mark into it), so a child launched from this
# ~200+ MiB benchmark process would report at least the parent's peak whatever it does.
RSS_CHILD = r"""
import json, resource, sys
def hwm_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
from mmtok.pipeline import tokenize
src, out, shard = sys.argv[1], sys.argv[2], sys.argv[3]
after_import_kb = hwm_kb()
s = tokenize(src, out, "image", workers=1, progress=False, overwrite=True,
             shard_size=None if shard == "default" else int(shard))
print(json.dumps({
    "peak_rss_kb": hwm_kb(),
    "after_import_peak_rss_kb": after_import_kb,
    "ru_maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "ru_maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    "status": s.status, "num_valid": s.num_valid, "num_samples": s.num_samples,
    "shards": s.shards_total, "seconds": s.seconds,
}))
"""


def peak_rss(folder: Path, out: Path, shard_size: int | None) -> dict:
    """Peak RSS of a fresh process that imports mmtok and tokenizes ``folder`` (workers=1)."""
    if out.exists():
        shutil.rmtree(out)
    shard = "default" if shard_size is None else str(shard_size)
    proc = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder), str(out), shard],
                          capture_output=True, text=True, check=False)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"RSS child failed ({proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["status"] != "complete" or result["num_valid"] != result["num_samples"]:
        raise SystemExit(f"RSS child run did not complete cleanly: {result}")
    return result


# --------------------------------------------------------------------------------------
# reporting
# --------------------------------------------------------------------------------------


def machine_info() -> dict:
    """The machine and the versions that matter here (for the report and the JSON)."""
    import zarr
    from PIL import features

    import mmtok

    return describe_machine({
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "zarr": zarr.__version__,
        "mmtok": mmtok.__version__,
    })


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(
        __doc__, quick="small smoke run: 240 images, shard size 32", reps=2,
        reps_help="repetitions per throughput figure; the best is reported",
        workdir=DEFAULT_WORKDIR, workdir_help=f"where images and stores go (default "
                                              f"{DEFAULT_WORKDIR}; the image folder is reused "
                                              "between runs)",
        json_help=f"also write the results to {RESULTS_JSON.relative_to(HERE.parent)}")
    parser.add_sized("--images", 2000, 240, "number of generated images")
    parser.add_sized("--shard-size", None, 32, "mmtok shard size (default: mmtok's own "
                     "default, 256 for 224/16 RGB; 32 with --quick)", show_defaults=False)
    args = parser.parse_args(argv)
    images, shard_size = args.images, args.shard_size
    if images < 8 or args.reps < 1:
        parser.error("--images must be at least 8 and --reps at least 1")

    run_started = time.perf_counter()
    workdir = open_workdir(args.workdir, "mmtok image tokenize benchmark")
    folder = workdir / f"images_{images}"
    t0 = time.perf_counter()
    files, reused = ensure_images(folder, images)
    sizes = np.array([p.stat().st_size for p in files])
    jpeg_sizes = np.array([p.stat().st_size for p in files if p.suffix == ".jpg"])
    print(f"images: {len(files)} in {folder} "
          f"({'reused' if reused else f'generated in {time.perf_counter() - t0:.0f} s'}; "
          f"{np.sum(sizes) / 2**20:.0f} MiB, JPEG median {np.median(jpeg_sizes) / 1024:.0f} KiB, "
          f"{len(files) - len(jpeg_sizes)} PNG)", flush=True)

    # Import mmtok (and zarr) before any timing, and work out the shard plan.
    from mmtok.modalities import create_tokenizer
    from mmtok.pipeline import default_shard_size

    specs = create_tokenizer("image").sample_arrays()
    effective_shard = shard_size or default_shard_size(sum(s.sample_bytes for s in specs.values()))
    shards = -(-images // effective_shard)
    print(f"shard size: {effective_shard} ({'given' if shard_size else 'mmtok default'}) "
          f"-> {shards} shards", flush=True)
    if shards < 4:
        print(f"WARNING: only {shards} shard(s); workers=2 cannot balance well "
              "(use more --images or a smaller --shard-size)", flush=True)

    machine = machine_info()
    out = workdir / "bench_tokens.zarr"
    cpu_start = cpu_snapshot()
    floor_s, floor2_s, w1_s, w2_s, draft_s = [], [], [], [], []
    summaries = {}
    import multiprocessing

    pool = multiprocessing.get_context("spawn").Pool(2)
    pool.map(_ready, range(2), chunksize=1)  # both started before any timing
    for rep in range(args.reps):
        floor_s.append(decode_resize_loop(files))
        print(f"rep {rep + 1}: decode+resize loop {len(files) / floor_s[-1]:.1f} img/s", flush=True)
        floor2_s.append(decode_resize_two_processes(files, pool))
        print(f"rep {rep + 1}: decode+resize loop, 2 processes {len(files) / floor2_s[-1]:.1f} "
              "img/s", flush=True)
        seconds, summaries["workers_1"] = mmtok_tokenize(folder, out, 1, shard_size, images)
        w1_s.append(seconds)
        print(f"rep {rep + 1}: mmtok workers=1 {images / seconds:.1f} img/s", flush=True)
        seconds, summaries["workers_2"] = mmtok_tokenize(folder, out, 2, shard_size, images)
        w2_s.append(seconds)
        print(f"rep {rep + 1}: mmtok workers=2 {images / seconds:.1f} img/s", flush=True)
        seconds, _ = mmtok_tokenize(folder, out, 1, shard_size, images, jpeg_draft=True)
        draft_s.append(seconds)
        print(f"rep {rep + 1}: mmtok workers=1 --jpeg-draft {images / seconds:.1f} img/s",
              flush=True)

    pool.close()
    pool.join()
    quarter = subset_folder(folder, files, 4, workdir / f"images_{images}_quarter")
    n_quarter = len(_image_files(quarter))
    rss_small = peak_rss(quarter, out, shard_size)
    print(f"peak RSS, {n_quarter} images: {rss_small['peak_rss_kb'] / 1024:.0f} MiB", flush=True)
    rss_big = peak_rss(folder, out, shard_size)
    print(f"peak RSS, {images} images: {rss_big['peak_rss_kb'] / 1024:.0f} MiB", flush=True)

    # CPU time other processes took while we measured (our pools are joined by now)
    foreign, foreign_share = foreign_cpu(cpu_start)
    if foreign is not None:
        print(f"other processes used {foreign:.1f} CPU-s ({foreign_share:.1%} of the machine) "
              "during the measurements", flush=True)
    floor_ips = len(files) / min(floor_s)
    floor2_ips = len(files) / min(floor2_s)
    w1_ips = images / min(w1_s)
    w2_ips = images / min(w2_s)
    r_w1 = w1_ips / floor_ips
    r_w2 = w2_ips / floor2_ips
    r_w2_w1 = w2_ips / w1_ips
    rss_a, rss_b = rss_small["peak_rss_kb"], rss_big["peak_rss_kb"]
    r_rss = rss_b / rss_a
    ok_w1 = r_w1 >= GOAL_W1_VS_FLOOR
    ok_w2 = r_w2 >= GOAL_W2_VS_FLOOR2
    ok_rss = abs(r_rss - 1) <= GOAL_RSS_SPREAD

    m = machine
    lines = results_table_head(
        f"## Results ({images} images, {shards} shards of {effective_shard}; "
        f"throughput = best of {args.reps} interleaved repetitions, wall clock)", m) + [
        f"| PIL decode + resize + crop loop (floor, 1 process) | {floor_ips:.1f} img/s "
        f"| 1.00x | - | - |",
        f"| same loop, 2 processes on halves (hardware ceiling) | {floor2_ips:.1f} img/s "
        f"| {floor2_ips / floor_ips:.3f}x vs floor | - | - |",
        f"| mmtok tokenize, workers=1 (in-process) | {w1_ips:.1f} img/s "
        f"| {r_w1:.3f}x vs floor | >= {GOAL_W1_VS_FLOOR}x floor | {verdict(ok_w1)} |",
        f"| mmtok tokenize, workers=2 | {w2_ips:.1f} img/s "
        f"| {r_w2:.3f}x vs floor in 2 processes ({r_w2_w1:.3f}x vs workers=1) "
        f"| >= {GOAL_W2_VS_FLOOR2}x floor in 2 processes | {verdict(ok_w2)} |",
        f"| mmtok tokenize, workers=1, --jpeg-draft (opt-in, pixels differ slightly; info) "
        f"| {images / min(draft_s):.1f} img/s | {images / min(draft_s) / floor_ips:.3f}x vs floor "
        f"| - | - |",
        f"| peak RSS (VmHWM), workers=1, {n_quarter} images (subprocess) | {rss_a / 1024:.0f} MiB "
        f"| 1.00x | - | - |",
        f"| peak RSS (VmHWM), workers=1, {images} images (subprocess) | {rss_b / 1024:.0f} MiB "
        f"| {r_rss:.3f}x vs {n_quarter} images | within {GOAL_RSS_SPREAD:.0%} "
        f"| {verdict(ok_rss)} |",
        "",
        "Per repetition (s): "
        f"floor {fmt_seconds(floor_s)}; "
        f"floor x2 processes {fmt_seconds(floor2_s)}; "
        f"workers=1 {fmt_seconds(w1_s)}; "
        f"workers=2 {fmt_seconds(w2_s)}; "
        f"workers=1 --jpeg-draft {fmt_seconds(draft_s)}. "
        f"Peak RSS is the child's VmHWM; of it, {rss_big['after_import_peak_rss_kb'] / 1024:.0f} "
        f"MiB is reached just by importing mmtok. (The child's getrusage ru_maxrss reads "
        f"{rss_small['ru_maxrss_self_kb'] / 1024:.0f} / {rss_big['ru_maxrss_self_kb'] / 1024:.0f} "
        f"MiB: on Linux it includes this benchmark process's own peak, so it is not used; "
        f"RUSAGE_CHILDREN {rss_big['ru_maxrss_children_kb'] / 1024:.0f} MiB, workers=1 has none.)",
        f"Total benchmark wall time: {time.perf_counter() - run_started:.0f} s.",
    ] + foreign_cpu_notes(foreign, foreign_share)
    print("\n".join(lines), flush=True)

    floor_name = "PIL decode + resize + crop loop, 1 process (floor)"
    throughput = [
        result_row("mmtok tokenize, workers=1 (in-process)", round(w1_ips, 2), "img/s",
                   peer=floor_name, peer_value=round(floor_ips, 2), ratio=round(r_w1, 3),
                   ratio_of="vs floor", goal=f">= {GOAL_W1_VS_FLOOR}x floor", passed=ok_w1),
        result_row("mmtok tokenize, workers=2", round(w2_ips, 2), "img/s",
                   peer="same floor loop, 2 processes on halves", peer_value=round(floor2_ips, 2),
                   ratio=round(r_w2, 3), ratio_of="vs floor loop in 2 processes",
                   goal=f">= {GOAL_W2_VS_FLOOR2}x floor in 2 processes", passed=ok_w2),
        result_row("mmtok tokenize, workers=2 vs workers=1 (info)", round(w2_ips, 2), "img/s",
                   peer="mmtok tokenize, workers=1", peer_value=round(w1_ips, 2),
                   ratio=round(r_w2_w1, 3), ratio_of="vs workers=1"),
        result_row("same floor loop, 2 processes on halves (hardware ceiling)",
                   round(floor2_ips, 2), "img/s", peer=floor_name,
                   peer_value=round(floor_ips, 2), ratio=round(floor2_ips / floor_ips, 3),
                   ratio_of="vs floor"),
        result_row("mmtok tokenize, workers=1, --jpeg-draft (opt-in)",
                   round(images / min(draft_s), 2), "img/s", peer=floor_name,
                   peer_value=round(floor_ips, 2),
                   ratio=round(images / min(draft_s) / floor_ips, 3), ratio_of="vs floor"),
    ]
    memory = [
        result_row(f"peak RSS (VmHWM), workers=1, {images} images", round(rss_b / 1024, 1),
                   "MiB", peer=f"the same, {n_quarter} images", peer_value=round(rss_a / 1024, 1),
                   ratio=round(r_rss, 3), ratio_of=f"{images} vs {n_quarter} images",
                   goal=f"within {GOAL_RSS_SPREAD:.0%}", passed=ok_rss),
        result_row("of which: reached by importing mmtok",
                   round(rss_big["after_import_peak_rss_kb"] / 1024, 1), "MiB"),
    ]
    notes = [f"{images} images, {shards} shards of {effective_shard}; best of {args.reps} "
             "interleaved repetitions, wall clock.", *foreign_cpu_notes(foreign, foreign_share)]
    write_result(args.result, "tokenize_image", "Image tokenize throughput and memory", [
        result_section("Throughput", throughput, notes),
        result_section("Peak memory as the data grows (fresh process per size)", memory),
    ], quick=args.quick, params={"images": images, "shard_size": effective_shard,
                                 "shards": shards, "reps": args.reps}, machine=machine)

    if args.json:
        fields = {
            "params": {"images": images, "shard_size": effective_shard, "shards": shards,
                       "reps": args.reps, "size": SIZE, "images_reused": reused,
                       "total_mib": round(float(np.sum(sizes)) / 2**20, 1),
                       "png_files": int(len(files) - len(jpeg_sizes))},
            "seconds": {"floor": floor_s, "floor_2_processes": floor2_s, "workers_1": w1_s,
                        "workers_2": w2_s, "workers_1_jpeg_draft": draft_s},
            "images_per_second": {"floor": round(floor_ips, 2),
                                  "floor_2_processes": round(floor2_ips, 2),
                                  "workers_1": round(w1_ips, 2),
                                  "workers_2": round(w2_ips, 2),
                                  "workers_1_jpeg_draft": round(images / min(draft_s), 2)},
            "rss_runs": {"quarter": rss_small, "full": rss_big, "quarter_images": n_quarter},
            "ratios": {"floor_2_processes_vs_floor": round(floor2_ips / floor_ips, 3),
                       "workers_1_vs_floor": round(r_w1, 3),
                       "workers_2_vs_floor_2_processes": round(r_w2, 3),
                       "workers_2_vs_workers_1": round(r_w2_w1, 3),
                       "rss_full_vs_quarter": round(r_rss, 3)},
            "goals": {
                "workers_1_vs_floor": {"goal": f">= {GOAL_W1_VS_FLOOR}", "pass": ok_w1},
                "workers_2_vs_floor_2_processes": {"goal": f">= {GOAL_W2_VS_FLOOR2}",
                                                   "pass": ok_w2},
                "rss_full_vs_quarter": {"goal": f"within {GOAL_RSS_SPREAD}", "pass": ok_rss},
            },
            "mmtok_summaries": summaries,
        }
        write_run_json(RESULTS_JSON, "tokenize_image", machine, fields, foreign, run_started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
