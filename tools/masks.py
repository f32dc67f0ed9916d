"""Masks: where a local edit applies. Makers, algebra, a description for the model.

A mask is a (B,1,H,W) float tensor in [0,1] on the image's grid (1 = edit; soft
edges allowed); every local edit blends `m * edited + (1 - m) * image`. The pure
makers below take pixel coordinates of the image they are given. The agent-facing
tools (family "mask", `read_only`: they return a mask, not an image) take
coordinates as fractions of the width and height, so one call means the same
region on the preview and on the full-size original; the loop stores the result
in the session under the call's `name`, and later calls refer to it by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from tools import colorspace as cs
from tools.analysis import Stats
from tools.region_metric import GAN_KINDS, KINDS, MASKED, RegionMetric
from tools.registry import Params, ToolError, check_image, register

MIN_COVERAGE = 1e-5  # a mask touching fewer pixels than this share is "empty"

# ------------------------------------------------------------------ helpers


def _hw(image: torch.Tensor) -> tuple[int, int]:
    return int(image.shape[-2]), int(image.shape[-1])


def _from_np(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(H,W) float array -> (B,1,H,W) tensor on the image's device, batch size of `like`."""
    m = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]
    return m.to(like.device).expand(like.shape[0], 1, -1, -1).contiguous()


def _draw(image: torch.Tensor, paint) -> torch.Tensor:
    """Rasterise a shape with OpenCV at 8x sub-pixel precision, anti-aliased."""
    h, w = _hw(image)
    canvas = np.zeros((h, w), np.uint8)
    paint(canvas)
    return _from_np(canvas.astype(np.float32) / 255.0, image)


_SHIFT = 3  # OpenCV fixed-point bits: coordinates in 1/8 px


def _pt(x: float, y: float) -> tuple[int, int]:
    return round(x * (1 << _SHIFT)), round(y * (1 << _SHIFT))


def smoothstep(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """0 below lo, 1 above hi, a smooth ramp between (a hard step when lo == hi)."""
    if hi <= lo:
        return (x >= lo).to(x.dtype)
    t = ((x - lo) / (hi - lo)).clamp(0, 1)
    return t * t * (3 - 2 * t)


# ------------------------------------------------------------------ geometric makers


def rect(image: torch.Tensor, x: float, y: float, w: float, h: float) -> torch.Tensor:
    """Rectangle with top-left (x, y) and size (w, h) in pixels; partial pixels are fractional."""
    H, W = _hw(image)
    ys = torch.arange(H, dtype=torch.float32)
    xs = torch.arange(W, dtype=torch.float32)
    # coverage of each pixel [i, i+1) by the interval [a, b)
    cy = (torch.minimum(ys + 1, torch.tensor(y + h)) - torch.maximum(ys, torch.tensor(y))).clamp(0, 1)
    cx = (torch.minimum(xs + 1, torch.tensor(x + w)) - torch.maximum(xs, torch.tensor(x))).clamp(0, 1)
    m = (cy[:, None] * cx[None, :]).to(image.device)
    return m[None, None].expand(image.shape[0], 1, H, W).contiguous()


def ellipse(image: torch.Tensor, cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> torch.Tensor:
    """Filled ellipse centred at (cx, cy) with radii (rx, ry) px, rotated `angle` degrees."""
    # OpenCV's anti-aliased edge is centred on the outline: pull it in half a pixel
    axes = (max(1, round((rx - 0.5) * (1 << _SHIFT))), max(1, round((ry - 0.5) * (1 << _SHIFT))))
    return _draw(image, lambda c: cv2.ellipse(c, _pt(cx - 0.5, cy - 0.5), axes, angle, 0, 360, 255, -1,
                                              cv2.LINE_AA, _SHIFT))


def polygon(image: torch.Tensor, points: list[tuple[float, float]]) -> torch.Tensor:
    """Filled polygon through (x, y) pixel points (at least three)."""
    if len(points) < 3:
        raise ToolError(f"a polygon needs at least 3 points, got {len(points)}")
    pts = np.array([_pt(x - 0.5, y - 0.5) for x, y in points], np.int32)
    return _draw(image, lambda c: cv2.fillPoly(c, [pts], 255, cv2.LINE_AA, _SHIFT))


def brush(image: torch.Tensor, points: list[tuple[float, float]], radius: float) -> torch.Tensor:
    """A brush stroke through (x, y) pixel points, `radius` px wide on each side, round ends."""
    if not points:
        raise ToolError("a brush stroke needs at least one point")
    if radius <= 0:
        raise ToolError(f"brush radius must be positive, got {radius}")
    H, W = _hw(image)
    m = torch.zeros(H, W)
    segs = list(zip(points, points[1:], strict=False)) or [(points[0], points[0])]
    for (x0, y0), (x1, y1) in segs:
        # distance of each pixel centre to the segment, inside the segment's box only; 1 px anti-aliasing
        bx0, bx1 = max(0, math.floor(min(x0, x1) - radius - 1)), min(W, math.ceil(max(x0, x1) + radius + 1))
        by0, by1 = max(0, math.floor(min(y0, y1) - radius - 1)), min(H, math.ceil(max(y0, y1) + radius + 1))
        if bx0 >= bx1 or by0 >= by1:
            continue
        yy, xx = torch.meshgrid(torch.arange(by0, by1) + 0.5, torch.arange(bx0, bx1) + 0.5, indexing="ij")
        dx, dy = x1 - x0, y1 - y0
        t = (((xx - x0) * dx + (yy - y0) * dy) / max(dx * dx + dy * dy, 1e-9)).clamp(0, 1)
        d = torch.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy))
        m[by0:by1, bx0:bx1] = torch.maximum(m[by0:by1, bx0:bx1], (radius + 0.5 - d).clamp(0, 1))
    return m.to(image.device)[None, None].expand(image.shape[0], 1, H, W).contiguous()


# ------------------------------------------------------------------ tonal and colour makers


def luminance_range(image: torch.Tensor, low: float, high: float, softness: float = 0.05) -> torch.Tensor:
    """Pixels whose luma (Rec.709 on sRGB values, 0-1) lies in [low, high], ramped over `softness`."""
    check_image(image, "luminance_range")
    y = cs.luminance(image.clamp(0, 1))
    return smoothstep(y, low - softness, low) * (1 - smoothstep(y, high, high + softness))


def color_range(
    image: torch.Tensor,
    hue: float,
    hue_width: float = 30.0,
    sat_min: float = 0.15,
    val_min: float = 0.1,
    softness: float = 0.5,
) -> torch.Tensor:
    """Pixels near a hue (degrees, 0 red, 120 green, 240 blue) with enough saturation and value.

    Full weight within `hue_width` degrees of `hue`, falling to 0 over another
    `softness * hue_width`; saturation and value ramp in over 0.1 below their minimums.
    """
    check_image(image, "color_range")
    hsv = cs.rgb_to_hsv(image)
    d = (hsv[:, :1] - hue).remainder(360)
    d = torch.minimum(d, 360 - d)
    edge = max(softness * hue_width, 1e-3)
    m_h = 1 - smoothstep(d, hue_width, hue_width + edge)
    m_s = smoothstep(hsv[:, 1:2], sat_min - 0.1, sat_min)
    m_v = smoothstep(hsv[:, 2:3], val_min - 0.1, val_min)
    return m_h * m_s * m_v


# ------------------------------------------------------------------ content makers


@cache
def _face_cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise ToolError(f"OpenCV's face cascade could not be loaded from {path}; reinstall opencv-python-headless")
    return cascade


def detect_faces(image: torch.Tensor, min_size: float = 0.04) -> list[tuple[int, int, int, int]]:
    """Frontal faces in the first image as (x, y, w, h) px boxes (OpenCV Haar cascade, Viola-Jones).

    Limits: frontal, upright faces at least `min_size` of the short side; profiles,
    strongly tilted or small faces are missed.
    """
    check_image(image, "detect_faces")
    H, W = _hw(image)
    scale = min(1.0, 800 / max(H, W))  # the cascade is as good at 800 px and far faster
    gray = (cs.luminance(image[:1].clamp(0, 1))[0, 0].cpu().numpy() * 255).astype(np.uint8)
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    side = max(16, round(min(gray.shape) * min_size))
    found = _face_cascade().detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
    return [tuple(round(v / scale) for v in box) for box in (found if len(found) else [])]


def faces(image: torch.Tensor, padding: float = 0.2) -> torch.Tensor:
    """Soft ellipses over every detected face, grown by `padding` (a fraction of the face size).

    Raises ToolError when no face is found, so a caller never edits "the face" of a landscape.
    """
    boxes = detect_faces(image)
    if not boxes:
        raise ToolError("no face found (OpenCV's frontal-face detector finds upright faces at least "
                        "4% of the short side); draw the region with a rectangle or ellipse mask instead")
    m = torch.zeros(image.shape[0], 1, *_hw(image), device=image.device)
    for x, y, w, h in boxes:
        # a Haar box is the inner face; hair and chin reach further up and down
        e = ellipse(image, x + w / 2, y + h * 0.45, w / 2 * (1 + padding), h * 0.62 * (1 + padding))
        m = torch.maximum(m, e)
    return feather(m, 0.08 * min(b[2] for b in boxes))


def subject(image: torch.Tensor, x: float, y: float, w: float, h: float, iterations: int = 5) -> torch.Tensor:
    """The object inside a pixel box, separated from its background by GrabCut (hard 0/1 mask).

    Runs at most 640 px on the long side for speed; the mask is scaled back. Outside
    the box is always 0.
    """
    check_image(image, "subject")
    H, W = _hw(image)
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(W, math.ceil(x + w)), min(H, math.ceil(y + h))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise ToolError(f"box ({x:g}, {y:g}, {w:g}, {h:g}) is too small or outside the {W}x{H} image")
    scale = min(1.0, 640 / max(H, W))
    rgb = (image[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if scale < 1:
        bgr = cv2.resize(bgr, (max(1, round(W * scale)), max(1, round(H * scale))), interpolation=cv2.INTER_AREA)
    hs, ws = bgr.shape[:2]
    r = (round(x0 * scale), round(y0 * scale), max(2, round((x1 - x0) * scale)), max(2, round((y1 - y0) * scale)))
    r = (min(r[0], ws - 2), min(r[1], hs - 2), min(r[2], ws - r[0]), min(r[3], hs - r[1]))
    gc = np.zeros((hs, ws), np.uint8)
    if r[2] >= ws - 1 and r[3] >= hs - 1:  # GrabCut needs some background outside the box
        raise ToolError("the box covers the whole image; GrabCut needs background outside it")
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's GMM init is random: seed it so the same call gives the same mask
    cv2.grabCut(bgr, gc, r, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    fg = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1:
        fg = (cv2.resize(fg, (W, H), interpolation=cv2.INTER_LINEAR) > 0.5).astype(np.float32)
    inside = np.zeros((H, W), np.float32)
    inside[y0:y1, x0:x1] = 1
    return _from_np(fg * inside, image)


def sky(image: torch.Tensor) -> torch.Tensor:
    """A heuristic sky mask: bright or blue, smooth, connected to the top edge, upper part of the frame.

    Honest limits: it is not a segmentation model. It finds clear or evenly clouded
    skies in landscapes; it misses skies seen through branches, misreads white walls
    or water touching the top edge, and returns an empty mask for night skies.
    """
    check_image(image, "sky")
    x = image[:1].clamp(0, 1)
    H, W = _hw(x)
    scale = min(1.0, 512 / max(H, W))
    small = F.interpolate(x, scale_factor=scale, mode="area") if scale < 1 else x
    h, w = small.shape[-2:]
    hsv = cs.rgb_to_hsv(small)
    v, s, hue = hsv[0, 2], hsv[0, 1], hsv[0, 0]
    blue = ((hue > 180) & (hue < 260) & (s > 0.12)).float()
    bright = smoothstep(v, 0.55, 0.75) * (1 - smoothstep(s, 0.35, 0.6))
    luma = cs.luminance(small)[0, 0].numpy()
    grad = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0), cv2.Sobel(luma, cv2.CV_32F, 0, 1))
    texture = cv2.GaussianBlur(grad, (0, 0), 2.0)
    smooth = 1 - smoothstep(torch.from_numpy(texture), 0.08, 0.25)
    rows = torch.linspace(0, 1, h)[:, None].expand(h, w)
    upper = 1 - smoothstep(rows, 0.45, 0.8)
    score = (torch.maximum(blue * smoothstep(v, 0.3, 0.5), bright) * smooth * upper).numpy()
    cand = (score > 0.4).astype(np.uint8)
    n, labels = cv2.connectedComponents(cand, connectivity=4)
    top = set(np.unique(labels[0])) - {0}
    keep = np.isin(labels, list(top)) if top else np.zeros_like(cand, bool)
    m = torch.from_numpy((keep * np.clip(score * 1.5, 0, 1)).astype(np.float32))[None, None]
    if scale < 1:
        m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)
    return feather(m.clamp(0, 1).to(image.device), max(1.0, 0.004 * max(H, W))).expand(image.shape[0], 1, H, W)


# ------------------------------------------------------------------ algebra


def union(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.maximum(a, b)


def intersect(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.minimum(a, b)


def subtract(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a without b: a * (1 - b)."""
    return a * (1 - b)


def invert(a: torch.Tensor) -> torch.Tensor:
    return 1 - a


SELECTION_MODES = {"add": union, "subtract": subtract, "intersect": intersect}


def combine(base: torch.Tensor | None, new: torch.Tensor, mode: str, name: str = "mask") -> torch.Tensor:
    """A new selection merged into `base` the way photo editors' selection modes do.

    new: replaces base; add: either; subtract: base without new; intersect: both.
    `base` is resampled to `new`'s size.
    """
    if mode == "new":
        return new
    if mode not in SELECTION_MODES:
        raise ToolError(f"combine={mode!r} is not a selection mode; use new, add, subtract or intersect")
    if base is None:
        raise ToolError(f"combine={mode!r} needs an existing mask {name!r} to {mode} with; "
                        "make it first (combine='new')")
    from tools.recipe import resize_mask

    return SELECTION_MODES[mode](resize_mask(base, new).to(new), new)


def grow(mask: torch.Tensor, px: float) -> torch.Tensor:
    """Dilate (px > 0) or erode (px < 0) by a round structuring element of radius |px|."""
    r = round(abs(px))
    if r == 0:
        return mask.clone()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    op = cv2.dilate if px > 0 else cv2.erode
    return cs.per_plane(mask, lambda a: op(a, k, borderType=cv2.BORDER_REPLICATE))


def shrink(mask: torch.Tensor, px: float) -> torch.Tensor:
    return grow(mask, -px)


def feather(mask: torch.Tensor, px: float) -> torch.Tensor:
    """Soften the edge: Gaussian blur with sigma px/2, so the ramp is about `px` wide on each side."""
    sigma = px / 2
    if sigma <= 0:
        return mask.clone()
    k = 2 * math.ceil(3 * sigma) + 1
    return cs.per_plane(mask, lambda a: cv2.GaussianBlur(a, (k, k), sigma, borderType=cv2.BORDER_REPLICATE))


COMBINE = {"union": union, "intersect": intersect, "subtract": subtract}


# ------------------------------------------------------------------ validation and description


def mask_from_image(rgb: torch.Tensor) -> torch.Tensor:
    """A loaded grayscale/colour PNG (1,3,H,W) as a (1,1,H,W) mask: white = 1 (the channel mean)."""
    return rgb.mean(1, keepdim=True).clamp(0, 1)


def fit_mask(mask: torch.Tensor, image: torch.Tensor, *, where: str = "mask", allow_empty: bool = False,
             allow_full: bool = True) -> torch.Tensor:
    """Check a user's mask against an image: same aspect ratio (resampled if the size differs), not empty.

    Errors name the problem: a mask of another shape, one with nothing white in it, or
    (when `allow_full` is False) one that is white everywhere.
    """
    if mask.ndim == 2:
        mask = mask[None, None]
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ToolError(f"{where}: expected a single-channel mask, got shape {tuple(mask.shape)}")
    (h, w), (H, W) = _hw(mask), _hw(image)
    if (h, w) != (H, W):
        if abs(w / h - W / H) > 0.01 * (W / H):
            raise ToolError(f"{where} is {w}x{h} but the image is {W}x{H}; the mask must have the image's "
                            "size (or at least its aspect ratio)")
        mask = F.interpolate(mask.float(), size=(H, W), mode="bilinear", align_corners=False)
    mask = mask.to(device=image.device, dtype=image.dtype).clamp(0, 1)
    cover = float((mask > 0.5).float().mean())
    if not allow_empty and float(mask.max()) < 0.5:
        raise ToolError(f"{where} is empty: no pixel is white (>= 50%); paint the region to edit in white")
    if not allow_full and cover > 1 - MIN_COVERAGE:
        raise ToolError(f"{where} is white everywhere: there is nothing left around the region to fill it "
                        "from; paint only the part to remove")
    return mask


class MaskInfo(BaseModel):
    """What a mask covers, in the terms a model can reason with."""

    coverage_pct: float = Field(description="share of the image inside the mask (weighted by its values), %")
    bbox: tuple[int, int, int, int] | None = Field(description="(x, y, w, h) px of the pixels >= 0.5; None if empty")
    bbox_frac: tuple[float, float, float, float] | None = Field(description="the box as fractions of width/height")
    soft_pct: float = Field(description="% of the touched pixels that are partly selected (soft edge)")
    mean_L_inside: float | None = Field(description="mean L* (0-100) inside the mask")
    mean_L_outside: float | None = Field(description="mean L* (0-100) outside the mask")
    mean_sat_inside: float | None = Field(description="mean HSV saturation inside")
    mean_sat_outside: float | None = Field(description="mean HSV saturation outside")

    def summary(self) -> str:
        if self.bbox is None:
            return "empty mask (covers nothing)"
        fx, fy, fw, fh = self.bbox_frac  # type: ignore[misc]
        return (f"covers {self.coverage_pct:.1f}% of the image, box x={fx:.2f} y={fy:.2f} w={fw:.2f} h={fh:.2f} "
                f"(fractions); L* {_f(self.mean_L_inside)} inside vs {_f(self.mean_L_outside)} outside, "
                f"saturation {_f(self.mean_sat_inside, 2)} vs {_f(self.mean_sat_outside, 2)}")


def _f(v: float | None, nd: int = 0) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def describe_mask(image: torch.Tensor, mask: torch.Tensor) -> MaskInfo:
    """Coverage, bounding box and mean lightness/saturation inside vs outside (first image)."""
    check_image(image, "describe_mask")
    m = fit_mask(mask, image, allow_empty=True)[0, 0].float()
    H, W = m.shape
    cover = float(m.mean()) * 100
    ys, xs = torch.nonzero(m >= 0.5, as_tuple=True)
    if len(ys) == 0:
        return MaskInfo(coverage_pct=cover, bbox=None, bbox_frac=None, soft_pct=0.0, mean_L_inside=None,
                        mean_L_outside=None, mean_sat_inside=None, mean_sat_outside=None)
    x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    touched = m > 0
    soft = float(((m > 0) & (m < 1)).sum()) / max(1, int(touched.sum())) * 100
    lab = cs.rgb_to_lab(image[:1].clamp(0, 1))[0, 0].cpu()
    sat = cs.rgb_to_hsv(image[:1].clamp(0, 1))[0, 1].cpu()
    mc = m.cpu()

    def wmean(x: torch.Tensor, w: torch.Tensor) -> float | None:
        s = float(w.sum())
        return float((x * w).sum()) / s if s > 1e-6 else None

    return MaskInfo(coverage_pct=round(cover, 3), bbox=(x0, y0, x1 - x0, y1 - y0),
                    bbox_frac=(x0 / W, y0 / H, (x1 - x0) / W, (y1 - y0) / H), soft_pct=round(soft, 2),
                    mean_L_inside=wmean(lab, mc), mean_L_outside=wmean(lab, 1 - mc),
                    mean_sat_inside=wmean(sat, mc), mean_sat_outside=wmean(sat, 1 - mc))


# ------------------------------------------------------------------ region metrics (goal targets)

# Metrics measured on a region or against the original: tools.region_metric.RegionMetric (the
# typed value and its one text form, "dL@face", "changed@x,y,w,h", "defects_left").
LOCAL_METRICS = KINDS


def is_local_metric(metric: str) -> bool:
    return RegionMetric.parse(metric) is not None


def crop_to(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The image cropped to the bounding box of mask >= 0.5 (the whole image when the mask is empty)."""
    ys, xs = torch.nonzero(mask[0, 0] >= 0.5, as_tuple=True)
    if len(ys) == 0:
        return image
    return image[..., int(ys.min()):int(ys.max()) + 1, int(xs.min()):int(xs.max()) + 1]


def _box_of(box: tuple[float, float, float, float], like: torch.Tensor) -> torch.Tensor:
    x, y, w, h = box
    H, W = _hw(like)
    return rect(like[:1], x * W, y * H, w * W, h * H)


def local_metrics(original: torch.Tensor, image: torch.Tensor, metrics: list[str],
                  mask_of: Callable[[str], torch.Tensor | None]) -> dict[str, float]:
    """Values of the region metrics among `metrics` (a metric whose mask is missing is left out)."""
    out: dict[str, float] = {}
    lab0 = lab1 = None
    for metric in dict.fromkeys(metrics):
        region = RegionMetric.parse(metric)
        if region is None:
            continue
        if region.kind == "defects_left":
            from tools.inpaint import defect_share

            before = _defects_of(original)
            out[metric] = defect_share(image) / before if before > 0 else 0.0
            continue
        if region.kind in GAN_KINDS:  # a face attribute, scored the way the GAN directions were fitted
            from tools.gan.tools import attribute_change

            change = attribute_change(original, image, region.kind[4:])
            if change is not None:
                out[metric] = change
            continue
        m = mask_of(region.mask or "") if region.box is None else _box_of(region.box, image)
        if m is None or float(m.sum()) < 1:
            continue
        if lab0 is None:
            lab0 = cs.rgb_to_lab(original[:1].clamp(0, 1))
            lab1 = cs.rgb_to_lab(image[:1].clamp(0, 1))
        m = m[:1].to(lab0.dtype)
        c = 2 if region.kind == "db" else 0  # b* or L*
        diff = lab1[:, c : c + 1] - lab0[:, c : c + 1]
        d = diff if region.kind in MASKED else diff.abs()
        out[metric] = float((d * m).sum() / m.sum())
    return out


_DEFECTS_SEEN: dict[tuple[int, int, int, float], float] = {}


def _defects_of(original: torch.Tensor) -> float:
    """find_defects share of the original, computed once per original (it never changes)."""
    from tools.inpaint import defect_share

    key = (id(original), *_hw(original), float(original[0, :, ::17, ::17].sum()))
    if key not in _DEFECTS_SEEN:
        _DEFECTS_SEEN.clear()
        _DEFECTS_SEEN[key] = defect_share(original)
    return _DEFECTS_SEEN[key]


class RegionStats(Stats):
    """Stats plus region metrics as extra fields (read like any other metric by the scorer)."""

    model_config = ConfigDict(frozen=True, extra="allow")


def with_local_metrics(stats: Stats, original: torch.Tensor, image: torch.Tensor, metrics: list[str],
                       mask_of: Callable[[str], torch.Tensor | None]) -> Stats:
    """`stats` with the region metrics the goal's targets name added (unchanged when there are none)."""
    if not any(is_local_metric(m) for m in metrics):
        return stats
    return RegionStats(**stats.model_dump(), **local_metrics(original, image, metrics, mask_of))


# ------------------------------------------------------------------ agent-facing tools


class MaskParams(Params):
    """Shared fields of the mask-making tools (base class; not a tool)."""

    name: str = Field("region", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="name to store the mask under; edit tools take it as `mask`")
    grow: float = Field(0.0, ge=-10, le=10, description="grow (+) or shrink (-) the edge, % of the long side")
    feather: float = Field(0.0, ge=0, le=10, description="soften the edge over this % of the long side")
    invert: bool = Field(False, description="select everything except the region")
    combine: Literal["new", "add", "subtract", "intersect"] = Field(
        "new", description="with a mask of this name already made: new replaces it, add = either region, "
                           "subtract = the old one without this region, intersect = only where both are")


def _finish(m: torch.Tensor, p: MaskParams, image: torch.Tensor) -> torch.Tensor:
    long = max(_hw(image))
    if p.grow:
        m = grow(m, p.grow / 100 * long)
    if p.feather:
        m = feather(m, p.feather / 100 * long)
    return invert(m) if p.invert else m


_FRAC = {"ge": 0.0, "le": 1.0}


class MaskRect(MaskParams):
    """Select a rectangle of the photo (coordinates are fractions of width and height)."""

    x: float = Field(0.25, **_FRAC, description="left edge, fraction of the width (0 left .. 1 right)")
    y: float = Field(0.25, **_FRAC, description="top edge, fraction of the height (0 top .. 1 bottom)")
    w: float = Field(0.5, **_FRAC, description="width, fraction of the image width")
    h: float = Field(0.5, **_FRAC, description="height, fraction of the image height")


@register(MaskRect, family="mask", read_only=True, supports_mask=False, differentiable=False)
def mask_rect(image: torch.Tensor, p: MaskRect) -> torch.Tensor:
    H, W = _hw(image)
    return _finish(rect(image, p.x * W, p.y * H, p.w * W, p.h * H), p, image)


class MaskEllipse(MaskParams):
    """Select an ellipse (an oval around a face or a subject); fractions of width and height."""

    cx: float = Field(0.5, **_FRAC, description="centre x, fraction of the width")
    cy: float = Field(0.5, **_FRAC, description="centre y, fraction of the height")
    rx: float = Field(0.25, ge=0.001, le=1, description="horizontal radius, fraction of the width")
    ry: float = Field(0.25, ge=0.001, le=1, description="vertical radius, fraction of the height")


@register(MaskEllipse, family="mask", read_only=True, supports_mask=False, differentiable=False)
def mask_ellipse(image: torch.Tensor, p: MaskEllipse) -> torch.Tensor:
    H, W = _hw(image)
    return _finish(ellipse(image, p.cx * W, p.cy * H, p.rx * W, p.ry * H), p, image)


class MaskBrush(MaskParams):
    """Paint a brush stroke (or a polygon) through points given as fractions of width and height."""

    points: list[float] = Field(default_factory=lambda: [0.4, 0.5, 0.6, 0.5],
                                description="x1, y1, x2, y2, ... as fractions of width/height")
    radius: float = Field(0.02, ge=0.001, le=0.5, description="brush radius, fraction of the long side")
    filled: bool = Field(False, description="true: fill the polygon through the points instead of stroking")


@register(MaskBrush, family="mask", read_only=True, supports_mask=False, differentiable=False)
def mask_brush(image: torch.Tensor, p: MaskBrush) -> torch.Tensor:
    H, W = _hw(image)
    if len(p.points) < 2 or len(p.points) % 2:
        raise ToolError(f"mask_brush: points must be pairs x, y; got {len(p.points)} numbers")
    pts = [(p.points[i] * W, p.points[i + 1] * H) for i in range(0, len(p.points), 2)]
    m = polygon(image, pts) if p.filled else brush(image, pts, p.radius * max(H, W))
    return _finish(m, p, image)


class MaskLuminance(MaskParams):
    """Select by brightness: the shadows, the midtones or the highlights (luma 0 black .. 1 white)."""

    low: float = Field(0.0, ge=0, le=1, description="darkest luma included")
    high: float = Field(0.3, ge=0, le=1, description="brightest luma included")
    softness: float = Field(0.05, ge=0, le=0.5, description="width of the ramp at each end")


@register(MaskLuminance, family="mask", read_only=True, supports_mask=False, differentiable=False)
def mask_luminance(image: torch.Tensor, p: MaskLuminance) -> torch.Tensor:
    return _finish(luminance_range(image, p.low, p.high, p.softness), p, image)


class MaskColor(MaskParams):
    """Select by colour: pixels near a hue (0 red, 30 orange, 60 yellow, 120 green, 210 sky blue, 300 magenta)."""

    hue: float = Field(210.0, ge=0, le=360, description="hue in degrees")
    hue_width: float = Field(30.0, ge=1, le=180, description="degrees either side fully selected")
    sat_min: float = Field(0.15, ge=0, le=1, description="minimum HSV saturation")
    val_min: float = Field(0.1, ge=0, le=1, description="minimum HSV value (brightness)")
    softness: float = Field(0.5, ge=0, le=2, description="hue ramp, as a fraction of hue_width")


@register(MaskColor, family="mask", read_only=True, supports_mask=False, differentiable=False)
def mask_color(image: torch.Tensor, p: MaskColor) -> torch.Tensor:
    return _finish(color_range(image, p.hue, p.hue_width, p.sat_min, p.val_min, p.softness), p, image)


class MaskFaces(MaskParams):
    """Select the faces (upright, frontal), with soft edges; fails if there is no face."""

    name: str = Field("face", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="name to store the mask under; edit tools take it as `mask`")
    padding: float = Field(0.2, ge=0, le=2, description="grow each face oval by this fraction of its size")


@register(MaskFaces, family="mask", read_only=True, supports_mask=False, differentiable=False, cost=5.0)
def mask_faces(image: torch.Tensor, p: MaskFaces) -> torch.Tensor:
    return _finish(faces(image, p.padding), p, image)


class MaskSubject(MaskRect):
    """Select the object inside a box, cut from its background (GrabCut); fractions of width/height."""

    name: str = Field("subject", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="name to store the mask under; edit tools take it as `mask`")


@register(MaskSubject, family="mask", read_only=True, supports_mask=False, differentiable=False, cost=20.0)
def mask_subject(image: torch.Tensor, p: MaskSubject) -> torch.Tensor:
    H, W = _hw(image)
    m = subject(image, p.x * W, p.y * H, p.w * W, p.h * H)
    if float(m.sum()) < 1:
        raise ToolError("GrabCut found no object in the box; draw the box tighter around it, "
                        "or select the box itself with mask_rect")
    return _finish(m, p, image)


class MaskSky(MaskParams):
    """Select the sky (a heuristic: bright or blue, smooth, touching the top edge)."""

    name: str = Field("sky", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                      description="name to store the mask under; edit tools take it as `mask`")


@register(MaskSky, family="mask", read_only=True, supports_mask=False, differentiable=False, cost=5.0)
def mask_sky(image: torch.Tensor, p: MaskSky) -> torch.Tensor:
    m = sky(image)
    if float(m.max()) < 0.5:
        raise ToolError("no sky found (no bright or blue, smooth area touching the top edge); "
                        "select it with mask_rect or mask_color instead")
    return _finish(m, p, image)

