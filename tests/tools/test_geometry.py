"""Geometry tools change the size, so they get their own template instead of check_op:
shapes, identity params, batches, bad params, OpenCV-vs-torch agreement, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import sample
from tools import geometry
from tools.registry import ToolError, get

NAMES = ("crop", "rotate", "flip", "resize")
ACTIVE = {
    "crop": {"left": 0.1, "top": 0.2, "right": 0.8, "bottom": 0.9},
    "rotate": {"angle": 17, "auto_crop": True},
    "flip": {"horizontal": True},
    "resize": {"scale": 0.6},
}


def _batch() -> torch.Tensor:
    return torch.cat([sample("astronaut"), sample("coffee")])  # (2,3,48,64)


def _torch_path(name: str, image: torch.Tensor, params: dict) -> torch.Tensor:
    """Run a tool on its torch path: an input that needs grad turns the OpenCV path off."""
    return get(name)(image.clone().requires_grad_(True), params).detach()


# ------------------------------------------------------------------ shared template


@pytest.mark.parametrize("name", NAMES)
def test_template(name: str) -> None:
    tool = get(name)
    assert tool.family == "geometry" and not tool.supports_mask and not tool.pointwise
    img = _batch()
    before = img.clone()
    out = tool(img, ACTIVE[name])
    assert out.shape[:2] == img.shape[:2], "batch and channels kept"
    assert torch.equal(img, before), "input not modified"
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(tool(img, {}), img), "defaults are the identity"
    with pytest.raises(ToolError, match="unknown argument"):
        tool(img, {"no_such_argument": 1})
    with pytest.raises(ToolError, match="mask"):
        tool(img, ACTIVE[name], mask=torch.ones(1, 1, 48, 64))
    x = img[:1].clone().requires_grad_(True)
    tool(x, ACTIVE[name]).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_opencv_and_torch_paths_agree(name: str) -> None:
    img = _batch()
    cv = get(name)(img, ACTIVE[name])
    th = _torch_path(name, img, ACTIVE[name])
    assert cv.shape == th.shape
    # Rotation: OpenCV's warpAffine rounds sample positions to 1/32 px, so sharp edges
    # differ by up to a few percent; elsewhere the paths are the same arithmetic.
    max_tol, mean_tol = {"rotate": (0.03, 2e-3)}.get(name, (1e-5, 1e-6))
    diff = (cv - th).abs()
    assert float(diff.max()) < max_tol and float(diff.mean()) < mean_tol


# ------------------------------------------------------------------ crop


def test_crop_takes_the_fractional_box() -> None:
    img = _batch()
    out = get("crop")(img, ACTIVE["crop"])
    assert torch.equal(out, img[..., 10:43, 6:51])  # rows 0.2..0.9 of 48, cols 0.1..0.8 of 64
    assert out.is_contiguous()


def test_crop_aspect_shrinks_about_the_centre() -> None:
    out = get("crop")(_batch(), {"aspect": 1.0})
    assert out.shape[-2:] == (48, 48)
    assert torch.equal(out, _batch()[..., :, 8:56])
    wide = get("crop")(_batch(), {"aspect": 2.0, "top": 0.5})
    assert wide.shape[-2:] == (24, 48)


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"left": 0.6, "right": 0.4}, "left"),
        ({"top": 0.5, "bottom": 0.5}, "top"),
        ({"right": 1.2}, "between 0 and 1"),
        ({"aspect": 0}, "aspect"),
    ],
)
def test_crop_rejects_bad_boxes(bad: dict, words: str) -> None:
    with pytest.raises(ToolError, match=words):
        get("crop")(_batch(), bad)


def test_crop_smaller_than_a_pixel_is_refused() -> None:
    with pytest.raises(ToolError, match="less than one pixel"):
        get("crop")(_batch(), {"left": 0.5, "right": 0.505})


# ------------------------------------------------------------------ rotate


def test_rotate_zero_is_exact_identity() -> None:
    img = _batch()
    for extra in ({}, {"expand": True}, {"auto_crop": True}):
        assert torch.equal(get("rotate")(img, {"angle": 0, **extra}), img)
        assert torch.equal(_torch_path("rotate", img, {"angle": 0, **extra}), img)


@pytest.mark.parametrize("path", ["cv", "torch"])
def test_rotate_90_expand_is_counter_clockwise(path: str) -> None:
    img = _batch()
    params = {"angle": 90, "expand": True}
    out = get("rotate")(img, params) if path == "cv" else _torch_path("rotate", img, params)
    assert out.shape[-2:] == (64, 48)
    assert torch.allclose(out, torch.rot90(img, 1, (-2, -1)), atol=1e-5)


def test_rotate_expand_holds_the_whole_photo() -> None:
    out = get("rotate")(torch.ones(1, 3, 48, 64), {"angle": 45, "expand": True})
    assert out.shape[-2:] == (80, 80)  # ceil((64 + 48) / sqrt 2)
    assert abs(float(out.mean()) - 48 * 64 / 80**2) < 0.02  # all of the photo's area is there


@pytest.mark.parametrize("angle", [0.7, 5, -17, 45, 100, -179])
@pytest.mark.parametrize("path", ["cv", "torch"])
def test_rotate_auto_crop_leaves_no_empty_corners(angle: float, path: str) -> None:
    white = torch.ones(1, 3, 48, 64)
    params = {"angle": angle, "auto_crop": True, "fill": 0}
    out = get("rotate")(white, params) if path == "cv" else _torch_path("rotate", white, params)
    assert float(out.min()) > 0.99
    h, w = out.shape[-2:]
    assert h < 48 and w < 64 and abs(w / h - 64 / 48) < 0.1  # aspect ratio kept


def test_rotate_keeps_size_and_fills_corners() -> None:
    white = torch.ones(1, 3, 48, 64)
    out = get("rotate")(white, {"angle": 30, "fill": 0.25})
    assert out.shape == white.shape
    assert torch.allclose(out[..., 0, 0], torch.tensor(0.25))
    assert torch.allclose(out[..., 24, 32], torch.tensor(1.0))


def test_rotate_rejects_bad_params() -> None:
    with pytest.raises(ToolError, match="expand and auto_crop"):
        get("rotate")(_batch(), {"angle": 10, "expand": True, "auto_crop": True})
    with pytest.raises(ToolError, match="between -180 and 180"):
        get("rotate")(_batch(), {"angle": 270})


# ------------------------------------------------------------------ flip


def test_flip_matches_torch_flip_and_undoes_itself() -> None:
    img = _batch()
    h = get("flip")(img, {"horizontal": True})
    assert torch.equal(h, torch.flip(img, [-1]))
    assert torch.equal(get("flip")(img, {"vertical": True}), torch.flip(img, [-2]))
    both = get("flip")(img, {"horizontal": True, "vertical": True})
    assert torch.equal(both, torch.rot90(img, 2, (-2, -1)))
    assert torch.equal(get("flip")(h, {"horizontal": True}), img)


# ------------------------------------------------------------------ resize


@pytest.mark.parametrize(
    "params, size",
    [
        ({"scale": 0.5}, (24, 32)),
        ({"long_side": 32}, (24, 32)),
        ({"scale": 2.0}, (96, 128)),
        ({"scale": 0.01}, (1, 1)),
    ],
)
def test_resize_shape(params: dict, size: tuple[int, int]) -> None:
    assert get("resize")(_batch(), params).shape == (2, 3, *size)


def test_resize_identity() -> None:
    img = _batch()
    for params in ({"scale": 1.0}, {"long_side": 64}, {}):
        assert torch.equal(get("resize")(img, params), img)


@pytest.mark.parametrize("path", ["cv", "torch"])
def test_resize_halving_is_a_2x2_average(path: str) -> None:
    img = _batch()
    out = (
        get("resize")(img, {"scale": 0.5})
        if path == "cv"
        else _torch_path("resize", img, {"scale": 0.5})
    )
    assert torch.allclose(out, F.avg_pool2d(img, 2), atol=1e-6)


@pytest.mark.parametrize(
    "params", [{"scale": 0.37}, {"long_side": 50}, {"scale": 1.7}, {"scale": 3.0}]
)
def test_resize_paths_agree(params: dict) -> None:
    img = _batch()
    cv = get("resize")(img, params)
    th = _torch_path("resize", img, params)
    assert torch.allclose(cv, th, atol=1e-5)


def test_resize_upscale_stays_in_range() -> None:
    edge = torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1  # bicubic overshoots at a hard edge; the clamp must catch it
    for out in (get("resize")(edge, {"scale": 4.0}), _torch_path("resize", edge, {"scale": 4.0})):
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_resize_rejects_bad_params() -> None:
    with pytest.raises(ToolError, match="either scale or long_side"):
        get("resize")(_batch(), {"scale": 0.5, "long_side": 100})
    with pytest.raises(ToolError, match="scale=20 is out of range"):
        get("resize")(_batch(), {"scale": 20})
    with pytest.raises(ToolError, match="MP limit"):
        geometry.resized_size(20_000, 15_000, geometry.Resize(scale=2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name: str) -> None:
    img = _batch()
    cpu = get(name)(img, ACTIVE[name])
    gpu = get(name)(img.cuda(), ACTIVE[name]).cpu()
    assert cpu.shape == gpu.shape
    assert float((cpu - gpu).abs().max()) < (0.03 if name == "rotate" else 1e-4)
