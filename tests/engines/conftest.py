"""One local Ray instance for every Ray test (Ray's start-up costs seconds on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ray_session():
    """A Ray instance on 127.0.0.1 for this pytest session: 2 CPUs, 2 fake GPUs (for the
    placement test; embed tests ask for --device cpu), a small object store, no dashboard,
    no usage stats. Its workers import mmtok and the test helpers (raykill) from here."""
    ray = pytest.importorskip("ray")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    path = [str(TESTS.parent), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]
    os.environ["PYTHONPATH"] = os.pathsep.join(path)  # inherited by the raylet's workers
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False,
             object_store_memory=96 << 20, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()
