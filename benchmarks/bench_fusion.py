#!/usr/bin/env python
"""Token-fusion head training: mmtok's loop over paired feature stores against a plain
PyTorch loop over the same tensors in memory, one run.

Data: two per-token feature stores ("image" and "audio", N samples of 197 tokens x 192
float32 each, written through mmtok's store writer in shards of 256; the audio store lists
the samples in reverse order, so pairing looks every id up) and a pairs CSV. Both
contestants train the same :class:`mmtok.heads.fusion.TokenFusion` (width 128, 2 layers,
4 attention heads; same initial weights), AdamW, warm-up + cosine, batches of 64, one
epoch per repetition:

* mmtok: ``pair_stores`` + ``train_epoch`` with the features left in the stores (the split
  is over the memory limit: it is read in blocks of about 64 MiB of features, in store
  order, shuffled blocks and rows, the next block read by a background thread while the
  current one trains);
* plain PyTorch: both modalities' whole feature arrays as tensors in memory, a
  ``randperm`` per epoch, index, forward, cross-entropy, backward, step.

Goal (issue 21): mmtok >= 0.9x the plain loop's throughput (samples/s, the best of
``--reps`` interleaved repetitions). Peak memory: a fresh process trains one mmtok epoch on
N/4 and on N samples of the same stores (VmHWM from /proc/self/status); the goal is that
the peak does not grow with N (within 10 %; the features of N samples would add
N x 303 KB). With ``--quick`` these two runs use batches of 16 (blocks are a whole number of
batches, so N/4 = 96 samples then span several blocks, as at full size).

    .venv/bin/python benchmarks/bench_fusion.py            # 20,000 samples: long on 2 cores
    .venv/bin/python benchmarks/bench_fusion.py --quick    # 384 samples, a smaller model
    .venv/bin/python benchmarks/bench_fusion.py --json     # also benchmarks/results/fusion.json
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    cpu_snapshot,
    describe_machine,
    foreign_cpu,
    foreign_cpu_notes,
    machine_line,
    result_row,
    result_section,
    standard_args,
    verdict,
    write_result,
    write_results_json,
)

TOKENS, DIM, CLASSES = 197, 192, 4
FULL_SAMPLES, QUICK_SAMPLES = 20000, 384
BATCH = 64
SHARD = 256
FULL_MODEL = {"width": 128, "depth": 2, "heads": 4}
QUICK_MODEL = {"width": 64, "depth": 1, "heads": 4}  # a smaller model: the stricter ratio
MODEL = dict(FULL_MODEL)


def write_stores(folder: Path, num: int) -> dict:
    """The two stores and the pairs file, generated shard by shard (never all in memory);
    reused when ``folder`` already holds them for ``num``."""
    import numpy as np

    from mmtok.store.layout import ArraySpec, shard_bounds
    from mmtok.store.writer import ShardData, ShardWriter, StoreSpec, prepare_store

    stamp = folder / "stamp.json"
    paths = {"image": folder / "image.zarr", "audio": folder / "audio.zarr",
             "pairs": folder / "pairs.csv"}
    wanted = {"num": num, "tokens": TOKENS, "dim": DIM}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.random.default_rng(0).integers(0, CLASSES, num)
    centres = np.random.default_rng(1).normal(size=(2, 2, DIM)).astype(np.float32) * 0.3
    config = {"encoder": "bench-encoder", "encoder_options": {}, "weights_sha256": "0" * 64,
              "width": DIM, "projector": {"kind": "bench", "source": "random"}, "pool": "none",
              "tokens_config_hash": "b" * 16}
    for name, order, centre in (("image", np.arange(num), 0), ("audio", np.arange(num)[::-1], 1)):
        spec = StoreSpec(kind="features", modality="bench", config=config,
                         arrays={"features": ArraySpec((TOKENS, DIM), "float32")},
                         static_arrays={}, num_samples=num, shard_size=SHARD,
                         class_names=[f"c{i}" for i in range(CLASSES)],
                         source={"root": str(folder)}, source_hash=name)
        prepare_store(paths[name], spec, overwrite=True)
        writer = ShardWriter(paths[name])
        rng = np.random.default_rng(2 + centre)
        for shard in range(spec.num_shards):
            start, stop = shard_bounds(shard, num, SHARD)
            rows = order[start:stop]
            bit = labels[rows] // 2 if centre == 0 else labels[rows] % 2
            x = rng.standard_normal((len(rows), TOKENS, DIM), dtype=np.float32)
            x += centres[centre][bit][:, None]
            writer.write(shard, ShardData({"features": x}, labels[rows].astype(np.int32),
                                          np.ones(len(rows), bool),
                                          [f"s{i:06d}.{name}" for i in rows], []))
    with open(paths["pairs"], "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["image", "audio"])
        out.writerows([f"s{i:06d}.image", f"s{i:06d}.audio"] for i in range(num))
    stamp.write_text(json.dumps(wanted))
    return paths


def settings(epochs: int = 1):
    from mmtok.heads.fusion import FusionSettings

    return FusionSettings(fusion="tokens", epochs=epochs, batch_size=BATCH, warmup_epochs=0,
                          dropout=0.0, **MODEL)


def paired(paths: dict, num: int | None = None):
    import numpy as np

    from mmtok.heads.pairing import pair_stores

    data = pair_stores({"image": paths["image"], "audio": paths["audio"]}, pairs=paths["pairs"])
    return data if num is None else data.subset(np.arange(num))


def mmtok_epoch(paths: dict, data, reps: int):
    """A closure training one mmtok epoch (streamed) on ``data``; the model and optimiser
    persist across calls, as in a run."""
    import numpy as np
    import torch

    from mmtok.heads.fusion import FUSION, new_head, train_epoch
    from mmtok.heads.schedule import warmup_cosine

    config = settings(reps + 1)
    head = new_head(["image", "audio"], data, config, 0)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = warmup_cosine(optimizer, (reps + 1) * -(-len(data) // BATCH), 0)
    rng = np.random.default_rng(0)
    cpu = torch.device("cpu")
    return head, lambda: train_epoch({FUSION: head}, data, config, cpu, 0.0, rng, optimizer,
                                     schedule)


def plain_epoch(data, reps: int):
    """The peer: the same model and optimiser over in-memory tensors."""
    import torch
    import torch.nn.functional as F

    from mmtok.heads.fusion import new_head
    from mmtok.heads.schedule import warmup_cosine

    config = settings(reps + 1)
    everything = torch.arange(len(data)).numpy()
    image = torch.from_numpy(data.modalities["image"].read(everything))
    audio = torch.from_numpy(data.modalities["audio"].read(everything))
    labels = torch.from_numpy(data.labels["label"])
    model = new_head(["image", "audio"], data, config, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)
    schedule = warmup_cosine(optimizer, (reps + 1) * -(-len(data) // BATCH), 0)
    generator = torch.Generator().manual_seed(0)
    ones = torch.ones(len(data), dtype=torch.bool)

    def epoch() -> None:
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for begin in range(0, len(labels), BATCH):
            rows = order[begin:begin + BATCH]
            batch = {"features": {"image": image[rows], "audio": audio[rows]},
                     "present": {"image": ones[rows], "audio": ones[rows]}}
            loss = F.cross_entropy(model(batch)[0], labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()

    return model, epoch


RSS_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import bench_fusion
from bench_fusion import mmtok_epoch, paired
from mmtok.heads import fusion
fusion.BLOCK_BYTES = int(sys.argv[4])
bench_fusion.MODEL.update(json.loads(sys.argv[5]))
bench_fusion.BATCH = int(sys.argv[6])
def hwm_kb():
    with open("/proc/self/status") as f:
        return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
paths = json.loads(sys.argv[2])
data = paired(paths, int(sys.argv[3]))
_, epoch = mmtok_epoch(paths, data, 1)
before = hwm_kb()
epoch()
print(json.dumps({"peak_rss_kb": hwm_kb(), "before_epoch_peak_rss_kb": before}))
"""


def peak_rss(paths: dict, num: int, batch: int) -> dict:
    from mmtok.heads import fusion

    done = subprocess.run([sys.executable, "-c", RSS_CHILD, str(Path(__file__).parent),
                           json.dumps({k: str(v) for k, v in paths.items()}), str(num),
                           str(fusion.BLOCK_BYTES), json.dumps(MODEL), str(batch)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = standard_args(
        __doc__, quick=f"{QUICK_SAMPLES} samples, a smaller model {QUICK_MODEL} and 8 MiB "
                       "blocks (a smoke run)",
        reps=2, reps_help="epochs per contestant, interleaved; the fastest counts",
        workdir=Path(tempfile.gettempdir()) / "mmtok-bench-fusion",
        json_help="also write benchmarks/results/fusion.json")
    parser.add_sized("--samples", FULL_SAMPLES, QUICK_SAMPLES, "paired samples")
    parser.add_sized("--block-mib", 64, 8, "MiB of features per streamed block (64 by "
                     "default; 8 with --quick, so that N/4 samples span several blocks)",
                     show_defaults=False)
    args = parser.parse_args(argv)
    num = args.samples
    reps = args.reps
    import numpy as np
    import torch

    from mmtok.heads import fusion

    fusion.BLOCK_BYTES = args.block_mib << 20
    MODEL.update(QUICK_MODEL if args.quick else FULL_MODEL)
    started = time.perf_counter()
    machine = describe_machine({"numpy": np.__version__}, with_torch=True)
    print("# Token-fusion head training: mmtok (streamed from the stores) vs a plain PyTorch "
          "loop (tensors in memory)")
    print()
    print(f"{machine_line(machine)}")
    print(f"{num} paired samples, 2 modalities x {TOKENS} tokens x {DIM} float32 "
          f"({num * 2 * TOKENS * DIM * 4 / 2**20:.0f} MiB of features), batches of {BATCH}; "
          f"fastest of {reps} interleaved epochs; TokenFusion {MODEL}; streamed blocks of "
          f"{fusion.BLOCK_BYTES >> 20} MiB")
    print()
    paths = write_stores(args.workdir / f"n{num}", num)
    data = paired(paths)
    assert all(m.held is None for m in data.modalities.values())  # streamed, not held
    ours_model, ours = mmtok_epoch(paths, data, reps)
    peer_model, peer = plain_epoch(data, reps)
    same_start = all(torch.equal(a, b) for a, b in zip(ours_model.state_dict().values(),
                                                       peer_model.state_dict().values()))
    start = cpu_snapshot()
    times: dict[str, list[float]] = {"mmtok": [], "plain": []}
    for _ in range(reps):
        for name, fn in (("mmtok", ours), ("plain", peer)):
            began = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - began)
    foreign, share = foreign_cpu(start)
    best = {name: min(values) for name, values in times.items()}
    rate = {name: num / seconds for name, seconds in best.items()}
    ratio = rate["mmtok"] / rate["plain"]
    # --quick: batches of 16 here, so that N/4 = 96 samples span several blocks too (a block
    # is a whole number of batches); a comparison of 2 blocks with 6 says little.
    rss_batch = 16 if args.quick else BATCH
    small = peak_rss(paths, max(rss_batch, num // 4), rss_batch)
    large = peak_rss(paths, num, rss_batch)
    growth = large["peak_rss_kb"] / small["peak_rss_kb"]
    print("| contestant | samples/s | epoch seconds | ratio |")
    print("|---|---:|---:|---:|")
    for name in ("mmtok", "plain"):
        print(f"| {name} | {rate[name]:.1f} | {', '.join(f'{t:.2f}' for t in times[name])} | "
              f"{rate[name] / rate['plain']:.3f}x |")
    print()
    print(f"same initial weights: {same_start}")
    print(f"peak RSS of one mmtok epoch (batches of {rss_batch}): "
          f"{small['peak_rss_kb'] / 1024:.0f} MiB at "
          f"{max(rss_batch, num // 4)} samples, {large['peak_rss_kb'] / 1024:.0f} MiB at {num} "
          f"({growth:.3f}x; the features alone are {num * 2 * TOKENS * DIM * 4 / 2**20:.0f} MiB)")
    print()
    print("## Goals")
    print()
    passed_speed, passed_memory = ratio >= 0.9, growth <= 1.10
    print(f"- throughput >= 0.9x the plain loop: {ratio:.3f}x: {verdict(passed_speed)}")
    print(f"- peak memory does not grow with N (within 10 %): {growth:.3f}x: "
          f"{verdict(passed_memory)}")
    notes = foreign_cpu_notes(foreign, share)
    for note in notes:
        print()
        print(note)
    rows = [result_row("mmtok token-fusion training (streamed)", round(rate["mmtok"], 2),
                       "samples/s", peer="plain PyTorch loop, tensors in memory",
                       peer_value=round(rate["plain"], 2), ratio=round(ratio, 3),
                       ratio_of="mmtok / plain throughput", goal=">= 0.9x", passed=passed_speed),
            result_row(f"peak RSS, one epoch of {num} samples",
                       round(large["peak_rss_kb"] / 1024, 1), "MiB",
                       peer=f"same at {max(rss_batch, num // 4)} samples",
                       peer_value=round(small["peak_rss_kb"] / 1024, 1), ratio=round(growth, 3),
                       ratio_of="peak at N / peak at N/4", goal="<= 1.10", passed=passed_memory)]
    params = {"samples": num, "tokens": TOKENS, "dim": DIM, "batch": BATCH, "reps": reps,
              "rss_batch": rss_batch,
              "model": MODEL, "block_bytes": fusion.BLOCK_BYTES}
    write_result(args.result, "fusion", "Token-fusion head training vs a plain PyTorch loop",
                 [result_section("CPU", rows, notes)], quick=args.quick, params=params,
                 machine=machine)
    if args.json:
        write_results_json(Path(__file__).parent / "results" / "fusion.json", {
            "benchmark": "fusion", "machine": machine, "params": params, "times": times,
            "samples_per_second": rate, "ratio": ratio, "peak_rss_kb": {"small": small,
                                                                        "large": large},
            "foreign_cpu_seconds": foreign, "wall_seconds": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    sys.exit(main())
