"""Read-only measurements: exposure, clipping, contrast, colourfulness, cast, noise, sharpness.

`measure(image) -> Stats` is what planners and critics reason with, so the numbers
must not depend on whether they look at a 1024 px preview or the 12 MP original.
Two kinds of statistic get two treatments:

- Point statistics (L* mean and percentiles, clipping, contrast, colourfulness,
  cast, saturation, dynamic range) depend only on the distribution of pixel
  values. They use original pixels, never averaged ones (averaging shaves off
  clipped specks and extremes): every pixel up to 2 MP; above that a deterministic
  subsample of at most 2 MP, every s-th pixel in raster order with s coprime to
  the width, so the sample walks diagonally and cannot lock onto row, column or
  checkerboard patterns. The cost of a 12 MP photo is then one strided copy and
  one area downscale over the full frame; everything else runs on <= 2 MP.
- Spatial statistics (noise, sharpness) are scale-dependent: a 2x downscale halves
  white noise. They are computed on the luma of a copy area-downscaled to a long
  edge of 1024 px, so a 1024 px preview and the 12 MP original read the same.
  Images with a long edge of 1024 px or less are measured as they are, so there a
  2x smaller copy reads about half the noise and a higher sharpness.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from tools import colorspace
from tools.registry import Params, ToolError, check_image, register

SAMPLE_PIXELS = 2_000_000  # point statistics use at most about this many pixels
REF_EDGE = 1024  # long edge, px, at which noise and sharpness are measured
SHADOW_CLIP = 2 / 255  # a pixel is clipped black when all channels are at or below this
HIGHLIGHT_CLIP = 253 / 255  # ... clipped white when any channel is at or above this
NEUTRAL_L = (15.0, 90.0)  # L* window of the pixels a cast is read from
NEUTRAL_CHROMA = 12.0  # C*ab below which a pixel counts as near-neutral (25 read warm fur and blue sky as cast)
NEUTRAL_MIN_FRACTION = 0.01  # fewer near-neutral pixels than this: read the cast from all
ILLUMINANT_L = 60.0  # L* of the grey an estimated light's colour is expressed on (a*, b* units)
WHITE_PATCH_FRACTION = 0.02  # brightest unclipped share whose mean colour is the white-patch estimate
UNCLIPPED = 0.98  # pixels with a channel at or above this (sRGB) say nothing about the light's colour
EDGE_FRACTION = 0.10  # share of strongest-gradient pixels left out of the noise estimate
REBLUR_SIGMA = 1.0  # px: the known blur whose effect on the strongest edges dates the photo's own
BLOCK = 8  # px: the JPEG (DCT) block
BLOCK_EDGE = 1024  # px: blockiness reads a grid-aligned crop of at most this, at full resolution
DR_FLOOR = 2.0**-10  # linear luminance floor: dynamic range reads at most 10 stops
QUANTILES = (0.01, 0.05, 0.50, 0.95, 0.99)
# The veil reads the tones' ends on a copy of at most VEIL_EDGE px, box-blurred over VEIL_BOX px so that
# noise (sigma 0.04 -> 0.008) does not read as tones reaching black or white, at the VEIL_TAIL quantiles.
VEIL_EDGE, VEIL_BOX, VEIL_TAIL = 384, 5, 0.002

# 3x3 kernels, stacked so one convolution gives all four responses.
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((-1.0, -2.0, -1.0), (0.0, 0.0, 0.0), (1.0, 2.0, 1.0))
_IMMERKAER = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


class Stats(BaseModel):
    """Measurements of one image, in the units a photographer reads them in.

    The cast is the mean a*, b* of the near-neutral pixels (15 <= L* <= 90 and
    chroma hypot(a*, b*) < 25), or of all pixels when under 1% are near-neutral.
    Luma, for noise and sharpness, is Rec.709 weights on the sRGB-encoded values.
    """

    model_config = ConfigDict(frozen=True)

    width: int = Field(description="image width, px")
    height: int = Field(description="image height, px")
    mean_L: float = Field(description="mean CIE L* (D65), 0 black .. 100 white; ~50 is mid-grey")
    median_L: float = Field(description="median CIE L*, 0..100")
    p01_L: float = Field(description="1st percentile of L*, 0..100 (the black point)")
    p05_L: float = Field(description="5th percentile of L*, 0..100 (deep shadows)")
    p95_L: float = Field(description="95th percentile of L*, 0..100 (bright highlights)")
    p99_L: float = Field(description="99th percentile of L*, 0..100 (the white point)")
    clipped_shadows_pct: float = Field(
        description="% of pixels with all channels <= 2/255 (crushed black)"
    )
    clipped_highlights_pct: float = Field(
        description="% of pixels with any channel >= 253/255 (blown)"
    )
    rms_contrast: float = Field(
        description="RMS contrast: standard deviation of L*/100; ~0.2 is typical"
    )
    colorfulness: float = Field(
        description="Hasler & Suesstrunk (2003) colourfulness M on 0-255 RGB: "
        "0 grey, ~15 slightly, ~33 moderately, ~59 quite, ~82 highly, 109+ extremely colourful"
    )
    cast_a: float = Field(
        description="colour cast on a*: + magenta, - green (L*a*b* units, mean of near-neutral pixels)"
    )
    cast_b: float = Field(
        description="colour cast on b*: + yellow, - blue (L*a*b* units, mean of near-neutral pixels)"
    )
    cast: float = Field(
        description="cast strength hypot(cast_a, cast_b); under ~2 is invisible, over ~6 obvious"
    )
    mean_saturation: float = Field(description="mean HSV saturation, 0 grey .. 1 pure colour")
    noise_sigma: float = Field(
        description="noise standard deviation of the luma, in [0,1] units (0.01 is 2.6/255), "
        "measured at a long edge of at most 1024 px"
    )
    sharpness: float = Field(
        description="variance of the Laplacian of the luma in [0,1] units, at a long edge of at most 1024 px; "
        "x65025 gives the familiar 0-255 figure, where under ~100 (here ~0.0015) looks soft"
    )
    dynamic_range: float = Field(
        description="stops between the 1st and 99th percentile of linear luminance (floor 2^-10, so at most 10)"
    )
    illuminant_a: float = Field(
        0.0,
        description="the light's own cast on a* (+ magenta, - green): the part four estimates of the "
        "light agree on, 0 where they disagree; unlike cast_a a green or red scene does not move it",
    )
    illuminant_b: float = Field(
        0.0,
        description="the light's own cast on b* (+ yellow, - blue), as illuminant_a: a warm scene "
        "(coffee, fur) under white light reads ~0, a yellow light over any scene reads +",
    )
    blur_sigma: float = Field(
        0.0,
        description="Gaussian blur, px, of the strongest edges at a long edge of at most 1024 px, from how "
        "little a known 1 px re-blur softens them: sharp photos read 0.4-0.9, a 1 px defocus on them ~1.3",
    )
    blockiness: float = Field(
        1.0,
        description="JPEG blocking: mean luma step across the 8x8 block grid over the mean step elsewhere; "
        "1 none, clean photos 0.95-1.35, heavy compression (quality under ~35) 1.3-3",
    )
    black_lift: float = Field(
        0.0,
        description="how far the darkest tones stay above black (sRGB 0..1, the per-pixel channel minimum at its "
        "0.2 % quantile on a <= 384 px copy box-blurred over 5 px, so noise does not reach black): a fade toward "
        "grey or haze lifts it, and so does a high-key photo's own light",
    )
    white_drop: float = Field(
        0.0,
        description="how far the brightest tones stay below white (sRGB 0..1, the per-pixel channel maximum, read "
        "as black_lift): a fade toward grey drops it, and so does a low-key photo's own dark",
    )

    @property
    def veil(self) -> float:
        """Both tone ends short of black and white: the smaller of black_lift and white_drop (a fade toward
        grey lifts both, a high-key photo only its blacks); clean train photos: median 0.003, 75 % under 0.05."""
        return min(self.black_lift, self.white_drop)

    def summary(self) -> str:
        """One short line for a language model."""
        return (
            f"L* {self.mean_L:.0f} (median {self.median_L:.0f}), contrast {self.rms_contrast:.2f}, "
            f"{_cast_text(self.cast_a, self.cast_b)}, saturation {self.mean_saturation:.2f}, "
            f"noise {self.noise_sigma:.3f}, sharpness {self.sharpness:.2g}, "
            f"range {self.dynamic_range:.1f} stops, clipped {self.clipped_shadows_pct:.1f}%/"
            f"{self.clipped_highlights_pct:.1f}% (shadows/highlights)"
        )


def _cast_text(a: float, b: float) -> str:
    """'cast b*+9.1 (yellow)', strongest axis first; 'no cast' under 2 units."""
    strength = math.hypot(a, b)
    if strength < 2.0:
        return "no cast"
    axes = sorted(
        [("a*", a, "magenta" if a > 0 else "green"), ("b*", b, "yellow" if b > 0 else "blue")],
        key=lambda t: -abs(t[1]),
    )
    shown = [t for t in axes if abs(t[1]) >= max(1.0, 0.3 * strength)]
    values = " ".join(f"{axis}{v:+.1f}" for axis, v, _ in shown)
    return f"cast {values} ({'-'.join(name for _, _, name in shown)})"


# ----------------------------------------------------------------- measuring


def measure(image: torch.Tensor) -> Stats:
    """Measure one (1,3,H,W) sRGB image in [0,1]; for a batch use `measure_batch`."""
    check_image(image, "measure")
    if image.shape[0] != 1:
        raise ToolError(
            f"measure takes one image of shape (1,3,H,W), got a batch of {image.shape[0]}; "
            "use measure_batch for batches"
        )
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ToolError(f"measure: image of shape {tuple(image.shape)} has no pixels")
    return _measure_one(image.detach().to(torch.float32))


def measure_batch(image: torch.Tensor) -> list[Stats]:
    """Measure every image of a (B,3,H,W) batch; one Stats per image."""
    check_image(image, "measure_batch")
    return [measure(image[i : i + 1]) for i in range(image.shape[0])]


def _measure_one(image: torch.Tensor) -> Stats:
    h, w = image.shape[-2:]
    px = _sample_pixels(image)  # (1,3,1,N) original pixels laid out as a one-row image
    lab = colorspace.rgb_to_lab(px)[0, :, 0]  # (3,N)
    L = lab[0]
    l_std, l_mean = torch.std_mean(L, correction=0)
    q = percentiles(L, QUANTILES)
    sat, val = colorspace.rgb_to_hsv(px)[0, 1:, 0]  # HSV S, and V = max(R,G,B)
    cast_a, cast_b = _cast(L, lab[1], lab[2])
    small = _reference_scale(image)
    noise, sharp, blur = _spatial(small)
    light_a, light_b = _illuminant(small)
    return Stats(
        width=w,
        height=h,
        mean_L=float(l_mean),
        median_L=q[2],
        p01_L=q[0],
        p05_L=q[1],
        p95_L=q[3],
        p99_L=q[4],
        # All channels <= t is max <= t; any channel >= t is max >= t.
        clipped_shadows_pct=100.0 * float((val <= SHADOW_CLIP + 1e-6).float().mean()),
        clipped_highlights_pct=100.0 * float((val >= HIGHLIGHT_CLIP - 1e-6).float().mean()),
        rms_contrast=float(l_std) / 100.0,
        colorfulness=_colorfulness(px[0, :, 0]),
        cast_a=cast_a,
        cast_b=cast_b,
        cast=math.hypot(cast_a, cast_b),
        mean_saturation=float(sat.mean()),
        noise_sigma=noise,
        sharpness=sharp,
        dynamic_range=math.log2(
            max(_lightness_to_y(q[4]), DR_FLOOR) / max(_lightness_to_y(q[0]), DR_FLOOR)
        ),
        illuminant_a=light_a,
        illuminant_b=light_b,
        blur_sigma=blur,
        blockiness=_blockiness(image),
        **_tone_ends(image),
    )


def _lightness_to_y(lightness: float) -> float:
    """CIE L* back to relative luminance Y in [0,1] (CIE 15, the inverse of L* = 116 f(Y) - 16).

    L* is a monotonic function of the linear luminance, so the 1st and 99th
    percentiles of Y are read off those of L*: one percentile pass instead of two.
    """
    if lightness > 8.0:
        return ((lightness + 16.0) / 116.0) ** 3
    return max(lightness, 0.0) / 903.3


def _sample_pixels(image: torch.Tensor) -> torch.Tensor:
    """Every pixel up to SAMPLE_PIXELS; above, every s-th in raster order, s coprime to the width.

    s is the smallest integer >= pixels / SAMPLE_PIXELS that shares no factor with
    the width, so the sample holds at most SAMPLE_PIXELS; for photo widths the
    search moves s by a few steps at most, which leaves well over 0.5 MP.
    """
    h, w = image.shape[-2:]
    flat = image.reshape(3, h * w)
    stride = math.ceil(h * w / SAMPLE_PIXELS)
    if stride > 1:
        # Coprime to the width: each row starts at a different phase, so the sample
        # covers every column and parity instead of repeating the same columns.
        while math.gcd(stride, w) != 1:
            stride += 1
        flat = flat[:, ::stride]
    # clamp_ works on the copy; the caller's image is never touched.
    return flat.clone(memory_format=torch.contiguous_format).clamp_(0, 1).view(1, 3, 1, -1)


def percentiles(x: torch.Tensor, qs: tuple[float, ...]) -> list[float]:
    """Linearly interpolated percentiles (numpy's default definition) of a 1-D tensor."""
    if x.device.type == "cpu":
        # np.percentile selects instead of sorting: 5x faster than torch.quantile on 2 MP.
        return [float(v) for v in np.percentile(x.numpy(), [100 * q for q in qs])]
    return torch.quantile(x, torch.tensor(qs, dtype=x.dtype, device=x.device)).tolist()


def _colorfulness(rgb: torch.Tensor) -> float:
    """Hasler & Suesstrunk (2003) M = sigma_rgyb + 0.3 mu_rgyb, on 0-255 values."""
    rg = rgb[0] - rgb[1]
    yb = (rgb[0] + rgb[1]).mul_(0.5).sub_(rgb[2])
    rg_std, rg_mean = torch.std_mean(rg, correction=0)
    yb_std, yb_mean = torch.std_mean(yb, correction=0)
    sigma = math.hypot(float(rg_std), float(yb_std))
    mu = math.hypot(float(rg_mean), float(yb_mean))
    return 255.0 * (sigma + 0.3 * mu)


def _cast(L: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean (a*, b*) of the near-neutral pixels: the shift a white balance should remove.

    Near-neutral means 15 <= L* <= 90 (deep shadows carry little colour and clipped
    highlights read neutral whatever the light) and chroma C*ab = hypot(a*, b*) < 25
    (loose enough to keep grey surfaces under a strong cast, tight enough to drop
    most coloured objects). When fewer than 1% of the pixels qualify (a frame of
    saturated colour) the mean over all pixels is returned instead.
    """
    chroma2 = a.square().addcmul_(b, b)
    near = chroma2 < NEUTRAL_CHROMA**2
    low, high = NEUTRAL_L
    near &= (L - (low + high) / 2).abs_() <= (high - low) / 2
    weight = near.to(a.dtype)
    count = float(weight.sum())
    if count < max(1.0, NEUTRAL_MIN_FRACTION * L.numel()):
        return float(a.mean()), float(b.mean())
    return float(torch.dot(a, weight)) / count, float(torch.dot(b, weight)) / count


def _illuminant(small: torch.Tensor) -> tuple[float, float]:
    """(a*, b*) of the light's colour on which four estimates agree; 0 on an axis where they do not.

    A cast is a gain on each linear channel, so it shifts every estimate of the light
    alike; a warm or green subject shifts some and not others. Estimates, in linear
    light, unclipped pixels only: shades of grey (Minkowski p=6 mean, Finlayson &
    Trezzi 2004), white patch (mean of the brightest 2%), grey edge p=1 and p=6 (mean
    colour of the gradients of a 3x3-smoothed copy, van de Weijer et al. 2007). Each
    is written as the a*, b* of a grey of L* 60 lit by it; per axis the answer is the
    estimate nearest 0 when all share a sign, else 0 (continuous: an estimate crossing 0
    takes the answer through 0). All read the copy at REF_EDGE px (cheap at 12 MP).
    Measured on clean skimage photos and on them with casts: tests/tools and the README.
    """
    lin_image = colorspace.srgb_to_linear(small)
    x = lin_image[0].flatten(1)[:, small[0].amax(0).flatten() < UNCLIPPED]
    estimates: list[torch.Tensor] = []
    if x.shape[1] >= 16:
        estimates.append(x.pow(6).mean(1).pow(1 / 6))
        luma = torch.tensor(colorspace.LUMA, dtype=x.dtype, device=x.device) @ x
        top = luma.topk(max(1, int(WHITE_PATCH_FRACTION * luma.numel()))).indices
        estimates.append(x[:, top].mean(1))
    h, w = small.shape[-2:]
    if h >= 4 and w >= 4:
        smooth = F.avg_pool2d(F.pad(lin_image, (1, 1, 1, 1), mode="replicate"), 3, 1)
        dx = smooth[..., :-1, 1:] - smooth[..., :-1, :-1]
        dy = smooth[..., 1:, :-1] - smooth[..., :-1, :-1]
        ok = small[..., :-1, :-1].amax(1, keepdim=True) < UNCLIPPED
        mag = (dx.square() + dy.square()).sqrt_().mul_(ok)[0].flatten(1)
        estimates += [mag.mean(1), mag.pow(6).mean(1).pow(1 / 6)]
    ab = [_light_ab(e) for e in estimates if bool((e > 1e-6).all())]
    if not ab:
        return 0.0, 0.0
    out = []
    for axis in range(2):
        values = [v[axis] for v in ab]
        same_sign = all(v > 0 for v in values) or all(v < 0 for v in values)
        out.append(min(values, key=abs) if same_sign else 0.0)
    return out[0], out[1]


def _light_ab(rgb: torch.Tensor) -> tuple[float, float]:
    """a*, b* of a grey of L* ILLUMINANT_L lit by a light of linear colour `rgb` (3,)."""
    luma = float(torch.tensor(colorspace.LUMA, dtype=rgb.dtype, device=rgb.device) @ rgb)
    grey = rgb * (_lightness_to_y(ILLUMINANT_L) / luma)
    lab = colorspace.rgb_to_lab(colorspace.linear_to_srgb(grey).view(1, 3, 1, 1)).flatten()
    return float(lab[1]), float(lab[2])


def _tone_ends(image: torch.Tensor) -> dict[str, float]:
    """black_lift and white_drop (sRGB): the channel minimum and maximum of each pixel at their VEIL_TAIL
    quantiles, on a <= VEIL_EDGE px copy box-blurred over VEIL_BOX px."""
    h, w = image.shape[-2:]
    scale = VEIL_EDGE / max(h, w)
    x = image.clamp(0, 1)
    if scale < 1.0:
        x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    if min(x.shape[-2:]) >= 4 * VEIL_BOX:
        x = F.avg_pool2d(x, VEIL_BOX, stride=1)
    px = x[0].reshape(3, -1)
    dark = float(torch.quantile(px.amin(0), VEIL_TAIL))
    bright = float(torch.quantile(px.amax(0), 1 - VEIL_TAIL))
    return {"black_lift": max(0.0, dark), "white_drop": max(0.0, 1.0 - bright)}


def _reference_scale(image: torch.Tensor) -> torch.Tensor:
    """The image area-downscaled to a long edge of REF_EDGE px (as it is when already that small)."""
    h, w = image.shape[-2:]
    scale = REF_EDGE / max(h, w)
    if scale < 1.0:
        # Area averaging, like cv2.INTER_AREA: a photo's preview sees the same pixels.
        size = (max(3, round(h * scale)), max(3, round(w * scale)))
        image = F.interpolate(image, size=size, mode="area")
    return image.clamp(0, 1)


def _spatial(image: torch.Tensor) -> tuple[float, float, float]:
    """(noise sigma, Laplacian variance, blur sigma) of the luma of an image already at REF_EDGE px or less.

    Noise: Immerkaer (1996) on the pixels left after dropping the EDGE_FRACTION with
    the strongest Sobel gradient, as in Tai & Yang (2008): sigma = sqrt(pi/2) *
    mean|I * N| / 6, N = [[1,-2,1],[-2,4,-2],[1,-2,1]], which cancels any image
    that is linear along rows or columns. The luma averages the channels, so noise
    drawn independently per channel reads about 0.75x its per-channel sigma.
    Sharpness: variance of the 4-neighbour Laplacian; noise adds about 20 sigma^2.
    Blur: `_blur_sigma` on the same Sobel responses.
    """
    luma = colorspace.luminance(image)
    if luma.shape[-1] < 3 or luma.shape[-2] < 3:
        return 0.0, 0.0, 0.0
    kernels = torch.tensor(
        [_SOBEL_X, _SOBEL_Y, _IMMERKAER, _LAPLACIAN], dtype=luma.dtype, device=luma.device
    )
    r = F.conv2d(luma, kernels[:, None])[0]  # valid: no border guesses
    gradient = (r[0].abs() + r[1].abs()).flatten()
    (limit,) = percentiles(gradient, (1.0 - EDGE_FRACTION,))
    flat = (gradient <= limit).to(luma.dtype)
    residual = float((r[2].flatten().abs() * flat).sum()) / float(flat.sum())
    noise = math.sqrt(math.pi / 2.0) * residual / 6.0
    return noise, float(r[3].var(correction=0)), _blur_sigma(luma, r[0], r[1], kernels[:2])


def _blur_sigma(luma: torch.Tensor, gx: torch.Tensor, gy: torch.Tensor, sobel: torch.Tensor) -> float:
    """Gaussian blur (px) of the strongest edges, from what a known re-blur does to them.

    An edge blurred by sigma has a peak gradient ~1/sigma; re-blurred by s = REBLUR_SIGMA
    it has ~1/sqrt(sigma^2 + s^2), so the ratio R of gradient magnitudes summed over the
    top EDGE_FRACTION of edges gives sigma = s R / sqrt(1 - R^2) (the re-blur idea of
    Crete et al. 2007, solved for a Gaussian). Contrast cancels in R, and noise barely
    moves the strongest edges. Clean skimage photos at 128 px read 0.44-0.91 (texture
    such as grass 0.45, smooth retina 0.90); a 1.2 px blur on them 0.9-1.8.
    """
    magnitude = (gx.square() + gy.square()).sqrt().flatten()
    (limit,) = percentiles(magnitude, (1.0 - EDGE_FRACTION,))
    top = magnitude >= limit  # a mask, not topk: topk of 10% of a megapixel is slow
    radius = math.ceil(3 * REBLUR_SIGMA)
    taps = torch.arange(-radius, radius + 1, dtype=luma.dtype, device=luma.device)
    g = torch.exp(-0.5 * (taps / REBLUR_SIGMA).square())
    g = g / g.sum()
    if min(luma.shape[-2:]) <= radius:
        return 0.0
    soft = F.pad(luma, (radius, radius, radius, radius), mode="reflect")
    soft = F.conv2d(F.conv2d(soft, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    r = F.conv2d(soft, sobel[:, None])[0]
    after = (r[0].square() + r[1].square()).sqrt().flatten()
    before = float(magnitude[top].sum())
    if before <= 1e-9:
        return 0.0
    ratio = min(float(after[top].sum()) / before, 0.999)
    return REBLUR_SIGMA * ratio / math.sqrt(1 - ratio * ratio)


def _blockiness(image: torch.Tensor) -> float:
    """Mean |luma step| across the 8x8 block grid over the mean step elsewhere (1: no blocks).

    Read at full resolution (resampling moves the grid), on a grid-aligned crop of at
    most BLOCK_EDGE px from the top-left corner, where a JPEG's blocks start.
    """
    luma = colorspace.luminance(image[..., :BLOCK_EDGE, :BLOCK_EDGE].clamp(0, 1))[0, 0]
    h, w = luma.shape
    if h < 2 * BLOCK or w < 2 * BLOCK:
        return 1.0
    dx = (luma[:, 1:] - luma[:, :-1]).abs()  # dx[:, j]: the step between columns j and j+1
    dy = (luma[1:] - luma[:-1]).abs()
    on_x = (torch.arange(w - 1, device=luma.device) % BLOCK) == BLOCK - 1
    on_y = (torch.arange(h - 1, device=luma.device) % BLOCK) == BLOCK - 1
    across = float(dx[:, on_x].mean() + dy[on_y].mean())
    inside = float(dx[:, ~on_x].mean() + dy[~on_y].mean())
    return across / inside if inside > 1e-9 else 1.0


# ----------------------------------------------------------------- text for the language model


NO_CHANGE = "no notable change in the measurements"  # describe_delta's words for a step that moved nothing


def describe_delta(before: Stats, after: Stats) -> str:
    """What changed in measured terms, notable changes only: 'L* 32->51, contrast 0.15->0.22'."""
    return ", ".join(notable_changes(before, after)) or NO_CHANGE


def notable_changes(before: Stats, after: Stats) -> list[str]:
    """Each measurement that moved notably, as 'L* 32->51'; empty when the step moved nothing."""
    parts: list[str] = []
    if (before.width, before.height) != (after.width, after.height):
        parts.append(f"size {before.width}x{before.height}->{after.width}x{after.height}")
    if abs(after.mean_L - before.mean_L) >= 1.0:
        parts.append(f"L* {before.mean_L:.0f}->{after.mean_L:.0f}")
    if abs(after.p01_L - before.p01_L) >= 3.0:
        parts.append(f"black point L* {before.p01_L:.0f}->{after.p01_L:.0f}")
    if abs(after.p99_L - before.p99_L) >= 3.0:
        parts.append(f"white point L* {before.p99_L:.0f}->{after.p99_L:.0f}")
    if abs(after.rms_contrast - before.rms_contrast) >= 0.01:
        parts.append(f"contrast {before.rms_contrast:.2f}->{after.rms_contrast:.2f}")
    casts = [
        f"{axis} {x0:+.1f}->{x1:+.1f}"
        for axis, x0, x1 in (
            ("a*", before.cast_a, after.cast_a),
            ("b*", before.cast_b, after.cast_b),
        )
        if abs(x1 - x0) >= 1.0
    ]
    if casts:
        parts.append("cast " + " ".join(casts))
    if abs(after.mean_saturation - before.mean_saturation) >= 0.02:
        parts.append(f"saturation {before.mean_saturation:.2f}->{after.mean_saturation:.2f}")
    if abs(after.colorfulness - before.colorfulness) >= 5.0:
        parts.append(f"colourfulness {before.colorfulness:.0f}->{after.colorfulness:.0f}")
    if _moved(before.noise_sigma, after.noise_sigma, 0.001):
        parts.append(f"noise {before.noise_sigma:.3f}->{after.noise_sigma:.3f}")
    if _moved(before.sharpness, after.sharpness, 1e-5):
        parts.append(f"sharpness {before.sharpness:.2g}->{after.sharpness:.2g}")
    if abs(after.dynamic_range - before.dynamic_range) >= 0.25:
        parts.append(f"range {before.dynamic_range:.1f}->{after.dynamic_range:.1f} stops")
    for label, x0, x1 in (
        ("clipped shadows", before.clipped_shadows_pct, after.clipped_shadows_pct),
        ("clipped highlights", before.clipped_highlights_pct, after.clipped_highlights_pct),
    ):
        if abs(x1 - x0) >= 0.1:
            parts.append(f"{label} {x0:.1f}%->{x1:.1f}%")
    return parts


def _moved(x0: float, x1: float, floor: float) -> bool:
    """A change of at least 15% and at least `floor`: scale-free quantities move in ratios."""
    return abs(x1 - x0) >= max(floor, 0.15 * max(abs(x0), abs(x1)))


# ----------------------------------------------------------------- the tool


class Measure(Params):
    """Measure exposure, contrast, colour cast, saturation, noise and sharpness of the current image.

    Changes nothing. Answers with L* (0-100) mean, median and percentiles, RMS
    contrast, the a*/b* cast of near-neutral areas, saturation, colourfulness,
    noise sigma, sharpness, dynamic range in stops and the clipped percentages.
    """


@register(
    Measure,
    family="analysis",
    read_only=True,
    supports_mask=False,
    differentiable=False,
    name="measure",
)
def measure_tool(image: torch.Tensor, p: Measure) -> Stats:
    """The Stats of the first image of the batch (the session's current version)."""
    return measure(image[0:1])
