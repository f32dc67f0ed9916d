"""Inversion: find the latent whose generated face best matches an aligned face crop.

Warm start, then refinement. The warm start is the shipped encoder (`encoder.py`, trained
on the generator's own samples) for the embedded generator, else the mean latent. Then
Adam runs on a batch of restarts (the warm start and jittered copies of it) and, after
`split` of the steps, only the best restart of each image continues at a lower rate.
The loss is pixel MSE + SSIM + low-frequency MSE (8x8 means: keeps overall colour and
lighting right early, when fine detail is still wrong); `known` masks out pixels the loss
must ignore (masked inversion, for inpainting). A wall-clock budget stops it early.

`invert_aligned` does the same for a face in a photo while fitting the crop too: the
generator's frame is drawn into a fixed photo window (so every frame is judged on the same
photo pixels) and Adam moves the latent and the frame (shift, scale, turn) together; after
a first round the encoder re-reads the face at the new frame and races round 1's latent.

The result carries PSNR and SSIM of the reconstruction over the known pixels, so the
agent can tell how faithful an edit built on it will be.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def _one_thread_on_cpu(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an inversion with one torch thread on the CPU.

    The generator is tiny (64 px, a few rows): one thread is about as fast on idle cores, and
    far faster on shared ones, where torch's pool thrashes. Measured on the astronaut, load ~4
    on 2 cores, 9 s budget: 2 threads managed 15 Adam steps (20.1 dB), 1 thread 197 (22.2 dB).
    The thread count is process-wide, so it is restored afterwards.
    """
    @functools.wraps(fn)
    def run(backend: Backend, *args: Any, **kwargs: Any) -> Any:
        n = torch.get_num_threads()
        if backend.device.type != "cpu" or n == 1:
            return fn(backend, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(backend, *args, **kwargs)
        finally:
            torch.set_num_threads(n)

    return run


@_one_thread_on_cpu
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


# ----------------------------------------------------------------- inversion with the framing refined


@dataclass
class Align:
    """Knobs of `invert_aligned`: the frame is fitted together with the latent."""

    context: float = 1.25  # the fixed photo window the loss is judged in, as a multiple of the start crop
    res: int = 128  # its sampling: finer than the generator, so a sub-pixel shift shows
    lr: float = 0.004  # Adam's rate for the frame (shift in crop sizes, log-scale, angle in radians)
    scales: tuple[float, ...] = (0.9, 1.0, 1.1)  # round 1's candidate frames: scales x shifts of the start crop
    shift: float = 0.14
    search: float = 0.3  # fraction of the steps (and seconds) spent finding the frame before re-encoding there
    max_angle: float = 0.25  # radians (~14 deg): the frame is a face box, not free to spin


ALIGN = Align()


def _warp(faces: Tensor, theta: Tensor, xs: Tensor, ys: Tensor, c0: tuple[float, float], s0: float) -> Tensor:
    """Draw (N,C,R,R) generator frames into the fixed window: pixel (xs, ys) of the photo looks up the
    frame placed at centre c0 + s0*(dx, dy), size s0*exp(ls), turned by angle; theta (N,4) = dx, dy, ls, angle."""
    dx, dy, ls, a = (theta[:, i, None, None] for i in range(4))
    s = s0 * torch.exp(ls)
    px, py = xs[None] - (c0[0] + s0 * dx), ys[None] - (c0[1] + s0 * dy)
    u = (torch.cos(a) * px + torch.sin(a) * py) / s
    v = (-torch.sin(a) * px + torch.cos(a) * py) / s
    grid = torch.stack([2 * u, 2 * v], -1)
    return F.grid_sample(faces, grid, mode="bicubic", padding_mode="zeros", align_corners=False)


@_one_thread_on_cpu
def invert_aligned(backend: Backend, image: Tensor, crop, known: Tensor | None = None,  # type: ignore[no-untyped-def]
                   settings: Settings | None = None, align: Align | None = None, seed: int = 0):
    """Invert the face in `crop` of the (3,H,W) photo, refining the crop (sub-pixel shift, scale, small turn).

    The loss is judged in a fixed photo window around the start crop (the same photo pixels
    whatever the frame, so a tighter frame cannot look easier), over the face ellipse of the
    start crop: the generator's frame is drawn into that window (bicubic, as `face.paste`
    draws it back) and Adam moves the latent and the frame together. Returns (crop, Inversion):
    the refined `face.Crop`, and the inversion with `recon` in the generator's frame and its
    PSNR/SSIM over the window's face ellipse, in photo space.
    """
    from tools.gan import face as facelib

    s, al = settings or DEFAULTS, align or ALIGN
    t0 = time.monotonic()
    r = backend.resolution
    window = facelib.Crop(crop.x0 - (al.context - 1) * crop.size / 2, crop.y0 - (al.context - 1) * crop.size / 2,
                          crop.size * al.context)
    img = image.to(backend.device).float()
    target = facelib.cut(img, window, al.res)
    xs, ys = facelib.crop_points(window, al.res, backend.device)
    c0, s0 = crop.centre, float(crop.size)
    ell = facelib.ellipse_mask(r, device=backend.device)
    zero = torch.zeros(1, 4, device=backend.device)
    weight = _warp(ell, zero, xs, ys, c0, s0)
    kn = known.to(backend.device).float() if known is not None else None

    def loss_of(z: Tensor, theta: Tensor) -> Tensor:
        drawn = _warp(backend.synthesize(z), theta, xs, ys, c0, s0)
        w = weight if kn is None else weight * _warp(kn.expand(len(z), -1, -1, -1), theta, xs, ys, c0, s0)
        return _loss(drawn, target.expand(len(z), -1, -1, -1), w.expand(len(z), -1, -1, -1), s)

    def optimiser(z: Tensor, theta: Tensor) -> torch.optim.Optimizer:
        return torch.optim.Adam([{"params": [z], "lr": s.lr, "base": s.lr},
                                 {"params": [theta], "lr": al.lr, "base": al.lr}])

    lim = torch.tensor([0.3, 0.3, 0.3, al.max_angle], device=backend.device)

    def refine(z: Tensor, theta: Tensor, steps: int, seconds: float, keep_at: int) -> tuple[Tensor, Tensor, int]:
        """Adam on rows of (z, theta) under a cosine schedule; after `keep_at` steps only the best row goes on."""
        t1 = time.monotonic()
        z, theta = z.detach().clone().requires_grad_(True), theta.detach().clone().requires_grad_(True)
        opt = optimiser(z, theta)
        step = 0
        with torch.enable_grad():
            while step < steps and time.monotonic() - t1 < seconds:
                if step == keep_at and len(z) > 1:
                    with torch.no_grad():
                        best = int(loss_of(z, theta).argmin())
                    z = z.detach()[best : best + 1].clone().requires_grad_(True)
                    theta = theta.detach()[best : best + 1].clone().requires_grad_(True)
                    opt = optimiser(z, theta)
                progress = min(1.0, max(step / steps, (time.monotonic() - t1) / seconds))
                for group in opt.param_groups:
                    group["lr"] = group["base"] * (0.5 * (1 + math.cos(math.pi * progress)) + 0.02)
                loss = loss_of(z, theta)
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
                with torch.no_grad():
                    theta.copy_(torch.maximum(torch.minimum(theta, lim), -lim))
                step += 1
        with torch.no_grad():
            best = int(loss_of(z, theta).argmin())
        return z.detach()[best : best + 1], theta.detach()[best : best + 1], step

    # Round 1 finds the frame. Its restarts: the frames among a few scales and shifts of the
    # start crop where the encoder's reading, drawn into the window, fits best (a coarse judge,
    # but in photo space: it only has to land within reach of the gradient).
    grid = torch.tensor([[dx, dy, math.log(sc), 0.0] for sc in al.scales
                         for dx, dy in ((0, 0), (-al.shift, 0), (al.shift, 0), (0, -al.shift), (0, al.shift))],
                        device=backend.device)
    with torch.no_grad():
        zs, how = warm_start(backend, torch.cat([facelib.cut(img, _crop_of(t.tolist(), c0, s0), r) for t in grid]))
        top = loss_of(zs, grid).argsort()[: max(1, s.restarts)]
    n1 = max(1, round(s.steps * al.search))
    z, theta, done = refine(zs[top], grid[top], n1, s.seconds * al.search, n1)
    # Round 2: the frame has moved, so the encoder (which saw the start crop) may read the face
    # better there: re-encode at the new frame and race that against round 1's latent.
    with torch.no_grad():
        z2, _ = warm_start(backend, facelib.cut(img, _crop_of(theta[0].tolist(), c0, s0), r))
    n2 = s.steps - n1
    z, theta, more = refine(torch.cat([z, z2]), theta.repeat(2, 1), n2, s.seconds - (time.monotonic() - t0),
                            round(n2 * s.split))
    step = done + more
    with torch.no_grad():
        th = theta[0].tolist()
        recon = backend.synthesize(z)
        drawn = _warp(recon, theta, xs, ys, c0, s0)
    out = _crop_of(th, c0, s0)
    w = (weight > 0.5).float()
    psnr, ssim = quality(drawn, target, w)
    return out, Inversion(z, recon, psnr, ssim, time.monotonic() - t0, step, how,
                          extra={"frame": th})


def _crop_of(theta: list[float], c0: tuple[float, float], s0: float):  # type: ignore[no-untyped-def]
    from tools.gan.face import Crop

    size = s0 * math.exp(theta[2])
    cx, cy = c0[0] + s0 * theta[0], c0[1] + s0 * theta[1]
    return Crop(cx - size / 2, cy - size / 2, size, math.degrees(theta[3]))
