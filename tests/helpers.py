"""Shared test helpers: sample images and the one contract every image op passes."""

from __future__ import annotations

from functools import cache

import numpy as np
import torch


@cache
def _sample_np(name: str, size: tuple[int, int]) -> np.ndarray:
    import cv2
    import skimage.data

    img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, -1)
    return cv2.resize(img[..., :3], size, interpolation=cv2.INTER_AREA)


def sample(name: str = "astronaut", size: tuple[int, int] = (64, 48)) -> torch.Tensor:
    """A skimage sample photo as a (1,3,H,W) float tensor in [0,1]; size is (W, H)."""
    a = _sample_np(name, size).astype(np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of two (B,3,H,W) images (kornia, window 7)."""
    import kornia.metrics

    return float(kornia.metrics.ssim(a.float(), b.float(), 7).mean())


def check_op(name: str, neutral: dict, active: dict, *, bad: dict | None = None,
             differentiable: bool | None = None) -> None:
    """The kornia-style template every registered image op passes.

    smoke; bad params rejected; batch B>1 keeps shapes; neutral params are the
    identity (SSIM > 0.999); output in [0,1]; gradient flows when the tool says it
    is differentiable; a mask confines the edit; the input is never modified.
    """
    import pytest

    from tools.registry import ToolError, get

    tool = get(name)
    img = sample("astronaut")
    batch = torch.cat([img, sample("coffee")])
    before = batch.clone()

    out = tool(batch, active)
    assert out.shape == batch.shape, "batch shape kept"
    assert torch.equal(batch, before), "input not modified"
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, "output in [0,1]"
    assert not torch.allclose(out, batch, atol=1e-3), "active params change the image"

    same = tool(batch, neutral)
    assert ssim(same, batch) > 0.999, "neutral params are the identity"

    with pytest.raises(ToolError):
        tool(img, bad if bad is not None else {"no_such_argument": 1})

    if tool.supports_mask:
        m = torch.zeros(1, 1, *img.shape[-2:])
        m[..., :, : img.shape[-1] // 2] = 1
        local = tool(img, active, mask=m)
        w = img.shape[-1] // 2
        assert torch.allclose(local[..., w:], img[..., w:]), "outside the mask unchanged"

    if differentiable if differentiable is not None else tool.differentiable:
        x = img.clone().requires_grad_(True)
        y = tool(x, active)
        y.mean().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run `imagent ARGS` in-process as a user would: (exit code, stdout, stderr)."""
    from agent.cli import main
    from tools.io import pixel_limit, set_pixel_limit

    limit = pixel_limit()  # a command sets the process's limit, as its own process would
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        set_pixel_limit(limit)
    out = capsys.readouterr()
    return code, out.out, out.err
