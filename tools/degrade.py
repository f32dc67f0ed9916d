"""Known degradations of clean photos: the ground truth for tests, the demo and eval suites.

Each takes and returns a (B,3,H,W) sRGB tensor in [0,1]. Physically linear ones
(exposure, cast) act in linear light, as a camera would have got them wrong.
"""

from __future__ import annotations

import torch

from tools.colorspace import linear_to_srgb, srgb_to_linear


def underexpose(image: torch.Tensor, stops: float) -> torch.Tensor:
    """Darken (stops > 0) or brighten (stops < 0) by scaling linear light by 2**-stops."""
    return linear_to_srgb(srgb_to_linear(image) * 2.0 ** (-stops))


def color_cast(image: torch.Tensor, r: float = 1.0, g: float = 1.0, b: float = 1.0) -> torch.Tensor:
    """Multiply linear R, G, B by the given gains (b > 1: a blue cast; r > 1, b < 1: yellow/warm)."""
    gains = torch.tensor([r, g, b], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return linear_to_srgb(srgb_to_linear(image) * gains)


def low_contrast(image: torch.Tensor, factor: float = 0.6) -> torch.Tensor:
    """Compress tones toward mid-grey: out = 0.5 + factor * (in - 0.5)."""
    return (0.5 + factor * (image - 0.5)).clamp(0, 1)


def add_noise(image: torch.Tensor, sigma: float = 0.03, seed: int = 0) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation `sigma` (seeded, reproducible)."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(image.shape, generator=g, dtype=image.dtype).to(image.device)
    return (image + sigma * noise).clamp(0, 1)


def haze(image: torch.Tensor, transmission: float = 0.6, airlight: float = 0.9) -> torch.Tensor:
    """Koschmieder haze with constant transmission: I = J*t + A*(1-t)."""
    return (image * transmission + airlight * (1 - transmission)).clamp(0, 1)


def desaturate(image: torch.Tensor, amount: float = 0.5) -> torch.Tensor:
    """Blend toward Rec.709 luma grey by `amount` (1 = black and white)."""
    w = torch.tensor([0.2126, 0.7152, 0.0722], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    grey = (image * w).sum(1, keepdim=True)
    return (image + amount * (grey - image)).clamp(0, 1)


def blur(image: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of standard deviation `sigma` px (defocus / camera shake stand-in)."""
    import kornia.filters

    k = 2 * max(1, round(3 * sigma)) + 1
    return kornia.filters.gaussian_blur2d(image, (k, k), (sigma, sigma), border_type="reflect").clamp(0, 1)


def jpeg(image: torch.Tensor, quality: int = 20) -> torch.Tensor:
    """Round-trip through an 8-bit JPEG at `quality` (1-100): blocking and ringing artefacts."""
    import cv2
    import numpy as np

    out = []
    for x in image.detach().cpu():
        arr = (x.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(arr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError(f"jpeg: OpenCV could not encode at quality {quality}")
        dec = cv2.cvtColor(cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append(torch.from_numpy(dec).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out).to(image.device, image.dtype)


def camera_noise(image: torch.Tensor, shot: float = 0.006, read: float = 4e-5, quality: int = 90,
                 seed: int = 0) -> torch.Tensor:
    """A camera's noise: Poisson-Gaussian in linear light, then the sRGB tone curve, then JPEG.

    Variance shot * signal + read per linear channel value (the heteroscedastic model of
    Foi et al., 2008, with a Gaussian stand-in for Poisson), independent per channel as on
    a demosaiced sensor; quality 100 skips the JPEG.
    """
    g = torch.Generator().manual_seed(seed)
    lin = srgb_to_linear(image)
    noise = torch.randn(image.shape, generator=g, dtype=image.dtype).to(image.device)
    out = linear_to_srgb((lin + (shot * lin + read).sqrt() * noise).clamp(0, 1))
    return out if quality >= 100 else jpeg(out, quality)


def low_light(image: torch.Tensor, stops: float = 3.0, shot: float = 0.006, read: float = 4e-5,
              quality: int = 90, seed: int = 0) -> torch.Tensor:
    """A photo taken `stops` EV too dark: linear light scaled by 2**-stops, then `camera_noise`."""
    return camera_noise(underexpose(image, stops), shot, read, quality, seed)


def downscale(image: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Each side divided by `factor` with area averaging (OpenCV's INTER_AREA): the input of an upscale."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    return F.interpolate(image, size=(max(1, h // factor), max(1, w // factor)), mode="area").clamp(0, 1)
