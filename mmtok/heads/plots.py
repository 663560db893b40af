"""The pictures a head run leaves beside its metrics: the confusion matrix and, for trained
heads, the learning curve. Matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

import os

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: np.ndarray, class_names: list[str], path: str | os.PathLike,
                   title: str) -> None:
    """Row-normalised confusion matrix (rows = true class), counts written in each cell when
    the matrix is small enough to read."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = min(2 + 0.45 * len(class_names), 24)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    if len(class_names) <= 30:
        ticks = np.arange(len(class_names))
        axes.set_xticks(ticks, class_names, rotation=90)
        axes.set_yticks(ticks, class_names)
        for (row, column), count in np.ndenumerate(confusion):
            colour = "white" if normalised[row, column] > 0.5 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour,
                      fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_learning_curve(history: list[dict], path: str | os.PathLike, title: str) -> None:
    """Training and validation loss per epoch, and validation accuracy on a second axis."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    axes.plot(epochs, [h["val_loss"] for h in history], label="val loss")
    axes.set_xlabel("epoch")
    axes.set_ylabel("cross-entropy")
    accuracy = axes.twinx()
    accuracy.plot(epochs, [h["val_top1"] for h in history], color="tab:green",
                  label="val top-1")
    accuracy.set_ylabel("val top-1")
    accuracy.set_ylim(0, 1)
    lines = axes.get_legend_handles_labels()
    more = accuracy.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], loc="center right")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
