"""Inversion: find the latent whose generated face best matches an aligned face crop.

Warm start, then refinement. The warm start is the shipped encoder (`encoder.py`, trained
on the generator's own samples) for the embedded generator, else the mean latent. Then
Adam runs on a batch of restarts (the warm start and jittered copies of it) and, after
`split` of the steps, only the best restart of each image continues at a lower rate.
The loss is pixel MSE + SSIM + low-frequency MSE (8x8 means: keeps overall colour and
lighting right early, when fine detail is still wrong); `known` masks out pixels the loss
must ignore (masked inversion, for inpainting). A wall-clock budget stops it early.

The result carries PSNR and SSIM of the reconstruction over the known pixels, so the
agent can tell how faithful an edit built on it will be.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from tools.gan.backends import Backend


@dataclass
class Settings:
    """Inversion knobs. Defaults: ~33-36 dB on generated faces in 200 steps (see benchmarks/gan.py)."""

    steps: int = 200
    restarts: int = 2
    seconds: float = 9.0  # wall-clock budget per call: the schedule compresses to fit, then stops
    lr: float = 0.04
    split: float = 0.4  # fraction of the steps run with all restarts
    jitter: float = 0.35  # std of the noise added to the warm start for restarts 2..K
    w_ssim: float = 0.2
    w_low: float = 1.0


DEFAULTS = Settings()


@dataclass
class Inversion:
    latents: Tensor  # (N, D)
    recon: Tensor  # (N, 3, R, R) in [0, 1]
    psnr: list[float]
    ssim: list[float]
    seconds: float
    steps: int
    warm_start: str
    extra: dict = field(default_factory=dict)


def _ssim_map(a: Tensor, b: Tensor) -> Tensor:
    import kornia.metrics

    return kornia.metrics.ssim(a, b, 7)


def _box_ssim_map(a: Tensor, b: Tensor, k: int = 7) -> Tensor:
    """SSIM with a k x k box window: half the cost of the Gaussian one, same optimum; loss only."""
    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, k, 1, k // 2, count_include_pad=False)

    ma, mb = mean(a), mean(b)
    va, vb, cov = mean(a * a) - ma * ma, mean(b * b) - mb * mb, mean(a * b) - ma * mb
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def _loss(x: Tensor, target: Tensor, known: Tensor | None, s: Settings) -> Tensor:
    """Per-sample loss (N,)."""
    w = known if known is not None else torch.ones_like(x[:, :1])
    denom = w.sum((1, 2, 3)).clamp_min(1) * 3
    mse = ((x - target) ** 2 * w).sum((1, 2, 3)) / denom
    ssim = (_box_ssim_map(x, target) * w).sum((1, 2, 3)) / denom
    k = max(1, x.shape[-1] // 8)
    wl = F.avg_pool2d(w, k)
    low = ((F.avg_pool2d(x * w, k) - F.avg_pool2d(target * w, k)) ** 2).sum((1, 2, 3)) / (wl.sum((1, 2, 3)) * 3).clamp_min(1e-6)
    return mse + s.w_ssim * (1 - ssim) + s.w_low * low


def quality(x: Tensor, target: Tensor, known: Tensor | None = None) -> tuple[list[float], list[float]]:
    """PSNR (dB) and SSIM per image, over the known pixels."""
    with torch.no_grad():
        w = known if known is not None else torch.ones_like(x[:, :1])
        denom = w.sum((1, 2, 3)).clamp_min(1) * 3
        mse = ((x - target) ** 2 * w).sum((1, 2, 3)) / denom
        ssim = (_ssim_map(x, target) * w).sum((1, 2, 3)) / denom
        psnr = [min(99.0, 10 * math.log10(1 / max(float(m), 1e-10))) for m in mse]
    return psnr, [float(v) for v in ssim]


def warm_start(backend: Backend, target: Tensor) -> tuple[Tensor, str]:
    if backend.name == "dcgan":
        from tools.gan.encoder import load_encoder

        enc = load_encoder()
        if enc is not None:
            with torch.no_grad():
                return enc.to(target.device)(target).to(backend.device), "encoder"
    return backend.mean_latent().expand(target.shape[0], -1).clone(), "mean"


def invert(backend: Backend, target: Tensor, known: Tensor | None = None,
           settings: Settings | None = None, seed: int = 0) -> Inversion:
    """Invert (N,3,R,R) crops in [0,1] at the backend's resolution; `known` (N,1,R,R) weights the loss."""
    s = settings or DEFAULTS
    t0 = time.monotonic()
    n, r = target.shape[0], backend.resolution
    if target.shape[-2:] != (r, r):
        raise ValueError(f"inversion needs {r}x{r} crops, got {tuple(target.shape[-2:])}")
    target = target.to(backend.device).float()
    known = known.to(backend.device).float() if known is not None else None
    z0, how = warm_start(backend, target)
    k = max(1, s.restarts)
    g = torch.Generator().manual_seed(seed)
    jitter = torch.randn(k - 1, *z0.shape, generator=g).to(z0) * s.jitter * z0.std()
    z = torch.cat([z0[None], z0[None] + jitter]).reshape(k * n, -1)  # restart-major
    tk = target.repeat(k, 1, 1, 1)
    kk = known.repeat(k, 1, 1, 1) if known is not None else None

    z = z.detach().requires_grad_(True)
    first = max(1, round(s.steps * s.split)) if k > 1 else 0
    opt = torch.optim.Adam([z], lr=s.lr)
    step = 0
    with torch.enable_grad():
        while step < first and time.monotonic() - t0 < s.seconds * s.split:
            _set_lr(opt, s.lr, max(step / s.steps, (time.monotonic() - t0) / s.seconds))
            loss = _loss(backend.synthesize(z), tk, kk, s)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            step += 1
        with torch.no_grad():
            per = _loss(backend.synthesize(z), tk, kk, s).reshape(k, n)
            best = per.argmin(0)
            z = z.detach().reshape(k, n, -1)[best, torch.arange(n)].clone().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=s.lr)
        while step < s.steps and time.monotonic() - t0 < s.seconds:
            _set_lr(opt, s.lr, max(step / s.steps, (time.monotonic() - t0) / s.seconds))
            loss = _loss(backend.synthesize(z), target, known, s)
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
            step += 1
    z = z.detach()
    with torch.no_grad():
        recon = backend.synthesize(z)
    psnr, ssim = quality(recon, target, known)
    return Inversion(z, recon, psnr, ssim, time.monotonic() - t0, step, how)


def _set_lr(opt: torch.optim.Optimizer, base: float, progress: float) -> None:
    # Cosine decay over the run's progress (steps or time, whichever is further along):
    # big early moves, precise late ones, even when the time budget ends the run early.
    lr = base * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))) + base * 0.02
    for group in opt.param_groups:
        group["lr"] = lr
