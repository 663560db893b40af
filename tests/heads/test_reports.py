"""What a head run reports (issue 20): per-class precision and F1 in metrics.json, class
names on every confusion matrix, the best epoch marked and the legend off the curves."""

import numpy as np
import pytest

from mmtok.heads.metrics import classification_metrics
from mmtok.heads.plots import confusion_figure, learning_curve_figure


def test_per_class_precision_and_f1():
    # true:      a a a b b c ; predicted: a a b b a a  (c is never predicted)
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 0, 0])
    probabilities = np.eye(3)[predicted]
    metrics = classification_metrics(probabilities, labels, ["a", "b", "c"])
    assert metrics["per_class_precision"] == pytest.approx({"a": 0.5, "b": 0.5, "c": None})
    recall = metrics["per_class_recall"]
    assert recall == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 0.0})
    f1 = metrics["per_class_f1"]
    assert f1["a"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert f1["b"] == pytest.approx(0.5) and f1["c"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((f1["a"] + f1["b"]) / 3)


def test_against_sklearn():
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    probabilities = rng.random((200, 4))
    metrics = classification_metrics(probabilities, labels, list("wxyz"))
    predicted = probabilities.argmax(1)
    precision, recall, f1, _ = sklearn.precision_recall_fscore_support(labels, predicted,
                                                                       zero_division=0)
    assert list(metrics["per_class_precision"].values()) == pytest.approx(precision)
    assert list(metrics["per_class_f1"].values()) == pytest.approx(f1)
    assert metrics["macro_f1"] == pytest.approx(sklearn.f1_score(labels, predicted,
                                                                 average="macro"))


def test_forty_classes_are_named_on_the_confusion_matrix():
    names = [f"class_{i:02d}" for i in range(40)]
    figure = confusion_figure(np.eye(40, dtype=int) * 3, names, "test")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == names
    assert [t.get_text() for t in axes.get_yticklabels()] == names
    assert axes.get_xticklabels()[0].get_rotation() == 90
    assert not axes.texts, "40x40 counts do not fit in the cells"
    small = confusion_figure(np.eye(3, dtype=int), ["a", "b", "c"], "test")
    assert len(small.axes[0].texts) == 9


def test_the_learning_curve_marks_the_best_epoch_and_keeps_the_legend_off_the_curves():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1 / e + 0.1,
                "val_top1": [0.5, 0.8, 0.9, 0.85][e - 1]} for e in range(1, 5)]
    figure = learning_curve_figure(history, "test")
    axes = figure.axes[0]
    assert axes.get_legend() is None and len(figure.legends) == 1
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "best epoch 3 (val top-1 0.900)" in labels
    figure.canvas.draw()
    legend_box = figure.legends[0].get_window_extent()
    assert legend_box.y1 <= axes.get_window_extent().y0, "the legend overlaps the axes"
