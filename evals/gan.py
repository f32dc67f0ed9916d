"""The gan suite's cases and systems: inversion fidelity and direction edits on generator samples.

A gan case is either
- ``invert``: one face the generator drew from `seed` (64x64); the input and the
  reference are that face, and a system's output is its reconstruction, so PSNR/SSIM
  say how faithful an edit built on the inversion can be;
- ``edit``: `n` held-out faces from `seed`, tiled in a grid, and a direction with an
  amount; a system's output is the edited grid and `moved` is the share of faces whose
  attribute scorer (`tools.gan.attributes.score_faces`) moved the right way.

Systems: ``gan-encoder`` (the shipped encoder's one-shot latent, no refinement),
``gan-invert`` (encoder warm start + Adam refinement, `tools.gan.invert`), and for edit
cases ``gan-latent`` (the edit applied to the faces' true latents: the upper reference).
Inversion steps and time come from the case (`steps`, `seconds`) so a quick suite stays quick.
"""

from __future__ import annotations

import math
from typing import Any

import torch

GAN_SYSTEMS = ("gan-encoder", "gan-invert", "gan-latent")
GRID_COLUMNS = 4


def _backend() -> Any:
    from tools.gan.backends import get_backend

    return get_backend("dcgan")


def faces_of(spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(latents, faces) of a gan case: `n` (1 for invert) samples drawn from `seed`."""
    backend = _backend()
    n = 1 if spec.get("task", "invert") == "invert" else int(spec.get("n", 8))
    z = backend.random_latents(n, int(spec.get("seed", 0)))
    with torch.no_grad():
        return z, backend.synthesize(z).float().clamp(0, 1).cpu()


def tile(faces: torch.Tensor) -> torch.Tensor:
    """(N,3,R,R) faces as one (1,3,rows*R,cols*R) grid, row-major, left to right."""
    n, c, r, _ = faces.shape
    cols = min(GRID_COLUMNS, n)
    rows = math.ceil(n / cols)
    grid = torch.zeros(1, c, rows * r, cols * r)
    for i in range(n):
        y, x = divmod(i, cols)
        grid[0, :, y * r:(y + 1) * r, x * r:(x + 1) * r] = faces[i]
    return grid


def untile(grid: torch.Tensor, n: int, r: int) -> torch.Tensor:
    cols = min(GRID_COLUMNS, n)
    return torch.stack([grid[0, :, (i // cols) * r:(i // cols + 1) * r, (i % cols) * r:(i % cols + 1) * r]
                        for i in range(n)])


def build(case: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(input, reference): the face itself for invert, the grid of faces (no reference) for edit."""
    _, faces = faces_of(case.gan or {})
    if (case.gan or {}).get("task", "invert") == "invert":
        return faces.clone(), faces.clone()
    return tile(faces), None


def run(name: str, case: Any, image: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any], list[str]]:
    """(output, extra record fields, trace) of gan system `name` on a gan case."""
    from evals.baselines import NotApplicable
    from tools.gan import invert as inv
    from tools.gan.attributes import score_faces
    from tools.gan.directions import vector

    spec = case.gan or {}
    task = spec.get("task", "invert")
    backend = _backend()
    r = backend.resolution
    n = 1 if task == "invert" else int(spec.get("n", 8))
    faces = untile(image, n, r) if task == "edit" else image
    trace: list[str] = []
    extra: dict[str, Any] = {}
    if name == "gan-latent":
        if task != "edit":
            raise NotApplicable("gan-latent knows the true latents: only a reference for edit cases")
        z, _ = faces_of(spec)
        trace.append("true latents")
    elif name == "gan-encoder":
        z, how = inv.warm_start(backend, faces)
        trace.append(f"warm start: {how}")
    else:
        settings = inv.Settings(steps=int(spec.get("steps", 200)), seconds=float(spec.get("seconds", 9.0)))
        res = inv.invert(backend, faces, settings=settings, seed=int(spec.get("seed", 0)))
        z = res.latents
        trace.append(f"inverted {n} face(s): {res.steps} steps, {res.seconds:.1f} s, warm start {res.warm_start}")
    with torch.no_grad():
        if task == "invert":
            return backend.synthesize(z).float().clamp(0, 1).cpu(), extra, trace
        direction, amount = spec.get("direction", "smile"), float(spec.get("amount", 3.0))
        edited = backend.synthesize(z + amount * vector(direction, backend)).float().clamp(0, 1).cpu()
    before, after = score_faces(faces.contiguous())[direction], score_faces(edited.contiguous())[direction]
    moved = float(((after - before) * (1 if amount > 0 else -1) > 0).mean())
    extra["moved"] = round(100.0 * moved, 3)
    trace.append(f"{direction} {amount:+g}: {100 * moved:.0f}% of {n} faces moved the right way")
    return tile(edited), extra, trace
