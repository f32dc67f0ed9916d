"""`make demo`: degrade a bundled sample photo by known amounts, then let the agent fix it.

Writes out/demo/{clean,before,after,comparison}.png, recipe.json and trace.json.
Runs offline with the embedded planner: no API key, no download.
"""

from __future__ import annotations

import sys
from pathlib import Path

OUT = Path("out/demo")
GOAL = "fix the exposure and the blue colour cast, and add a little contrast"


def main() -> None:
    import numpy as np
    import skimage.data
    import torch

    from agent.cli import main as cli
    from tools.degrade import color_cast, low_contrast, underexpose
    from tools.io import load_image, save_image, to_tensor
    from tools.metrics import psnr

    OUT.mkdir(parents=True, exist_ok=True)
    clean = to_tensor(np.ascontiguousarray(skimage.data.astronaut()))
    bad = color_cast(underexpose(low_contrast(clean, 0.8), 1.3), r=0.85, b=1.25)
    save_image(clean, OUT / "clean.png")
    save_image(bad, OUT / "before.png")
    print(f"degraded sample: underexposed 1.3 stops, blue cast, flatter contrast -> {OUT / 'before.png'}")
    print(f'goal: "{GOAL}"\n')
    try:
        cli(["edit", str(OUT / "before.png"), "-g", GOAL, "-o", str(OUT / "after.png"),
             "--recipe", str(OUT / "recipe.json"), "--trace", str(OUT / "trace.json")])
    except SystemExit as exc:
        if exc.code:
            raise
    after = load_image(OUT / "after.png").image
    print(f"\nPSNR to the clean photo: before {psnr(bad, clean):.2f} dB -> after {psnr(after, clean):.2f} dB")
    gap = torch.ones(1, 3, clean.shape[2], 8)
    save_image(torch.cat([bad, gap, after, gap, clean], dim=3), OUT / "comparison.png")
    print(f"before | after | clean: {OUT / 'comparison.png'}")


if __name__ == "__main__":
    sys.exit(main())
