"""3-D colour lookup tables: a chain of pointwise colour steps baked once, applied in one pass.

`bake(steps)` runs the real ops on a lattice of N^3 RGB points (an image of N^3 pixels), so the
table is exact at the lattice; `apply(image, lut)` interpolates it trilinearly at every pixel;
`to_cube` / `from_cube` write and read the same LUT as a `.cube` file. For other software,
`recipe_to_cube` bakes a colour-only recipe on a uniform lattice (what ffmpeg's `lut3d` reads;
`evals/cube_check.py` measures ffmpeg's rendering against ours). A user's .cube becomes a step
through `remember_cube` (kept under its sha256) and the `lut3d` tool, which interpolates
tetrahedrally (`apply_tetrahedral`, as ffmpeg does: 12 MP in ~1.4 s on 2 cores) or trilinearly.

Lattice: input (i, j, k) / (N-1) raised to `gamma` (1.5: a per-channel power shaper, as film and
grading LUTs use), so cells are small in the shadows, where gamma-like curves are steep. The
table is a float32 (N, N, N, 3) tensor indexed [b, g, r] (blue slowest, red fastest: `.cube`
order) holding output RGB in [0,1].

CPU path (no autograd): trilinear interpolation is one bilinear `cv2.remap` per band of rows.
The table is resampled along blue to `_levels(N)` levels (linearly: exactly what trilinear does
between two blue slices) and laid out as a 2-D image, rows = green, columns = blue level * N +
red; each pixel's map coordinates come from three 16-bit lookups that fold in the shaper. Blue
levels are a multiple of N-1 (lattice points stay exact) and >= 448, so blue moves by at most
1/900 of the range before interpolation; OpenCV's bilinear weights are fixed point (1/32 of a
cell). 12 MP float32 on 2 cores: ~60 ms (bake ~5 ms); the 6-op recipe of `make bench` renders
at ~1.2x an 8-bit OpenCV chain of three LUTs, one HSV round trip and a multiply. On a GPU or
under autograd: torch's `grid_sample` (trilinear, differentiable in the image).

Measured error vs the unfused chain (N = 33, gamma 1.5; skimage's astronaut, coffee and chelsea
at 1155x866, and a 17^3 RGB grid; CIEDE2000 via skimage), 8 chains of 2-6 tone and colour steps:
mean dE 0.02-0.36. Max dE <= 1.6 (max abs RGB error <= 0.03) for HSL + contrast, gamma 2 +
saturation, exposure + hue + levels, B&W mix + curves; 3.1 for luma curve + vibrance -50; 3.7 for
the 6-op bench recipe (brightness, contrast, saturation, hue, gamma, white balance; 99th
percentile 0.46); 4.9 for split toning + exposure; 8.1 for strong saturation + vibrance (+80,
+60), where gamut clipping puts a crease inside a cell (99th percentile <= 2.1, max abs 0.11).
A uniform lattice (gamma 1) had max 9.1 on gamma 2 + saturation; N = 65 cut creases by about 1/3.
`tests/tools/test_lut3d.py` holds a bound on small images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from tools.colorspace import LUT_SIZE, in_threads, use_cv

DEFAULT_SIZE = 33
MAX_SIZE = 65
SHAPER_GAMMA = 1.5  # lattice inputs u**1.5: denser in the shadows, where gamma-like curves are steep
_MAX_COLS = 32767  # cv2.remap's fixed-point map holds coordinates in int16
_ROWS = 64  # rows per CPU band: the band's maps stay in cache (12 MP: 52 ms vs 100 ms unbanded)
# Tools flagged pointwise whose map depends on image statistics: their lattice would measure itself.
IMAGE_DEPENDENT = frozenset({"auto_white_balance"})


def fusable(tool: Any) -> bool:
    """True for a tool whose output pixel is a fixed function of its input pixel (a 3-D LUT can hold it)."""
    return bool(tool.pointwise) and not tool.read_only and tool.name not in IMAGE_DEPENDENT


@dataclass(frozen=True)
class Lut3D:
    """A baked 3-D LUT: `table` (N,N,N,3) [b,g,r] holds the output at input (i,j,k)/(N-1) ** gamma."""

    table: torch.Tensor
    gamma: float = SHAPER_GAMMA  # the per-channel shaper: a pixel x looks up at x ** (1/gamma); 1 = uniform

    @property
    def size(self) -> int:
        return _table_size(self.table)


def lattice(size: int = DEFAULT_SIZE, gamma: float = SHAPER_GAMMA, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The N^3 lattice inputs as a (1,3,N*N,N) image: pixel (row k*N + j, column i) = ((i,j,k)/(N-1)) ** gamma."""
    _check_size(size)
    return _lattice(size, gamma).to(dtype, copy=True)


@lru_cache(maxsize=4)
def _lattice(size: int, gamma: float) -> torch.Tensor:
    ramp = torch.linspace(0, 1, size, dtype=torch.float64) ** gamma
    b, g, r = torch.meshgrid(ramp, ramp, ramp, indexing="ij")
    return torch.stack([r, g, b]).reshape(1, 3, size * size, size)


def bake(steps: Sequence[tuple[Any, Any]], size: int = DEFAULT_SIZE, gamma: float = SHAPER_GAMMA) -> Lut3D:
    """Run (tool, params) steps on the lattice: the 3-D LUT of the whole chain, exact at the lattice.

    Example:
        >>> from tools.registry import get
        >>> t = get("saturation")
        >>> bake([(t, t.validate({"amount": 30}))], 17).table.shape
        torch.Size([17, 17, 17, 3])
    """
    x = lattice(size, gamma)
    for tool, params in steps:
        x = tool(x, params)
    return Lut3D(_as_table(x, size).clamp(0, 1).contiguous(), gamma)


def identity(size: int = DEFAULT_SIZE, gamma: float = SHAPER_GAMMA) -> Lut3D:
    """The LUT that maps every colour to itself."""
    return Lut3D(_as_table(lattice(size, gamma), size), gamma)


def _as_table(image: torch.Tensor, size: int) -> torch.Tensor:
    return image[0].permute(1, 2, 0).reshape(size, size, size, 3).contiguous()


def apply(image: torch.Tensor, lut: Lut3D) -> torch.Tensor:
    """Map a (B,3,H,W) image in [0,1] through a baked LUT, trilinearly; inputs clamped to [0,1].

    Example:
        >>> img = torch.rand(1, 3, 8, 8)
        >>> bool((apply(img, identity(33)) - img).abs().max() < 2e-3)
        True
    """
    n = lut.size
    if not use_cv(image) or image.dtype not in (torch.float32, torch.float64):
        return _apply_torch(image, lut)
    import cv2

    x = image.detach().to(torch.float32).contiguous()
    out = torch.empty_like(x)
    flat = _flat_table(lut.table.detach().cpu().to(torch.float32).numpy(), n)
    levels = flat.shape[1] // n
    to_r, to_b = _coordinates(n, levels, lut.gamma)
    jobs = [(x[i], out[i], r, min(r + _ROWS, x.shape[-2])) for i in range(x.shape[0])
            for r in range(0, x.shape[-2], _ROWS)]

    def band(job: tuple[torch.Tensor, torch.Tensor, int, int]) -> None:
        src, dst, r0, r1 = job
        # the uint16 index saturates: values outside [0,1] take the end entries
        planes = [src[c, r0:r1].numpy() for c in range(3)]
        r, g, b = (cv2.LUT(cv2.addWeighted(p, LUT_SIZE - 1, p, 0, 0, dtype=cv2.CV_16U), t)
                   for p, t in zip(planes, (to_r, to_r, to_b), strict=True))
        rgb = cv2.remap(flat, cv2.add(r, b), g, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        cv2.mixChannels([rgb], [dst[c, r0:r1].numpy() for c in range(3)], [0, 0, 1, 1, 2, 2])

    in_threads(band, jobs)
    return out.to(image.dtype)


def _levels(n: int) -> int:
    """Blue levels of the flattened table: a multiple of n-1, >= 512 when the int16 map allows."""
    step = n - 1
    most = (_MAX_COLS // n - 1) // step * step
    return min(most, -(-512 // step) * step) + 1


def _flat_table(table: np.ndarray, n: int) -> np.ndarray:
    """(N,N,N,3) [b,g,r] -> (N, levels*N, 3) [g, level*N + r]: blue resampled linearly."""
    import torch.nn.functional as F

    levels = _levels(n)
    planes = torch.from_numpy(table).permute(1, 2, 3, 0).reshape(1, n * n * 3, n)  # blue last
    fine = F.interpolate(planes, size=levels, mode="linear", align_corners=True)  # exact at the lattice
    return fine.view(n, n, 3, levels).permute(0, 3, 1, 2).contiguous().view(n, levels * n, 3).numpy()


@lru_cache(maxsize=8)
def _coordinates(n: int, levels: int, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """16-bit tables from a value to its map coordinate, the shaper folded in: red's and green's
    place along the lattice (in cells), blue's nearest level times the slice width."""
    u = torch.linspace(0, 1, LUT_SIZE, dtype=torch.float64) ** (1 / gamma)
    return (u * (n - 1)).float().numpy(), ((u * (levels - 1)).round() * n).float().numpy()


def _apply_torch(image: torch.Tensor, lut: Lut3D) -> torch.Tensor:
    """Trilinear lookup with grid_sample (any device, differentiable in the image)."""
    import torch.nn.functional as F

    b = image.shape[0]
    vol = lut.table.to(device=image.device, dtype=image.dtype).permute(3, 0, 1, 2)[None].expand(b, -1, -1, -1, -1)
    shaped = image.clamp(0, 1) if lut.gamma == 1 else image.clamp(1e-12, 1) ** (1 / lut.gamma)
    grid = shaped.permute(0, 2, 3, 1)[:, None] * 2 - 1  # (B,1,H,W,3) as (x=r, y=g, z=b)
    out = F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[:, :, 0].clamp(0, 1)


def _table_size(table: torch.Tensor) -> int:
    n = table.shape[0]
    if table.ndim != 4 or tuple(table.shape) != (n, n, n, 3):
        raise ValueError(f"a 3-D LUT must be (N, N, N, 3), got {tuple(table.shape)}")
    _check_size(n)
    return n


def _check_size(n: int) -> None:
    if not 2 <= n <= MAX_SIZE:
        raise ValueError(f"3-D LUT size {n} is out of range: use 2 to {MAX_SIZE} (33 is the usual)")


# ----------------------------------------------------------------- .cube files

_SHAPER_ROWS = 4096  # within 1e-6 of the power curve from 1/256 up; 2% of a cell below


def to_cube(lut: Lut3D, title: str = "imagent") -> str:
    """The LUT as `.cube` text: Adobe Cube LUT 1.0 when uniform (gamma 1), else Resolve's shaper form.

    Resolve's form (read by Resolve and OpenColorIO) puts a 1-D shaper, x ** (1/gamma) per channel,
    before the 3-D table: `LUT_1D_SIZE`, `LUT_3D_SIZE`, then the 1-D rows, then the 3-D rows. 3-D rows
    run red fastest, then green, then blue, as both formats require; values to 6 decimals. For a tool
    that reads only Adobe's form, bake with gamma=1.
    """
    n = lut.size
    head = [f'TITLE "{title}"']
    body: list[str] = []
    if lut.gamma == 1:
        head += [f"LUT_3D_SIZE {n}", "DOMAIN_MIN 0.0 0.0 0.0", "DOMAIN_MAX 1.0 1.0 1.0"]
    else:
        head += [f"LUT_1D_SIZE {_SHAPER_ROWS}", "LUT_1D_INPUT_RANGE 0.0 1.0",
                 f"LUT_3D_SIZE {n}", "LUT_3D_INPUT_RANGE 0.0 1.0"]
        body += [f"{v:.6f} {v:.6f} {v:.6f}" for v in np.linspace(0, 1, _SHAPER_ROWS) ** (1 / lut.gamma)]
    body += [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in lut.table.detach().cpu().double().reshape(-1, 3).numpy()]
    return "\n".join(head + body) + "\n"


def from_cube(text: str) -> Lut3D:
    """Read `.cube` text: a 3-D LUT on [0,1], with or without a power-law 1-D shaper (as `to_cube` writes)."""
    sizes = {"LUT_1D_SIZE": 0, "LUT_3D_SIZE": 0}
    rows: list[list[float]] = []
    for no, raw in enumerate(text.splitlines(), 1):
        words = raw.split("#", 1)[0].split()
        if not words or words[0] == "TITLE":
            continue
        if words[0] in sizes:
            sizes[words[0]] = int(words[1])
        elif words[0] in ("DOMAIN_MIN", "DOMAIN_MAX", "LUT_1D_INPUT_RANGE", "LUT_3D_INPUT_RANGE"):
            want = [0.0] * 3 if words[0] == "DOMAIN_MIN" else [1.0] * 3 if words[0] == "DOMAIN_MAX" else [0.0, 1.0]
            if [float(v) for v in words[1:]] != want:
                raise ValueError(f"line {no}: {' '.join(words)}: only the [0,1] domain is supported; rescale the LUT")
        else:
            try:
                rows.append([float(v) for v in words[:3]])
            except ValueError:
                raise ValueError(f"line {no}: unknown keyword {words[0]!r} in a .cube file") from None
    m, n = sizes["LUT_1D_SIZE"], sizes["LUT_3D_SIZE"]
    if n == 0:
        raise ValueError("no LUT_3D_SIZE line: not a 3-D .cube file (1-D LUTs are not read here)")
    if len(rows) != m + n**3:
        raise ValueError(f"LUT_1D_SIZE {m} and LUT_3D_SIZE {n} need {m + n**3} rows, found {len(rows)}")
    table = torch.tensor(rows[m:], dtype=torch.float32).reshape(n, n, n, 3)
    return Lut3D(table, _shaper_gamma(np.array(rows[:m])) if m else 1.0)


def _shaper_gamma(shaper: np.ndarray) -> float:
    """The gamma of a shaper that is x ** (1/gamma) on every channel; anything else is refused."""
    x = np.linspace(0, 1, len(shaper))[:, None]
    mid = len(shaper) // 2
    gamma = float(np.round(np.log(x[mid, 0]) / np.log(shaper[mid, 0]), 4))
    if not np.allclose(shaper, x ** (1 / gamma), atol=2e-6):
        raise ValueError("the 1-D shaper is not a power curve x ** (1/gamma); only such shapers are supported")
    return gamma


def recipe_to_cube(recipe: Any, size: int = DEFAULT_SIZE, title: str = "imagent") -> str:
    """A recipe of colour-only steps as Adobe `.cube` text (uniform lattice on [0,1]), for any grading tool.

    The lattice is uniform (no 1-D shaper): ffmpeg's `lut3d` and most consumers read only
    `LUT_3D_SIZE` and the rows. Each lattice point holds what `apply_recipe` renders there, fused
    runs included, so other software reproduces what `imagent apply` shows (65^3 on 12 photos:
    max dE 2.0 where baking the ops themselves left 5.9 against imagent's fused 3-D LUT). Raises
    `tools.recipe.RecipeError` naming the first step that a LUT cannot hold: a spatial step, a
    masked one, or one whose map depends on the image.

    Example:
        >>> from tools.recipe import Recipe
        >>> text = recipe_to_cube(Recipe().then("saturation", {"amount": 30}), 17)
        >>> text.splitlines()[1], len(text.splitlines())
        ('LUT_3D_SIZE 17', 4917)
    """
    from tools.recipe import RecipeError, apply_recipe

    if size not in (17, DEFAULT_SIZE, MAX_SIZE):
        raise RecipeError(f"cube size {size} is not offered: use 17, 33 or 65 (33 is the usual)")
    steps = []
    for i, step in enumerate(recipe.steps, 1):
        try:
            tool, params = step.resolve()
        except ValueError as exc:
            raise RecipeError(f"step {i}: {exc}") from None
        if tool.read_only:
            continue  # measures only: no effect on the pixels
        if not tool.pointwise:
            why = "it looks at neighbouring pixels"
        elif tool.name in IMAGE_DEPENDENT:
            why = "its change depends on the whole photo's statistics"
        elif step.mask is not None:
            why = f"it is restricted to the mask {step.mask!r}, and a LUT applies to the whole frame"
        else:
            steps.append(step)
            continue
        raise RecipeError(f"step {i} `{step.tool}` is not colour-only ({why}); a .cube can hold only "
                          "whole-frame colour steps: remove it or export a recipe without it")
    if not steps:
        raise RecipeError("the recipe changes no colours: nothing to export as a .cube")
    rendered = apply_recipe(lattice(size, 1.0), recipe.model_copy(update={"steps": steps, "size": None}))
    table = Lut3D(_as_table(rendered, size).clamp(0, 1).contiguous(), 1.0)
    return to_cube(table, " ".join(title.replace('"', "'").split()) or "imagent")


# ----------------------------------------------------------------- users' .cube files as a step

_LOOKS: dict[str, Lut3D] = {}  # sha256 of the file's bytes -> its LUT: what the `lut3d` tool reads
# Tools whose params name a file the agent layer loads: never offered to a planner, which cannot load one.
FILE_BACKED = frozenset({"lut3d"})


def remember_cube(data: bytes, where: str = ".cube file") -> str:
    """Parse a user's .cube file (its bytes) and keep its LUT under its sha256, which is returned.

    The `lut3d` tool finds the LUT by that hash: tools never read files, the agent layer reads
    the file, checks its hash against the recipe's, and hands the bytes here.
    """
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _LOOKS:
        try:
            _LOOKS[digest] = from_cube(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    return digest


def remembered(digest: str) -> Lut3D | None:
    """The LUT kept under this sha256 by `remember_cube`, or None."""
    return _LOOKS.get(digest)


def apply_tetrahedral(image: torch.Tensor, lut: Lut3D) -> torch.Tensor:
    """Map a (B,3,H,W) image in [0,1] through a LUT by tetrahedral interpolation (as ffmpeg's and
    Resolve's default): each cell splits into 6 tetrahedra along its grey diagonal, so a neutral
    input reads only neutral lattice points. Differentiable in the image; on the CPU without
    autograd it runs in bands of rows on the `in_threads` pool.

    Example:
        >>> img = torch.rand(1, 3, 8, 8)
        >>> bool((apply_tetrahedral(img, identity(17, 1.0)) - img).abs().max() < 1e-5)
        True
    """
    table = lut.table.to(device=image.device, dtype=image.dtype).reshape(-1, 3).contiguous()
    if not use_cv(image):
        b, _, h, w = image.shape
        out = _tetrahedral(image.permute(0, 2, 3, 1).reshape(-1, 3), table, lut)
        return out.reshape(b, h, w, 3).permute(0, 3, 1, 2).contiguous()
    out = torch.empty_like(image)
    jobs = [(i, r, min(r + _ROWS, image.shape[-2])) for i in range(image.shape[0])
            for r in range(0, image.shape[-2], _ROWS)]

    def band(job: tuple[int, int, int]) -> None:
        i, r0, r1 = job
        rgb = _tetrahedral(image[i, :, r0:r1].reshape(3, -1).T, table, lut)
        out[i, :, r0:r1] = rgb.T.reshape(3, r1 - r0, -1)

    in_threads(band, jobs)
    return out


def _tetrahedral(rgb: torch.Tensor, table: torch.Tensor, lut: Lut3D) -> torch.Tensor:
    """(P,3) r,g,b -> (P,3). With fractions f1 >= f2 >= f3 inside the cell, the tetrahedron's vertices
    are the corner, +1 along the largest's axis, +1 along all but the smallest's, and the far corner."""
    n = lut.size
    x = rgb.clamp(0, 1) if lut.gamma == 1 else rgb.clamp(1e-12, 1) ** (1 / lut.gamma)
    pos = x * (n - 1)
    base = pos.detach().floor().clamp_(max=n - 2)
    frac = pos - base
    stride = torch.tensor([1, n, n * n], device=rgb.device)  # table[b, g, r] flattened: r fastest
    corner = (base.long() * stride).sum(1)
    f1, top = frac.max(1)
    f3, low = frac.min(1)
    f2 = frac.sum(1) - f1 - f3
    far = corner + (1 + n + n * n)
    out = torch.stack([1 - f1, f1 - f2, f2 - f3, f3], 1)[:, :, None] * torch.stack(
        [table[corner], table[corner + stride[top]], table[far - stride[low]], table[far]], 1)
    return out.sum(1).clamp(0, 1)
