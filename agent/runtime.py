"""Process-wide side effects of the agent layer, in one place: each set once, by one function.

- `quiet_environment()`: no library phones home (Ray's usage stats, Gradio's analytics) and
  Hugging Face never goes to the network (models are local files); set before those libraries
  are imported, which read the variables once.
- `pixel_policy(max_pixels)`: a command's pixel limit (the option, else IMAGENT_MAX_PIXELS or
  imagent.toml) for every decoder in the process (Pillow's bomb guard, OpenCV's limit,
  `load_image`'s default), set once at the command's start.
- `pixel_limit(pixels)`: the same limit for a block only, restored after it, so a library call
  (a batch) leaves the process as it found it.
- `one_thread()`: torch runs a block on one intra-op thread (small tensors: a pool of threads
  spinning on shared cores costs more than the maths), the process-wide count restored after.
- `cap_threads(n)`: at most `n` torch threads for the rest of the process (the GAN commands).
- `worker_env(workers, max_pixels)`: the environment of a batch worker process: fewer malloc
  arenas (glibc reserves 64 MB of address space per thread arena, which RLIMIT_AS counts), the
  cores shared among the workers (OpenMP, MKL), OpenCV's pixel limit (read when cv2 is imported),
  and this package importable.

The tools layer keeps its own (tools/ never imports agent): tools.io owns the pixel limit itself,
tools/gan and tools/inpaint their thread counts.
torch, the settings and tools.io are imported inside the functions that need them: this module is
imported by light modules (the CLI, goal parsing) that must not load them at start-up.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report from a local Ray
    "GRADIO_ANALYTICS_ENABLED": "False",  # no calls home from the web app
    "HF_HUB_OFFLINE": "1",  # models are local files: never the network, whatever the caller set
    "TRANSFORMERS_OFFLINE": "1",
}
MALLOC_ARENA_MAX = "2"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def quiet_environment() -> None:
    """Set QUIET_ENV in this process's environment (idempotent)."""
    os.environ.update(QUIET_ENV)


def pixel_policy(max_pixels: int | None) -> int:
    """Set the pixel limit for this process from `max_pixels` > IMAGENT_MAX_PIXELS > imagent.toml;
    returns it."""
    from agent.settings import load_settings
    from tools.io import set_pixel_limit

    limit = load_settings(max_pixels=max_pixels).max_pixels
    set_pixel_limit(limit)
    return limit


@contextlib.contextmanager
def pixel_limit(pixels: int | None) -> Iterator[None]:
    """Every decoder in the process refuses images over `pixels` inside the block (None: unchanged)."""
    from tools.io import pixel_limit as current
    from tools.io import set_pixel_limit

    before = current()
    if pixels:
        set_pixel_limit(int(pixels))
    try:
        yield
    finally:
        set_pixel_limit(before)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block; the process's count restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cap_threads(n: int) -> None:
    """At most `n` torch intra-op threads from now on."""
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), n)))


def worker_env(workers: int, max_pixels: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one of `workers` worker processes (`base`: default this process's)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("MALLOC_ARENA_MAX", MALLOC_ARENA_MAX)
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    for var in THREAD_VARS:
        env.setdefault(var, str(threads))
    if max_pixels:
        env["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max_pixels)
    root = str(Path(__file__).resolve().parents[1])  # the worker imports this very package, installed or not
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
