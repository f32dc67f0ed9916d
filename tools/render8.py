"""The 8-bit render path: per-channel curves on an 8-bit photo as one cv2.LUT; equalize in uint8.

An 8-bit source holds only 256 values per channel, so a recipe whose steps are all
per-channel curves (exposure, contrast, curves, levels, whites/blacks, white balance...,
unmasked) is fully described by what it does to those 256 values. `tables8` finds out by
replaying the recipe with `apply_recipe` itself on a 256-pixel ramp, so the float path and
this one compute every value the same way; saved at 8 bits the two give the same pixels
(tests/tools/test_render8.py checks equality). A 12 MP render is then one uint8 cv2.LUT,
the cost of the OpenCV recipe an OpenCV user would write (`make bench`, "8-bit" rows),
against four times that for float32 in and out.

A recipe whose one pixel-changing step is an unmasked `equalize` renders by `equalize8`: the
float path's curve (`tools.tone.equalize_curve`, from the same sampled luma histogram) as a
16-bit table, and its hue-keeping luma move in uint8/float32 OpenCV calls on bands of rows that
stay in cache. Within one 8-bit level of the float path (tested; on 30 train photos at strengths
1 and 0.5: <= 1 level, 0-1.3 % of pixels, median 0.16 %, off by one). 12 MP on 2 cores, against
OpenCV's YCrCb + equalizeHist (`make bench`, same-run ratios): 2.3x (1.9-2.6) with the machine
loaded, 2.6-2.8x idle; CPU time single-threaded 2.25x on the bench image, 2.6x on a 12 MP train
photo (the float row: 4-4.2x). Rejected: a 3-D LUT of the move (33^3: max error 8-22 levels on
4 train photos, 65^3: 4-21; the 1024-knot CDF creases between lattice points); gathering only
the pixels that clip (2.5 % on the bench image, 3-40 % on train photos): finding them costs what
it saves. Any other recipe (a colour, spatial or masked step), a 16-bit source or a 16-bit
output takes the float path.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from tools import colorspace as cs
from tools.io import LoadedImage, to_array
from tools.recipe import Recipe, apply_recipe
from tools.tone import EQ_BINS, Equalize, curve_table, equalize_curve, equalize_step


def per_channel_only(recipe: Recipe) -> bool:
    """True when every step that changes pixels is an unmasked per-channel curve."""
    for step in recipe.steps:
        tool, _ = step.resolve()
        if not tool.read_only and (step.mask is not None or not tool.per_channel):
            return False
    return True


def tables8(recipe: Recipe) -> np.ndarray | None:
    """(256,1,3) uint8: the recipe's output for each 8-bit input value, per channel; None when
    the recipe is not per-channel only. Computed by the float path, then rounded as on save."""
    if not per_channel_only(recipe):
        return None
    ramp = torch.arange(256, dtype=torch.float32).div_(255).view(1, 1, 1, 256).expand(1, 3, 1, 256).contiguous()
    out = apply_recipe(ramp, recipe)  # (1,3,1,256)
    return to_array(out).reshape(256, 1, 3)


def render8(pixels: np.ndarray, recipe: Recipe) -> np.ndarray | None:
    """Render `recipe` on HWC uint8 RGB `pixels` to HWC uint8; None when it needs the float path."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        return None
    table = tables8(recipe)
    if table is not None:
        return cv2.LUT(np.ascontiguousarray(pixels), table)
    eq = equalize_only(recipe)
    return None if eq is None else equalize8(pixels, eq.strength)


def renders8(recipe: Recipe) -> bool:
    """True when `render8` renders this recipe (else it takes the float path)."""
    return per_channel_only(recipe) or equalize_only(recipe) is not None


def equalize_only(recipe: Recipe) -> Equalize | None:
    """The params of the recipe's one pixel-changing step when it is an unmasked equalize, else None."""
    changing = [(step, *step.resolve()) for step in recipe.steps]
    changing = [c for c in changing if not c[1].read_only]
    if len(changing) != 1 or changing[0][1].name != "equalize" or changing[0][0].mask is not None:
        return None
    params = changing[0][2]
    return params if isinstance(params, Equalize) else None


# --------------------------------------------------------------------------- equalize on uint8

_BAND_PX = 1 << 18  # pixels per band: fewer calls (the GIL) against cache; 2^16-2^20 measured, 2^18 best
# 16-bit luma (65535 = white) as three per-channel tables: 257 * Rec.709 weight * value, rounded,
# green taking the remainder so that a grey pixel's luma is exactly its value (luma - min and
# max - luma are then never negative, and zero only for greys).
_R16 = np.round(np.arange(256) * 257 * cs.LUMA[0]).astype(np.uint16)
_B16 = np.round(np.arange(256) * 257 * cs.LUMA[2]).astype(np.uint16)
_G16 = (np.arange(256) * 257 - _R16 - _B16).astype(np.uint16)
_Y8 = (np.arange(cs.LUT_SIZE) / 257).astype(np.float32)  # 16-bit luma -> 8-bit units
_E16 = (np.arange(256) * 257).astype(np.uint16)  # 8-bit value -> 16-bit luma units
_DENSE = 0.08  # a band where more pixels than this clip moves them all in float32 (measured break-even)
# The histogram bins exact luma, as the float path does: 16-bit luma would put a flat colour
# within ~2/65535 of a bin edge in the other bin, moving the whole CDF by its share. Luma * 2,550,000
# (weights * 10^4 * value) is an integer, held exactly in float32.
_K_WEIGHTS = [round(wt * 10_000) for wt in cs.LUMA]
_K = [(np.arange(256) * wt).astype(np.float32) for wt in _K_WEIGHTS]
_K_SCALE = 255 * sum(_K_WEIGHTS)  # white


def equalize8(pixels: np.ndarray, strength: float) -> np.ndarray:
    """`tools.tone.equalize` on HWC uint8 RGB, to HWC uint8 (within one level of the float path
    saved at 8 bits). Pass 1 splits the planes and takes 16-bit luma and the histogram; pass 2
    maps luma through the curve and moves each pixel there along its hue (`_Move`). Both run on
    bands of rows on the shared threads."""
    h, w, _ = pixels.shape
    if strength == 0:
        return pixels.copy()
    planes = [np.empty((h, w), np.uint8) for _ in range(3)]
    y16 = np.empty((h, w), np.uint16)
    rows = max(2, _BAND_PX // w // 2 * 2)  # even, so every band starts on a counted row
    step = equalize_step(h, w)
    hists: list[np.ndarray] = []

    def luma(r: int) -> None:
        band = slice(r, r + rows)
        rgb = [p[band] for p in planes]
        cv2.mixChannels([np.ascontiguousarray(pixels[band])], rgb, [0, 0, 1, 1, 2, 2])
        yb = y16[band]
        cv2.add(cv2.add(cv2.LUT(rgb[0], _R16), cv2.LUT(rgb[1], _G16)), cv2.LUT(rgb[2], _B16), dst=yb)
        c = [np.ascontiguousarray(p[::step, ::step]) for p in rgb]
        k = cv2.add(cv2.add(cv2.LUT(c[0], _K[0]), cv2.LUT(c[1], _K[1])), cv2.LUT(c[2], _K[2]))
        # floor(luma * bins) as round(. - 1/2) into uint16 (calcHist on float32 took twice as long);
        # white lands in an extra bin, folded into the last as torch.histc does
        b = cv2.addWeighted(k, EQ_BINS / _K_SCALE, k, 0, -0.5, dtype=cv2.CV_16U)
        hists.append(cv2.calcHist([b], [0], None, [EQ_BINS + 1], [0, EQ_BINS + 1]))

    starts = list(range(0, h, rows))
    cs.in_threads(luma, starts)
    counts = np.sum(hists, axis=0).ravel().astype(np.float64)
    counts[EQ_BINS - 1] += counts[EQ_BINS]
    hist = torch.from_numpy(counts[:EQ_BINS])
    move = _Move(curve_table(equalize_curve(hist, strength)))
    out = np.empty((h, w, 3), np.uint8)
    cs.in_threads(lambda r: move.band(np.ascontiguousarray(pixels[r : r + rows]), [p[r : r + rows] for p in planes],
                                      y16[r : r + rows], out[r : r + rows]), starts)
    return out


class _Move:
    """Each pixel to its new luma yn along its hue, W3C SetLum + ClipColor as `tone._set_luma`:
    out = yn + (c - y) * s, s = min(1, yn / (y - min), (255 - yn) / (max - y)), 8-bit units.

    Where the curve raises luma only the top can clip, where it lowers luma only the bottom, so
    which channel clips first (max or min) and how far luma moves are functions of luma: 16-bit
    tables. A pixel that does not clip (s = 1) takes c + round(yn - y) in uint8/int16 calls; the
    clipping ones (2.5 % on the bench image, 3-40 % on train photos) are gathered and moved in
    float32, or the whole band is when more than `_DENSE` of it clips (gathering costs more).
    12 MP, idle: 63 ms where moving every pixel in float32 took 70."""

    def __init__(self, table: torch.Tensor) -> None:
        yn = (table * 255).clamp_(1e-4, 255 - 1e-4).float().numpy()
        raises = yn >= _Y8
        self.yn, self.side = yn, np.where(raises, 255, 0).astype(np.uint8)
        self.room = np.where(raises, 255 - yn, yn).astype(np.float32)  # > 0: no 0/0 for a grey pixel
        shift = np.round(yn - _Y8)
        self.up, self.down = np.clip(shift, 0, 255).astype(np.uint8), np.clip(-shift, 0, 255).astype(np.uint8)
        # Measured from the end it moves toward, the channel that clips first sits at v = max
        # (raising) or 255 - min (lowering), luma at base; it clips when v + ceil(yn - y) > 255,
        # or min + floor(yn - y) < 0: v > limit.
        i = np.arange(cs.LUT_SIZE)
        self.base = np.where(raises, i, cs.LUT_SIZE - 1 - i).astype(np.uint16)
        self.limit = np.where(raises, 255 - np.ceil(yn - _Y8), 255 + np.floor(yn - _Y8)).clip(0, 255).astype(np.uint8)

    def band(self, src: np.ndarray, c: list[np.ndarray], y16: np.ndarray, out: np.ndarray) -> None:
        v = cv2.bitwise_not(cv2.min(cv2.min(c[0], c[1]), c[2]))
        cv2.copyTo(cv2.max(cv2.max(c[0], c[1]), c[2]), cv2.LUT(y16, self.side), v)
        clips = cv2.compare(v, cv2.LUT(y16, self.limit), cv2.CMP_GT)
        n = cv2.countNonZero(clips)
        if n > _DENSE * clips.size:
            cv2.merge(self.exact(c, y16, v), dst=out)
            return
        up, down = cv2.LUT(y16, self.up), cv2.LUT(y16, self.down)  # one is 0: c + up - down saturates as c + shift
        cv2.merge([cv2.subtract(cv2.add(p, up), down) for p in c], dst=out)
        if n:
            at = cv2.findNonZero(clips)[:, 0]
            i = at[:, 1] * y16.shape[1] + at[:, 0]
            rgb = cv2.split(src.reshape(-1, 3).take(i, axis=0)[None])
            out.reshape(-1, 3)[i] = cv2.merge(self.exact(rgb, y16.reshape(-1).take(i)[None], v.reshape(-1).take(i)[None]))[0]

    def exact(self, c: Sequence[np.ndarray], y16: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
        """The move in float32 for planes `c` (any shape) with their 16-bit luma and clipping end v."""
        yn, y = cv2.LUT(y16, self.yn), cv2.LUT(y16, _Y8)
        gap = cv2.LUT(cv2.subtract(cv2.LUT(v, _E16), cv2.LUT(y16, self.base)), _Y8)  # |end - y|, exactly
        # A grey pixel divides by zero: +inf, so s = 1 and it lands on yn exactly.
        s = cv2.min(cv2.divide(cv2.LUT(y16, self.room), gap), 1.0)
        k = cv2.subtract(yn, cv2.multiply(y, s))
        return [cv2.add(cv2.multiply(p, s, dtype=cv2.CV_32F), k, dtype=cv2.CV_8U) for p in c]


def render_source(source: LoadedImage, recipe: Recipe, masks: dict[str, torch.Tensor] | None = None,
                  bit_depth: int | None = None) -> torch.Tensor | np.ndarray:
    """The recipe rendered on a loaded photo: 8-bit pixels by `render8` when the source is 8-bit
    colour without alpha, the output is 8-bit and `renders8(recipe)`; else the float path
    (`apply_recipe`). Either result goes to `tools.io.save_image`."""
    if source.pixels8 is not None and source.alpha is None and (bit_depth or source.bit_depth) == 8:
        out = render8(source.pixels8, recipe)
        if out is not None:
            return out
    return apply_recipe(source.image, recipe, masks)
