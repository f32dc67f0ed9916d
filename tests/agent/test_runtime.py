"""Process-wide side effects are set by agent.runtime, and a block's are undone after it."""

from __future__ import annotations

import os

import pytest
import torch

from agent import runtime
from tools.io import ImageLoadError, load_image, pixel_limit, save_image


def test_one_thread_inside_and_the_count_restored_after() -> None:
    before = torch.get_num_threads()
    with runtime.one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_blocks_pixel_limit_refuses_inside_and_is_undone_after(tmp_path) -> None:
    path = save_image(torch.full((1, 3, 40, 40), 0.5), tmp_path / "p.png")
    before = pixel_limit()
    with runtime.pixel_limit(1000):
        assert pixel_limit() == 1000
        with pytest.raises(ImageLoadError):
            load_image(path)
    assert pixel_limit() == before
    assert load_image(path).image.shape[-2:] == (40, 40)


def test_a_worker_environment_shares_the_cores_and_keeps_what_the_user_set() -> None:
    env = runtime.worker_env(2, max_pixels=12345, base={"MKL_NUM_THREADS": "3", "PYTHONPATH": "/x"})
    assert env["MALLOC_ARENA_MAX"] == runtime.MALLOC_ARENA_MAX
    assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2)) and env["MKL_NUM_THREADS"] == "3"
    assert env["OPENCV_IO_MAX_IMAGE_PIXELS"] == "12345"
    root, rest = env["PYTHONPATH"].split(os.pathsep)
    assert os.path.isfile(os.path.join(root, "agent", "runtime.py")) and rest == "/x"


def test_quiet_environment_turns_off_calls_home(monkeypatch) -> None:
    for var in runtime.QUIET_ENV:
        monkeypatch.setenv(var, "1" if var == "RAY_USAGE_STATS_ENABLED" else "0")
    runtime.quiet_environment()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0" and os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
