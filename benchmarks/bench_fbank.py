#!/usr/bin/env python
"""Kaldi log-mel filterbank speed: mmtok's numpy fbank vs librosa's melspectrogram.

Both run single-threaded (thread counts pinned to 1 before numpy is imported) on the same
10.24 s, 16 kHz float32 clips (speech-like: chirps, a modulated harmonic stack, noise):

* mmtok: ``mmtok.modalities.audio.fbank.fbank(clip)`` (AST settings: 25 ms Hanning window, 10 ms
  shift, 128 mel bins, 512-point FFT, pre-emphasis 0.97, DC removal, log with float32 eps);
* librosa: ``librosa.feature.melspectrogram(y=clip, sr=16000, n_fft=512, win_length=400,
  hop_length=160, n_mels=128, center=False, power=2.0)`` then ``log(max(S, eps))``, i.e. the
  same window length, hop and mel count (librosa's filters are Slaney's, its window a
  periodic Hann centred in 512 samples, and it has no pre-emphasis or DC removal: similar
  work, not the same numbers).

Throughput is clips per second, the best of ``--reps`` interleaved repetitions over all
clips. The same run reports the largest difference between mmtok and the naive per-frame
reference of tests/modalities/test_fbank.py on one clip (log domain), to show the speed is
not bought with accuracy. Goal: mmtok >= 1.0x librosa.

    .venv/bin/python benchmarks/bench_fbank.py            # 40 clips x 5 repetitions
    .venv/bin/python benchmarks/bench_fbank.py --json     # also benchmarks/results/fbank.json
"""

from __future__ import annotations

from _common import pin_single_thread

pin_single_thread()  # before numpy is imported

import sys  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    describe_machine,
    interleaved_times,
    librosa_log_mel,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "modalities"))  # the naive reference
RESULTS_JSON = HERE / "results" / "fbank.json"
SR = 16000
SAMPLES = 163840  # 10.24 s -> 1022 Kaldi frames
GOAL = 1.0


def clips(count: int) -> list[np.ndarray]:
    from test_fbank import speech_like

    return [speech_like(SAMPLES / SR, seed=i) for i in range(count)]


def run_mmtok(batch: list[np.ndarray]) -> None:
    from mmtok.modalities.audio.fbank import fbank

    for clip in batch:
        fbank(clip)


def run_librosa(batch: list[np.ndarray]) -> None:
    for clip in batch:
        librosa_log_mel(clip)


def machine_info() -> dict:
    """The machine and the versions that matter here (for the report and the JSON)."""
    import librosa
    import scipy

    return describe_machine({"numpy": np.__version__, "scipy": scipy.__version__,
                             "librosa": librosa.__version__})


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(__doc__, quick="8 clips, 2 repetitions (a few seconds)",
                           reps=(5, 2), reps_help="repetitions",
                           json_help=f"also write {RESULTS_JSON}")
    parser.add_sized("--clips", 40, 8, "clips")
    args = parser.parse_args(argv)

    batch = clips(args.clips)
    contestants = {"mmtok fbank (Kaldi)": run_mmtok, "librosa melspectrogram + log": run_librosa}
    for run in contestants.values():  # warm up: imports, caches, FFT plans
        run(batch[:2])
    times = interleaved_times({name: partial(run, batch) for name, run in contestants.items()},
                              args.reps)
    rate = {name: args.clips / min(t) for name, t in times.items()}
    ratio = rate["mmtok fbank (Kaldi)"] / rate["librosa melspectrogram + log"]

    from test_fbank import ref_fbank

    from mmtok.modalities.audio.fbank import fbank

    exact = float(np.abs(fbank(batch[0]) - ref_fbank(batch[0])).max())

    m = machine_info()
    print(f"{machine_line(m)}; single thread")
    print(f"{args.clips} clips of 10.24 s at 16 kHz, best of {args.reps} repetitions\n")
    print("| Row | clips/s | ms/clip | ratio to librosa | Goal |")
    print("|---|---:|---:|---:|---|")
    for name, r in rate.items():
        mine = name.startswith("mmtok")
        goal = f">= {GOAL:.1f}x: {verdict(ratio >= GOAL)}" if mine else "-"
        print(f"| {name} | {r:.1f} | {1000 / r:.2f} | {r / rate['librosa melspectrogram + log']:.2f}x "
              f"| {goal} |")
    print(f"\nmax |mmtok - naive Kaldi reference| on clip 0 (1022 x 128, log domain): {exact:.2e}")
    if args.json:
        write_results_json(RESULTS_JSON, {
            "machine": m, "clips": args.clips, "reps": args.reps,
            "clips_per_second": {k: round(v, 2) for k, v in rate.items()},
            "ratio": round(ratio, 3), "goal": GOAL, "max_abs_diff_vs_reference": exact,
            "times": times}, announce=False)
    peer = "librosa melspectrogram + log"
    ours = rate["mmtok fbank (Kaldi)"]
    write_result(args.result, "fbank", "Kaldi filterbank (one thread), mmtok vs librosa", [
        result_section(f"{args.clips} clips of 10.24 s at 16 kHz, best of {args.reps}", [
            result_row("mmtok fbank (Kaldi)", round(ours, 2), "clips/s", peer=peer,
                       peer_value=round(rate[peer], 2), ratio=round(ratio, 3),
                       ratio_of="vs librosa", goal=f">= {GOAL:.1f}x librosa",
                       passed=ratio >= GOAL),
            result_row("max |mmtok - naive Kaldi reference|, clip 0, log domain", exact, ""),
        ])], quick=args.quick, params={"clips": args.clips, "reps": args.reps}, machine=m)
    return 0


if __name__ == "__main__":
    sys.exit(main())
