"""Small image helpers for the agent: previews as data URLs for vision models, contact sheets."""

from __future__ import annotations

import base64

import cv2
import numpy as np
import torch

from agent.state import preview_of
from tools.io import to_array, to_tensor


def data_url(image: torch.Tensor, long_side: int = 768, quality: int = 85) -> str:
    """A (1,3,H,W) image as a JPEG data URL, downscaled for a vision model's context."""
    arr = to_array(preview_of(image[:1], long_side), 8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the preview as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def contact_sheet(items: list[tuple[torch.Tensor, str, bool]], thumb: int = 192, columns: int = 6) -> torch.Tensor:
    """(image, label, framed) items as labelled thumbnails in a grid, framed ones outlined in red."""
    cols = max(1, min(columns, len(items)))
    tiles = []
    for image, label, framed in items:
        t = to_array(preview_of(image, thumb), 8)
        tile = np.full((thumb + 28, thumb + 8, 3), 255, np.uint8)
        h, w = t.shape[:2]
        y, x = 4 + (thumb - h) // 2, 4 + (thumb - w) // 2
        if framed:
            tile[y - 3:y + h + 3, x - 3:x + w + 3] = (220, 40, 40)
        tile[y:y + h, x:x + w] = t
        cv2.putText(tile, label, (6, thumb + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.concatenate([np.concatenate(tiles[i:i + cols], 1) for i in range(0, len(tiles), cols)], 0)
    return to_tensor(grid)
