"""Inpainting: fill a masked region from its surroundings; find and remove dust and scratches; remove an object.

Methods: OpenCV's Telea (fast marching) and Navier-Stokes diffusion, which are
exact for thin holes but blur wide ones, and `exemplar`, our own coarse-to-fine
PatchMatch fill (Wexler et al. 2007 / Barnes et al. 2009, vectorised over all
hole pixels at once with torch gathers), which copies texture from around the
hole. `auto` measures instead of guessing: around each group of hole components it
hides a ring of known pixels, fills hole + ring with every method, and keeps the one
that restores the ring best (its true pixels are known), on a crop around that group.

Every method works on a crop around the mask (bounding box plus a margin), so
the cost follows the hole, not the photo. Pixels where the mask is 0 come out
bit-identical to the input; a soft mask blends `m * filled + (1 - m) * image`.
"""

from __future__ import annotations

import math
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from tools import colorspace as cs
from tools.masks import feather, fit_mask, grow, subject
from tools.registry import Params, ToolError, blend, check_image, register

Method = Literal["auto", "telea", "ns", "exemplar"]
CANDIDATES = ("telea", "ns", "exemplar")  # what `auto` chooses from, cheapest first (ties go to it)
RING_SHARE, RING_MIN = 0.5, 2  # the self-test's hidden ring: half the hole's radius wide, at least 2 px
SEARCH_CAP = 60_000  # active patch centres above which a pyramid level only votes (no search): speed at 12 MP


# ------------------------------------------------------------------ crop and dispatch


def _bbox(hole: np.ndarray, margin: int) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(hole.any(1)), np.nonzero(hole.any(0))
    H, W = hole.shape
    return (max(0, int(ys[0][0]) - margin), min(H, int(ys[0][-1]) + 1 + margin),
            max(0, int(xs[0][0]) - margin), min(W, int(xs[0][-1]) + 1 + margin))


def hole_radius(hole: np.ndarray) -> float:
    """Half the thickness of the hole's thickest part, px (distance to the nearest known pixel)."""
    dist = cv2.distanceTransform(np.pad(hole, 1).astype(np.uint8), cv2.DIST_L2, 3)
    return float(dist.max())


def ring_width(hole: np.ndarray) -> int:
    """Width (px) of the ring of known pixels hidden by the self-test: half the hole's radius, at least 2."""
    return max(RING_MIN, round(RING_SHARE * hole_radius(hole)))


def _fill_crop(rgb: np.ndarray, hole: np.ndarray, how: str, radius: float, patch: int, seed: int) -> np.ndarray:
    if how == "exemplar":
        return exemplar(rgb, hole, patch=patch, seed=seed)
    return _diffuse(rgb, hole, how, radius)


def ring_errors(rgb: np.ndarray, hole: np.ndarray, part: np.ndarray, radius: float = 3.0, patch: int = 7,
                seed: int = 0) -> dict[str, float]:
    """The self-test: mean squared error of each method on a ring of known pixels hidden around `part`.

    `hole` (H,W bool) is every unknown pixel of the HWC crop `rgb`, `part` the piece of it
    being chosen for. The ring, `ring_width(part)` px of known pixels around `part`, is
    hidden too; each method fills hole + ring, and the ring's true pixels score it. A
    method that cannot run there (exemplar with no clean patch left) scores inf.
    """
    w = ring_width(part)
    ring = cv2.dilate(part.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * w + 1,) * 2)) > 0
    ring &= ~hole
    if not ring.any():
        return dict.fromkeys(CANDIDATES, 0.0)
    test = hole | ring
    errors = {}
    for how in CANDIDATES:
        try:
            done = _fill_crop(rgb, test, how, radius, patch, seed)
        except ToolError:
            errors[how] = math.inf
            continue
        errors[how] = float(((done[ring] - rgb[ring]) ** 2).mean())
    return errors


def choose_method(rgb: np.ndarray, hole: np.ndarray, part: np.ndarray | None = None, radius: float = 3.0,
                  patch: int = 7, seed: int = 0) -> str:
    """`auto`: the method that best restores a ring of known pixels hidden around the hole (ring_errors).

    Ties go to the earlier of CANDIDATES (the cheaper). `part` defaults to the whole hole.
    """
    errors = ring_errors(rgb, hole, hole if part is None else part, radius, patch, seed)
    return min(CANDIDATES, key=lambda how: errors[how])


def _diffuse(rgb: np.ndarray, hole: np.ndarray, method: str, radius: float) -> np.ndarray:
    u8 = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    out = cv2.inpaint(u8, hole.astype(np.uint8), radius, flag).astype(np.float32) / 255
    # 8-bit is only what fills the hole; known pixels keep their full precision
    return np.where(hole[..., None], out, rgb)


def _margin(hole: np.ndarray, radius: float, patch: int) -> int:
    return max(3 * patch, int(radius) + 2, int(1.5 * hole_radius(hole)))


def _fill_auto(rgb: np.ndarray, hole: np.ndarray, radius: float, patch: int, seed: int) -> np.ndarray:
    """Each group of nearby hole components filled by the method its own self-test chose, on a crop around it.

    Components closer than two ring widths are one group (their rings would overlap).
    Groups are filled one after the other; a filled group is known to the next ones.
    """
    out = rgb.copy()
    left = hole.copy()
    w = ring_width(hole)
    near = cv2.dilate(hole.astype(np.uint8), np.ones((2 * w + 1, 2 * w + 1), np.uint8))
    n, labels = cv2.connectedComponents(near, connectivity=8)
    for g in range(1, n):
        part_full = hole & (labels == g)
        if not part_full.any():
            continue
        y0, y1, x0, x1 = _bbox(part_full, _margin(part_full, radius, patch) + ring_width(part_full))
        crop, unknown, part = out[y0:y1, x0:x1], left[y0:y1, x0:x1], part_full[y0:y1, x0:x1]
        how = choose_method(crop, unknown, part, radius, patch, seed)
        done = _fill_crop(crop, unknown, how, radius, patch, seed)
        out[y0:y1, x0:x1] = np.where(part[..., None], done, crop)
        left[y0:y1, x0:x1] &= ~part
    return out


def fill(image: torch.Tensor, mask: torch.Tensor, method: Method = "auto", radius: float = 3.0,
         patch: int = 7, seed: int = 0) -> torch.Tensor:
    """Every pixel with mask > 0 filled from its surroundings, the rest untouched (no blending)."""
    check_image(image, "inpaint")
    m = fit_mask(mask, image, where="inpaint mask", allow_full=False)
    out = image.clone()
    for b in range(image.shape[0]):
        hole_full = (m[b if m.shape[0] > 1 else 0, 0] > 0).cpu().numpy()
        if not hole_full.any():
            continue
        extra = ring_width(hole_full) if method == "auto" else 0  # the self-test's ring needs its margin too
        y0, y1, x0, x1 = _bbox(hole_full, _margin(hole_full, radius, patch) + extra)
        hole = hole_full[y0:y1, x0:x1]
        rgb = np.ascontiguousarray(image[b, :, y0:y1, x0:x1].detach().float().permute(1, 2, 0).cpu().numpy())
        if method == "auto":
            done = _fill_auto(rgb, hole, radius, patch, seed)
        else:
            done = _fill_crop(rgb, hole, method, radius, patch, seed)
        filled = torch.from_numpy(done).permute(2, 0, 1).to(image.device, image.dtype)
        region = out[b, :, y0:y1, x0:x1]
        keep = torch.from_numpy(hole).to(image.device)
        out[b, :, y0:y1, x0:x1] = torch.where(keep, filled, region)
    return out.clamp_(0, 1)


def inpaint(image: torch.Tensor, mask: torch.Tensor, method: Method = "auto", radius: float = 3.0,
            patch: int = 7, seed: int = 0) -> torch.Tensor:
    """Fill the masked region (white = fill) of a (B,3,H,W) image; outside the mask is unchanged.

    A soft mask blends the fill in: `m * filled + (1 - m) * image`. Raises ToolError
    for a mask of the wrong size, an empty mask, or one that covers everything.
    """
    m = fit_mask(mask, image, where="inpaint mask", allow_full=False)
    return blend(image, fill(image, m, method, radius, patch, seed), m)


# ------------------------------------------------------------------ exemplar (PatchMatch) fill


def _dilate(hole: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(hole[None, None].float(), 2 * r + 1, stride=1, padding=r)[0, 0] > 0


def _level_masks(hole: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid source centres, active target centres) of one pyramid level, flat bool."""
    H, W = hole.shape
    inside = torch.zeros(H, W, dtype=torch.bool)
    inside[r:H - r, r:W - r] = True
    band = _dilate(hole, r)
    return (~band & inside).flatten(), (band & inside).flatten()


class _Level:
    """One pyramid level: the estimate (H*W, 3) and the patch-centre bookkeeping."""

    def __init__(self, img: torch.Tensor, hole: torch.Tensor, r: int) -> None:
        self.H, self.W = hole.shape
        self.r = r
        self.est = img.reshape(3, -1).t().contiguous()
        self.valid, act = _level_masks(hole, r)
        self.valid_idx = torch.nonzero(self.valid).flatten()
        self.T = torch.nonzero(act).flatten()
        self.Q = torch.nonzero(hole.flatten()).flatten()
        d = torch.arange(-r, r + 1)
        self.offs = (d[:, None] * self.W + d[None, :]).flatten()
        self.offs2d = torch.stack(torch.meshgrid(d, d, indexing="ij"), -1).reshape(-1, 2)
        self.feat = torch.empty(0)
        self.fT = torch.empty(0)

    def features(self) -> None:
        """Every patch as one row (unfold), so a patch distance is one contiguous row gather.

        Large levels use every other pixel of the patch (a 4x4 grid spanning it), which
        keeps memory at ~1/3 and the match quality nearly the same.
        """
        x = self.est.t().reshape(1, 3, self.H, self.W)
        p = 2 * self.r + 1
        if self.H * self.W * 3 * p * p <= 40_000_000:
            f = F.unfold(x, p)
        else:
            f = F.unfold(x, self.r + 1, dilation=2)
        self.feat = f[0].t().contiguous()
        self.fT = self.feat[self._col(self.T)]

    def _col(self, idx: torch.Tensor) -> torch.Tensor:
        r = self.r
        return (idx // self.W - r) * (self.W - 2 * r) + (idx % self.W - r)

    def cost(self, S: torch.Tensor) -> torch.Tensor:
        """Squared patch distance between every active target and its candidate source S."""
        diff = self.fT - self.feat[self._col(S)]
        return (diff * diff).sum(1)

    def clamp_valid(self, sy: torch.Tensor, sx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.r
        S = sy.clamp(r, self.H - r - 1) * self.W + sx.clamp(r, self.W - r - 1)
        return S, self.valid[S]

    def vote(self, nnf: torch.Tensor) -> None:
        """Each hole pixel = mean of what every patch covering it proposes (Wexler's E-step)."""
        qy, qx = self.Q // self.W, self.Q % self.W
        acc = torch.zeros(len(self.Q), 3)
        cnt = torch.zeros(len(self.Q), 1)
        r, n = self.r, self.H * self.W
        pairs = list(zip(self.offs2d.tolist(), self.offs.tolist(), strict=True))
        if len(self.Q) > 100_000:  # fine levels of big holes: the upsampled field is coherent, 3x3 votes suffice
            pairs = [p for p in pairs if abs(p[0][0]) <= 1 and abs(p[0][1]) <= 1]
        for (dy, dx), o in pairs:
            cy, cx = qy - dy, qx - dx
            ok = ((cy >= r) & (cy < self.H - r) & (cx >= r) & (cx < self.W - r))[:, None]
            src = nnf[(cy * self.W + cx).clamp(0, n - 1)] + o
            acc += self.est[src.clamp(0, n - 1)] * ok
            cnt += ok
        self.est[self.Q] = acc / cnt.clamp_min(1)


def _search(lv: _Level, nnf: torch.Tensor, gen: torch.Generator, iters: int) -> None:
    """Vectorised PatchMatch: propagation from neighbours (1, 2, 4 px) and random search, all targets at once."""
    T = lv.T
    if len(T) == 0:
        return
    W = lv.W
    ty, tx = T // W, T % W
    for _ in range(iters):
        lv.features()
        best = nnf[T].clone()
        cost = lv.cost(best)

        def consider(S: torch.Tensor, ok: torch.Tensor) -> None:
            nonlocal best, cost
            c = torch.where(ok, lv.cost(S), torch.full_like(cost, math.inf))
            better = c < cost
            best = torch.where(better, S, best)
            cost = torch.minimum(c, cost)

        for step in (4, 2, 1):
            for dy, dx in ((0, step), (step, 0), (0, -step), (-step, 0)):
                ny, nx = (ty - dy).clamp(0, lv.H - 1), (tx - dx).clamp(0, W - 1)
                s = nnf[ny * W + nx]
                consider(*lv.clamp_valid(s // W + dy, s % W + dx))
                nnf[T] = best
        R = max(lv.H, lv.W) // 2
        while R >= 1:
            sy = best // W + torch.randint(-R, R + 1, (len(T),), generator=gen)
            sx = best % W + torch.randint(-R, R + 1, (len(T),), generator=gen)
            consider(*lv.clamp_valid(sy, sx))
            R //= 2
        nnf[T] = best
        lv.vote(nnf)


def exemplar(rgb: np.ndarray, hole: np.ndarray, patch: int = 7, seed: int = 0) -> np.ndarray:
    """Fill `hole` (H,W bool) of an HWC float image by coarse-to-fine PatchMatch; known pixels kept."""
    r = patch // 2
    img = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float()
    h = torch.from_numpy(hole)
    img = img * ~h  # the hole's old content is never looked at
    imgs, holes = [img], [h]
    rad = hole_radius(hole)
    while rad > 2 * r and min(holes[-1].shape) // 2 >= 4 * patch:
        k = holes[-1].float()[None, None]
        known = 1 - k
        # average only known pixels; a coarse pixel with any hole pixel under it is hole
        num = F.avg_pool2d(imgs[-1][None] * known, 2, ceil_mode=True)
        den = F.avg_pool2d(known, 2, ceil_mode=True)
        holes.append(F.max_pool2d(k, 2, ceil_mode=True)[0, 0] > 0)
        imgs.append((num / den.clamp_min(1e-6))[0])
        rad /= 2
    threads = torch.get_num_threads()
    try:
        return _exemplar_levels(rgb, hole, imgs, holes, r, seed, threads)
    finally:
        torch.set_num_threads(threads)


def _exemplar_levels(rgb: np.ndarray, hole: np.ndarray, imgs: list[torch.Tensor], holes: list[torch.Tensor],
                     r: int, seed: int, threads: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    nnf: torch.Tensor | None = None
    prev_h = prev_w = 0
    for depth in range(len(imgs) - 1, -1, -1):
        lv = _Level(imgs[depth], holes[depth], r)
        # small levels: thread hand-offs cost more than the maths (15x slower measured on 2 busy cores)
        torch.set_num_threads(threads if len(lv.T) > 100_000 else 1)
        if len(lv.valid_idx) == 0:
            raise ToolError("the hole leaves no clean patch around it to copy from; use method telea or ns")
        ident = torch.arange(lv.H * lv.W)
        if nnf is None:
            coarse = _diffuse(lv.est.reshape(lv.H, lv.W, 3).numpy(), holes[depth].numpy(), "telea", 3)
            lv.est = torch.from_numpy(np.ascontiguousarray(coarse)).reshape(-1, 3).float()
            new = ident.clone()
            new[lv.T] = lv.valid_idx[torch.randint(len(lv.valid_idx), (len(lv.T),), generator=gen)]
        else:
            new = ident.clone()
            ty, tx = lv.T // lv.W, lv.T % lv.W
            c = nnf[(ty // 2).clamp(max=prev_h - 1) * prev_w + (tx // 2).clamp(max=prev_w - 1)]
            S, ok = lv.clamp_valid(2 * (c // prev_w) + ty % 2, 2 * (c % prev_w) + tx % 2)
            rnd = lv.valid_idx[torch.randint(len(lv.valid_idx), (len(lv.T),), generator=gen)]
            new[lv.T] = torch.where(ok, S, rnd)
            lv.vote(new)
        nnf = new
        n = len(lv.T)
        iters = 0 if n > SEARCH_CAP else (1 if n > 100_000 else (2 if n > 20_000 else 4))
        if depth == len(imgs) - 1:
            iters = max(iters, 6)
        _search(lv, nnf, gen, iters)
        prev_h, prev_w = lv.H, lv.W
        est = lv.est
    out = est.reshape(*hole.shape, 3).numpy()
    return np.where(hole[..., None], out, rgb).astype(np.float32)


# ------------------------------------------------------------------ defects


# Thresholds of the mark test, tuned on benchmarks/inpaint.py's defect part (marks painted on
# skimage photos vs the same photos clean); the docstring of find_defects says what each means.
DEFECT_Z = 2.5  # residual over this many times the local texture level (tile 90th percentile)
DEFECT_FLOOR = 0.1  # ... and over this absolute luma step
MARK_FLAT = 0.6  # std of the mark / its contrast: marks are flat, texture peaks are domed
MARK_CHROMA = 0.1  # max - min of R, G, B in the mark: dust and scratches are neutral
MARK_EXTREME = 0.08  # mean distance of the mark from white (bright) or black (dark) at sensitivity 0.5
MARK_THICK = 4.0  # px: scratches are at most this thick (area / length)


def _texture_level(r: np.ndarray, tile: int, q: float = 0.9) -> np.ndarray:
    """The q-quantile of r per tile, bilinearly spread: how strong ordinary texture is around each pixel.

    A high quantile, not the MAD: in a top-hat residual most pixels are 0 even in hair or
    foliage, so the median says nothing; a mark covers far less than 10 % of a tile, so it
    does not raise its own threshold.
    """
    H, W = r.shape
    ny, nx = max(1, round(H / tile)), max(1, round(W / tile))
    ys, xs = np.linspace(0, H, ny + 1).astype(int), np.linspace(0, W, nx + 1).astype(int)
    g = np.array([[np.quantile(r[ys[i]:ys[i + 1], xs[j]:xs[j + 1]], q) for j in range(nx)] for i in range(ny)],
                 np.float32)
    return cv2.resize(g, (W, H), interpolation=cv2.INTER_LINEAR)


def _residual(v: np.ndarray, max_size: float, z: float) -> tuple[np.ndarray, np.ndarray]:
    """(top-hat residual, threshold) of bright structures in v, at the scale where each pixel stands out most.

    Scales 5, 9 and max_size px: a 2-px scratch shows against a 5-px opening, where a
    13-px one would flag every thin highlight of a busy photo as well.
    """
    s = 2 * math.ceil(max_size / 2) + 1
    best: tuple[np.ndarray, np.ndarray] | None = None
    for size in sorted({min(5, s), min(9, s), s}):
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
        r = v - cv2.morphologyEx(v, cv2.MORPH_OPEN, se, borderType=cv2.BORDER_REFLECT)
        th = np.maximum(DEFECT_FLOOR, z * _texture_level(r, max(24, 3 * s)))
        if best is None:
            best = (r, th)
        else:
            pick = r * best[1] > best[0] * th
            best = (np.where(pick, r, best[0]), np.where(pick, th, best[1]))
    assert best is not None
    return best


def _marks(v: np.ndarray, chroma: np.ndarray, max_size: float, sensitivity: float, kind: str) -> np.ndarray:
    """Bool mask of the bright marks of v (pass 1 - luma for the dark ones)."""
    z = DEFECT_Z * (1.6 - 1.2 * sensitivity)  # 2.5 at 0.5; 1.0 .. 4.0 over the range
    extreme = MARK_EXTREME * (0.25 + 1.5 * sensitivity)
    r, th = _residual(v, max_size, z)
    seed = (r > th).astype(np.uint8)
    grown = ((r > 0.5 * th) & (cv2.dilate(seed, np.ones((5, 5), np.uint8)) > 0)).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    found = np.zeros(v.shape, bool)
    for i in range(1, n):
        x, y, w, h, area = (int(t) for t in stats[i])
        ys, xs = slice(max(0, y - 5), y + h + 5), slice(max(0, x - 5), x + w + 5)
        comp = lab[ys, xs] == i
        if not seed[ys, xs][comp].any():
            continue
        c8 = comp.astype(np.uint8)
        near = cv2.dilate(c8, np.ones((3, 3), np.uint8)) > 0
        ring = (cv2.dilate(c8, np.ones((7, 7), np.uint8)) > 0) & ~near
        rr, tt, vv = r[ys, xs], th[ys, xs], v[ys, xs]
        if ring.any() and (rr[ring] > 0.5 * tt[ring]).mean() > 0.3:
            continue  # its surroundings light up too: texture (hair, foliage, text), not a lone mark
        inside = vv[comp]
        edge = near & ~comp
        contrast = float(inside.mean() - np.median(vv[edge])) if edge.any() else 0.0
        core = comp & (vv >= inside.max() - 0.1)  # the mark itself, without the texture it grew into
        pts = np.argwhere(comp).astype(np.float32)
        length = max(1.0, math.sqrt(12 * max(float(np.linalg.eigvalsh(np.cov(pts.T))[1]), 0.0))) if area > 2 else 1.0
        spot = max(w, h) <= max_size and kind in ("spots", "both")
        scratch = length >= max_size and area / length <= MARK_THICK and kind in ("scratches", "both")
        found[ys, xs] |= comp & bool(
            (spot or scratch) and contrast >= 0.15 and (rr[comp] / tt[comp]).max() >= 1.5
            and inside.std() <= MARK_FLAT * contrast and chroma[ys, xs][core].mean() <= MARK_CHROMA
            and (1 - vv[core]).mean() <= extreme)
    return found


def find_defects(image: torch.Tensor, max_size: float = 12.0, sensitivity: float = 0.5,
                 kind: Literal["spots", "scratches", "both"] = "both") -> torch.Tensor:
    """Dust spots and thin scratches, bright or dark, as a (B,1,H,W) 0/1 mask (grown 1 px to cover their halo).

    Candidates are pixels that stand out of a morphological opening (white top-hat for
    bright marks, the same on the inverted luma for dark ones) at 5, 9 or max_size px,
    by more than z times the local texture level (the 90th percentile of that residual
    in tiles ~3 max_size wide; z = 2.5 at sensitivity 0.5) and 0.1 absolute. A candidate
    is kept as a mark when it is a spot (at most max_size px across) or a scratch (long,
    at most 4 px thick), stands alone (its ring does not light up too), and looks like
    dust or missing emulsion: flat inside, neutral in colour, near white or near black.
    That last test is what keeps hair, eyelashes, text and specular highlights out.
    """
    check_image(image, "find_defects")
    out = torch.zeros(image.shape[0], 1, *image.shape[-2:], device=image.device)
    for b in range(image.shape[0]):
        x = image[b:b + 1].detach().float().clamp(0, 1)
        y = cs.luminance(x)[0, 0].cpu().numpy().astype(np.float32)
        rgb = x[0].cpu().numpy()
        chroma = rgb.max(0) - rgb.min(0)
        found = _marks(y, chroma, max_size, sensitivity, kind) | _marks(1 - y, chroma, max_size, sensitivity, kind)
        grown = cv2.dilate(found.astype(np.uint8), np.ones((3, 3), np.uint8))
        out[b, 0] = torch.from_numpy(grown.astype(np.float32)).to(image.device)
    return out


def defect_share(image: torch.Tensor, **kw: float) -> float:
    """% of the first image's pixels that find_defects flags."""
    return float(find_defects(image[:1], **kw).mean()) * 100


# ------------------------------------------------------------------ object removal


def object_mask(image: torch.Tensor, x: float, y: float, w: float, h: float, grow_px: float = 6.0) -> torch.Tensor:
    """The object inside a pixel box (GrabCut), grown by `grow_px`; the box itself when GrabCut finds nothing."""
    from tools.masks import rect

    m = subject(image, x, y, w, h)
    if float(m.sum()) < 0.05 * w * h:  # GrabCut gave up (object and background alike): take the box
        m = (rect(image, x, y, w, h) > 0).to(image.dtype)
    return grow(m, grow_px)


def remove_object(image: torch.Tensor, x: float, y: float, w: float, h: float, grow_px: float = 6.0,
                  method: Method = "auto") -> torch.Tensor:
    """GrabCut the object inside the pixel box, grow its mask, and inpaint it away."""
    return inpaint(image, object_mask(image, x, y, w, h, grow_px), method)


# ------------------------------------------------------------------ agent-facing tools


class Inpaint(Params):
    """Fill (remove) what is inside a mask from its surroundings: blemishes, wires, objects."""

    method: Method = Field("auto", description="auto (tries each on known pixels around the hole) | telea | ns "
                           "(diffusion: thin or smooth holes) | "
                           "exemplar (copies texture: wide holes in grass, walls, foliage)")
    radius: float = Field(3.0, ge=1, le=20, description="diffusion neighbourhood, px (telea/ns)")

    PIXEL_FIELDS = ("radius",)


@register(Inpaint, family="retouch", name="inpaint", needs_mask=True, differentiable=False, cost=30.0)
def inpaint_tool(image: torch.Tensor, p: Inpaint, mask: torch.Tensor) -> torch.Tensor:
    return fill(image, mask, p.method, p.radius)



class RemoveDefects(Params):
    """Remove dust spots and thin scratches (found automatically) by filling them from around."""

    kind: Literal["spots", "scratches", "both"] = Field("both", description="what to look for")
    max_size: float = Field(12.0, ge=2, le=60, description="largest spot diameter / scratch width window, px")
    sensitivity: float = Field(0.5, ge=0, le=1, description="0 only obvious defects .. 1 faint ones too")

    PIXEL_FIELDS = ("max_size",)


@register(RemoveDefects, family="retouch", differentiable=False, cost=10.0)
def remove_defects(image: torch.Tensor, p: RemoveDefects) -> torch.Tensor:
    m = find_defects(image, p.max_size, p.sensitivity, p.kind)
    if float(m.max()) == 0:
        return image.clone()
    return fill(image, m, "auto", 3.0)  # each mark by the method its self-test chose


class RemoveObject(Params):
    """Remove the object inside a box (GrabCut cut-out, grown, then filled); box as fractions of width/height."""

    x: float = Field(0.4, ge=0, le=1, description="box left edge, fraction of the width")
    y: float = Field(0.4, ge=0, le=1, description="box top edge, fraction of the height")
    w: float = Field(0.2, ge=0.005, le=1, description="box width, fraction of the width")
    h: float = Field(0.2, ge=0.005, le=1, description="box height, fraction of the height")
    grow: float = Field(0.6, ge=0, le=5, description="grow the cut-out by this % of the long side (covers halos)")
    method: Method = Field("auto", description="fill method; auto tries each on known pixels around the hole")


@register(RemoveObject, family="retouch", name="remove_object", differentiable=False, cost=40.0)
def remove_object_tool(image: torch.Tensor, p: RemoveObject) -> torch.Tensor:
    H, W = image.shape[-2:]
    m = object_mask(image[:1], p.x * W, p.y * H, p.w * W, p.h * H, p.grow / 100 * max(H, W))
    return inpaint(image, feather(m, 2.0), p.method)
