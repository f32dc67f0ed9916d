"""Where many independent jobs run: threads here (`local`) or tasks on a Ray cluster (`ray`).

Shared by `imagent batch` and the eval runner: `make_engine(name, workers, address).map(fn, items)`
yields results as jobs finish; `close()` releases the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from agent.errors import UserError
from agent.runtime import quiet_environment


class LocalEngine:
    """Cases on a thread pool in this process (torch and OpenCV release the GIL in their kernels)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, workers)

    def map(self, fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> Iterator[Any]:
        from concurrent.futures import ThreadPoolExecutor, as_completed

        pool = ThreadPoolExecutor(max_workers=self.workers)
        try:
            futures = [pool.submit(fn, *args) for args in items]
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayEngine:
    """Cases as Ray tasks: a local Ray started on demand (`workers` CPUs) or an existing cluster."""

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("--engine ray needs Ray: pip install 'imagent[ray]'") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            quiet_environment()  # no phoning home from evals
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                         _node_ip_address="127.0.0.1")
            self.started = True

    def map(self, fn: Callable[..., Any], items: list[tuple[Any, ...]]) -> Iterator[Any]:
        ray = self.ray
        remote = ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = [remote.remote(*args) for args in items]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_engine(name: str, workers: int = 1, address: str | None = None) -> Any:
    if name == "local":
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(workers, address)
    raise UserError(f"--engine {name!r}: use local or ray")


