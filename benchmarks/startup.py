"""Start-up and per-photo latency of the command line, against the bare import it cannot avoid.

    python -m benchmarks.startup [--runs 3]

Goals (issue 17): `imagent --help` <= 1 s; a cold `imagent edit` of a 12 MP photo with the
offline planner <= the bare import of torch + kornia + langchain + 2.5 s; a warm edit inside
`imagent batch` <= 1 s per 12 MP photo (the batch of 5 minus the batch of 1, over 4).
Each figure is the median of --runs whole-process runs, measured in the same session, so a
busy machine moves the goal and the figure together.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
IMPORT = "import torch, kornia, langchain, langchain_core, langgraph.graph"


def timed(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if done.returncode not in (0, 3):
            raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-500:]}")
    return statistics.median(times)


def make_photos(folder: Path, n: int) -> list[Path]:
    """12 MP (4000 x 3000) photos with real detail: a scikit-image sample upscaled, plus grain."""
    import cv2
    import numpy as np
    import skimage.data

    rng = np.random.default_rng(0)
    base = cv2.resize(skimage.data.chelsea()[:, :, ::-1], (4000, 3000), interpolation=cv2.INTER_CUBIC)
    paths = []
    for i in range(n):
        grain = rng.normal(0, 6, base.shape).astype(np.float32)
        img = np.clip(base.astype(np.float32) * (0.55 + 0.05 * i) + grain, 0, 255).astype(np.uint8)
        p = folder / f"photo{i}.jpg"
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    imagent = str(BIN / "imagent")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photos = make_photos(tmp_path, 5)
        one = tmp_path / "one"
        one.mkdir()
        (one / photos[0].name).symlink_to(photos[0])
        five = tmp_path / "five"
        five.mkdir()
        for p in photos:
            (five / p.name).symlink_to(p)
        bare = timed([sys.executable, "-c", IMPORT], args.runs)
        help_s = timed([imagent, "--help"], args.runs)
        cold = timed([imagent, "edit", str(photos[0]), "-g", "brighten a bit", "-o", str(tmp_path / "o.jpg")],
                     args.runs)
        b1 = timed([imagent, "batch", str(one), "-g", "brighten a bit", "-o", str(tmp_path / "b1")], 1)
        b5 = timed([imagent, "batch", str(five), "-g", "brighten a bit", "-o", str(tmp_path / "b5")], 1)
    warm = (b5 - b1) / 4
    rows = [("imagent --help", help_s, 1.0, "1 s"),
            ("bare import torch+kornia+langchain", bare, None, ""),
            ("cold edit, 12 MP, offline", cold, bare + 2.5, f"bare import + 2.5 s = {bare + 2.5:.2f} s"),
            ("warm edit in batch, per 12 MP photo", warm, 1.0, "1 s")]
    print(f"{'measure':40} {'seconds':>8}  goal")
    for name, value, goal, text in rows:
        verdict = "" if goal is None else ("met" if value <= goal else "MISSED")
        print(f"{name:40} {value:8.2f}  {text} {verdict}")


if __name__ == "__main__":
    main()
