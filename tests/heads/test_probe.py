"""The linear probe against scikit-learn, its sweep, and the L-BFGS underneath."""

from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from featurestores import gaussian_classes, write_feature_store
from sklearn.linear_model import LogisticRegression

from mmtok.heads import linear
from mmtok.heads.data import stratified_split
from mmtok.heads.lbfgs import minimize
from mmtok.heads.linear import (
    LinearSolution,
    clip_grid,
    fit_logistic,
    logistic_objective,
    lowest_objective_start,
    path_start,
    score,
    sweep_fits,
    sweep_l2,
)
from mmtok.heads.metrics import classification_metrics
from mmtok.heads.train import train_head


def sklearn_sweep_accuracy(train_x, train_y, val_x, val_y, test_x, test_y) -> float:
    """scikit-learn's LogisticRegression (lbfgs) at the C its own sweep picks on the same
    validation split, refit on train + val: the CLIP recipe as published."""
    vx, vy = torch.from_numpy(val_x), torch.from_numpy(val_y)

    def fit(l2, start):
        model = LogisticRegression(C=1 / (l2 * len(train_y)), max_iter=1000).fit(train_x, train_y)
        return LinearSolution(torch.from_numpy(model.coef_.astype(np.float32)),
                              torch.from_numpy(model.intercept_.astype(np.float32)), l2, 0, 0.0)

    best = sweep_l2(fit, lambda s: score(s, vx, vy), clip_grid(len(train_y))).best
    both_x, both_y = np.concatenate([train_x, val_x]), np.concatenate([train_y, val_y])
    final = LogisticRegression(C=1 / (best.l2 * len(both_y)), max_iter=1000).fit(both_x, both_y)
    return float((final.predict(test_x) == test_y).mean())


@pytest.mark.parametrize("separation", [0.6, 0.25], ids=["well-separated", "overlapping"])
def test_probe_matches_sklearn_at_its_best_c(tmp_path, separation):
    x, y = gaussian_classes(2500, 32, 6, separation, seed=0)
    test_x, test_y = gaussian_classes(2000, 32, 6, separation, seed=1)
    write_feature_store(tmp_path / "train.zarr", x, y)
    write_feature_store(tmp_path / "test.zarr", test_x, test_y)
    run = train_head(tmp_path / "train.zarr", tmp_path / "head", test=tmp_path / "test.zarr",
                     progress=False, seed=3)
    train_rows, val_rows = stratified_split(y, 0.2, 3)
    reference = sklearn_sweep_accuracy(x[train_rows], y[train_rows], x[val_rows], y[val_rows],
                                       test_x, test_y)
    assert abs(run.test["top1"] - reference) <= 0.005, (run.test["top1"], reference)
    if separation > 0.5:
        assert run.test["top1"] > 0.95
    else:
        assert 0.4 < run.test["top1"] < 0.95  # overlapping for real: the test can tell


def test_fit_reaches_sklearns_optimum():
    x, y = gaussian_classes(600, 10, 3, 0.5, seed=2)
    l2 = 1e-2
    ours = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 3, l2, tolerance=1e-6)
    reference = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=10000).fit(x, y)
    # The multinomial optimum is unique up to a shift shared by all classes; sklearn's has
    # zero-sum coefficients (the L2 penalty forces it) and so does ours.
    np.testing.assert_allclose(ours.weight.numpy(), reference.coef_, atol=2e-3)
    np.testing.assert_allclose(ours.bias.numpy() - ours.bias.numpy().mean(),
                               reference.intercept_ - reference.intercept_.mean(), atol=2e-3)


def test_minimize_finds_a_quadratic_minimum_and_keeps_curvature():
    matrix = torch.tensor([[3.0, 0.5], [0.5, 1.0]])
    target = torch.tensor([1.0, -2.0])

    def objective(p):
        d = p - target
        return 0.5 * d @ matrix @ d, matrix @ d

    found = minimize(objective, torch.zeros(2), tolerance=1e-7)
    assert found.converged
    torch.testing.assert_close(found.params, target, atol=1e-5, rtol=0)
    again = minimize(objective, found.params + 0.1, tolerance=1e-7, pairs=found.pairs)
    assert again.iterations <= found.iterations


@pytest.fixture
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_sharded_objective_over_parts_matches_autograd(monkeypatch, two_torch_threads):
    monkeypatch.setattr(linear, "CPU_BLOCK_BYTES", 1)  # the smallest blocks: 256 rows
    x, y = gaussian_classes(1100, 12, 5, 0.4, seed=6)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    parts_x, parts_y = [x[:700], x[700:]], [y[:700], y[700:]]
    shards = linear._row_shards(parts_x, parts_y)
    assert len(shards) == 2 and sum(len(shard) for shard in shards) == 5  # 3 + 2 blocks
    l2 = 0.03
    flat = torch.randn(5 * 12 + 5, generator=torch.Generator().manual_seed(0)) * 0.3
    loss, gradient = logistic_objective(parts_x, parts_y, 5, l2)(flat)

    reference = flat.clone().requires_grad_()
    weight, bias = reference[:60].view(5, 12), reference[60:]
    expected = F.cross_entropy(x @ weight.T + bias, y) + 0.5 * l2 * weight.pow(2).sum()
    expected.backward()
    assert float(loss) == pytest.approx(expected.item(), rel=1e-6)
    torch.testing.assert_close(gradient, reference.grad, atol=1e-6, rtol=1e-5)


def _fit_and_exit(x, y, expected) -> None:
    found = fit_logistic(x, y, 3, 1e-2)
    raise SystemExit(0 if torch.allclose(found.weight, expected) else 1)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_fits_with_threads_of_its_own(monkeypatch, two_torch_threads):
    # The parent's shard threads do not exist in a forked child; reusing the parent's pool
    # there would queue work that no thread ever takes.
    monkeypatch.setattr(linear, "CPU_BLOCK_BYTES", 1)
    x, y = (torch.from_numpy(a) for a in gaussian_classes(1200, 16, 3, 0.5, seed=0))
    expected = fit_logistic(x, y, 3, 1e-2).weight
    child = multiprocessing.get_context("fork").Process(target=_fit_and_exit,
                                                        args=(x, y, expected))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in fit_logistic")
    assert child.exitcode == 0


def test_a_direction_that_overshoots_costs_one_retry_not_seven():
    curvature = torch.tensor([2.0, 5.0])

    def objective(p):
        calls.append(1)
        return 0.5 * (curvature * p * p).sum(), curvature * p

    # Seed curvature pairs that claim the problem is 100x flatter than it is: the first
    # L-BFGS step is then 100x too long. The secant cut lands at the line minimum at once.
    step = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    pairs = [(s, s * curvature / 100, 1 / float((s * curvature / 100) @ s)) for s in step]
    calls: list[int] = []
    start = torch.tensor([1.0, 1.0])
    minimize(objective, start, pairs=pairs, max_iter=1, tolerance=1e-12)
    assert len(calls) == 3  # the start, the overshoot, the secant step (halving: 8)


def test_strongly_regularised_fits_on_imbalanced_classes_converge_quickly():
    # The weights' curvature is about l2 (large), the unregularised bias's only what the
    # data give (small), and imbalanced classes put the bias's optimum far from zero. One
    # initial scaling shared by both took 26-44 iterations here; one per block takes ~10.
    rng = np.random.default_rng(0)
    frequencies = np.arange(1, 11) / 55
    y = rng.choice(10, 3000, p=frequencies)
    x = (rng.normal(size=(10, 32))[y] * 0.2 + rng.normal(size=(3000, 32))).astype(np.float32)
    for c in (1e-6, 1e-5, 1e-4):
        found = fit_logistic(torch.from_numpy(x), torch.from_numpy(y), 10, 1 / (c * 3000))
        assert found.iterations <= 15, (c, found.iterations)


def test_the_warm_start_is_the_solution_with_the_lowest_objective_at_the_new_strength():
    x, y = gaussian_classes(900, 16, 4, 0.3, seed=8)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    solutions = {l2: fit_logistic(x, y, 4, l2) for l2 in (1e-1, 1e-3)}
    for l2 in (1e-2, 3e-2, 3e-3):
        evaluated = {known: float(logistic_objective([x], [y], 4, l2)(
            torch.cat([s.weight.reshape(-1), s.bias]))[0]) for known, s in solutions.items()}
        picked = lowest_objective_start(solutions, l2)
        assert picked is solutions[min(evaluated, key=evaluated.get)]


def test_between_two_solutions_the_warm_start_is_their_blend_along_the_path():
    x, y = (torch.from_numpy(a) for a in gaussian_classes(3000, 64, 30, 0.3, seed=9))
    strong, weak = 1 / (1e-2 * 3000), 1 / (1.0 * 3000)
    solutions = {l2: fit_logistic(x, y, 30, l2) for l2 in (strong, weak)}
    middle = 1 / (0.1 * 3000)  # halfway in log scale
    start = path_start(solutions, middle)
    expected = (solutions[strong].weight + solutions[weak].weight) / 2
    torch.testing.assert_close(start.weight, expected)
    assert start.l2 == lowest_objective_start(solutions, middle).l2  # its pairs' strength
    assert start.gradient is None  # a start to evaluate, not a solution
    assert path_start(solutions, strong * 10) is lowest_objective_start(solutions, strong * 10)

    blended = fit_logistic(x, y, 30, middle, start=start, same_data=True)
    nearest = fit_logistic(x, y, 30, middle, start=lowest_objective_start(solutions, middle),
                           same_data=True)
    cold = fit_logistic(x, y, 30, middle)
    assert blended.iterations < nearest.iterations, (blended.iterations, nearest.iterations)
    torch.testing.assert_close(blended.weight, cold.weight, atol=2e-2, rtol=0)


def test_warm_start_with_shifted_curvature_reaches_the_same_optimum():
    x, y = gaussian_classes(800, 16, 4, 0.3, seed=4)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    first = fit_logistic(x, y, 4, 1e-1, tolerance=1e-6)
    warm = fit_logistic(x, y, 4, 1e-2, start=first, tolerance=1e-6)
    carried = fit_logistic(x, y, 4, 1e-2, start=first, same_data=True, tolerance=1e-6)
    cold = fit_logistic(x, y, 4, 1e-2, tolerance=1e-6)
    torch.testing.assert_close(warm.weight, cold.weight, atol=1e-3, rtol=0)
    torch.testing.assert_close(carried.weight, cold.weight, atol=1e-3, rtol=0)
    assert carried.loss == pytest.approx(cold.loss, rel=1e-5)
    assert warm.iterations < cold.iterations


def test_sweep_is_clips_parametric_binary_search():
    grid = clip_grid(1000)
    assert len(grid) == 7
    assert grid[0] == pytest.approx(1e6 / 1000) and grid[-1] == pytest.approx(1e-6 / 1000)
    visited = []

    def fit(l2, start):
        visited.append(l2)
        return LinearSolution(torch.zeros(1, 1), torch.zeros(1), l2, 0, 0.0)

    peak = 1e-3  # validation accuracy falls off on a log scale away from here
    result = sweep_l2(fit, lambda s: (1 - abs(np.log10(s.l2) - np.log10(peak)) / 20, 0.0), grid)
    assert len(visited) == 15  # 7 starting points, then 4 halvings with 2 points each
    assert sweep_fits() == 15  # what the progress bar counts
    assert visited[:7] == grid
    assert result.best.l2 == pytest.approx(peak, rel=0.16)  # within 1/16 of a decade
    spacings = sorted({round(abs(np.log10(a / result.best.l2)), 4) for a in visited[7:]})
    assert min(spacings) == pytest.approx(0.125, abs=1e-3)


def test_metrics_on_a_hand_worked_example():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1],
                              [0.2, 0.2, 0.6]])
    labels = np.array([0, 1, 1, 2])
    metrics = classification_metrics(probabilities, labels, ["a", "b", "c"])
    assert metrics["top1"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert metrics["per_class_recall"] == {"a": 1.0, "b": 0.5, "c": 1.0}
    assert metrics["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert metrics["top5"] is None  # three classes: top-5 would always be 1


def test_top5_counts_a_hit_among_the_five_best():
    probabilities = np.tile(np.arange(7, dtype=float)[::-1] / 21, (2, 1))
    metrics = classification_metrics(probabilities, np.array([4, 5]), list("abcdefg"))
    assert metrics["top1"] == 0.0
    assert metrics["top5"] == 0.5


def test_outputs_are_written_and_standardisation_is_kept(tmp_path):
    x, y = gaussian_classes(600, 8, 3, 0.5, seed=5)
    x = x * np.array([1, 10, 100, 1, 1, 1, 1, 1000], np.float32)
    write_feature_store(tmp_path / "train.zarr", x, y)
    run = train_head(tmp_path / "train.zarr", tmp_path / "head", standardize=True,
                     progress=False)
    metrics = json.loads((tmp_path / "head" / "metrics.json").read_text())
    assert metrics["val"]["top1"] == run.val["top1"]
    assert len(metrics["regularisation"]["sweep"]) == 15
    assert metrics["regularisation"]["sklearn_C"] == pytest.approx(
        1 / (metrics["regularisation"]["l2"] * metrics["samples"]["train"]))
    assert (tmp_path / "head" / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((tmp_path / "head" / "head.json").read_text())
    assert config["standardize"] is True and config["features"]["encoder"] == "test-encoder"
    from mmtok.heads.model import load_head

    head, _ = load_head(tmp_path / "head")
    train_rows, _ = stratified_split(y, 0.2, 0)  # statistics of the training part only
    np.testing.assert_allclose(head.scale.numpy(), x[train_rows].std(0), rtol=1e-4)
    np.testing.assert_allclose(head.mean.numpy(), x[train_rows].mean(0), rtol=1e-4, atol=1e-3)
