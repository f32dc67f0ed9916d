"""Fixtures shared across test folders."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray for every test that compares the Ray engine with the local one.

    Starting Ray (and its workers importing torch) is the slowest thing in the suite; the engine
    joins a Ray that is already running (agent.engines.RayEngine) and leaves it running, so the
    tests share this one and it stops at the end of the session.
    """
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()
