"""A compact L-BFGS for smooth convex objectives on one flat torch tensor.

Why not ``torch.optim.LBFGS``: its first ``step`` imports ``torch._dynamo`` (over two seconds
on a laptop CPU, longer than most probes take to train), and it insists on autograd's
``.grad`` bookkeeping. The probe's objective has a closed-form gradient, so this minimiser
takes ``objective(params) -> (loss, gradient)`` and runs the standard two-loop recursion
(Nocedal & Wright, algorithm 7.4) with a backtracking Armijo line search. Parameters stay
on their device; only the loss and two dot products per iteration cross to the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

LOSS_RESOLUTION = 1e-7  # relative; float32 rounds at 6e-8
Objective = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


Pairs = list[tuple[torch.Tensor, torch.Tensor, float]]  # (s, y, 1 / y.s), oldest first


@dataclass
class Minimum:
    params: torch.Tensor
    loss: float
    iterations: int
    converged: bool
    pairs: Pairs
    gradient: torch.Tensor


def minimize(objective: Objective, start: torch.Tensor, *, max_iter: int = 1000,
             tolerance: float = 1e-4, history: int = 20, pairs: Pairs | None = None,
             start_value: tuple[torch.Tensor, torch.Tensor] | None = None,
             scale_blocks: Sequence[slice] = ()) -> Minimum:
    """Minimise from ``start`` until the largest gradient entry is at most ``tolerance``,
    the loss stops changing (relative 1e-10), or ``max_iter`` iterations.

    ``pairs`` seeds the curvature memory (from a previous, related problem: a warm start
    that keeps its curvature converges in a few iterations instead of re-learning it);
    ``start_value`` is ``objective(start)`` when the caller already knows it.
    ``scale_blocks``: parts of the parameters whose curvature differs by orders of magnitude
    (a regularised weight and an unregularised bias); each gets its own initial scaling
    s.y / y.y instead of one shared scalar, which otherwise makes L-BFGS spend many
    iterations learning the ratio.
    """
    params = start.clone()
    loss, gradient = objective(params) if start_value is None else start_value
    steps: Pairs = list(pairs or [])[-history:]
    for iteration in range(max_iter):
        if gradient.abs().max().item() <= tolerance:
            return Minimum(params, float(loss), iteration, True, steps, gradient)
        direction = _direction(gradient, steps, scale_blocks)
        slope = torch.dot(gradient, direction).item()
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest
            steps.clear()
            direction, slope = -gradient, -torch.dot(gradient, gradient).item()
        if -slope <= LOSS_RESOLUTION * abs(float(loss)):
            # The best decrease this direction promises is below what a float32 loss can
            # resolve: a line search would only chase rounding noise.
            return Minimum(params, float(loss), iteration, True, steps, gradient)
        first = 1.0 if steps else min(1.0, 1.0 / gradient.abs().sum().item())
        found = _backtrack(objective, params, float(loss), direction, slope, first)
        if found is None:
            return Minimum(params, float(loss), iteration, False, steps, gradient)
        step_size, new_loss, new_gradient = found
        change = direction * step_size
        grad_change = new_gradient - gradient
        curvature = torch.dot(grad_change, change).item()
        if curvature > 1e-10:
            steps.append((change, grad_change, 1.0 / curvature))
            del steps[:-history]
        params += change
        if abs(float(loss) - float(new_loss)) <= 1e-10 * max(1.0, abs(float(loss))):
            return Minimum(params, float(new_loss), iteration + 1, True, steps, new_gradient)
        loss, gradient = new_loss, new_gradient
    return Minimum(params, float(loss), max_iter, False, steps, gradient)


def _direction(gradient: torch.Tensor, steps: Pairs,
               scale_blocks: Sequence[slice] = ()) -> torch.Tensor:
    """-H g by the two-loop recursion over the stored (s, y) pairs."""
    q = gradient.clone()
    alphas = []
    for s, y, rho in reversed(steps):
        alpha = rho * torch.dot(s, q)
        q -= alpha * y
        alphas.append(alpha)
    if steps:
        _scale_initial(q, *steps[-1], scale_blocks)
    for (s, y, rho), alpha in zip(steps, reversed(alphas)):
        q += (alpha - rho * torch.dot(y, q)) * s
    return -q


def _scale_initial(q: torch.Tensor, s: torch.Tensor, y: torch.Tensor, rho: float,
                   scale_blocks: Sequence[slice]) -> None:
    """Apply the initial inverse Hessian: the usual s.y / y.y overall, or per block where
    that block's own pair shows positive curvature."""
    overall = 1.0 / (rho * torch.dot(y, y))
    if not scale_blocks:
        q *= overall
        return
    for block in scale_blocks:
        curvature = torch.dot(s[block], y[block])
        q[block] *= curvature / torch.dot(y[block], y[block]) if curvature > 0 else overall


def _backtrack(objective: Objective, params: torch.Tensor, loss: float, direction: torch.Tensor,
               slope: float, step: float, armijo: float = 1e-4,
               tries: int = 20) -> tuple[float, torch.Tensor, torch.Tensor] | None:
    """Shorten ``step`` until the Armijo condition holds. A step that overshot the minimum
    along the line (the slope there is positive) is cut to the secant estimate of that
    minimum rather than halved, so a direction that is 100x too long costs one retry, not
    seven: the gradient at the rejected point is computed anyway, and unlike a float32 loss
    near convergence it is not drowned in rounding."""
    for _ in range(tries):
        new_loss, new_gradient = objective(params + step * direction)
        if float(new_loss) <= loss + armijo * step * slope:
            return step, new_loss, new_gradient
        step *= _shrink_factor(slope, torch.dot(new_gradient, direction).item())
    return None


def _shrink_factor(slope: float, new_slope: float) -> float:
    """Halve, unless the slope turned positive: then the secant zero of the directional
    derivative, kept within [0.01, 0.5] of the step."""
    if new_slope <= 0:
        return 0.5
    return min(0.5, max(0.01, slope / (slope - new_slope)))
