"""The photo prior: from a preview and its measured Stats, the correction that makes a photo natural.

A small MLP (tools/data/prior.pt, trained by `make train-prior`, evals/prior_train.py) reads a
384 px preview as features (`features`: the `tools.analysis.Stats`, per-channel histograms and
percentiles, a*/b* percentiles, grey-world and white-patch ratios) and
answers a `Correction` in the registry tools' own units. It was trained self-supervised: train
photos degraded by `degrade` (the exact inverse of `correction_steps` up to clipping, noise, blur
and JPEG), clean ones included, so a photo's natural key is learned from content, not from a
fixed L* target.

    from tools.prior import estimate, correction_steps
    c = estimate(image)                     # (1,3,H,W) in [0,1] -> Correction(stops=0.8, ...)
    steps = correction_steps(c)             # [{"tool": "exposure", "params": {"stops": 0.8}}, ...]

Noise and blur are read where `Stats` reads them (long edge at most 1024 px, white-noise and
Gaussian scaling from the preview); the denoise and sharpen steps are for an image at that scale
(for a larger one, put the steps in a `Recipe` with `size` = that scale: pixel fields scale).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from tools import colorspace as cs
from tools.analysis import REF_EDGE, Stats, measure
from tools.color import white_balance_gains
from tools.degrade import add_noise, blur, color_cast, jpeg
from tools.registry import ToolError, check_image, get

WEIGHTS = Path(__file__).resolve().parent / "data" / "prior.pt"
WEIGHTS_SHA256 = "f464a10afe7c46f4f4d90bfc7f889013a0a9b14eef39b55bab01d86b467143f0"
PREVIEW_EDGE = 384  # px, long edge of the preview the prior reads (measure() there: ~30 ms)
FEATURES_VERSION = 2  # 1 had an 8x8 L*a*b* thumbnail too: it let the network learn photos by heart


class PriorError(RuntimeError):
    """The prior's weights are missing or not the ones this code was written for."""


class Correction(BaseModel):
    """The correction to APPLY to a photo, in the registry tools' own parameter units.

    Steps, in this order (the inverse of `degrade`): denoise, sharpen, white_balance(temperature,
    tint), exposure(stops), levels(black, white, midtone), contrast(amount), saturation(amount).
    """

    model_config = ConfigDict(frozen=True)

    stops: float = Field(0.0, description="exposure(stops): + brightens")
    temperature: float = Field(0.0, description="white_balance(temperature): + warms")
    tint: float = Field(0.0, description="white_balance(tint): + toward magenta")
    contrast: float = Field(0.0, description="contrast(amount)")
    saturation: float = Field(0.0, description="saturation(amount)")
    black: float = Field(0.0, description="levels(black): input black point, 0..1")
    white: float = Field(1.0, description="levels(white): input white point, 0..1")
    midtone: float = Field(1.0, description="levels(midtone): midtone gamma, above 1 brightens")
    noise: float = Field(0.0, description="noise sigma of the input (0..1 values) at the Stats scale; 0 = clean")
    blur: float = Field(0.0, description="Gaussian blur sigma of the input, px at the Stats scale; 0 = sharp")


# name -> (scale the network predicts it in, neutral value); `midtone` is predicted as log(midtone)
TARGETS: dict[str, tuple[float, float]] = {
    "stops": (2.5, 0.0),
    "temperature": (60.0, 0.0),
    "tint": (40.0, 0.0),
    "contrast": (60.0, 0.0),
    "saturation": (100.0, 0.0),
    "black": (0.12, 0.0),
    "white": (0.15, 1.0),
    "midtone": (0.35, 1.0),
    "noise": (0.06, 0.0),
    "blur": (2.5, 0.0),
}
# Below these a step is not worth a pass (visually nil) and is left out of the recipe.
NEGLIGIBLE = {"stops": 0.05, "temperature": 2.0, "tint": 2.0, "contrast": 3.0, "saturation": 3.0,
              "black": 0.005, "white": 0.005, "midtone": 0.02}
DENOISE_FROM, DENOISE_PER_SIGMA = 0.01, 10.0  # nlm strength = 10 x sigma (h = 24 s ~ the 8-bit L noise)
SHARPEN_FROM = 0.7  # px of blur under which a photo is left as it is


# ----------------------------------------------------------------- the correction and its inverse


def correction_steps(c: Correction, strength: float = 1.0) -> list[dict[str, Any]]:
    """Recipe steps [{"tool", "params"}] that apply `c` (times `strength`, 0..1), near-zero ones skipped.

    Example: correction_steps(Correction(stops=1.0)) == [{"tool": "exposure", "params": {"stops": 1.0}}]
    """
    s = float(strength)
    steps: list[dict[str, Any]] = []
    if c.noise * s >= DENOISE_FROM:
        steps.append({"tool": "denoise", "params": {"method": "nlm", "strength": _clip(DENOISE_PER_SIGMA * c.noise * s, 0, 1)}})
    if c.blur * s >= SHARPEN_FROM:
        steps.append({"tool": "sharpen", "params": {"amount": _clip(s, 0, 5), "radius": _clip(c.blur, 0.3, 10)}})
    t, tint = _clip(c.temperature * s, -100, 100), _clip(c.tint * s, -100, 100)
    if abs(t) >= NEGLIGIBLE["temperature"] or abs(tint) >= NEGLIGIBLE["tint"]:
        steps.append({"tool": "white_balance", "params": {"temperature": t, "tint": tint}})
    if abs(c.stops * s) >= NEGLIGIBLE["stops"]:
        steps.append({"tool": "exposure", "params": {"stops": _clip(c.stops * s, -4, 4)}})
    black = _clip(c.black * s, 0, 0.45)
    white = _clip(1 - (1 - c.white) * s, 0.55, 1)
    midtone = _clip(c.midtone**s, 0.1, 10)
    if black >= NEGLIGIBLE["black"] or 1 - white >= NEGLIGIBLE["white"] or abs(midtone - 1) >= NEGLIGIBLE["midtone"]:
        steps.append({"tool": "levels", "params": {"black": black, "white": white, "midtone": midtone}})
    if abs(c.contrast * s) >= NEGLIGIBLE["contrast"]:
        steps.append({"tool": "contrast", "params": {"amount": _clip(c.contrast * s, -100, 100)}})
    if abs(c.saturation * s) >= NEGLIGIBLE["saturation"]:
        steps.append({"tool": "saturation", "params": {"amount": _clip(c.saturation * s, -100, 100)}})
    return steps


def degrade(image: torch.Tensor, c: Correction, *, quality: int | None = None, seed: int = 0) -> torch.Tensor:
    """The damage that `correction_steps(c)` undoes: (1,3,H,W) clean photo -> degraded photo.

    Tone and colour are the exact inverses through the registry tools (saturation by 1/(1+s),
    contrast by -amount, levels' output range and midtone, exposure by -stops, linear gains
    1/white_balance_gains), lost only where they clip; then a Gaussian blur of `c.blur` px,
    Gaussian noise of `c.noise` and, with `quality`, a JPEG round trip.
    """
    x = image
    if c.saturation:
        x = _run(x, "saturation", amount=_clip(100 * (1 / (1 + c.saturation / 100) - 1), -100, 100))
    if c.contrast:
        x = _run(x, "contrast", amount=-c.contrast)
    if c.black or c.white != 1 or c.midtone != 1:
        x = _run(x, "levels", midtone=1 / c.midtone, out_black=c.black, out_white=c.white)
    if c.stops:
        x = _run(x, "exposure", stops=-c.stops)
    if c.temperature or c.tint:
        x = color_cast(x, *(1 / white_balance_gains(c.temperature, c.tint)).tolist()).clamp(0, 1)
    if c.blur > 0:
        x = blur(x, c.blur)
    if c.noise > 0:
        x = add_noise(x, c.noise, seed=seed)
    return jpeg(x, quality) if quality is not None else x


def _run(x: torch.Tensor, tool: str, **params: float) -> torch.Tensor:
    return get(tool)(x, params)


def _clip(v: float, lo: float, hi: float) -> float:
    return float(min(max(v, lo), hi))


# ----------------------------------------------------------------- features


def preview(image: torch.Tensor, edge: int = PREVIEW_EDGE) -> torch.Tensor:
    """The image area-downscaled to a long edge of `edge` px (as it is when already smaller)."""
    h, w = image.shape[-2:]
    f = edge / max(h, w)
    if f >= 1:
        return image
    return F.interpolate(image, size=(max(1, round(h * f)), max(1, round(w * f))), mode="area").clamp(0, 1)


_STAT_FIELDS = ("mean_L", "median_L", "p01_L", "p05_L", "p95_L", "p99_L", "clipped_shadows_pct",
                "clipped_highlights_pct", "rms_contrast", "colorfulness", "cast_a", "cast_b", "cast",
                "mean_saturation", "dynamic_range", "illuminant_a", "illuminant_b", "blur_sigma", "blockiness")
_BINS = 32
_QS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def features(small: torch.Tensor, stats: Stats | None = None) -> np.ndarray:
    """The prior's input vector of a (1,3,h,w) preview: Stats, histograms, percentiles, colour ratios.

    Distributions are read on every second pixel of every second row (~25k at 384 px): the
    same histograms within noise, a quarter of the cost.
    """
    s = stats or measure(small)
    x = small.float().clamp(0, 1)
    sub = x[:, :, ::2, ::2]
    lab = cs.rgb_to_lab(sub)[0].reshape(3, -1)
    px = sub[0].reshape(3, -1)
    lin = cs.srgb_to_linear(px)
    luma = (lin * torch.tensor(cs.LUMA)[:, None]).sum(0)
    n = px.shape[1]
    ranked = torch.cat([px, lab[1:] / 50, luma[None]]).sort(dim=1).values  # R, G, B, a*, b*, luma
    at = lambda qs: (torch.tensor(qs) * (n - 1)).round().long()  # noqa: E731
    rgb_q = ranked[:3, at(_QS)]
    ab_q = ranked[3:5, at((0.05, 0.25, 0.5, 0.75, 0.95))]
    mean = lin.mean(1).clamp_min(1e-4)
    bright = lin[:, luma >= ranked[5, at((0.95,))]].mean(1).clamp_min(1e-4)
    hists = torch.stack([torch.histc(c, _BINS, 0, 1) for c in px] + [torch.histc(lab[0], _BINS, 0, 100)])
    parts = [
        [getattr(s, k) for k in _STAT_FIELDS],
        [math.log(s.noise_sigma + 1e-4), math.log(s.sharpness + 1e-6)],
        rgb_q.reshape(-1).tolist(),
        ab_q.reshape(-1).tolist(),
        hists.div(n).sqrt().reshape(-1).tolist(),
        [math.log(mean[0] / mean[1]), math.log(mean[2] / mean[1]),
         math.log(bright[0] / bright[1]), math.log(bright[2] / bright[1])],
    ]
    return np.asarray([v for p in parts for v in p], dtype=np.float32)


# ----------------------------------------------------------------- the network


class PriorNet(torch.nn.Module):
    """Standardised features -> the correction, each target on its TARGETS scale.

    `shrink` pulls each output toward neutral by the factor that minimised its error on train
    photos held out of the fit: where the features cannot tell a cast from a scene's own colour,
    the prior learns to say little.
    """

    def __init__(self, n_in: int, hidden: int = 256, n_out: int = len(TARGETS), dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))
        self.register_buffer("shrink", torch.ones(n_out))
        self.body = torch.nn.Sequential(
            torch.nn.Linear(n_in, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(hidden, n_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body((x - self.mean) / self.std) * self.shrink


def to_targets(c: Correction) -> np.ndarray:
    """A correction as the network's outputs (each on its TARGETS scale)."""
    out = []
    for k, (scale, neutral) in TARGETS.items():
        v = getattr(c, k)
        out.append(math.log(v) / scale if k == "midtone" else (v - neutral) / scale)
    return np.asarray(out, dtype=np.float32)


def from_targets(y: np.ndarray | torch.Tensor) -> Correction:
    """The network's outputs as a correction, each value inside what its tool accepts."""
    vals = {}
    for (k, (scale, neutral)), v in zip(TARGETS.items(), np.asarray(y, dtype=np.float64).tolist(), strict=True):
        vals[k] = math.exp(v * scale) if k == "midtone" else neutral + v * scale
    vals["black"] = _clip(vals["black"], 0, 0.45)
    vals["white"] = _clip(vals["white"], 0.55, 1)
    vals["noise"] = max(vals["noise"], 0.0)
    vals["blur"] = max(vals["blur"], 0.0)
    return Correction(**vals)


def load(path: Path = WEIGHTS, sha256: str | None = WEIGHTS_SHA256) -> PriorNet:
    """The trained network; a one-line PriorError when the file is missing, altered or unreadable."""
    fix = "run `make train-prior` (about 20 min) or restore tools/data/prior.pt from git"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PriorError(f"photo prior weights missing at {path} ({exc.strerror}); {fix}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise PriorError(f"photo prior weights at {path} do not match the sha256 in tools/prior.py; {fix}")
    import io

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        net = PriorNet(int(state["mean"].numel()), hidden=int(state["body.0.weight"].shape[0]))
        net.load_state_dict(state)
    except Exception as exc:  # a truncated zip, a foreign file: all the same to the user
        raise PriorError(f"photo prior weights at {path} are unreadable ({type(exc).__name__}); {fix}") from None
    return net.eval()


@lru_cache(maxsize=1)
def _net() -> PriorNet:
    return load()


def estimate(image: torch.Tensor, net: PriorNet | None = None) -> Correction:
    """The correction that brings a (1,3,H,W) photo in [0,1] back to natural (any size).

    `net`: another trained network (`load(path, sha)`); default the shipped weights.
    Example: estimate(photo_two_stops_dark).stops ~ +2
    """
    check_image(image, "estimate")
    if image.shape[0] != 1:
        raise ToolError(f"estimate takes one image (1,3,H,W), got a batch of {image.shape[0]}; call it per image")
    small = preview(image.detach().float())
    with torch.no_grad():
        y = (net or _net())(torch.from_numpy(features(small))[None])[0]
    c = from_targets(y)
    # Noise and blur were learned at the preview's scale; Stats reads them at <= 1024 px.
    f = min(max(image.shape[-2:]), REF_EDGE) / max(small.shape[-2:])
    return c.model_copy(update={"noise": c.noise * f, "blur": c.blur * f})
