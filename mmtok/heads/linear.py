"""The linear probe: multinomial logistic regression, full batch, L-BFGS in torch.

Objective (the one scikit-learn minimises, written per sample):

    mean_i CE(x_i W^T + b, y_i) + l2 / 2 * ||W||^2        (the bias is not penalised)

so ``l2`` is scikit-learn's ``1 / (C * n)``. The regularisation is chosen as CLIP does: a
sweep over C = 1e-6 .. 1e6 that starts every two decades and then halves the interval around
the best validation accuracy until it is an eighth of a decade (15 fits), then a refit on
train + val at the chosen strength. Two things make it fast without changing which points
are visited or the optimum each fit looks for:

- each fit warm-starts from the nearest solution already found, and keeps that solution's
  L-BFGS curvature pairs, corrected exactly for the change in ``l2`` (the regulariser's
  Hessian is ``l2 * I``), so nearby fits converge in a handful of iterations;
- everything runs in float32 on the chosen device, with the gradient written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .data import as_tensors
from .lbfgs import Pairs, minimize

C_RANGE_DECADES = (-6, 6)   # CLIP's sweep range for sklearn's C
START_SPACING = 2.0         # decades between the first grid points
FINEST_SPACING = 1 / 8      # stop halving at 8 steps per decade
TOLERANCE = 1e-4            # largest gradient entry at convergence (sklearn's default tol)


@dataclass
class LinearSolution:
    weight: torch.Tensor  # (K, D), as nn.Linear
    bias: torch.Tensor    # (K,)
    l2: float
    iterations: int
    loss: float
    pairs: Pairs = field(default_factory=list, repr=False)
    gradient: torch.Tensor | None = field(default=None, repr=False)  # flat, at the solution


@dataclass
class SweepPoint:
    l2: float
    val_top1: float
    val_loss: float
    iterations: int


@dataclass
class SweepResult:
    best: LinearSolution
    points: list[SweepPoint] = field(default_factory=list)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, *,
                 start: LinearSolution | None = None, same_data: bool = False,
                 max_iter: int = 1000, tolerance: float = TOLERANCE) -> LinearSolution:
    """Minimise the objective above with L-BFGS from ``start`` (zeros when None). Stops when
    the largest gradient entry is below ``tolerance``. ``same_data``: ``start`` was fitted
    on these very (x, y), so its loss and gradient carry over with only the ``l2`` term
    changed, saving one pass over the data."""
    dim = x.shape[1]
    size = num_classes * dim
    params = torch.zeros(size + num_classes, device=x.device, dtype=x.dtype)
    if start is not None:
        params[:size] = start.weight.reshape(-1)
        params[size:] = start.bias
    blocks = _row_blocks(x, y)
    rows = torch.arange(max(len(b[1]) for b in blocks), device=x.device)

    def objective(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = flat[:size].view(num_classes, dim), flat[size:]
        gradient = torch.zeros_like(flat)
        weight_grad, bias_grad = gradient[:size].view(num_classes, dim), gradient[size:]
        loss = torch.zeros((), device=x.device, dtype=torch.float64)  # sums of 1e4+ terms
        for block_x, block_y in blocks:
            # Logits are computed transposed, (K, b) = W @ x.T: with few classes, BLAS runs
            # this layout several times faster than x @ W.T on the CPU.
            log_probs = torch.addmm(bias[:, None], weight, block_x.T).log_softmax(0)
            picked = rows[:len(block_y)]
            loss -= log_probs[block_y, picked].sum(dtype=torch.float64)
            residual = log_probs.exp_()
            residual[block_y, picked] -= 1
            weight_grad.addmm_(residual, block_x)
            bias_grad += residual.sum(1)
        gradient /= len(y)
        weight_grad.add_(weight, alpha=l2)
        return loss / len(y) + 0.5 * l2 * weight.pow(2).sum(), gradient

    pairs = _shift_curvature(start.pairs, l2 - start.l2, size) if start is not None else None
    start_value = None
    if same_data and start is not None and start.gradient is not None:
        start_value = _shift_value(start, l2, size)
    found = minimize(objective, params, max_iter=max_iter, tolerance=tolerance, pairs=pairs,
                     start_value=start_value)
    weight = found.params[:size].view(num_classes, dim).clone()
    return LinearSolution(weight, found.params[size:].clone(), l2, found.iterations, found.loss,
                          found.pairs, found.gradient)


def _shift_value(start: LinearSolution, l2: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and gradient at ``start``'s weights under another ``l2``: only the regulariser's
    share changes."""
    change = l2 - start.l2
    loss = torch.tensor(start.loss, dtype=torch.float64) + 0.5 * change * start.weight.pow(2).sum()
    gradient = start.gradient.clone()
    gradient[:size] += change * start.weight.reshape(-1)
    return loss, gradient


CPU_BLOCK_BYTES = 3 << 20


def _row_blocks(x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The rows in blocks of about 3 MiB on the CPU, so that the gradient's second pass over a
    block finds it still in cache (1.2-1.8x faster than two passes over all of x, which is
    memory-bound with few classes); one block on a GPU."""
    if x.device.type != "cpu":
        return [(x, y)]
    step = max(256, CPU_BLOCK_BYTES // (x.shape[1] * x.element_size()))
    return [(x[start:start + step], y[start:start + step]) for start in range(0, len(y), step)]


def _shift_curvature(pairs: Pairs, l2_change: float, size: int) -> Pairs:
    """Curvature pairs of the objective at another ``l2``: y = H s gains ``l2_change * s`` on
    the weights (the bias is not regularised)."""
    shifted: Pairs = []
    for step, grad_change, _ in pairs:
        grad_change = grad_change.clone()
        grad_change[:size] += l2_change * step[:size]
        curvature = torch.dot(grad_change, step).item()
        if curvature > 1e-10:
            shifted.append((step, grad_change, 1.0 / curvature))
    return shifted


def predict_logits(solution: LinearSolution, x: torch.Tensor) -> torch.Tensor:
    return torch.addmm(solution.bias, x, solution.weight.T)


def score(solution: LinearSolution, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of ``solution`` on (x, y)."""
    with torch.no_grad():
        logits = predict_logits(solution, x)
        top1 = (logits.argmax(1) == y).float().mean().item()
        return top1, F.cross_entropy(logits, y).item()


Fitter = Callable[[float, "LinearSolution | None"], LinearSolution]


def clip_grid(num_train: int) -> list[float]:
    """The first sweep points as ``l2`` values, strongest first: C = 1e6 .. 1e-6 every two
    decades, with l2 = 1 / (C * n)."""
    low, high = C_RANGE_DECADES
    exponents = np.arange(low, high + 1e-9, START_SPACING)
    return [1.0 / (10.0 ** e * num_train) for e in exponents]


def sweep_l2(fit: Fitter, evaluate: Callable[[LinearSolution], tuple[float, float]],
             grid: list[float]) -> SweepResult:
    """CLIP's parametric binary search: every point of ``grid`` (strongest regularisation
    first), then points at half the previous spacing either side of the best so far, down to
    an eighth of a decade. Best = highest validation accuracy, ties to lower validation loss.

    ``fit(l2, start)`` trains at one strength from a warm start; ``evaluate(solution)``
    gives (val top-1, val loss). The same procedure drives any fitter, which is how the
    benchmark runs scikit-learn through the identical sweep.
    """
    points: list[SweepPoint] = []
    solutions: dict[float, LinearSolution] = {}

    def visit(l2: float) -> None:
        if any(math.isclose(l2, known, rel_tol=1e-6) for known in solutions):
            return
        start = solutions[_nearest(solutions, l2)] if solutions else None
        solution = fit(l2, start)
        top1, loss = evaluate(solution)
        points.append(SweepPoint(l2, top1, loss, solution.iterations))
        solutions[l2] = solution

    for l2 in grid:
        visit(l2)
    spacing = START_SPACING
    while spacing > FINEST_SPACING + 1e-9:
        spacing /= 2
        centre = max(points, key=_rank).l2
        for l2 in (centre * 10 ** spacing, centre / 10 ** spacing):
            visit(l2)
    best = max(points, key=_rank)
    return SweepResult(solutions[best.l2], points)


def _rank(point: SweepPoint) -> tuple[float, float]:
    return point.val_top1, -point.val_loss


def _nearest(solutions: dict[float, LinearSolution], l2: float) -> float:
    return min(solutions, key=lambda known: abs(math.log10(known) - math.log10(l2)))


def train_linear(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 num_classes: int, device: torch.device, *, refit: bool = True,
                 l2: float | None = None) -> tuple[LinearSolution, SweepResult | None]:
    """Sweep (unless ``l2`` is given), then refit on train + val from the chosen solution."""
    tx, ty = as_tensors(train_x, train_y, device)
    vx, vy = as_tensors(val_x, val_y, device)
    if l2 is not None:
        chosen, sweep = fit_logistic(tx, ty, num_classes, l2), None
    else:
        sweep = sweep_l2(lambda strength, start: fit_logistic(tx, ty, num_classes, strength,
                                                              start=start, same_data=True),
                         lambda solution: score(solution, vx, vy), clip_grid(len(ty)))
        chosen = sweep.best
    if not refit or len(vy) == 0:
        return chosen, sweep
    both_x, both_y = torch.cat([tx, vx]), torch.cat([ty, vy])
    return fit_logistic(both_x, both_y, num_classes, chosen.l2, start=chosen), sweep
