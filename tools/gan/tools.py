"""The GAN face tools the agent calls: gan_edit, gan_inpaint, gan_generate.

Each works on one face at a time: detect (Haar frontal face), invert the face into the
latent space while refining the detector's crop to the generator's framing (sub-pixel
shift, scale and a small turn, fitted with the latent: `invert.invert_aligned`), change
the latent, and carry the change back into the full-resolution photo under a feathered
face mask (`face.py`), damped where the reconstruction disagrees with the photo
(`confidence`). Contract choices, stated once:
- gan_edit transfers a delta (edited minus reconstructed), so the photo's own detail
  survives and strength 0 is exactly the identity; pixels outside the face ellipse are
  unchanged bit for bit. Not differentiable (inversion is an optimisation).
- gan_inpaint replaces a region of the face with the generator's fill (masked inversion:
  the region is ignored while fitting), blurrier than the photo at high resolution.
- gan_generate makes new faces: the output keeps the input's shape (the session's image
  grid) but its pixels are generated; with a mask it pastes the faces there.
The weights load on the first call; `last_inversion` keeps the latest reconstruction
quality (PSNR/SSIM) for the CLI and API.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from tools.gan import attributes
from tools.gan import directions as dirs
from tools.gan import face as facelib
from tools.gan import invert as inv
from tools.gan.backends import get_backend
from tools.registry import Params, ToolError, register

Direction = Literal["smile", "eyeglasses", "lighting", "warmth", "hair_darkness", "background",
                    "pca0", "pca1", "pca2", "pca3", "pca4"]
GUARD = (0.06, 0.16)  # smoothed reconstruction error: full edit below the first, none above the second
MIN_PSNR = 16.0  # below this the generator did not reproduce the face: an edit built on it is refused
last_inversion: dict[str, float | int | str] = {}


class GanEdit(Params):
    """Change a face with the face generator: smile, glasses, face lighting, skin warmth, hair, background.

    Finds the face, fits the generator to it, moves along a learned direction and adds
    only that change back inside a soft face mask; the rest of the photo is untouched.
    Works on frontal faces; subtle at strength 1, clear at 2-3.
    """

    direction: Direction = Field("smile", description=(
        "what to change: smile, eyeglasses, lighting (face brightness), warmth (skin tone), "
        "hair_darkness, background (brightness behind the head), pca0-pca4 (unsupervised main variations)"))
    strength: float = Field(0.0, ge=-3.0, le=3.0, description=(
        "how far to move: positive adds the attribute (more smile, glasses on, brighter), negative removes it; "
        "0 = no change"))
    face: int = Field(0, ge=-1, le=9, description=(
        "which face: 0 = the largest detected, 1 = the next ...; -1 = the whole image is already a face crop"))
    conditional: bool = Field(True, description=(
        "true: use the direction made orthogonal to the other attributes, so they change less"))


class GanInpaint(Params):
    """Repaint part of a face (eyes, nose, mouth, forehead ...) with the face generator.

    The face is fitted while ignoring the region, then the region is filled with the
    generator's version of it, blended in softly. For blemishes, occlusions, damaged areas.
    """

    region: Literal["eyes", "nose", "mouth", "forehead", "lower_face", "left_half", "right_half"] = Field(
        "mouth", description="which part of the face to repaint")
    face: int = Field(0, ge=-1, le=9, description=(
        "which face: 0 = the largest detected; -1 = the whole image is already a face crop"))


class GanGenerate(Params):
    """Generate new, synthetic faces with the face generator (replaces the picture, or the masked area).

    The faces fill the image (a grid when n > 1); the same seed gives the same faces.
    """

    seed: int = Field(0, ge=0, le=2**31 - 1, description="random seed: each seed is a different face")
    n: int = Field(1, ge=1, le=16, description="how many faces, laid out in a grid")


# Face-part boxes (x0, y0, x1, y1) as fractions of the generator's 64x64 frame.
REGIONS = {
    "eyes": (0.18, 0.36, 0.82, 0.56), "nose": (0.38, 0.48, 0.62, 0.70), "mouth": (0.30, 0.66, 0.70, 0.84),
    "forehead": (0.24, 0.16, 0.76, 0.38), "lower_face": (0.20, 0.62, 0.80, 0.96),
    "left_half": (0.12, 0.18, 0.50, 0.96), "right_half": (0.50, 0.18, 0.88, 0.96),
}


# The latest inversions, keyed by the image's pixels and the face: the planner tries several
# strengths on the same photo, and attribute_change must measure with gan_edit's own framing.
_INVERSIONS: dict[tuple[str, int], tuple[facelib.Crop, inv.Inversion, dict]] = {}
_KEEP = 4


def _fingerprint(img: Tensor) -> str:
    import hashlib

    a = img.detach().float().cpu().contiguous()
    return hashlib.sha1(str(tuple(a.shape)).encode() + a.numpy().tobytes()).hexdigest()


def _invert_face(img: Tensor, face: int, known: Tensor | None = None) -> tuple[facelib.Crop, inv.Inversion]:
    backend = get_backend("dcgan", device=img.device)
    key = (_fingerprint(img), face)
    if known is None and key in _INVERSIONS:
        crop, result, info = _INVERSIONS[key]
        last_inversion.clear()
        last_inversion.update(info)
        return crop, result
    crop = facelib.find_face(img, face)
    if face >= 0:  # refine the detector's framing to sub-pixel together with the latent
        crop, result = inv.invert_aligned(backend, img.float(), crop, known, inv.DEFAULTS)
    else:
        result = inv.invert(backend, facelib.cut(img.float(), crop, backend.resolution), known, inv.DEFAULTS)
    last_inversion.clear()
    last_inversion.update(psnr=round(result.psnr[0], 2), ssim=round(result.ssim[0], 4),
                          seconds=round(result.seconds, 2), steps=result.steps, warm_start=result.warm_start,
                          crop=crop.describe())
    if result.psnr[0] < MIN_PSNR:
        raise ToolError(f"the face generator could not reproduce this face (reconstruction PSNR "
                        f"{result.psnr[0]:.1f} dB < {MIN_PSNR}); an edit built on it would not be faithful")
    if known is None:
        while len(_INVERSIONS) >= _KEEP:
            _INVERSIONS.pop(next(iter(_INVERSIONS)))
        _INVERSIONS[key] = (crop, result, dict(last_inversion))
    return crop, result


def confidence(recon: Tensor, target: Tensor) -> Tensor:
    """(1,1,R,R) trust in the reconstruction: 1 where it matches the photo's crop, 0 where it clearly does not.

    The edit is carried as edited minus reconstructed; where the reconstruction has a feature
    the photo lacks (glasses frames a few pixels off), subtracting it would paint an inverted
    ghost of it. The error is smoothed (a 5 px box) so fine texture does not count.
    """
    import torch.nn.functional as F

    err = F.avg_pool2d((recon - target).abs().mean(1, keepdim=True), 5, 1, 2, count_include_pad=False)
    return ((GUARD[1] - err) / (GUARD[1] - GUARD[0])).clamp(0, 1)


@register(GanEdit, family="gan", differentiable=False, cost=200.0)
def gan_edit(image: Tensor, p: GanEdit) -> Tensor:
    """Move the face along `p.direction` by `p.strength` and add the change back (delta blend)."""
    if p.strength == 0:
        return image.clone()
    outs = []
    for img in image:
        crop, result = _invert_face(img, p.face)
        backend = get_backend("dcgan", device=img.device)
        d = dirs.vector(p.direction, backend, p.conditional)
        with torch.no_grad():
            edited = backend.synthesize(result.latents + p.strength * d)
        ellipse = facelib.ellipse_mask(backend.resolution, device=img.device)
        mask = ellipse * confidence(result.recon, facelib.cut(img.float(), crop, backend.resolution))
        delta = edited - result.recon
        kept = float((mask * delta.abs()).sum() / (ellipse * delta.abs()).sum().clamp_min(1e-12))
        last_inversion["edit_kept"] = round(kept, 3)
        outs.append(facelib.paste(img, crop, delta, mask, delta=True))
    return torch.stack(outs)


def region_mask(region: str, res: int, feather: float = 0.06) -> Tensor:
    """(1,1,res,res) soft box over a face part: 1 inside, ramping to 0 `feather` outside."""
    x0, y0, x1, y1 = REGIONS[region]
    t = (torch.arange(res, dtype=torch.float32) + 0.5) / res
    fx = ((t - x0 + feather) / feather).clamp(0, 1) * ((x1 + feather - t) / feather).clamp(0, 1)
    fy = ((t - y0 + feather) / feather).clamp(0, 1) * ((y1 + feather - t) / feather).clamp(0, 1)
    return (fy[:, None] * fx[None, :])[None, None]


@register(GanInpaint, family="gan", differentiable=False, cost=200.0)
def gan_inpaint(image: Tensor, p: GanInpaint) -> Tensor:
    """Fit the face ignoring `p.region`, then fill the region with the generator's rendering."""
    outs = []
    for img in image:
        res = get_backend("dcgan").resolution
        hole = region_mask(p.region, res).to(img.device)
        known = (hole == 0).float()  # the ramp counts as unknown too: it will be blended
        crop, result = _invert_face(img, p.face, known)
        outs.append(facelib.paste(img, crop, result.recon, hole, delta=False))
    return torch.stack(outs)


@register(GanGenerate, family="gan", differentiable=False, cost=5.0)
def gan_generate(image: Tensor, p: GanGenerate) -> Tensor:
    """Faces for seed `p.seed` (one per grid cell), resized to cover the input's (H, W)."""
    backend = get_backend("dcgan", device=image.device)
    faces = backend.sample(p.n, p.seed)
    grid = tile(faces)
    return cover(grid, image.shape[-2:]).expand(image.shape[0], -1, -1, -1).to(image).clone()


def tile(faces: Tensor) -> Tensor:
    """(N,3,R,R) -> (1,3,rows*R,cols*R), row-major, empty cells black."""
    import math

    n, c, r, _ = faces.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.zeros(1, c, rows * r, cols * r, device=faces.device, dtype=faces.dtype)
    for i in range(n):
        y, x = divmod(i, cols)
        grid[0, :, y * r : (y + 1) * r, x * r : (x + 1) * r] = faces[i]
    return grid


def cover(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize (1,3,h,w) to cover `size` (H, W) keeping its aspect, centre-cropped."""
    import torch.nn.functional as F

    h, w = size
    s = max(h / x.shape[-2], w / x.shape[-1])
    nh, nw = max(h, round(x.shape[-2] * s)), max(w, round(x.shape[-1] * s))
    y = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False).clamp(0, 1)
    top, left = (nh - h) // 2, (nw - w) // 2
    return y[..., top : top + h, left : left + w]


def attribute_change(original: Tensor, image: Tensor, attribute: str) -> float | None:
    """How much `attribute` (a `directions.ATTRIBUTES` scorer) grew on the largest face, image vs original.

    The scorers were calibrated on generated faces and saturate on real ones (the
    astronaut's broad smile already scores 3.4 on the Haar cascade, and adding a smile on
    top of it lowers that peak), so the change is measured where the directions were
    fitted: the photo's change inside gan_edit's own crop is added to the generator's
    reconstruction of the original face, and that is scored against the reconstruction.
    The inversion is the one gan_edit made (cached), or is made once here. When the face
    cannot be reproduced, both crops are scored directly. None when there is no face.
    """
    if attribute not in dirs.ATTRIBUTES or not facelib.detect_faces(original[0]):
        return None
    res = get_backend("dcgan").resolution
    try:
        crop, result = _invert_face(original[0], 0)
        base = result.recon[:1].float().cpu()
    except ToolError:  # not reproducible: score the photo's own pixels in the detector's framing
        crop, base = facelib.crop_for_box(facelib.detect_faces(original[0])[0]), None
    before = facelib.cut(original[0].float(), crop, res).cpu()
    after = facelib.cut(image[0].float(), crop, res).cpu()
    if base is not None:
        before, after = base, (base + after - before).clamp(0, 1)
    s = attributes.score_faces(torch.cat([before, after]))[attribute]
    return float(s[1] - s[0])
