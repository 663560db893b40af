#!/usr/bin/env python
"""Audio tokenize throughput against the decode floor, on the same generated 10 s clips.

For each clip set (default: 16 kHz mono PCM-16 WAV, 44.1 kHz stereo PCM-16 WAV, 16 kHz mono
FLAC; 200 clips of 10 s each, 2 class folders), one run measures:

1. floor: a single-process loop of ``librosa.load(path, sr=16000)`` (decode, mix to mono,
   soxr HQ resampling): what any audio pipeline pays per file;
2. peer: the same loop plus ``librosa.feature.melspectrogram`` (512-point FFT, 400-sample
   window, hop 160, 128 mels) and a log: decode + a filterbank, the work a tokenizer has to
   do at least (informational);
3. ``mmtok.tokenize(folder, out, "audio", workers=1)`` in this process, fresh store each
   time (listing, store creation, fbank, patches, Zstd-compressed Zarr writes included);
   goal >= 0.7x the floor.

Throughput is files per second, the best of ``--reps`` interleaved repetitions; files are in
the page cache. Thread counts are pinned to 1 before numpy is imported (the floor and
mmtok are both single-threaded). Generation is not timed; the folders are reused.

    .venv/bin/python benchmarks/bench_tokenize_audio.py            # 200 clips per set
    .venv/bin/python benchmarks/bench_tokenize_audio.py --quick    # 40 clips per set
    .venv/bin/python benchmarks/bench_tokenize_audio.py --json     # also write results JSON
"""

from __future__ import annotations

from _common import pin_single_thread

pin_single_thread()  # before numpy is imported

import argparse  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    add_result_args,
    describe_machine,
    interleaved_times,
    librosa_log_mel,
    machine_line,
    result_row,
    result_section,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
RESULTS_JSON = HERE / "results" / "tokenize_audio.json"
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "mmtok-bench-tokenize-audio"
GEN_VERSION = 1
SECONDS = 10.0
GOAL = 0.7
SETS = {  # name: (sample rate, channels, format, subtype, extension)
    "wav16k-mono": (16000, 1, "WAV", "PCM_16", ".wav"),
    "wav44k-stereo": (44100, 2, "WAV", "PCM_16", ".wav"),
    "flac16k-mono": (16000, 1, "FLAC", "PCM_16", ".flac"),
}


def generate(folder: Path, count: int, spec: tuple) -> list[Path]:
    """``count`` speech-like clips in two class folders; reused when already there."""
    import soundfile as sf

    rate, channels, fmt, subtype, ext = spec
    stamp = folder / f".generated-v{GEN_VERSION}-{count}"
    paths = [folder / f"class{i % 2}" / f"clip{i:04d}{ext}" for i in range(count)]
    if stamp.exists():
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(SECONDS * rate)) / rate
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        pitch = 100 + 40 * rng.random() + 20 * np.sin(2 * np.pi * 0.5 * t)
        phase = 2 * np.pi * np.cumsum(pitch) / rate
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + 3 * rng.random()) * t)
        x = sum(envelope * 0.1 / h * np.sin(h * phase) for h in range(1, 16))
        x = x + 0.01 * rng.standard_normal(len(t))
        data = np.stack([x, np.roll(x, 7)], axis=1)[:, :channels] if channels > 1 else x
        sf.write(path, data.astype(np.float32), rate, format=fmt, subtype=subtype)
    stamp.touch()
    return paths


def run_floor(paths: list[Path]) -> None:
    import librosa

    for path in paths:
        librosa.load(path, sr=16000)


def run_peer(paths: list[Path]) -> None:
    import librosa

    for path in paths:
        y, _ = librosa.load(path, sr=16000)
        librosa_log_mel(y)


def run_mmtok(folder: Path, store: Path, count: int) -> None:
    import mmtok
    import mmtok.modalities.audio  # noqa: F401  (registers "audio")

    shutil.rmtree(store, ignore_errors=True)
    summary = mmtok.tokenize(folder, store, "audio", workers=1, progress=False)
    assert summary.num_valid == count, summary.line()
    shutil.rmtree(store, ignore_errors=True)


def machine_info() -> dict:
    """The machine and the versions that matter here (for the report and the JSON)."""
    import librosa
    import soundfile
    import soxr

    return describe_machine({"numpy": np.__version__, "librosa": librosa.__version__,
                             "soxr": soxr.__version__,
                             "libsndfile": soundfile.__libsndfile_version__})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=None, help="clips per set (default 200)")
    parser.add_argument("--quick", action="store_true", help="40 clips per set, 2 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated clip sets")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS_JSON}")
    add_result_args(parser)
    args = parser.parse_args(argv)
    count = args.clips or (40 if args.quick else 200)
    reps = args.reps or (2 if args.quick else 3)

    m = machine_info()
    print(f"{machine_line(m)}; one process, one thread")
    print(f"{count} clips of {SECONDS:g} s per set, best of {reps} repetitions\n")
    print("| Clip set | floor: librosa.load (files/s) | peer: load + melspectrogram (files/s) "
          "| mmtok tokenize (files/s) | mmtok / floor | mmtok / peer | Goal >= 0.7x floor |")
    print("|---|---:|---:|---:|---:|---:|---|")
    results = {}
    rows = []
    for name in args.sets.split(","):
        folder = args.workdir / name
        paths = generate(folder, count, SETS[name])
        store = args.workdir / f"{name}.zarr"
        runs = {"floor": lambda: run_floor(paths), "peer": lambda: run_peer(paths),
                "mmtok": lambda: run_mmtok(folder, store, count)}
        run_floor(paths[:4])  # warm up imports and the page cache
        run_peer(paths[:4])
        times = interleaved_times(runs, reps)
        rate = {k: count / min(v) for k, v in times.items()}
        ratio = rate["mmtok"] / rate["floor"]
        results[name] = {"files_per_second": {k: round(v, 2) for k, v in rate.items()},
                         "ratio_to_floor": round(ratio, 3),
                         "ratio_to_peer": round(rate["mmtok"] / rate["peer"], 3),
                         "times": times}
        print(f"| {name} | {rate['floor']:.1f} | {rate['peer']:.1f} | {rate['mmtok']:.1f} | "
              f"{ratio:.2f}x | {rate['mmtok'] / rate['peer']:.2f}x | "
              f"{verdict(ratio >= GOAL)} |")
        rows += [
            result_row(f"{name}: mmtok tokenize", round(rate["mmtok"], 2), "files/s",
                       peer="librosa.load loop (floor)", peer_value=round(rate["floor"], 2),
                       ratio=round(ratio, 3), ratio_of="vs floor", goal=f">= {GOAL}x floor",
                       passed=ratio >= GOAL),
            result_row(f"{name}: mmtok tokenize", round(rate["mmtok"], 2), "files/s",
                       peer="librosa.load + melspectrogram loop",
                       peer_value=round(rate["peer"], 2),
                       ratio=round(rate["mmtok"] / rate["peer"], 3), ratio_of="vs peer"),
        ]
    if args.json:
        write_results_json(RESULTS_JSON, {"machine": m, "clips": count, "reps": reps,
                                          "goal": GOAL, "sets": results}, announce=False)
    write_result(args.result, "tokenize_audio", "Audio tokenize throughput against the decode floor",
                 [result_section(f"{count} clips of {SECONDS:g} s per set, one thread, best of "
                                 f"{reps}", rows,
                                 notes=["Where decoding is cheap (16 kHz WAV) the filterbank "
                                        "alone costs several times the floor, so 0.7x is out "
                                        "of reach for any front end there."])],
                 quick=args.quick, params={"clips": count, "reps": reps, "sets": args.sets},
                 machine=m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
