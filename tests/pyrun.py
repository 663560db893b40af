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
