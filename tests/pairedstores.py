"""Paired feature stores for the fusion tests: a task in which each modality alone is only
partly informative and the pair determines the class.

Class ``c`` of 4 is the pair of bits ``(c // 2, c % 2)``: the "image" store's features sit
around a centre chosen by the first bit, the "audio" store's around one chosen by the
second, so either modality alone can tell two of the four classes apart (at best about 50 %
top-1) while the pair tells all four (near 100 %). Both stores list the samples in
different orders, with ids that share a stem (``s00001.png`` / ``s00001.wav``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from featurestores import write_feature_store

CLASSES = ["c0", "c1", "c2", "c3"]


def paired_features(num: int, dim: int, seed: int, separation: float = 1.2,
                    tokens: int | None = None) -> dict:
    """Labels and the two modalities' features, (num, dim) or (num, tokens, dim) with the
    signal on every token."""
    centres = np.random.default_rng(99).normal(size=(2, 2, dim)) * separation
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, num)
    shape = (num, dim) if tokens is None else (num, tokens, dim)
    image = rng.normal(size=shape)
    audio = rng.normal(size=shape)
    signal_image, signal_audio = centres[0][labels // 2], centres[1][labels % 2]
    if tokens is not None:
        signal_image, signal_audio = signal_image[:, None], signal_audio[:, None]
    return {"labels": labels, "image": (image + signal_image).astype(np.float32),
            "audio": (audio + signal_audio).astype(np.float32)}


def write_paired(folder: Path, num: int, dim: int, seed: int, *, tokens: int | None = None,
                 separation: float = 1.2, shard_size: int = 128, pairs: bool = True,
                 **config_changes) -> dict:
    """Two stores (``image.zarr`` in sample order, ``audio.zarr`` reversed) and a pairs CSV
    with an ``image``, ``audio`` and ``label`` column."""
    folder.mkdir(parents=True, exist_ok=True)
    data = paired_features(num, dim, seed, separation, tokens)
    labels = data["labels"]
    ids = [f"s{i:05d}" for i in range(num)]
    order = np.arange(num)[::-1]
    image = write_feature_store(folder / "image.zarr", data["image"], labels, CLASSES,
                                ids=[f"{i}.png" for i in ids], shard_size=shard_size,
                                **config_changes)
    audio = write_feature_store(folder / "audio.zarr", data["audio"][order], labels[order],
                                CLASSES, ids=[f"{ids[i]}.wav" for i in order],
                                shard_size=shard_size, **config_changes)
    result = {"image": image, "audio": audio, "labels": labels, "ids": ids}
    if pairs:
        result["pairs"] = write_pairs(folder / "pairs.csv",
                                      [{"image": f"{i}.png", "audio": f"{i}.wav",
                                        "label": CLASSES[y]} for i, y in zip(ids, labels)])
    return result


def write_pairs(path: Path, rows: list[dict]) -> Path:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


THREE = ("image", "audio", "depth")
# which modalities a row keeps, cycled over the rows: all three, each pair, each one alone
PRESENCE = [THREE, ("image", "audio"), ("image", "depth"), ("audio", "depth"),
            ("image",), ("audio",), ("depth",)]


def write_three(folder: Path, num: int, dim: int, seed: int, *, tokens: int | None = None,
                empty_rows: int = 0) -> dict:
    """Three stores over the same samples: ``image`` and ``audio`` from
    :func:`paired_features` (one bit of the class each) and ``depth`` (around a centre per
    class, so it alone tells all four apart, less cleanly); a ``token_mask`` on ``image``'s
    per-token features (its last token padding for every other sample). The pairs CSV keeps
    row ``i``'s modalities ``PRESENCE[i % 7]``; ``empty_rows`` more rows name no sample
    (one at most: the pairs file refuses a repeated row)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = paired_features(num, dim, seed, tokens=tokens)
    labels = data["labels"]
    centres = np.random.default_rng(98).normal(size=(len(CLASSES), dim)) * 0.8
    shape = (num, dim) if tokens is None else (num, tokens, dim)
    signal = centres[labels] if tokens is None else centres[labels][:, None]
    data["depth"] = (np.random.default_rng(seed + 50).normal(size=shape)
                     + signal).astype(np.float32)
    ids = [f"s{i:05d}" for i in range(num)]
    extra = {"image": None, "audio": None, "depth": None}
    if tokens is not None:
        mask = np.ones((num, tokens), bool)
        mask[1::2, -1] = False
        extra["image"] = {"token_mask": mask}
    stores = {name: write_feature_store(folder / f"{name}.zarr", data[name], labels, CLASSES,
                                        ids=[f"{i}.{name}" for i in ids], extra=extra[name])
              for name in THREE}
    keeps = [PRESENCE[i % len(PRESENCE)] for i in range(num)]
    rows = [{**{name: f"{sample}.{name}" if name in keep else "" for name in THREE},
             "label": CLASSES[y]} for sample, y, keep in zip(ids, labels, keeps)]
    rows += [{**{name: "" for name in THREE}, "label": ""} for _ in range(empty_rows)]
    return {**stores, "labels": labels, "keeps": keeps + [()] * empty_rows,
            "pairs": write_pairs(folder / "pairs.csv", rows)}
