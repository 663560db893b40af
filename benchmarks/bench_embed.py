#!/usr/bin/env python
"""Embed throughput benchmark: mmtok.embed end to end against the bare encoder forward.

Measures, in one run on the same token store and the same encoder weights:

1. the bare forward floor: every token shard loaded into memory first
   (``mmtok.open_store(tokens).group["tokens"][:]``), then, timed, only the compute mmtok does
   per batch (mmtok's own ``ImageProjector`` + ``run_encoder`` + ``pool``, float32, CPU, under
   ``torch.inference_mode``) on the very batches mmtok forms (``--batch-size`` rows at a time
   within each shard): no store reading, no writing;
2. ``mmtok.embed(tokens, fresh_out, encoder, weights=FILE, batch_size=B, pool_how="cls",
   overwrite=True)``: full wall time, the summary's ``seconds``, and the wall time less the
   one-time model construction (encoder load, projector build, the 1-sample shape probe),
   each as samples/s and as a ratio of the floor (goal: >= 0.95x without model construction).

Both take the best of ``--reps`` (default 2) interleaved repetitions (floor, mmtok, floor,
...). The encoder is built once with ``timm.create_model(name, pretrained=False,
num_classes=0, **options)`` (random weights, no network) and saved as safetensors; mmtok
loads that file, the floor uses the model object itself, so both use identical weights (the
features are compared at the end). Image generation and tokenizing are not timed.

Run from the repository root:

    .venv/bin/python benchmarks/bench_embed.py            # vit_small, 512 images, ~4 min on 2 cores
    .venv/bin/python benchmarks/bench_embed.py --json     # also write benchmarks/results/embed.json
    .venv/bin/python benchmarks/bench_embed.py --encoder vit_base_patch16_224 --depth 4
    .venv/bin/python benchmarks/bench_embed.py --profile  # + cProfile of one extra mmtok.embed
    .venv/bin/python benchmarks/bench_embed.py --gpu-only # the GPU section alone (_embed_gpu.py)
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import (
    cpu_snapshot,
    describe_machine,
    fmt_seconds,
    foreign_cpu,
    foreign_cpu_notes,
    generated_folder,
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
RESULTS_JSON = HERE / "results" / "embed.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-embed"
GEN_VERSION = 2  # bump when the generator changes, so old folders are not reused
SEED = 4321
NUM_CLASSES = 2
IMAGE_SIDE = 256
DEFAULT_ENCODER = "vit_small_patch16_224"
DEFAULT_IMAGES = 512
GOAL_VS_FLOOR = 0.95
GPU_ENCODER = "vit_base_patch16_224"
RESULT_TITLE = "Embed throughput (CPU) and GPU images/s and MFU"


# --------------------------------------------------------------------------------------
# data generation (not timed)
# --------------------------------------------------------------------------------------


def _photo_like(index: int) -> Image.Image:
    """A deterministic photo-like 256x256 RGB image: smooth colour field, gradient, noise."""
    rng = np.random.default_rng([SEED, index])
    pixels = photo_like_pixels(rng, IMAGE_SIDE, IMAGE_SIDE, noise=6)
    return Image.fromarray(pixels, "RGB")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))


def ensure_images(folder: Path, count: int) -> tuple[list[Path], bool]:
    """``count`` generated PNGs in ``NUM_CLASSES`` class folders (reused if present)."""
    wanted = {"count": count, "seed": SEED, "classes": NUM_CLASSES, "side": IMAGE_SIDE,
              "version": GEN_VERSION}

    def generate() -> None:
        for index in range(count):
            path = folder / f"class_{index % NUM_CLASSES}" / f"img_{index:05d}.png"
            _photo_like(index).save(path, "PNG", compress_level=1)

    return generated_folder(folder, wanted, count, NUM_CLASSES, _image_files, generate)


def make_weights(name: str, options: dict, path: Path):
    """A random-weight timm ViT (no network), saved to ``path``; returns the model (eval)."""
    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, **options)
    model.requires_grad_(False).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model


# --------------------------------------------------------------------------------------
# contestants
# --------------------------------------------------------------------------------------


class BareForward:
    """mmtok's per-batch compute on in-memory tokens: projector + encoder blocks + pool."""

    def __init__(self, model, token_config: dict, how: str, batch_size: int,
                 shard_size: int) -> None:
        from mmtok.modalities.image.projector import ImageProjector

        self.projector = ImageProjector(model, token_config).requires_grad_(False).eval()
        self.model, self.how = model, how
        self.batch_size, self.shard_size = batch_size, shard_size

    def batches(self, count: int) -> list[tuple[int, int]]:
        """The (begin, end) rows mmtok embeds together: B at a time within each shard."""
        spans = []
        for start in range(0, count, self.shard_size):
            stop = min(start + self.shard_size, count)
            spans += [(b, min(b + self.batch_size, stop))
                      for b in range(start, stop, self.batch_size)]
        return spans

    def __call__(self, tokens: np.ndarray) -> tuple[float, np.ndarray]:
        """Seconds for the whole array, and the pooled features."""
        import torch

        from mmtok.embedding.pooling import pool
        from mmtok.embedding.projectors import run_encoder

        outputs = []
        started = time.perf_counter()
        with torch.inference_mode():
            for begin, end in self.batches(len(tokens)):
                projected = self.projector({"tokens": torch.from_numpy(tokens[begin:end])})
                x = run_encoder(self.model, projected)
                outputs.append(pool(x, projected.mask, projected.prefix, self.how).numpy())
        seconds = time.perf_counter() - started
        return seconds, np.concatenate(outputs)


class PhaseTimer:
    """Times mmtok.embed's phases by wrapping names in ``mmtok.embedding.pipeline`` for the
    duration of a call (benchmark-side only; mmtok's code is untouched)."""

    SETUP = ("load_encoder", "build_projector", "_feature_shape")

    def __init__(self) -> None:
        from mmtok.embedding import pipeline

        self.pipeline = pipeline
        self.times: dict[str, float] = {}
        self.inside_run = False

    def _wrap(self, name: str, fn, only_in_run: bool = False):
        def timed(*args, **kwargs):
            if only_in_run and not self.inside_run:
                return fn(*args, **kwargs)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - started
        return timed

    @contextlib.contextmanager
    def active(self):
        p = self.pipeline
        self.times = {}
        saved_module = {n: getattr(p, n) for n in (*self.SETUP, "_run") if hasattr(p, n)}
        saved_call = p.Embedder.__call__
        saved_write = p.ShardWriter.write
        for name, fn in saved_module.items():
            setattr(p, name, self._wrap(name, fn))
        run = saved_module.get("_run")
        if run is not None:
            def run_flagged(*args, **kwargs):
                self.inside_run = True
                try:
                    return self._wrap("_run", run)(*args, **kwargs)
                finally:
                    self.inside_run = False
            p._run = run_flagged
        p.Embedder.__call__ = self._wrap("run: encoder compute", saved_call, only_in_run=True)
        p.ShardWriter.write = self._wrap("run: shard write + marker", saved_write,
                                         only_in_run=True)
        try:
            yield self
        finally:
            for name, fn in saved_module.items():
                setattr(p, name, fn)
            p.Embedder.__call__ = saved_call
            p.ShardWriter.write = saved_write

    @property
    def setup_seconds(self) -> float:
        return sum(self.times.get(n, 0.0) for n in self.SETUP)


def _summary_dict(summary) -> dict:
    return summary.to_dict()  # RunSummary.to_dict() already leaves out errors and repairs


def mmtok_embed(tokens: Path, out: Path, encoder: str, weights: Path, batch_size: int,
                options: dict, *, device: str = "cpu",
                precision: str = "float32") -> tuple[float, dict, dict]:
    """One fresh ``mmtok.embed``: (wall seconds, summary dict, phase seconds). The device
    is explicit: the CPU section must stay on the CPU on a machine that has a GPU."""
    import mmtok

    if out.exists():
        shutil.rmtree(out)
    timer = PhaseTimer()
    with timer.active():
        started = time.perf_counter()
        summary = mmtok.embed(tokens, out, encoder, weights=weights, batch_size=batch_size,
                              progress=False, pool_how="cls", overwrite=True,
                              encoder_options=options or None, device=device,
                              precision=precision)
        seconds = time.perf_counter() - started
    if summary.status != "complete":
        raise RuntimeError(f"mmtok embed did not complete: {summary}")
    phases = dict(timer.times)
    phases["setup (model construction + probe)"] = timer.setup_seconds
    return seconds, _summary_dict(summary), phases


def profile_embed(tokens: Path, out: Path, encoder: str, weights: Path, batch_size: int,
                  options: dict, top: int = 20) -> str:
    """cProfile (main thread only) of one fresh mmtok.embed; the top ``top`` by cumulative."""
    import mmtok

    if out.exists():
        shutil.rmtree(out)
    profiler = cProfile.Profile()
    profiler.enable()
    mmtok.embed(tokens, out, encoder, weights=weights, batch_size=batch_size, progress=False,
                pool_how="cls", overwrite=True, encoder_options=options or None, device="cpu")
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


# --------------------------------------------------------------------------------------
# machine
# --------------------------------------------------------------------------------------


def machine_info() -> dict:
    """The machine and the versions that matter here (for the report and the JSON)."""
    import timm
    import zarr

    import mmtok

    return describe_machine({
        "numpy": np.__version__,
        "timm": timm.__version__,
        "zarr": zarr.__version__,
        "mmtok": mmtok.__version__,
    }, with_torch=True)


# --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(
        __doc__, quick="smoke run: 64 images, 2 blocks, shard size 32, one repetition (GPU "
                       "section: 512 images, no compile)",
        reps=(2, 1), reps_help="interleaved repetitions per figure; the best is reported",
        workdir=DEFAULT_WORKDIR, workdir_help="images, token/feature stores and weights "
                                              f"(default {DEFAULT_WORKDIR})",
        json_help=f"also write the results to {RESULTS_JSON.relative_to(HERE.parent)}",
        gpu=True)
    parser.add_sized("--images", DEFAULT_IMAGES, 64, "number of generated images")
    parser.add_argument("--encoder", default=DEFAULT_ENCODER,
                        help=f"timm ViT name, random weights (default {DEFAULT_ENCODER}; "
                             "vit_base_patch16_224 is ~3x slower)")
    parser.add_argument("--depth", type=int, default=None,
                        help="number of transformer blocks (encoder_options={'depth': D}; "
                             "default: the model's own; 2 with --quick)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="rows per forward, mmtok's batch_size (default 64, mmtok's default)")
    parser.add_argument("--shard-size", type=int, default=0,
                        help="token store shard size (default 0: mmtok's own, 256 samples for "
                             "224/16 RGB)")
    parser.add_sized("--gpu-images", 4096, 512, "images in the GPU section's token store")
    parser.add_argument("--gpu-batch-size", type=int, default=256,
                        help="batch size of the GPU section (default 256)")
    parser.add_argument("--gpu-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure mmtok's forward with --compile in the GPU section "
                             "(default: on, off with --quick)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile one extra mmtok.embed (top 20 by cumulative time)")
    args = parser.parse_args(argv)
    quick_defaults(args)
    if args.images < 8 or args.reps < 1 or args.batch_size < 1 or args.shard_size < 0:
        parser.error("--images >= 8, --reps >= 1, --batch-size >= 1, --shard-size >= 0")
    options = {"depth": args.depth} if args.depth else {}
    if args.quick and not args.shard_size:
        args.shard_size = 32  # still 2 shards, so the read-ahead has something to overlap

    run_started = time.perf_counter()
    workdir = open_workdir(args.workdir, "mmtok embed benchmark")

    # 1. token store (not timed)
    t0 = time.perf_counter()
    folder = workdir / f"images_{args.images}"
    files, reused = ensure_images(folder, args.images)
    print(f"images: {len(files)} PNG {IMAGE_SIDE}x{IMAGE_SIDE} in {folder} "
          f"({'reused' if reused else f'generated in {time.perf_counter() - t0:.0f} s'})",
          flush=True)
    if args.gpu_only:
        write_result(args.result, "embed", RESULT_TITLE, [gpu_section(args, workdir, files)],
                     quick=args.quick, params=result_params(args, {}), machine=machine_info())
        return 0
    import torch

    import mmtok

    tokens = workdir / "tokens.zarr"
    t0 = time.perf_counter()
    tok = mmtok.tokenize(folder, tokens, "image", progress=False, overwrite=True,
                         shard_size=args.shard_size or None)
    store = mmtok.open_store(tokens)
    shard_size = int(store.attrs["shard_size"])
    shards = -(-len(store) // shard_size)
    print(f"tokenized in {time.perf_counter() - t0:.1f} s: {tok.num_valid} valid samples, "
          f"{shards} shard(s) of {shard_size}", flush=True)
    if shards < 2:
        print(f"WARNING: only {shards} shard; the read-ahead has nothing to overlap "
              "(use more --images or a smaller --shard-size)", flush=True)
    if shard_size % args.batch_size:
        print(f"note: shard size {shard_size} is not a multiple of batch size {args.batch_size}:"
              " mmtok (and the floor, which mirrors it) runs a short batch per shard", flush=True)

    # 2. encoder weights (not timed)
    t0 = time.perf_counter()
    weights = workdir / "encoder.safetensors"
    model = make_weights(args.encoder, options, weights)
    print(f"encoder: {args.encoder} {options or ''} random weights, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{weights.stat().st_size / 2**20:.0f} MiB safetensors "
          f"(built in {time.perf_counter() - t0:.1f} s)", flush=True)

    # 3. the floor's inputs, in memory (not timed) + one full warm-up batch (oneDNN kernels,
    # allocator): the floor runs first in each repetition, so it would otherwise pay for it
    t0 = time.perf_counter()
    all_tokens = np.ascontiguousarray(store.group["tokens"][:])
    valid = store.group["valid"][:].astype(bool)
    if not valid.all():
        raise SystemExit(f"{int((~valid).sum())} invalid samples in the token store; the floor "
                         "assumes all are valid")
    bare = BareForward(model, store.config, "cls", args.batch_size, shard_size)
    bare(all_tokens[:args.batch_size])
    print(f"floor inputs: tokens {all_tokens.shape} {all_tokens.dtype} "
          f"({all_tokens.nbytes / 2**20:.0f} MiB) loaded + 1 warm-up batch in "
          f"{time.perf_counter() - t0:.1f} s; "
          f"torch threads {torch.get_num_threads()}", flush=True)

    machine = machine_info()
    n = len(all_tokens)
    out = workdir / "features.zarr"
    cpu_start = cpu_snapshot()
    floor_s, wall_s, summary_s, excl_s, run_s = [], [], [], [], []
    phases_all, summary = [], {}
    floor_features = None
    for rep in range(args.reps):
        seconds, floor_features = bare(all_tokens)
        floor_s.append(seconds)
        print(f"rep {rep + 1}: bare forward floor {n / seconds:.2f} samples/s ({seconds:.2f} s)",
              flush=True)
        seconds, summary, phases = mmtok_embed(tokens, out, args.encoder, weights,
                                               args.batch_size, options)
        wall_s.append(seconds)
        summary_s.append(float(summary["seconds"]))
        excl_s.append(seconds - phases["setup (model construction + probe)"])
        run_s.append(phases.get("_run", float("nan")))
        phases_all.append(phases)
        print(f"rep {rep + 1}: mmtok embed {n / seconds:.2f} samples/s wall ({seconds:.2f} s; "
              f"{n / excl_s[-1]:.2f} samples/s without model construction)", flush=True)

    foreign, foreign_share = foreign_cpu(cpu_start)

    # the two sides computed the same thing?
    mm_features = mmtok.open_store(out).group["features"][:]
    max_diff = float(np.abs(mm_features - floor_features).max())

    floor_sps = n / min(floor_s)
    wall_sps = n / min(wall_s)
    summary_sps = n / min(summary_s)
    excl_sps = n / min(excl_s)
    run_sps = n / min(run_s)
    ratio = excl_sps / floor_sps
    ok = ratio >= GOAL_VS_FLOOR
    best = phases_all[int(np.argmin(excl_s))]
    setup = best["setup (model construction + probe)"]
    compute = best.get("run: encoder compute", float("nan"))
    write = best.get("run: shard write + marker", float("nan"))
    rest = best.get("_run", float("nan")) - compute - write
    # noise-robust views: the share of mmtok's own wall spent in the floor's compute (same
    # process, same minutes, so machine drift cancels), and how much the floor itself varied
    shares = [p.get("run: encoder compute", float("nan")) / e for p, e in zip(phases_all, excl_s)]
    share = max(shares)
    spread = max(floor_s) / min(floor_s) - 1

    m = machine
    enc = args.encoder + (f", depth {args.depth}" if args.depth else "")
    lines = results_table_head(
        f"## Results ({n} images 224/16 -> {enc}, cls pool, float32, CPU; batch "
        f"{args.batch_size}, {shards} shards of {shard_size}; best of {args.reps} interleaved "
        "repetitions, wall clock)", m) + [
        f"| bare forward floor (tokens in memory; projector + blocks + pool only) "
        f"| {floor_sps:.2f} samples/s | 1.000x | - | - |",
        f"| mmtok embed, wall less model construction (store read, compute, write, markers) "
        f"| {excl_sps:.2f} samples/s | {ratio:.3f}x vs floor | >= {GOAL_VS_FLOOR}x floor "
        f"| {verdict(ok)} |",
        f"| mmtok embed, encoder compute / its own wall less model construction (info; "
        f"drift-free view of the pipeline overhead) | {share:.1%} | {share:.3f}x | - | - |",
        f"| mmtok embed, full wall time of the call (info) | {wall_sps:.2f} samples/s "
        f"| {wall_sps / floor_sps:.3f}x vs floor | - | - |",
        f"| mmtok embed, summary `seconds` (info; also includes model construction) "
        f"| {summary_sps:.2f} samples/s | {summary_sps / floor_sps:.3f}x vs floor | - | - |",
        f"| mmtok embed, streaming loop `_run` only (info) | {run_sps:.2f} samples/s "
        f"| {run_sps / floor_sps:.3f}x vs floor | - | - |",
        "",
        f"Per repetition (s): floor {fmt_seconds(floor_s)}; mmtok wall {fmt_seconds(wall_s)}; summary "
        f"seconds {fmt_seconds(summary_s)}; wall less model construction {fmt_seconds(excl_s)}; `_run` "
        f"{fmt_seconds(run_s)}.",
        f"Best mmtok repetition, by phase (s): model construction + 1-sample probe {setup:.2f}; "
        f"in the streaming loop: encoder compute {compute:.2f}, shard write + marker "
        f"{write:.2f}, waiting for reads + rest {rest:.2f}; outside both "
        f"{min(excl_s) - best.get('_run', float('nan')):.2f} (lock, store creation, summary).",
        f"Noise: the floor's repetitions differ by {spread:.1%} (identical work); ratio "
        "differences of that order are machine jitter, not mmtok.",
        f"Features: mmtok vs floor max |diff| = {max_diff:.2e} (same weights, same batches).",
        f"Total benchmark wall time: {time.perf_counter() - run_started:.0f} s.",
    ] + foreign_cpu_notes(foreign, foreign_share)
    print("\n".join(lines), flush=True)

    profile_text = None
    if args.profile:
        profile_text = profile_embed(tokens, out, args.encoder, weights, args.batch_size,
                                     options)
        print("\n## cProfile of one mmtok.embed (main thread; top 20 by cumulative time)\n\n```\n"
              + profile_text.strip() + "\n```", flush=True)

    if args.json:
        fields = {
            "params": {"images": n, "encoder": args.encoder, "encoder_options": options,
                       "batch_size": args.batch_size, "shard_size": shard_size,
                       "shards": shards, "reps": args.reps, "pool": "cls",
                       "precision": "float32", "device": "cpu", "images_reused": reused},
            "seconds": {"floor": floor_s, "mmtok_wall": wall_s, "mmtok_summary": summary_s,
                        "mmtok_wall_less_model_construction": excl_s, "mmtok_run_loop": run_s},
            "phases_seconds": phases_all,
            "samples_per_second": {"floor": round(floor_sps, 3),
                                   "mmtok_wall_less_model_construction": round(excl_sps, 3),
                                   "mmtok_wall": round(wall_sps, 3),
                                   "mmtok_summary": round(summary_sps, 3),
                                   "mmtok_run_loop": round(run_sps, 3)},
            "ratios": {"mmtok_vs_floor": round(ratio, 4),
                       "mmtok_wall_vs_floor": round(wall_sps / floor_sps, 4),
                       "mmtok_summary_vs_floor": round(summary_sps / floor_sps, 4),
                       "mmtok_run_loop_vs_floor": round(run_sps / floor_sps, 4)},
            "compute_share_of_mmtok_wall": [round(x, 4) for x in shares],
            "floor_spread": round(spread, 4),
            "goals": {"mmtok_vs_floor": {"goal": f">= {GOAL_VS_FLOOR}", "pass": ok}},
            "features_max_abs_diff": max_diff,
            "mmtok_summary": summary,
            "profile_top20_cumulative": profile_text,
        }
        write_run_json(RESULTS_JSON, "embed", machine, fields, foreign, run_started)

    cpu_rows = [
        result_row("mmtok embed, wall less model construction", round(excl_sps, 3),
                   "samples/s", peer="bare forward floor (tokens in memory)",
                   peer_value=round(floor_sps, 3), ratio=round(ratio, 3), ratio_of="vs floor",
                   goal=f">= {GOAL_VS_FLOOR}x floor", passed=ok),
        result_row("mmtok embed, encoder compute share of its own wall", round(100 * share, 1),
                   "%", note="drift-free view of the pipeline overhead"),
        result_row("mmtok embed, full wall time of the call", round(wall_sps, 3), "samples/s",
                   peer="bare forward floor (tokens in memory)", peer_value=round(floor_sps, 3),
                   ratio=round(wall_sps / floor_sps, 3), ratio_of="vs floor"),
        result_row("features max |mmtok - floor|", max_diff, ""),
    ]
    cpu_notes = [f"{n} images 224/16 -> {enc}, cls pool, float32, batch {args.batch_size}, "
                 f"{shards} shards of {shard_size}; best of {args.reps} interleaved "
                 f"repetitions; torch threads {m['torch_threads']}.",
                 f"The floor's own repetitions differ by {spread:.1%}.",
                 *foreign_cpu_notes(foreign, foreign_share)]
    sections = [result_section("CPU: mmtok embed against the bare encoder forward", cpu_rows,
                               cpu_notes),
                gpu_section(args, workdir, files)]
    write_result(args.result, "embed", RESULT_TITLE, sections, quick=args.quick,
                 params=result_params(args, {"images": n, "encoder_options": options,
                                             "shard_size": shard_size}),
                 machine=machine)
    return 0


def result_params(args: argparse.Namespace, measured: dict) -> dict:
    """The result's parameters: the options, updated with what the run measured on."""
    return {"images": args.images, "encoder": args.encoder, "batch_size": args.batch_size,
            "shard_size": args.shard_size, "reps": args.reps, "gpu_images": args.gpu_images,
            "gpu_batch_size": args.gpu_batch_size, "gpu_compile": args.gpu_compile,
            "gpu_only": args.gpu_only, **measured}


def quick_defaults(args: argparse.Namespace) -> None:
    """Fill the options whose ``--quick`` default is not a plain size (``add_sized``)."""
    if args.quick and args.depth is None:
        args.depth = 2
    if args.gpu_compile is None:
        args.gpu_compile = not args.quick


def gpu_section(args: argparse.Namespace, workdir: Path, files: list[Path],
                device: str = "cuda") -> dict:
    """The GPU section (``_embed_gpu.py``): ViT-B/16, bf16, on a larger token store;
    skipped with a reason when CUDA is absent."""
    from _embed_gpu import TITLE, accelerated_section, replicated_token_store
    from _gpu import cuda_skip_reason, skipped

    reason = cuda_skip_reason() if device == "cuda" else None
    if reason is not None:
        return skipped(TITLE, reason)
    print(f"\n## GPU section ({GPU_ENCODER}, bfloat16)", flush=True)
    tokens = replicated_token_store(files, args.gpu_images, workdir)
    weights = workdir / "gpu_encoder.safetensors"
    model = make_weights(GPU_ENCODER, {}, weights)
    out = workdir / "gpu_features.zarr"

    def embed_seconds() -> float:
        seconds, _, phases = mmtok_embed(tokens, out, GPU_ENCODER, weights,
                                         args.gpu_batch_size, {}, device=device,
                                         precision="bfloat16")
        return seconds - phases["setup (model construction + probe)"]

    return accelerated_section(model, weights, tokens, GPU_ENCODER, {}, device=device,
                               precision="bfloat16", batch_size=args.gpu_batch_size,
                               reps=args.reps, compile=args.gpu_compile,
                               embed_seconds=embed_seconds)


if __name__ == "__main__":
    sys.exit(main())
