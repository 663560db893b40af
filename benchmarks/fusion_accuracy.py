#!/usr/bin/env python
"""Fusion heads on generated paired tasks, several seeds: the figures issue 21 asks for
(fusion against each modality alone; unimodal heads co-trained with distillation against
the same heads trained alone). Not a speed benchmark (so not ``bench_*``): run it by hand.

Tasks (two modalities, 4 classes, stores written through mmtok's store writer):

* ``bits``: each modality's features tell one bit of the class (``c // 2`` or ``c % 2``), the
  pair tells both; a unimodal head is capped near 50 % top-1.
* ``views``: each modality sees all four class centres through heavy noise (each alone
  partly informative), the pair averages the noise away.

    PYTHONPATH=. .venv/bin/python benchmarks/fusion_accuracy.py [--seeds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from featurestores import write_feature_store  # noqa: E402

CLASSES = ["c0", "c1", "c2", "c3"]


def task_features(task: str, num: int, dim: int, seed: int, tokens: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, num)
    centres = np.random.default_rng(99).normal(size=(2, 4, dim))
    if task == "bits":
        means = [centres[0][y // 2] * 1.2, centres[1][y % 2] * 1.2]
    else:
        means = [centres[0][y] * 0.45, centres[1][y] * 0.45]
    shape = (num, dim) if tokens is None else (num, tokens, dim)
    out = []
    for mean in means:
        x = rng.normal(size=shape) + (mean if tokens is None else mean[:, None])
        out.append(x.astype(np.float32))
    return y, out


def stores(folder: Path, task: str, num: int, dim: int, seed: int, tokens=None) -> dict:
    y, (image, audio) = task_features(task, num, dim, seed, tokens)
    ids = [f"s{i:05d}" for i in range(num)]
    return {"image": str(write_feature_store(folder / "image.zarr", image, y, CLASSES,
                                             ids=[f"{i}.png" for i in ids])),
            "audio": str(write_feature_store(folder / "audio.zarr", audio, y, CLASSES,
                                             ids=[f"{i}.wav" for i in ids]))}


def run(task: str, fusion: str, head: str, seed: int, distill: bool, work: Path, sizes) -> dict:
    from mmtok.heads.fusion import FusionSettings
    from mmtok.heads.fusion_train import train_fusion_head

    train_n, test_n, dim, tokens, epochs = sizes
    folder = work / f"{task}-{fusion}-{head}-{seed}-{distill}"
    train = stores(folder / "train", task, train_n, dim, 1000 + seed, tokens)
    test = stores(folder / "test", task, test_n, dim, 2000 + seed, tokens)
    settings = FusionSettings(fusion=fusion, head=head, hidden=64, width=32, depth=1, heads=2,
                              epochs=epochs, lr=3e-3, patience=epochs, distill=distill,
                              alpha=0.5, temperature=2.0)
    result = train_fusion_head(train, folder / "head", pair_by="stem", test=test, seed=seed,
                               settings=settings, device="cpu")
    figures = {name: result.test[name]["label"]["top1"] for name in ("fusion", "image", "audio")}
    if distill:
        figures.update({f"{name} alone": result.extra["alone"]["test"][name]["label"]["top1"]
                        for name in ("image", "audio")})
    return figures


def summary(rows: list[dict]) -> dict:
    return {key: {"mean": statistics.mean(r[key] for r in rows),
                  "std": statistics.pstdev([r[key] for r in rows]),
                  "min": min(r[key] for r in rows), "max": max(r[key] for r in rows),
                  "values": [round(r[key], 4) for r in rows]} for key in rows[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 seeds, smaller sets")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    seeds = range(3 if args.quick else args.seeds)
    work = Path(tempfile.mkdtemp(prefix="mmtok-fusion-accuracy-"))
    pooled = (400, 2000, 32, None, 40)
    cases = [("bits", "late", "linear", False, pooled), ("bits", "late", "mlp", True, pooled),
             ("views", "late", "mlp", True, pooled),
             ("bits", "tokens", "linear", True, (400, 1000, 16, 4, 25))]
    report = {}
    for task, fusion, head, distill, sizes in cases:
        label = f"{task}, {fusion} fusion, {head if fusion == 'late' else 'transformer'}" \
                f"{', distill' if distill else ''}, {sizes[0]} train / {sizes[1]} test"
        rows = [run(task, fusion, head, seed, distill, work, sizes) for seed in seeds]
        report[label] = summary(rows)
        print(f"## {label} (seeds {list(seeds)})")
        for key, s in report[label].items():
            print(f"  {key:12s} test top-1 {s['mean']:.4f} +- {s['std']:.4f} "
                  f"(min {s['min']:.4f}, max {s['max']:.4f}) {s['values']}")
        sys.stdout.flush()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
