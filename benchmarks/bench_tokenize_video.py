#!/usr/bin/env python
"""Video tokenize throughput against a decord VideoMAE-style loader and the naive PyAV floor,
on the same generated 10 s 720p H.264 clips; peak memory as the clip count grows.

One run measures, on ``--clips`` clips (1280x720, 30 fps, 10 s, x264 with a keyframe every
2 s, a textured picture panning across the frame):

1. floor: decode every frame with PyAV (``container.decode`` + ``to_ndarray("rgb24")``),
   then take VideoMAE's 16 indices and resize + centre-crop them (Pillow, bilinear, 224):
   the naive loader; goal: mmtok >= 2x;
2. peer: decord's ``VideoReader`` + ``get_batch`` of the same 16 indices + the same resize and
   crop, as VideoMAE's own loader does (skipped with a reason when decord does not install);
   goal: mmtok >= 1.0x;
3. ``mmtok.tokenize(folder, out, "video", workers=1)`` in this process, fresh store each
   time (listing, decoding only the sampled window, tubelets, Zstd-compressed Zarr writes).

Throughput is videos per second, the best of ``--reps`` interleaved repetitions; files are in
the page cache. Peak RSS: ``mmtok tokenize`` in a fresh process over the first half of the
clips and over all of them (flat means memory does not grow with the clip count).

    .venv/bin/python benchmarks/bench_tokenize_video.py            # 24 clips
    .venv/bin/python benchmarks/bench_tokenize_video.py --quick    # 6 clips, 2 repetitions
    .venv/bin/python benchmarks/bench_tokenize_video.py --json     # also write results JSON
"""

from __future__ import annotations

from _common import pin_single_thread

pin_single_thread()  # before numpy is imported

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    describe_machine,
    interleaved_times,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_JSON = HERE / "results" / "tokenize_video.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-video"
GEN_VERSION = 1
SECONDS, FPS, WIDTH, HEIGHT = 10, 30, 1280, 720
GOAL_FLOOR, GOAL_PEER = 2.0, 1.0


def generate(folder: Path, count: int) -> list[Path]:
    """``count`` clips in two class folders; reused when already there."""
    import av

    stamp = folder / f".generated-v{GEN_VERSION}-{count}"
    paths = [folder / f"class{i % 2}" / f"clip{i:04d}.mp4" for i in range(count)]
    if stamp.exists():
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        # a smooth random texture twice the frame's width, panned across it
        coarse = rng.integers(0, 256, (HEIGHT // 16, WIDTH // 8, 3), dtype=np.uint8)
        texture = np.repeat(np.repeat(coarse, 16, axis=0), 16, axis=1)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
            stream.options = {"preset": "veryfast", "g": str(2 * FPS), "crf": "23"}
            for t in range(SECONDS * FPS):
                shift = (t * 4 + i * 37) % WIDTH
                frame = av.VideoFrame.from_ndarray(
                    np.ascontiguousarray(texture[:, shift:shift + WIDTH]), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    stamp.touch()
    return paths


def videomae_indices(length: int) -> np.ndarray:
    from mmtok.modalities.video import dense_indices

    return dense_indices(length, 16, 4)


def resize_crop(frames: list[np.ndarray]) -> np.ndarray:
    from PIL import Image

    out = []
    for pixels in frames:
        image = Image.fromarray(pixels)
        side = min(image.size)
        left, top = (image.width - side) / 2, (image.height - side) / 2
        out.append(np.asarray(image.resize((224, 224), Image.Resampling.BILINEAR,
                                           box=(left, top, left + side, top + side))))
    return np.stack(out)


def run_floor(paths: list[Path]) -> None:
    import av

    for path in paths:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        resize_crop([frames[i] for i in videomae_indices(len(frames))])


def decord_available() -> str | None:
    """None when decord imports; else why not."""
    try:
        import decord  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means no peer
        return f"decord does not import here ({type(exc).__name__}: {exc}); pip install decord"
    return None


def run_peer(paths: list[Path]) -> None:
    from decord import VideoReader, cpu

    for path in paths:
        reader = VideoReader(str(path), num_threads=1, ctx=cpu(0))
        index = videomae_indices(len(reader))
        reader.seek(0)
        resize_crop(list(reader.get_batch(index).asnumpy()))


def run_mmtok(folder: Path, store: Path, count: int) -> None:
    import mmtok

    shutil.rmtree(store, ignore_errors=True)
    summary = mmtok.tokenize(folder, store, "video", workers=1, progress=False)
    assert summary.num_valid == count, summary.line()
    shutil.rmtree(store, ignore_errors=True)


# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's peak at fork time
RSS_SCRIPT = """
import sys, shutil
import mmtok
paths = sys.argv[2:]
store = sys.argv[1]
summary = mmtok.tokenize(paths, store, "video", workers=1, progress=False)
assert summary.num_valid == len(paths), summary.line()
shutil.rmtree(store, ignore_errors=True)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(int(hwm.split()[1]) / 1024)
"""


def peak_rss_mib(paths: list[Path], store: Path) -> float:
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(store), *map(str, paths)],
                          capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    return float(done.stdout.strip().splitlines()[-1])


def machine_info() -> dict:
    import av

    versions = {"numpy": np.__version__, "av": av.__version__,
                "ffmpeg": ".".join(map(str, av.library_versions.get("libavcodec", ())))}
    if decord_available() is None:
        import decord

        versions["decord"] = decord.__version__
    return describe_machine(versions)


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="6 clips, 2 repetitions", reps=(3, 2),
                           reps_help="repetitions", workdir=DEFAULT_WORKDIR,
                           json_help=f"also write {RESULTS_JSON}")
    parser.add_sized("--clips", 24, 6, "clips")
    args = parser.parse_args(argv)
    count, reps = args.clips, args.reps
    sys.path.insert(0, str(ROOT))

    m = machine_info()
    print(f"{machine_line(m)}; one process")
    print(f"{count} clips of {SECONDS} s at {WIDTH}x{HEIGHT} {FPS} fps H.264, best of {reps} "
          "repetitions\n")
    folder = args.workdir / "clips"
    paths = generate(folder, count)
    store = args.workdir / "tokens.zarr"
    no_peer = decord_available()
    runs = {"floor": lambda: run_floor(paths), "mmtok": lambda: run_mmtok(folder, store, count)}
    if no_peer is None:
        runs["peer"] = lambda: run_peer(paths)
    run_floor(paths[:1])  # warm up imports and the page cache
    times = interleaved_times(runs, reps)
    rate = {k: count / min(v) for k, v in times.items()}
    to_floor = rate["mmtok"] / rate["floor"]
    half = peak_rss_mib(paths[: max(1, count // 2)], args.workdir / "rss.zarr")
    full = peak_rss_mib(paths, args.workdir / "rss.zarr")

    print("| loader | videos/s | mmtok / loader | goal |")
    print("|---|---:|---:|---|")
    print(f"| PyAV, every frame decoded (floor) | {rate['floor']:.2f} | {to_floor:.2f}x | "
          f">= {GOAL_FLOOR}x {verdict(to_floor >= GOAL_FLOOR)} |")
    rows = [result_row("mmtok tokenize", round(rate["mmtok"], 3), "videos/s",
                       peer="PyAV decoding every frame (floor)",
                       peer_value=round(rate["floor"], 3), ratio=round(to_floor, 3),
                       ratio_of="vs floor", goal=f">= {GOAL_FLOOR}x floor",
                       passed=to_floor >= GOAL_FLOOR)]
    results = {"videos_per_second": {k: round(v, 3) for k, v in rate.items()},
               "ratio_to_floor": round(to_floor, 3), "times": times,
               "peak_rss_mib": {str(max(1, count // 2)): round(half, 1), str(count): round(full, 1)}}
    if no_peer is None:
        to_peer = rate["mmtok"] / rate["peer"]
        results["ratio_to_peer"] = round(to_peer, 3)
        print(f"| decord VideoReader + get_batch (peer) | {rate['peer']:.2f} | {to_peer:.2f}x | "
              f">= {GOAL_PEER}x {verdict(to_peer >= GOAL_PEER)} |")
        rows.append(result_row("mmtok tokenize", round(rate["mmtok"], 3), "videos/s",
                               peer="decord VideoMAE-style loader",
                               peer_value=round(rate["peer"], 3), ratio=round(to_peer, 3),
                               ratio_of="vs peer", goal=f">= {GOAL_PEER}x peer",
                               passed=to_peer >= GOAL_PEER))
    else:
        print(f"| decord (peer) | skipped: {no_peer} | | |")
    print(f"| mmtok tokenize | {rate['mmtok']:.2f} | | |")
    print(f"\npeak RSS of mmtok tokenize: {half:.0f} MiB for {max(1, count // 2)} clips, "
          f"{full:.0f} MiB for {count} ({full / half:.2f}x)")
    rows.append(result_row(f"peak RSS, {count} clips", round(full, 1), "MiB",
                           peer=f"peak RSS, {max(1, count // 2)} clips", peer_value=round(half, 1),
                           ratio=round(full / half, 3), ratio_of="vs half the clips",
                           goal="<= 1.1x (flat)", passed=full <= 1.1 * half))
    if args.json:
        write_results_json(RESULTS_JSON, {"machine": m, "clips": count, "reps": reps,
                                          **results}, announce=False)
    notes = [] if no_peer is None else [f"decord peer skipped: {no_peer}"]
    write_result(args.result, "tokenize_video", "Video tokenize throughput (10 s 720p H.264)",
                 [result_section(f"{count} clips, one process, best of {reps}", rows,
                                 notes=notes)],
                 quick=args.quick, params={"clips": count, "reps": reps}, machine=m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
