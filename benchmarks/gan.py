"""GAN inversion and edit figures: speed and fidelity of the warm start + refinement.

Measures on held-out generated faces (seeds the encoder and directions never saw):
- inversion PSNR/SSIM and seconds per 64x64 face for: the encoder alone, the default
  (encoder warm start + short refinement, with its time budget), and the peer the issue
  measured (plain Adam on z from random starts, restarts x steps without a warm start),
- a photo edit end to end (detect, frame, invert, edit, blend) on a generated face
  pasted into a 240x180 photo.

    python -m benchmarks.gan [--faces 8] [--threads 2] [--peer-steps 600] [--out bench-results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faces", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-steps", type=int, default=600)
    ap.add_argument("--peer-restarts", type=int, default=8)
    ap.add_argument("--out", type=Path, default=Path("bench-results"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from tools.gan import invert as inv
    from tools.gan.backends import get_backend

    b = get_backend()
    faces = b.sample(args.faces, 4242)
    rows = {}

    def run(label: str, fn) -> None:  # type: ignore[no-untyped-def]
        ps, ss, ts = [], [], []
        for i in range(len(faces)):
            t = time.perf_counter()
            recon = fn(faces[i : i + 1])
            ts.append(time.perf_counter() - t)
            p, s = inv.quality(recon, faces[i : i + 1])
            ps.append(p[0])
            ss.append(s[0])
        rows[label] = {"psnr_mean": round(float(np.mean(ps)), 2), "psnr_min": round(float(np.min(ps)), 2),
                       "ssim_mean": round(float(np.mean(ss)), 4), "seconds_per_face": round(float(np.mean(ts)), 2)}
        print(f"{label:32s} PSNR {np.mean(ps):5.2f} dB (min {np.min(ps):5.2f})  SSIM {np.mean(ss):.3f}  "
              f"{np.mean(ts):6.2f} s/face", flush=True)

    def encoder_only(x):  # type: ignore[no-untyped-def]
        with torch.no_grad():
            return b.synthesize(inv.warm_start(b, x)[0])

    run("encoder only", encoder_only)
    run("default (warm start + refine)", lambda x: inv.invert(b, x).recon)
    unbounded = dataclasses.replace(inv.DEFAULTS, seconds=1e9)
    run("default steps, no time budget", lambda x: inv.invert(b, x, settings=unbounded).recon)

    def peer(x):  # type: ignore[no-untyped-def]
        z = torch.randn(args.peer_restarts, b.latent_dim, generator=torch.Generator().manual_seed(0))
        z.requires_grad_(True)
        opt = torch.optim.Adam([z], 0.05)
        t = x.expand(args.peer_restarts, -1, -1, -1)
        for _ in range(args.peer_steps):
            loss = ((b.synthesize(z) - t) ** 2).mean((1, 2, 3))
            opt.zero_grad()
            loss.sum().backward()
            opt.step()
        with torch.no_grad():
            r = b.synthesize(z)
            return r[((r - t) ** 2).mean((1, 2, 3)).argmin()][None]

    run(f"peer: Adam on z {args.peer_restarts}x{args.peer_steps}", peer)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gan.json"
    from tools.io import atomic_write_bytes

    atomic_write_bytes(path, json.dumps({"threads": args.threads, "faces": args.faces, "rows": rows}, indent=1).encode())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
