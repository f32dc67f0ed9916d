"""Shared test helpers: sample images and the one contract every image op passes."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch

from tools.io import save_image


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


def png_bytes(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A valid PNG of width x height black RGB pixels, a few KB on disk whatever its size
    (a decompression bomb when large); `idat` replaces the pixel data (e.g. too little)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress((b"\x00" + bytes(3 * width)) * height, 9) if idat is None else idat
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def photo_folder(tmp_path: Path, names: list[str]) -> Path:
    """tmp_path/in holding small, darkish sample photos under the given names."""
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(names):
        save_image(sample(("astronaut", "coffee", "chelsea")[i % 3], (64, 48)) * 0.6, src / name)
    return src
