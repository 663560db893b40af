"""Classification metrics as probe papers report them (CLIP_benchmark: top-1, top-5, mean
per-class recall) plus per-class precision and F1 (and their macro mean) and the confusion
matrix, all from predicted probabilities."""

from __future__ import annotations

import numpy as np


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray,
                           class_names: list[str]) -> dict:
    """``probabilities`` (n, K), ``labels`` (n,) ints in 0..K-1.

    ``balanced_accuracy`` is the mean recall over the classes that occur in ``labels``;
    ``top5`` is None when there are five classes or fewer (it would always be 1).
    """
    num_classes = len(class_names)
    predicted = probabilities.argmax(1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    support = confusion.sum(1)
    recall = np.divide(np.diag(confusion), support, out=np.full(num_classes, np.nan),
                       where=support > 0)
    present = support > 0
    predicted_count = confusion.sum(0)
    precision = np.divide(np.diag(confusion), predicted_count, out=np.full(num_classes, np.nan),
                          where=predicted_count > 0)
    both = recall + precision
    f1 = np.divide(2 * precision * recall, both, out=np.full(num_classes, np.nan),
                   where=np.nan_to_num(both) > 0)
    f1[present & (np.nan_to_num(both) == 0)] = 0.0  # a class that occurs, never hit
    return {
        "samples": len(labels),
        "top1": float((predicted == labels).mean()) if len(labels) else float("nan"),
        "top5": _top_k(probabilities, labels, 5) if num_classes > 5 else None,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_f1": float(np.nan_to_num(f1[present]).mean()) if present.any() else float("nan"),
        "per_class_recall": _per_class(class_names, recall),
        "per_class_precision": _per_class(class_names, precision),
        "per_class_f1": _per_class(class_names, f1),
        "confusion_matrix": confusion.tolist(),
    }


def _per_class(class_names: list[str], values: np.ndarray) -> dict[str, float | None]:
    """``{class: value}``, None where undefined (no sample of the class, or none predicted)."""
    return {name: (None if np.isnan(value) else float(value))
            for name, value in zip(class_names, values)}


def _top_k(probabilities: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
    return float((top == labels[:, None]).any(1).mean())
