"""``train-head``: feature store(s) -> a linear probe or small MLP, metrics and plots.

Output folder: ``head.safetensors`` + ``head.json`` (the head and what it was trained on),
``metrics.json`` (top-1, top-5, balanced accuracy, per-class recall, confusion matrices,
the chosen regularisation, the sweep, timings), ``confusion.png`` (test split when there is
one, else validation), and ``learning_curve.png`` for the MLP head.
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

from ..errors import UsageError
from ..store.paths import check_output_is_not_input
from .data import (
    FeatureSet,
    as_tensors,
    check_compatible,
    check_trainable,
    load_features,
    stratified_split,
)
from .linear import LinearSolution, sweep_fits, train_linear
from .metrics import classification_metrics
from .mlp import MlpSettings, train_mlp
from .model import CONFIG_FILE, Head, save_head
from .plots import plot_confusion, plot_learning_curve


@dataclass
class Splits:
    train: FeatureSet
    val: FeatureSet
    test: FeatureSet | None
    val_source: str


@dataclass
class HeadRun:
    """What ``train_head`` did, for the summary line, ``--json`` and the demo."""

    output: str
    head: str
    samples: dict[str, int | None]
    val: dict[str, Any]
    test: dict[str, Any] | None
    seconds: dict[str, float]
    regularisation: dict[str, Any] | None = None
    epochs: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One human line: what was trained, on how much, and how well."""
        what = "linear probe" if self.head == "linear" else f"{self.head} head"
        parts = [(f"train-head: {what} on {self.samples['train']} train / "
                 f"{self.samples['val']} val samples")]
        if self.regularisation is not None:
            parts.append(f"l2 {self.regularisation['l2']:.3g} "
                         f"(sklearn C {self.regularisation['sklearn_C']:.3g})")
        if self.epochs is not None:
            parts.append(f"{self.epochs} epochs (best {self.extra.get('best_epoch')})")
        parts.append(f"val top-1 {self.val['top1']:.4f}")
        if self.test is not None:
            parts.append(f"test top-1 {self.test['top1']:.4f} "
                         f"(balanced {self.test['balanced_accuracy']:.4f})")
        parts.append(f"{self.seconds['total']:.1f} s -> {self.output}")
        return "; ".join(parts)


def train_head(
    train: str | os.PathLike,
    output: str | os.PathLike,
    *,
    val: str | os.PathLike | None = None,
    val_split: float = 0.2,
    test: str | os.PathLike | None = None,
    head: str = "linear",
    standardize: bool = False,
    l2: float | None = None,
    refit: bool = True,
    mlp: MlpSettings | None = None,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
) -> HeadRun:
    """Train a head on the valid, labelled samples of the feature store ``train``.

    Validation: the store ``val``, or a seeded stratified ``val_split`` of ``train``. The
    linear probe sweeps its L2 strength on validation (unless ``l2`` is given) and, with
    ``refit``, retrains on train + val at the chosen strength; ``test`` is scored last.
    """
    from ..embedding.pipeline import resolve_device

    started = time.perf_counter()
    output = Path(output)
    check_output_is_not_input("train-head", output, {
        "training store": train, "validation store": val, "test store": test})
    _check_output(output, overwrite)
    splits = load_splits(train, val, val_split, test, seed)
    loaded = time.perf_counter()
    torch_device = resolve_device(device)
    model = _new_head(head, splits.train, mlp, seed)
    if standardize:
        model.set_standardization(*_standardization(splits.train.features))
    model.to(torch_device)
    if head == "linear":
        run_extra = _train_linear(model, splits, torch_device, l2, refit, progress)
    else:
        run_extra = _train_mlp(model, splits, torch_device, mlp or MlpSettings(), seed, output)
    trained = time.perf_counter()
    test_metrics = (evaluate_head(model, splits.test, torch_device)
                    if splits.test is not None else None)
    seconds = {"load": loaded - started, "train": trained - loaded,
               "total": time.perf_counter() - started}
    run = HeadRun(str(output), head, _sample_counts(splits, head, refit), run_extra.pop("val"),
                  test_metrics, seconds, run_extra.pop("regularisation", None),
                  run_extra.pop("epochs", None), run_extra)
    _write_outputs(model, run, splits, standardize, mlp, seed, output)
    return run


def load_splits(train: str | os.PathLike, val: str | os.PathLike | None, val_split: float,
                test: str | os.PathLike | None, seed: int) -> Splits:
    """The train/val/test feature sets, checked for labels, classes and matching features."""
    train_set = load_features(train)
    check_trainable(train_set)
    if val is not None:
        val_set = load_features(val)
        check_compatible(train_set, val_set, "validation")
        val_source = str(val)
    else:
        train_rows, val_rows = stratified_split(train_set.labels, val_split, seed)
        train_set, val_set = train_set.subset(train_rows), train_set.subset(val_rows)
        val_source = f"{val_split:g} of {train} (stratified, seed {seed})"
    if len(val_set) == 0:
        raise UsageError("the validation split is empty; give more samples, a larger "
                         "--val-split, or --val STORE")
    test_set = None
    if test is not None:
        test_set = load_features(test)
        check_compatible(train_set, test_set, "test")
    return Splits(train_set, val_set, test_set, val_source)


def _check_output(output: Path, overwrite: bool) -> None:
    if (output / CONFIG_FILE).exists() and not overwrite:
        raise UsageError(f"{output} already holds a head; pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a folder")


def _new_head(kind: str, train: FeatureSet, mlp: MlpSettings | None, seed: int) -> Head:
    settings = mlp or MlpSettings()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Head(kind, train.dim, len(train.class_names), settings.hidden, settings.dropout)


def _standardization(features: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    mean = features.mean(0, dtype=np.float64)
    scale = features.std(0, dtype=np.float64)
    scale[scale < 1e-12] = 1.0  # constant features: leave them unscaled, not divided by zero
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(scale.astype(np.float32))


def _train_linear(model: Head, splits: Splits, device: torch.device, l2: float | None,
                  refit: bool, progress: bool) -> dict[str, Any]:
    from ..progress import progress_bar

    num_classes = len(splits.train.class_names)
    tx, ty = as_tensors(splits.train.features, splits.train.labels, device)
    vx, vy = as_tensors(splits.val.features, splits.val.labels, device)
    tx, vx = model.standardize(tx), model.standardize(vx)
    bar = progress_bar(total=sweep_fits() if l2 is None else 0, desc="probe sweep", unit="fit",
                       disable=not progress or l2 is not None)
    with bar:
        probe = train_linear(tx, ty, vx, vy, num_classes, l2=l2, refit=refit,
                             on_fit=bar.update)
    chosen, sweep = probe.chosen, probe.sweep
    _set_linear(model, chosen)
    val_metrics = evaluate_head(model, splits.val, device)
    _set_linear(model, probe.final)
    regularisation = {
        "l2": chosen.l2, "sklearn_C": 1.0 / (chosen.l2 * len(ty)),
        "chosen_by": "validation sweep" if sweep is not None else "given",
        "sweep": [{"l2": p.l2, "sklearn_C": 1.0 / (p.l2 * len(ty)), "val_top1": p.val_top1,
                   "val_loss": p.val_loss, "iterations": p.iterations}
                  for p in (sweep.points if sweep is not None else [])],
        "refit_on_train_and_val": refit,
    }
    return {"val": val_metrics, "regularisation": regularisation}


def _set_linear(model: Head, solution: LinearSolution) -> None:
    layer = model.layers[0]
    with torch.no_grad():
        layer.weight.copy_(solution.weight)
        layer.bias.copy_(solution.bias)


def _train_mlp(model: Head, splits: Splits, device: torch.device, settings: MlpSettings,
               seed: int, output: Path) -> dict[str, Any]:
    history = train_mlp(model, splits.train.features, splits.train.labels,
                        splits.val.features, splits.val.labels, device, settings, seed)
    output.mkdir(parents=True, exist_ok=True)
    plot_learning_curve(history, output / "learning_curve.png", "MLP head")
    best = max(history, key=lambda h: (h["val_top1"], -h["val_loss"]))
    return {"val": evaluate_head(model, splits.val, device), "epochs": len(history),
            "best_epoch": best["epoch"], "history": history}


@torch.no_grad()
def head_probabilities(model: Head, features: np.ndarray, device: torch.device,
                       batch_size: int = 65536) -> np.ndarray:
    model.eval()
    chunks = [torch.softmax(model(torch.as_tensor(features[i:i + batch_size],
                                                  dtype=torch.float32, device=device)), 1)
              for i in range(0, len(features), batch_size)]
    if not chunks:
        return np.zeros((0, model.layers[-1].out_features), np.float32)
    return torch.cat(chunks).cpu().numpy()


def evaluate_head(model: Head, features: FeatureSet, device: torch.device) -> dict[str, Any]:
    probabilities = head_probabilities(model, features.features, device)
    return classification_metrics(probabilities, features.labels, features.class_names)


def _sample_counts(splits: Splits, head: str, refit: bool) -> dict[str, int | None]:
    counts: dict[str, int | None] = {
        "train": len(splits.train), "val": len(splits.val),
        "test": len(splits.test) if splits.test is not None else None}
    counts["final_fit"] = counts["train"] + counts["val"] if head == "linear" and refit \
        else counts["train"]
    return counts


@dataclass
class TrainedOn:
    """What head.json records about the data a head learnt from."""

    class_names: list[str]
    input_dim: int
    provenance: dict[str, Any]
    sources: dict[str, str]


def _trained_on(splits: Splits) -> TrainedOn:
    return TrainedOn(splits.train.class_names, splits.train.dim, splits.train.provenance,
                     {"train": splits.train.source, "val": splits.val_source})


def _write_outputs(model: Head, run: HeadRun, splits: Splits, standardize: bool,
                   mlp: MlpSettings | None, seed: int, output: Path) -> None:
    settings = mlp or MlpSettings()
    extra = ({"hidden": settings.hidden, "dropout": settings.dropout, "mlp": asdict(settings)}
             if run.head == "mlp" else {})
    write_head_outputs(model, run, _trained_on(splits), output,
                       {"standardize": standardize, "seed": seed, **extra})


def write_head_outputs(model: Head, run: HeadRun, trained_on: TrainedOn, output: Path,
                       config_extra: dict[str, Any]) -> None:
    """head.safetensors + head.json, metrics.json and confusion.png."""
    config = {
        "kind": run.head, "input_dim": trained_on.input_dim,
        "class_names": trained_on.class_names, "features": trained_on.provenance,
        "trained_on": {**trained_on.sources, "samples": run.samples},
        "regularisation": ({k: v for k, v in run.regularisation.items() if k != "sweep"}
                           if run.regularisation else None),
        **config_extra,
    }
    save_head(model.cpu(), config, output)
    metrics = {"head": run.head, "class_names": trained_on.class_names,
               "feature_dim": trained_on.input_dim, **config_extra,
               "samples": run.samples, "validation": trained_on.sources.get("val"),
               "regularisation": run.regularisation, "epochs": run.epochs,
               "val": run.val, "test": run.test, "seconds": run.seconds, **run.extra}
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    shown, name = (run.test, "test") if run.test is not None else (run.val, "validation")
    plot_confusion(np.array(shown["confusion_matrix"]), trained_on.class_names,
                   output / "confusion.png",
                   f"{run.head} head, {name}: top-1 {shown['top1']:.3f}")
