"""``train-head NAME=STORE ...``: a fusion head and one unimodal head per modality.

Output folder: ``head.safetensors`` (every head's tensors, prefixed by its name: ``fusion.``,
``image.``, ...), ``head.json`` (kind ``fusion``, the fusion type, each modality's feature
shape and provenance, the tasks and their classes, the settings), ``metrics.json`` (per head
and task: validation and test metrics; the routed predictions ``predict`` would make; with
distillation, the unimodal heads trained alone for comparison), ``confusion.png`` (the
fusion head, first task) and ``learning_curve.png`` (the fusion head).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..errors import UsageError
from .data import stratified_split
from .fusion import FUSION, FusionSettings, co_train, fit_probes, head_probabilities, new_head
from .metrics import classification_metrics
from .model import CONFIG_FILE, HEAD_FORMAT, WEIGHTS_FILE
from .pairing import (
    HELD_BYTES_LIMIT,
    PairedSet,
    align_classes,
    check_same_making,
    pair_stores,
    parse_named_stores,
)
from .plots import plot_confusion, plot_learning_curve

Stores = dict[str, "str | os.PathLike"] | list[str]


@dataclass
class FusionRun:
    """What ``train_fusion_head`` did, for the summary line and ``--json``."""

    output: str
    fusion: str
    modalities: list[str]
    tasks: list[str]
    samples: dict[str, Any]
    val: dict[str, Any]
    test: dict[str, Any] | None
    seconds: dict[str, float]
    epochs: int | None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        shown, split = (self.test, "test") if self.test is not None else (self.val, "val")
        task = self.tasks[0]
        scores = ", ".join(f"{name} {shown[name][task]['top1']:.4f}"
                           for name in (FUSION, *self.modalities))
        dropped = self.samples.get("dropped", {}).get("train", {}).get("dropped rows", 0)
        return (f"train-head: {self.fusion} fusion of {'+'.join(self.modalities)} on "
                f"{self.samples['train']} train / {self.samples['val']} val paired samples"
                f"{f' ({dropped} rows dropped)' if dropped else ''}; "
                f"{f'{self.epochs} epochs' if self.epochs else 'linear probe'}; "
                f"{split} top-1 ({task}) {scores}; {self.seconds['total']:.1f} s -> {self.output}")


def _named(stores: Stores | None) -> dict[str, str] | None:
    if stores is None:
        return None
    return parse_named_stores(list(stores)) if isinstance(stores, list | tuple) else \
        {k: os.fspath(v) for k, v in stores.items()}


def train_fusion_head(
    stores: Stores,
    output: str | os.PathLike,
    *,
    pairs: str | os.PathLike | None = None,
    pair_by: str | None = None,
    missing: str = "drop",
    val: Stores | None = None,
    val_pairs: str | os.PathLike | None = None,
    val_split: float = 0.2,
    test: Stores | None = None,
    test_pairs: str | os.PathLike | None = None,
    tasks: list[str] | None = None,
    settings: FusionSettings | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    held_limit: int = HELD_BYTES_LIMIT,
) -> FusionRun:
    """Train a fusion head over the named feature stores ``stores`` (``{"image": path}`` or
    ``["image=path", ...]``), paired by ``pairs`` or ``pair_by="stem"``, plus one unimodal
    head per store (co-trained with distillation when ``settings.distill``)."""
    from ..embedding.pipeline import resolve_device

    settings = settings or FusionSettings()
    started = time.perf_counter()
    output = Path(output)
    _check_output(output, overwrite)
    train, val_set, test_set, val_source = _splits(
        _named(stores), pairs, pair_by, missing, _named(val), val_pairs, val_split, _named(test),
        test_pairs, tasks, seed)
    for split in (train, val_set, test_set):
        if split is not None:
            split.hold(held_limit)
    loaded = time.perf_counter()
    torch_device = resolve_device(device)
    heads = _heads(train, settings, seed, torch_device, with_fusion=True)
    alpha = settings.alpha if settings.distill else 0.0
    if uses_probe(settings, train):
        extra: dict[str, Any] = {"optimiser": "L-BFGS probe, CLIP sweep + refit",
                                 "l2": fit_probes(heads, train, val_set, torch_device)}
        history = {name: [] for name in heads}
    else:
        history = co_train(heads, train, val_set, settings, seed, torch_device, alpha)
        extra = {"optimiser": "AdamW, warm-up + cosine, early stopping", "history": history}
    if settings.distill:
        alone = _heads(train, settings, seed, torch_device, with_fusion=False)
        alone_history = co_train(alone, train, val_set, settings, seed, torch_device, 0.0)
        extra["alone"] = {"val": _scores(alone, val_set, torch_device),
                          "test": _scores(alone, test_set, torch_device) if test_set else None,
                          "epochs": {n: len(h) for n, h in alone_history.items()}}
    trained = time.perf_counter()
    val_scores = _scores(heads, val_set, torch_device)
    test_scores = _scores(heads, test_set, torch_device) if test_set is not None else None
    seconds = {"load": loaded - started, "train": trained - loaded,
               "total": time.perf_counter() - started}
    samples = {"train": len(train), "val": len(val_set),
               "test": len(test_set) if test_set is not None else None,
               "dropped": {role: split.dropped for role, split in
                           (("train", train), ("val", val_set), ("test", test_set))
                           if split is not None},
               "present": {role: {n: int(m.present.sum()) for n, m in split.modalities.items()}
                           for role, split in (("train", train), ("val", val_set),
                                               ("test", test_set)) if split is not None}}
    run = FusionRun(str(output), settings.fusion, train.names, train.tasks, samples, val_scores,
                    test_scores, seconds, len(history[FUSION]) or None,
                    {**extra, "validation": val_source, "distill": settings.distill,
                     "alpha": settings.alpha if settings.distill else None,
                     "temperature": settings.temperature if settings.distill else None})
    _write(heads, run, train, settings, seed, output, pairs or pair_by)
    return run


def uses_probe(settings: FusionSettings, train: PairedSet) -> bool:
    """Late fusion into a linear head without distillation is the linear probe (when the
    training features are held in memory; the AdamW loop otherwise)."""
    return (settings.fusion == "late" and settings.head == "linear" and not settings.distill
            and all(m.held is not None for m in train.modalities.values()))


def _check_output(output: Path, overwrite: bool) -> None:
    if (output / CONFIG_FILE).exists() and not overwrite:
        raise UsageError(f"{output} already holds a head; pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder")


def _pair(stores, pairs, pair_by, missing, tasks, role: str) -> PairedSet:
    if pairs is None and pair_by is None:
        raise UsageError(f"pair the {role} stores with --{role}-pairs FILE (or --pair-by stem)")
    return pair_stores(stores, pairs=pairs, pair_by=None if pairs is not None else pair_by,
                       missing=missing, tasks=tasks)


def _splits(stores, pairs, pair_by, missing, val, val_pairs, val_split, test, test_pairs,
            tasks, seed) -> tuple[PairedSet, PairedSet, PairedSet | None, str]:
    if len(stores) < 2:
        raise UsageError("fusion needs two or more named stores (NAME=STORE NAME=STORE ...)")
    train = pair_stores(stores, pairs=pairs, pair_by=pair_by, missing=missing, tasks=tasks)
    _check_trainable(train)
    if val is not None:
        val_set = _pair(val, val_pairs, pair_by, missing, tasks, "val")
        check_same_making(train, val_set, "validation")
        val_set = align_classes(train, val_set)
        val_source = f"{', '.join(map(str, val.values()))} paired by {val_pairs or pair_by}"
    else:
        first = train.labels[train.tasks[0]]
        train_rows, val_rows = stratified_split(first, val_split, seed)
        train, val_set = train.subset(train_rows), train.subset(val_rows)
        val_source = f"{val_split:g} of the training pairs (stratified, seed {seed})"
    if len(val_set) == 0:
        raise UsageError("the validation split is empty; give more samples, a larger "
                         "--val-split, or --val stores")
    test_set = None
    if test is not None:
        test_set = _pair(test, test_pairs, pair_by, missing, tasks, "test")
        check_same_making(train, test_set, "test")
        test_set = align_classes(train, test_set)
    return train, val_set, test_set, val_source


def _check_trainable(train: PairedSet) -> None:
    if len(train) == 0:
        raise UsageError(f"no paired, labelled samples to train on ({train.source}; "
                         f"dropped: {train.dropped})")
    for task in train.tasks:
        present = np.unique(train.labels[task][train.labels[task] >= 0])
        if len(present) < 2:
            raise UsageError(f"task {task!r} has {len(present)} class(es) among the paired "
                             "samples; a classifier needs two or more")


def _heads(train: PairedSet, settings: FusionSettings, seed: int, device: torch.device,
           with_fusion: bool) -> dict[str, nn.Module]:
    heads = {FUSION: new_head(train.names, train, settings, seed)} if with_fusion else {}
    heads.update({name: new_head([name], train, settings, seed) for name in train.names})
    return {name: head.to(device) for name, head in heads.items()}


def route(data: PairedSet, names: list[str]) -> np.ndarray:
    """Which head answers each sample: ``fusion`` when every modality in ``names`` is
    present (or several but not all: the fusion head with the absent ones masked), the
    modality's own head when only one is, ``""`` when none is."""
    present = np.stack([data.modalities[n].present if n in data.modalities
                        else np.zeros(len(data), bool) for n in names], 1)
    count = present.sum(1)
    answer = np.full(len(data), FUSION, dtype=object)
    for i, name in enumerate(names):
        answer[(count == 1) & present[:, i]] = name
    answer[count == 0] = ""
    return answer


def routed_probabilities(heads: dict[str, nn.Module], data: PairedSet, names: list[str],
                         device: torch.device) -> tuple[np.ndarray, list[np.ndarray]]:
    """The answering head per sample (see :func:`route`) and, per task, its probabilities
    (zeros where no head answers)."""
    answer = route(data, names)
    out = [np.zeros((len(data), len(data.class_names[t])), np.float32) for t in data.tasks]
    for name in (FUSION, *names):
        rows = np.flatnonzero(answer == name)
        if len(rows):
            for task_out, p in zip(out, head_probabilities(heads[name], data, device, rows=rows)):
                task_out[rows] = p
    return answer, out


def _scores(heads: dict[str, nn.Module], data: PairedSet, device: torch.device) -> dict[str, Any]:
    """Per head (and ``routed``: what predict answers), per task: classification metrics
    on the rows the head can answer."""
    result: dict[str, Any] = {}
    for name, head in heads.items():
        rows = (np.arange(len(data)) if name == FUSION
                else np.flatnonzero(data.modalities[name].present))
        result[name] = _task_metrics(data, rows, head_probabilities(head, data, device, rows=rows))
    if FUSION in heads:
        answer, probabilities = routed_probabilities(heads, data, data.names, device)
        rows = np.flatnonzero(answer != "")
        result["routed"] = _task_metrics(data, rows, [p[rows] for p in probabilities])
        result["routed"]["answered_by"] = {n: int((answer == n).sum()) for n in set(answer)}
    return result


def _task_metrics(data: PairedSet, rows: np.ndarray, probabilities: list[np.ndarray]) -> dict:
    metrics = {}
    for task, p in zip(data.tasks, probabilities):
        y = data.labels[task][rows]
        known = y >= 0
        metrics[task] = classification_metrics(p[known], y[known], data.class_names[task])
    return metrics


def _write(heads: dict[str, nn.Module], run: FusionRun, train: PairedSet,
           settings: FusionSettings, seed: int, output: Path, paired_by: Any) -> None:
    from safetensors.torch import save_file

    output.mkdir(parents=True, exist_ok=True)
    state = {f"{name}.{key}": tensor.detach().cpu().contiguous()
             for name, head in heads.items() for key, tensor in head.state_dict().items()}
    save_file(state, output / WEIGHTS_FILE)
    config = {
        "format": HEAD_FORMAT, "format_version": 1, "mmtok_version": __version__,
        "kind": "fusion", "fusion": settings.fusion, "heads": list(heads),
        "modalities": {name: {"shape": list(m.shape), "features": m.provenance,
                              "trained_on": m.source}
                       for name, m in train.modalities.items()},
        "tasks": {task: train.class_names[task] for task in train.tasks},
        "class_names": train.class_names[train.tasks[0]],
        "settings": asdict(settings), "seed": seed,
        "trained_on": {"paired_by": os.fspath(paired_by), "samples": run.samples},
    }
    (output / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    metrics = {"head": "fusion", **{k: v for k, v in run.to_json().items() if k != "extra"},
               **run.extra, "settings": asdict(settings), "seed": seed}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shown, name = (run.test, "test") if run.test is not None else (run.val, "validation")
    task = train.tasks[0]
    plot_confusion(np.array(shown[FUSION][task]["confusion_matrix"]), train.class_names[task],
                   output / "confusion.png",
                   f"{settings.fusion} fusion, {name}: top-1 {shown[FUSION][task]['top1']:.3f}")
    if run.extra.get("history", {}).get(FUSION):
        plot_learning_curve(run.extra["history"][FUSION], output / "learning_curve.png",
                            f"{settings.fusion} fusion head")


def load_fusion_heads(folder: str | os.PathLike, config: dict) -> dict[str, nn.Module]:
    """The heads of a fusion head folder (``config`` is its head.json)."""
    from safetensors.torch import load_file

    from ..embedding.encoders import load_strict
    from .fusion import LateFusion, TokenFusion

    settings = FusionSettings(**{k: v for k, v in config["settings"].items()
                                 if k in FusionSettings.__dataclass_fields__})
    classes = [len(names) for names in config["tasks"].values()]
    state = load_file(Path(folder) / WEIGHTS_FILE)
    heads = {}
    for name in config["heads"]:
        names = list(config["modalities"]) if name == FUSION else [name]
        shapes = {n: tuple(config["modalities"][n]["shape"]) for n in names}
        if settings.fusion == "late":
            head = LateFusion(shapes, classes, settings.head, settings.hidden, settings.dropout)
        else:
            head = TokenFusion(shapes, classes, settings.width, settings.depth, settings.heads,
                               settings.dropout)
        prefix = f"{name}."
        load_strict(head, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                    what=f"the {name} head")
        heads[name] = head.eval()
    return heads
