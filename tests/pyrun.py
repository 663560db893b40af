"""Run Python snippets in a fresh interpreter: Triton reads TRITON_INTERPRET once, at its
first import, so interpreter-mode kernel tests (and import-hygiene checks) need their own
process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment and import path, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env.update(extra)
    return env


def run_interpreted(prelude: str, body: str) -> None:
    """Run ``prelude + body`` with TRITON_INTERPRET=1; fail the test with its stderr."""
    code = prelude + textwrap.dedent(body)
    env = subprocess_env(TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"interpreted Triton check failed:\n{proc.stderr[-6000:]}"


# Source for interpreter preludes (which define ``np`` and a seeded ``rng``): the
# adversarial clouds the FPS and KNN kernels are checked on, as (B=2, n, 3) float32 batches.
ADVERSARIAL_CLOUDS = """
def lattice(side):
    g = np.arange(side, dtype=np.float32)
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)

def clouds(n):
    pos = rng.integers(-2, 3, size=(5, 3)).astype(np.float32)
    yield "random", rng.standard_normal((2, n, 3)).astype(np.float32)
    yield "duplicates", pos[rng.integers(0, 5, size=(2, n))]
    yield "collinear", np.stack([np.arange(n)[:, None] * np.float32([1, 2, 3])] * 2).astype(np.float32)
    yield "identical", np.zeros((2, n, 3), np.float32)
    yield "lattice", np.stack([lattice(5)[:n], lattice(5)[::-1][:n]]).astype(np.float32)
"""
