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


MAX_CELL_COUNTS = 30  # classes up to which every cell's count is readable at this size
MAX_NAMED_CLASSES = 120  # beyond this, names cannot be read at any size we draw


def plot_confusion(confusion: np.ndarray, class_names: list[str], path: str | os.PathLike,
                   title: str) -> None:
    """Row-normalised confusion matrix (rows = true class): class names on both axes (x
    rotated, the font shrinking with the class count), counts in the cells while they fit."""
    plt = _pyplot()
    figure = confusion_figure(confusion, class_names, title)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def confusion_figure(confusion: np.ndarray, class_names: list[str], title: str):
    plt = _pyplot()
    confusion = np.asarray(confusion)
    count = len(class_names)
    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    size = min(2 + 0.3 * count, 30)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of true class")
    if count <= MAX_NAMED_CLASSES:
        ticks = np.arange(count)
        font = 9 if count <= 30 else max(4, 9 - (count - 30) // 15)
        axes.set_xticks(ticks, class_names, rotation=90, fontsize=font)
        axes.set_yticks(ticks, class_names, fontsize=font)
    if count <= MAX_CELL_COUNTS:
        for (row, column), value in np.ndenumerate(confusion):
            colour = "white" if normalised[row, column] > 0.5 else "black"
            axes.text(column, row, str(value), ha="center", va="center", color=colour,
                      fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def plot_learning_curve(history: list[dict], path: str | os.PathLike, title: str) -> None:
    """Training and validation loss per epoch, validation accuracy on a second axis, the best
    epoch (the one whose weights are kept) marked, and the legend below the axes."""
    plt = _pyplot()
    figure = learning_curve_figure(history, title)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def best_epoch(history: list[dict]) -> dict:
    """The epoch training keeps: best validation top-1, then lowest validation loss."""
    return max(history, key=lambda h: (h["val_top1"], -h["val_loss"]))


def learning_curve_figure(history: list[dict], title: str):
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
    if history:
        best = best_epoch(history)
        axes.axvline(best["epoch"], color="grey", linestyle="--", linewidth=1,
                     label=f"best epoch {best['epoch']} (val top-1 {best['val_top1']:.3f})")
    lines = axes.get_legend_handles_labels()
    more = accuracy.get_legend_handles_labels()
    axes.set_title(title)
    figure.tight_layout(rect=(0, 0.12, 1, 1))  # room below the axes: the legend sits there
    figure.legend(lines[0] + more[0], lines[1] + more[1], loc="lower center", ncol=2,
                  fontsize=8, frameon=False)
    return figure
