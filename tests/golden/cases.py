"""The golden cases: a source image and masks made in code, stored recipes, expected renders.

Each recipe in `recipes/NAME.json` replays on `source(NAME)` (with `masks()`) and must match
`expected/NAME.png` within darktable's bounds (`tests/golden/test_golden.py`);
`python -m tests.golden.regen` re-renders the expected images after an intended change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tests.helpers import sample
from tools.recipe import Recipe, apply_recipe

HERE = Path(__file__).parent
RECIPES = HERE / "recipes"
EXPECTED = HERE / "expected"
SIZE = (96, 64)  # (W, H): small enough that all cases replay in about a second
MAX_DE, MEAN_DE = 2.3, 0.77  # darktable's integration-test bounds on CIEDE2000


def names() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.json"))


def source(name: str) -> torch.Tensor:
    """The (1,3,64,96) image a case starts from: the colour chart for colour cases, else a photo."""
    return chart() if name.startswith("color") else sample("astronaut", SIZE)


def chart() -> torch.Tensor:
    """Every hue left to right, from saturated (top) through pastel to a grey ramp (bottom rows)."""
    import cv2

    w, h = SIZE
    hue = np.broadcast_to(np.linspace(0, 360, w, endpoint=False, dtype=np.float32), (h, w))
    sat = np.broadcast_to(np.clip(np.linspace(1.2, -0.2, h, dtype=np.float32), 0, 1)[:, None], (h, w))
    val = np.broadcast_to(np.linspace(0.15, 1, w, dtype=np.float32)[::-1], (h, w)) * 0.5 + 0.45 * sat
    hsv = np.ascontiguousarray(np.stack([hue, sat, np.clip(val, 0, 1)], -1))
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()


def masks() -> dict[str, torch.Tensor]:
    """`left`: a soft left-to-right ramp (1 on the left third, 0 on the right third)."""
    w, h = SIZE
    ramp = torch.linspace(1.5, -0.5, w).clamp(0, 1)
    return {"left": ramp.expand(1, 1, h, w).contiguous()}


def render(name: str) -> torch.Tensor:
    """Replay the stored recipe `name` on its source, the way `imagent apply` does (fused)."""
    return apply_recipe(source(name), Recipe.load(RECIPES / f"{name}.json"), masks())
