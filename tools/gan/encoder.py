"""A small conv encoder, image -> latent, used as the warm start of inversion (pSp/e4e style).

It is trained on the generator's own samples: draw z, render G(z), learn to predict z
(latent loss), then also to reproduce the image through G (pixel loss). Training takes a
few CPU minutes; the weights ship as float16 package data (`data/encoder-dcgan.pt`).

Retrain: `nice -n 19 .venv/bin/python -m tools.gan.encoder --seconds 900`.
"""

from __future__ import annotations

import argparse
import time
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn

DATA = Path(__file__).parent / "data"
ENCODER_FILE = DATA / "encoder-dcgan.pt"
TRAIN_SEED = 10_000_000  # training latents come from this stream; tests and evals use small seeds


class Encoder(nn.Module):
    """(N,3,64,64) in [0,1] -> (N, latent_dim)."""

    def __init__(self, latent_dim: int = 100, width: int = 32) -> None:
        super().__init__()
        c = [3, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for a, b in zip(c, c[1:], strict=False):
            layers += [nn.Conv2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        self.body = nn.Sequential(*layers)  # 64 -> 4
        self.head = nn.Linear(c[-1] * 16, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x * 2 - 1).flatten(1))


@cache
def load_encoder() -> Encoder | None:
    """The shipped encoder for the DCGAN backend, or None when the file is missing."""
    if not ENCODER_FILE.is_file():
        return None
    state = torch.load(ENCODER_FILE, map_location="cpu", weights_only=True)
    net = Encoder(latent_dim=int(state.pop("_latent_dim")), width=int(state.pop("_width")))
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.eval().requires_grad_(False)


def train(seconds: float, out: Path, batch: int = 64, width: int = 32, log_every: int = 25,
          resume: Path | None = None, lr: float = 1e-3, pixel_from: float = 0.4, seed: int = TRAIN_SEED) -> Encoder:
    """Train on fresh generator samples for `seconds`; pixel loss joins after `pixel_from` of the time."""
    from tools.gan.backends import get_backend

    gen = get_backend("dcgan")
    net = Encoder(gen.latent_dim, width)
    if resume is not None:
        state = torch.load(resume, map_location="cpu", weights_only=True)
        state.pop("_latent_dim"), state.pop("_width")
        net.load_state_dict({k: v.float() for k, v in state.items()})
    opt = torch.optim.Adam(net.parameters(), lr, betas=(0.9, 0.99))
    rng = torch.Generator().manual_seed(seed)
    start, step = time.monotonic(), 0
    while (elapsed := time.monotonic() - start) < seconds:
        z = torch.randn(batch, gen.latent_dim, generator=rng)
        with torch.no_grad():
            x = gen.synthesize(z)
        zh = net(x)
        loss = (zh - z).pow(2).mean()
        if elapsed >= pixel_from * seconds:
            loss = loss + 10 * (gen.synthesize(zh) - x).pow(2).mean()
        for g in opt.param_groups:  # cosine decay over the time budget
            g["lr"] = lr * 0.5 * (1 + torch.cos(torch.tensor(elapsed / seconds * 3.14159)).item()) + 1e-5
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % log_every == 0:
            print(f"step {step} t={elapsed:.0f}s loss={loss.item():.4f}", flush=True)
            save(net, out)
    save(net, out)
    return net


def save(net: Encoder, out: Path) -> None:
    import io

    from tools.io import atomic_write_bytes

    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    state["_latent_dim"] = torch.tensor(net.head.out_features)
    state["_width"] = torch.tensor(net.body[0].out_channels)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(out, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=900)
    ap.add_argument("--out", type=Path, default=ENCODER_FILE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resume", type=Path, default=None, help="continue from these weights")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--pixel-from", type=float, default=0.4, help="fraction of the time before pixel loss joins")
    ap.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train(args.seconds, args.out, resume=args.resume, lr=args.lr, pixel_from=args.pixel_from, seed=args.seed)


if __name__ == "__main__":
    main()
