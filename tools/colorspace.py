"""Colour-space conversions and the CPU/OpenCV bridge every tool family shares.

Backend policy (measured: OpenCV beats Kornia float32 on the CPU by 4-70x for
most ops): an op runs through OpenCV when the image is on the CPU and no
gradient is needed; otherwise through torch/Kornia (GPU, differentiable).
Both paths agree within a tolerance that tests check.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# Rec. 709 / sRGB primaries: relative luminance of *linear* RGB.
LUMA = (0.2126, 0.7152, 0.0722)


def use_cv(image: torch.Tensor) -> bool:
    """True when the fast OpenCV path applies: CPU tensor, no autograd needed."""
    return image.device.type == "cpu" and not (image.requires_grad and torch.is_grad_enabled())


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0,1] to linear light (IEC 61966-2-1)."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055).clamp_min(1e-12) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light to sRGB encoding; input clamped to [0,1] first."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def luminance(image: torch.Tensor, linear: bool = False) -> torch.Tensor:
    """(B,1,H,W) Rec.709 luma of sRGB values (or relative luminance when linear=True)."""
    x = srgb_to_linear(image) if linear else image
    # Three multiply-adds instead of multiply-then-sum: one 12 MP temporary, not two.
    out = x[:, 0:1] * LUMA[0]
    out.add_(x[:, 1:2], alpha=LUMA[1]).add_(x[:, 2:3], alpha=LUMA[2])
    return out


# ------------------------------------------------------------------ numpy bridge


def to_hwc(image: torch.Tensor) -> list[np.ndarray]:
    """A CPU (B,3,H,W) tensor as a list of contiguous float32 HWC arrays."""
    x = image.detach().to(torch.float32)
    return [np.ascontiguousarray(x[i].permute(1, 2, 0).numpy()) for i in range(x.shape[0])]


def from_hwc(arrays: list[np.ndarray], like: torch.Tensor) -> torch.Tensor:
    """Stack HWC float arrays back into a (B,3,H,W) tensor shaped like `like`."""
    out = torch.stack([torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1) for a in arrays])
    return out.to(device=like.device, dtype=like.dtype).contiguous()


def per_plane(image: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply a 2-D float32 OpenCV function to every (H,W) plane without interleaving."""
    x = image.detach().to(torch.float32).contiguous()
    out = torch.empty_like(x)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[b, c] = torch.from_numpy(fn(x[b, c].numpy()))
    return out.to(image.dtype)


def per_image(image: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply an HWC float32 OpenCV function to every image of the batch."""
    return from_hwc([fn(a) for a in to_hwc(image)], image)


# ------------------------------------------------------------------ Lab and HSV


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB (B,3,H,W) in [0,1] to CIE L*a*b* (D65): L in [0,100], a/b roughly [-128,127]."""
    if use_cv(image):
        import cv2

        return per_image(image.clamp(0, 1), lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2Lab))
    import kornia.color

    return kornia.color.rgb_to_lab(image.clamp(0, 1))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* back to sRGB, clamped to [0,1]."""
    if use_cv(lab):
        import cv2

        return per_image(lab, lambda a: cv2.cvtColor(a, cv2.COLOR_Lab2RGB)).clamp(0, 1)
    import kornia.color

    return kornia.color.lab_to_rgb(lab, clip=True)


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """sRGB to HSV with hue in degrees [0,360), saturation and value in [0,1]."""
    if use_cv(image):
        import cv2

        return per_image(image.clamp(0, 1), lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2HSV))
    import kornia.color

    hsv = kornia.color.rgb_to_hsv(image.clamp(0, 1))
    return torch.cat([torch.rad2deg(hsv[:, :1]) % 360, hsv[:, 1:]], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV (hue in degrees) back to sRGB in [0,1]."""
    if use_cv(hsv):
        import cv2

        h = hsv.clone()
        h[:, 0] = h[:, 0] % 360
        return per_image(h, lambda a: cv2.cvtColor(a, cv2.COLOR_HSV2RGB)).clamp(0, 1)
    import kornia.color

    h = torch.cat([torch.deg2rad(hsv[:, :1] % 360), hsv[:, 1:].clamp(0, 1)], 1)
    return kornia.color.hsv_to_rgb(h).clamp(0, 1)
