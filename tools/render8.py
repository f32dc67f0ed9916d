"""The 8-bit render path: a recipe of per-channel curves on an 8-bit photo, as one cv2.LUT.

An 8-bit source holds only 256 values per channel, so a recipe whose steps are all
per-channel curves (exposure, contrast, curves, levels, whites/blacks, white balance...,
unmasked) is fully described by what it does to those 256 values. `tables8` finds out by
replaying the recipe with `apply_recipe` itself on a 256-pixel ramp, so the float path and
this one compute every value the same way; saved at 8 bits the two give the same pixels
(tests/tools/test_render8.py checks equality). A 12 MP render is then one uint8 cv2.LUT,
the cost of the OpenCV recipe an OpenCV user would write (`make bench`, "8-bit" rows),
against four times that for float32 in and out. Any other recipe (a colour, spatial or
masked step), a 16-bit source or a 16-bit output takes the float path.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from tools.io import LoadedImage, to_array
from tools.recipe import Recipe, apply_recipe


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
    return None if table is None else cv2.LUT(np.ascontiguousarray(pixels), table)


def render_source(source: LoadedImage, recipe: Recipe, masks: dict[str, torch.Tensor] | None = None,
                  bit_depth: int | None = None) -> torch.Tensor | np.ndarray:
    """The recipe rendered on a loaded photo: 8-bit pixels by `render8` when the source is 8-bit
    colour without alpha, the output is 8-bit and the recipe per-channel only; else the float
    path (`apply_recipe`). Either result goes to `tools.io.save_image`."""
    if source.pixels8 is not None and source.alpha is None and (bit_depth or source.bit_depth) == 8:
        out = render8(source.pixels8, recipe)
        if out is not None:
            return out
    return apply_recipe(source.image, recipe, masks)
