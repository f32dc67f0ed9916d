"""Masks for the web app: the brush layer drawn in the browser, or a detector from tools.masks.

A mask is made on the working preview the editor shows and handed to `Session.add_mask`,
which resamples it to the full-size original (white = edit).
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np
import torch

from agent.errors import UserError

KINDS = ("brush", "face", "subject", "sky", "colour")


def painted(editor: dict[str, Any] | None) -> np.ndarray | None:
    """The strokes of every drawn layer as one (H,W) float array in [0,1]; None when nothing is drawn."""
    out = None
    for layer in (editor or {}).get("layers") or []:
        a = np.asarray(layer)
        if a.ndim != 3:
            continue
        # the brush paints translucent so the photo shows through: any paint selects fully
        cover = ((a[..., 3] if a.shape[2] == 4 else a.max(axis=2)) > 0).astype(np.float64)
        out = cover if out is None else np.maximum(out, cover)
    return out if out is not None and out.max() > 0 else None


def _fit(strokes: np.ndarray, image: torch.Tensor) -> torch.Tensor:
    import cv2

    h, w = image.shape[-2:]
    if strokes.shape != (h, w):
        strokes = cv2.resize(strokes.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(np.ascontiguousarray(strokes, dtype=np.float32))[None, None].clamp(0, 1)


def hue_of(colour: str) -> float:
    """A '#rrggbb' (or 'rgb(r, g, b)') colour's hue in degrees."""
    text = (colour or "").strip()
    try:
        if text.startswith("#") and len(text) == 7:
            r, g, b = (int(text[i:i + 2], 16) / 255 for i in (1, 3, 5))
        else:
            r, g, b = (float(v) / 255 for v in text[text.index("(") + 1:text.index(")")].split(",")[:3])
    except ValueError:
        raise UserError(f"colour {colour!r} is not understood; pick one with the colour picker") from None
    return colorsys.rgb_to_hsv(r, g, b)[0] * 360


def make_mask(kind: str, image: torch.Tensor, strokes: np.ndarray | None = None, colour: str = "#3070d0") -> torch.Tensor:
    """A (1,1,H,W) mask on `image` (the preview): the strokes, or a detector ('subject' uses the
    strokes' bounding box, else the middle 80 % of the frame)."""
    from tools import masks as M

    if kind not in KINDS:
        raise UserError(f"mask kind {kind!r} is not known; use one of {', '.join(KINDS)}")
    h, w = image.shape[-2:]
    if kind == "brush":
        if strokes is None:
            raise UserError("draw over the photo with the brush first (white = the part to edit)")
        m = _fit(strokes, image)
    elif kind == "face":
        m = M.faces(image)
    elif kind == "sky":
        m = M.sky(image)
    elif kind == "colour":
        m = M.color_range(image, hue_of(colour))
    else:
        box = (0.1 * w, 0.1 * h, 0.8 * w, 0.8 * h)
        if strokes is not None:
            ys, xs = np.nonzero(_fit(strokes, image)[0, 0].numpy() > 0.5)
            if len(xs):
                box = (xs.min(), ys.min(), max(2, xs.max() - xs.min()), max(2, ys.max() - ys.min()))
        m = M.subject(image, *(float(v) for v in box))
    if float(m.max()) <= 0:
        raise UserError(f"the {kind} mask selects nothing here; try another kind or draw it with the brush")
    return m


def free_name(kind: str, taken: set[str] | dict[str, Any]) -> str:
    """'brush', then 'brush-2', ...: a new name, since a stored recipe refers to its masks by name."""
    if kind not in taken:
        return kind
    n = 2
    while f"{kind}-{n}" in taken:
        n += 1
    return f"{kind}-{n}"
