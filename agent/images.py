"""Small image helpers for the agent: previews as data URLs for vision models."""

from __future__ import annotations

import base64

import torch


def data_url(image: torch.Tensor, long_side: int = 768, quality: int = 85) -> str:
    """A (1,3,H,W) image as a JPEG data URL, downscaled for a vision model's context."""
    import cv2

    from agent.state import preview_of
    from tools.io import to_array

    arr = to_array(preview_of(image[:1], long_side), 8)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the preview as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")
