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

import itertools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .lbfgs import Objective, Pairs, minimize

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


Rows = torch.Tensor | Sequence[torch.Tensor]  # one tensor, or matching parts of the rows


def fit_logistic(x: Rows, y: Rows, num_classes: int, l2: float, *,
                 start: LinearSolution | None = None, same_data: bool = False,
                 max_iter: int = 1000, tolerance: float = TOLERANCE) -> LinearSolution:
    """Minimise the objective above with L-BFGS from ``start`` (zeros when None). Stops when
    the largest gradient entry is below ``tolerance``. ``x`` and ``y`` may come in matching
    parts (train and val for the refit), which are used in place rather than concatenated.
    ``same_data``: ``start`` was fitted on these very (x, y), so its loss and gradient carry
    over with only the ``l2`` term changed, saving one pass over the data."""
    xs, ys = ([x], [y]) if isinstance(x, torch.Tensor) else (list(x), list(y))
    size = num_classes * xs[0].shape[1]
    params = torch.zeros(size + num_classes, device=xs[0].device, dtype=xs[0].dtype)
    if start is not None:
        params[:size] = start.weight.reshape(-1)
        params[size:] = start.bias
    objective = logistic_objective(xs, ys, num_classes, l2)
    pairs = _shift_curvature(start.pairs, l2 - start.l2, size) if start is not None else None
    start_value = None
    if same_data and start is not None and start.gradient is not None:
        start_value = _shift_value(start, l2, size)
    found = minimize(objective, params, max_iter=max_iter, tolerance=tolerance, pairs=pairs,
                     start_value=start_value, scale_blocks=(slice(0, size), slice(size, None)))
    weight = found.params[:size].view(num_classes, -1).clone()
    return LinearSolution(weight, found.params[size:].clone(), l2, found.iterations, found.loss,
                          found.pairs, found.gradient)


def logistic_objective(xs: list[torch.Tensor], ys: list[torch.Tensor], num_classes: int,
                       l2: float) -> Objective:
    """The objective above and its gradient, as one function of the flat parameters
    (weight rows, then bias), over the rows of every part in ``xs``. On the CPU the rows
    are split into one shard per torch thread, evaluated side by side."""
    dim, count = xs[0].shape[1], sum(len(part) for part in ys)
    size = num_classes * dim
    shards = _row_shards(xs, ys)
    pool = _shard_pool(len(shards))

    def objective(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight, bias = flat[:size].view(num_classes, dim), flat[size:]
        parts = [_shard_sums(shard, weight, bias) for shard in shards] if pool is None else \
            list(pool.map(_shard_sums, shards, [weight] * len(shards), [bias] * len(shards)))
        loss = sum(part[0] for part in parts) / count
        gradient = sum(part[1] for part in parts) / count
        gradient[:size].add_(flat[:size], alpha=l2)
        return loss + 0.5 * l2 * weight.pow(2).sum(), gradient

    return objective


Block = tuple[torch.Tensor, torch.Tensor]  # rows of x, their labels


def _shard_sums(blocks: list[Block], weight: torch.Tensor,
                bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (float64: sums of 1e4+ terms) and its summed gradient, flat as
    (weight, bias), over one shard's blocks."""
    num_classes, dim = weight.shape
    gradient = torch.zeros(num_classes * (dim + 1), device=weight.device, dtype=weight.dtype)
    weight_grad = gradient[:num_classes * dim].view(num_classes, dim)
    bias_grad = gradient[num_classes * dim:]
    loss = torch.zeros((), device=weight.device, dtype=torch.float64)
    picked = torch.arange(max(len(block_y) for _, block_y in blocks), device=weight.device)
    for block_x, block_y in blocks:
        # Logits are computed transposed, (K, b) = W @ x.T: with few classes, BLAS runs
        # this layout several times faster than x @ W.T on the CPU.
        log_probs = torch.addmm(bias[:, None], weight, block_x.T).log_softmax(0)
        rows = picked[:len(block_y)]
        loss -= log_probs[block_y, rows].sum(dtype=torch.float64)
        residual = log_probs.exp_()
        residual[block_y, rows] -= 1
        weight_grad.addmm_(residual, block_x)
        bias_grad += residual.sum(1)
    return loss, gradient


def _shift_value(start: LinearSolution, l2: float, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and gradient at ``start``'s weights under another ``l2``: only the regulariser's
    share changes."""
    change = l2 - start.l2
    loss = torch.tensor(start.loss, dtype=torch.float64) + 0.5 * change * start.weight.pow(2).sum()
    gradient = start.gradient.clone()
    gradient[:size] += change * start.weight.reshape(-1)
    return loss, gradient


CPU_BLOCK_BYTES = 3 << 20


def _row_shards(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> list[list[Block]]:
    """On the CPU: one shard of consecutive rows per torch thread, each cut into blocks of
    about 3 MiB, so that the gradient's second pass over a block finds it still in cache
    (1.2-1.8x faster than two passes over all of x, which is memory-bound with few classes).
    On a GPU: one shard, a block per part."""
    if xs[0].device.type != "cpu":
        return [list(zip(xs, ys))]
    step = max(256, CPU_BLOCK_BYTES // (xs[0].shape[1] * xs[0].element_size()))
    blocks = [(x[start:start + step], y[start:start + step])
              for x, y in zip(xs, ys) for start in range(0, len(y), step)]
    count = max(1, min(torch.get_num_threads(), len(blocks)))
    bounds = np.linspace(0, len(blocks), count + 1).round().astype(int)
    return [blocks[low:high] for low, high in itertools.pairwise(bounds)]


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _shard_pool(workers: int) -> ThreadPoolExecutor | None:
    """Threads that evaluate the shards side by side, each running its torch ops on one
    thread (set per worker, so the caller's own thread count is untouched). BLAS with few
    classes parallelises a skinny product poorly: two single-threaded shards evaluate the
    objective 1.25-1.45x faster than one two-threaded pass on 2 cores (10 and 100 classes,
    side-by-side runs). None for one shard.
    Kept per process: a forked child inherits the pool object but not its threads."""
    if workers <= 1:
        return None
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(workers, thread_name_prefix="mmtok-probe",
                                         initializer=torch.set_num_threads, initargs=(1,))
    return _POOLS[key]


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


def sweep_fits() -> int:
    """How many fits the sweep makes at most: the grid, then two per halving."""
    halvings = round(math.log2(START_SPACING / FINEST_SPACING))
    return len(range(C_RANGE_DECADES[0], C_RANGE_DECADES[1] + 1, int(START_SPACING))) + 2 * halvings


def clip_grid(num_train: int) -> list[float]:
    """The first sweep points as ``l2`` values, strongest first: C = 1e6 .. 1e-6 every two
    decades, with l2 = 1 / (C * n)."""
    low, high = C_RANGE_DECADES
    exponents = np.arange(low, high + 1e-9, START_SPACING)
    return [1.0 / (10.0 ** e * num_train) for e in exponents]


StartPicker = Callable[[dict[float, LinearSolution], float], LinearSolution]


def sweep_l2(fit: Fitter, evaluate: Callable[[LinearSolution], tuple[float, float]],
             grid: list[float], pick_start: StartPicker | None = None) -> SweepResult:
    """CLIP's parametric binary search: every point of ``grid`` (strongest regularisation
    first), then points at half the previous spacing either side of the best so far, down to
    an eighth of a decade. Best = highest validation accuracy, ties to lower validation loss.

    ``fit(l2, start)`` trains at one strength from a warm start; ``evaluate(solution)``
    gives (val top-1, val loss); ``pick_start(solutions, l2)`` chooses the warm start among
    the solutions found so far (default: the nearest in log C). The same procedure drives
    any fitter, which is how the benchmark runs scikit-learn through the identical sweep.
    """
    pick_start = pick_start or nearest_start
    points: list[SweepPoint] = []
    solutions: dict[float, LinearSolution] = {}

    def visit(l2: float) -> None:
        if any(math.isclose(l2, known, rel_tol=1e-6) for known in solutions):
            return
        start = pick_start(solutions, l2) if solutions else None
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


def nearest_start(solutions: dict[float, LinearSolution], l2: float) -> LinearSolution:
    """The solution nearest to ``l2`` in log scale."""
    return solutions[min(solutions, key=lambda known: abs(math.log10(known) - math.log10(l2)))]


def lowest_objective_start(solutions: dict[float, LinearSolution], l2: float) -> LinearSolution:
    """The solution whose objective at ``l2`` is lowest: known exactly without a pass over
    the data, since only the regulariser's share of each solution's loss changes. Where two
    solutions are equally near, this picks the better start (7-8 % fewer evaluations in a
    100-class sweep than the nearest-in-log-C rule)."""
    def objective_at_l2(known: float) -> float:
        solution = solutions[known]
        return solution.loss + 0.5 * (l2 - known) * solution.weight.pow(2).sum().item()
    return solutions[min(solutions, key=objective_at_l2)]


def path_start(solutions: dict[float, LinearSolution], l2: float) -> LinearSolution:
    """The warm start for a fit at ``l2``. Between two known solutions: the point on the
    straight line (in log ``l2``) between the nearest on either side, with the curvature pairs
    of the one whose objective at ``l2`` is lower. The solution path is smooth, so the blend
    is off by the square of the spacing where either end is off by the spacing: in a
    100-class sweep this saves a quarter of the evaluations. Outside the known range: the
    known solution with the lowest objective at ``l2``. A blend is a start, not a solution:
    its ``l2`` is that of its pairs, and it has no gradient (the fit evaluates it)."""
    below = [known for known in solutions if known < l2]
    above = [known for known in solutions if known > l2]
    if not below or not above:
        return lowest_objective_start(solutions, l2)
    low, high = solutions[max(below)], solutions[min(above)]
    share = math.log(l2 / low.l2) / math.log(high.l2 / low.l2)
    pairs_from = lowest_objective_start({low.l2: low, high.l2: high}, l2)
    return LinearSolution(torch.lerp(low.weight, high.weight, share),
                          torch.lerp(low.bias, high.bias, share), pairs_from.l2, 0,
                          math.nan, pairs_from.pairs)


@dataclass
class ProbeFit:
    chosen: LinearSolution      # at the chosen strength, trained on the training rows
    final: LinearSolution       # refitted on train + val at that strength (or ``chosen``)
    sweep: SweepResult | None   # None when the strength was given


def train_linear(tx: torch.Tensor, ty: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor,
                 num_classes: int, *, l2: float | None = None, refit: bool = True,
                 on_fit: Callable[[], None] | None = None) -> ProbeFit:
    """The probe: CLIP's sweep on (tx, ty) scored on (vx, vy), unless ``l2`` is given, then a
    refit on train + val warm-started from the chosen solution. ``on_fit`` is called after
    each sweep fit (a progress bar)."""
    sweep = None
    if l2 is None:
        def fit(strength: float, start: LinearSolution | None) -> LinearSolution:
            solution = fit_logistic(tx, ty, num_classes, strength, start=start, same_data=True)
            if on_fit is not None:
                on_fit()
            return solution

        sweep = sweep_l2(fit, lambda solution: score(solution, vx, vy), clip_grid(len(ty)),
                         path_start)
        chosen = sweep.best
    else:
        chosen = fit_logistic(tx, ty, num_classes, l2)
    final = chosen
    if refit and len(vy) > 0:
        final = fit_logistic((tx, vx), (ty, vy), num_classes, chosen.l2, start=chosen)
    return ProbeFit(chosen, final, sweep)
