"""StyleGAN2 generator in the rosinality (stylegan2-pytorch) checkpoint format, pure PyTorch.

Use a real model: any `.pt` from rosinality/stylegan2-pytorch (or converted to it, e.g.
an FFHQ 256/1024 model) whose dict holds `g_ema` (or `g`), then
`get_backend("stylegan2:/path/to/550000.pt")`. The size, style width, mapping depth and
channel counts are read from the weights. No custom CUDA ops: upfirdn2d and the fused
leaky ReLU are written with plain torch, so it runs on CPU or GPU (slower than the
compiled kernels, same numbers). Latents are W+: (N, n_latent * style_dim), one style
vector per layer; noise is the checkpoint's fixed noise buffers, so synthesis is
deterministic. The shipped directions are for the embedded DCGAN; fit your own with
`tools.gan.directions.fit` on this backend.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tools.gan.backends import Backend
from tools.registry import ToolError

SQRT2 = math.sqrt(2)


def _kernel(k: list[int]) -> Tensor:
    t = torch.tensor(k, dtype=torch.float32)
    t = t[None, :] * t[:, None]
    return t / t.sum()


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, filter with a 2-D FIR kernel (rosinality's native version)."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1]).to(x)[None, None].expand(c, 1, -1, -1)
    return F.conv2d(x, k, groups=c)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    def __init__(self, d_in: int, d_out: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((d_out,), float(bias_init)))
        self.scale, self.lr_mul, self.activation = 1 / math.sqrt(d_in) * lr_mul, lr_mul, activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight * self.scale)
        out = out + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activation else out


class Blur(nn.Module):
    def __init__(self, kernel: list[int], pad: tuple[int, int], factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", _kernel(kernel) * factor**2)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel: list[int], factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", _kernel(kernel) * factor**2)
        p = len(kernel) - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class ModulatedConv2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False, blur_kernel: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.c_in, self.c_out, self.k, self.demodulate, self.upsample = c_in, c_out, k, demodulate, upsample
        if upsample:
            p = (len(blur_kernel) - 2) - (k - 1)
            self.blur = Blur(list(blur_kernel), pad=((p + 1) // 2 + 1, p // 2 + 1), factor=2)
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.padding = k // 2
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, k, k))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        b, _, h, w = x.shape
        s = self.modulation(style).view(b, 1, self.c_in, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(b, self.c_out, 1, 1, 1)
        x = x.reshape(1, b * self.c_in, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(b * self.c_in, self.c_out, self.k, self.k)
            out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=b)
            return self.blur(out.view(b, self.c_out, *out.shape[-2:]))
        out = F.conv2d(x, weight.view(b * self.c_out, self.c_in, self.k, self.k), padding=self.padding, groups=b)
        return out.view(b, self.c_out, *out.shape[-2:])


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * SQRT2


class StyledConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(c_out)

    def forward(self, x: Tensor, style: Tensor, noise: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, c_in: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample([1, 3, 3, 1])
        self.conv = ModulatedConv2d(c_in, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, style: Tensor, skip: Tensor | None = None) -> Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class Generator(nn.Module):
    """rosinality's Generator; `channels[r]` = feature maps at resolution r (4, 8, ..., size)."""

    def __init__(self, size: int, style_dim: int, n_mlp: int, channels: dict[int, int], lr_mlp: float = 0.01) -> None:
        super().__init__()
        self.size, self.style_dim = size, style_dim
        self.log_size = int(math.log2(size))
        if 2**self.log_size != size or size < 8:
            raise ValueError(f"StyleGAN2 size must be a power of two >= 8, got {size}")
        self.style = nn.Sequential(PixelNorm(), *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
                                                  for _ in range(n_mlp)])
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], style_dim)
        self.to_rgb1 = ToRGB(channels[4], style_dim, upsample=False)
        self.convs, self.upsamples, self.to_rgbs = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.noises = nn.Module()
        self.num_layers = (self.log_size - 2) * 2 + 1
        for i in range(self.num_layers):
            res = (i + 5) // 2
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, 2**res, 2**res))
        c_in = channels[4]
        for i in range(3, self.log_size + 1):
            c_out = channels[2**i]
            self.convs.append(StyledConv(c_in, c_out, style_dim, upsample=True))
            self.convs.append(StyledConv(c_out, c_out, style_dim))
            self.to_rgbs.append(ToRGB(c_out, style_dim))
            c_in = c_out
        self.n_latent = self.log_size * 2 - 2

    def mapping(self, z: Tensor) -> Tensor:
        return self.style(z)

    def forward(self, w_plus: Tensor) -> Tensor:
        """(N, n_latent, style_dim) -> (N, 3, size, size) in about [-1, 1]."""
        noise = [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]
        out = self.conv1(self.input(w_plus.shape[0]), w_plus[:, 0], noise[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        i = 1
        for c1, c2, n1, n2, rgb in zip(self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs,
                                       strict=False):
            out = c1(out, w_plus[:, i], n1)
            out = c2(out, w_plus[:, i + 1], n2)
            skip = rgb(out, w_plus[:, i + 2], skip)
            i += 2
        return skip


def config_from_state(state: dict[str, Tensor]) -> dict:
    """size, style_dim, n_mlp and channels read from a rosinality generator state dict."""
    try:
        style_dim = state["style.1.weight"].shape[1]
        n_mlp = sum(1 for k in state if k.startswith("style.") and k.endswith(".weight"))
        n_rgb = sum(1 for k in state if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
        channels = {4: state["input.input"].shape[1]}
        for j in range(n_rgb):
            channels[2 ** (j + 3)] = state[f"convs.{2 * j}.conv.weight"].shape[1]
    except KeyError as exc:
        raise ToolError(f"not a rosinality StyleGAN2 generator: missing {exc.args[0]!r}") from None
    return {"size": 2 ** (n_rgb + 2), "style_dim": style_dim, "n_mlp": n_mlp, "channels": channels}


class StyleGAN2Backend(Backend):
    """A StyleGAN2 generator with W+ latents (flattened to (N, n_latent * style_dim))."""

    name = "stylegan2"
    domain = "faces"
    latent_space = "w+"

    def __init__(self, net: Generator, domain: str = "faces") -> None:
        self.net = net.eval().requires_grad_(False)
        self.device = next(net.parameters()).device
        self.resolution, self.domain = net.size, domain
        self.n_latent, self.style_dim = net.n_latent, net.style_dim
        self.latent_dim = net.n_latent * net.style_dim
        self._w_avg: Tensor | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> StyleGAN2Backend:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ToolError(f"StyleGAN2 checkpoint {p} not found; give the path of a rosinality .pt file")
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
        state = ckpt.get("g_ema") or ckpt.get("g") or ckpt
        net = Generator(**config_from_state(state))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing:
            raise ToolError(f"{p} does not fit a StyleGAN2 generator: missing {', '.join(missing[:5])}")
        return cls(net)

    def to(self, device: str | torch.device) -> StyleGAN2Backend:
        self.net.to(device)
        self.device = torch.device(device)
        self._w_avg = None if self._w_avg is None else self._w_avg.to(device)
        return self

    def synthesize(self, latents: Tensor) -> Tensor:
        w = latents.to(self.device).view(-1, self.n_latent, self.style_dim)
        return ((self.net(w) + 1) / 2).clamp(0, 1)

    def w_from_z(self, z: Tensor) -> Tensor:
        return self.net.mapping(z.to(self.device))

    def random_latents(self, n: int, seed: int) -> Tensor:
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            w = self.w_from_z(torch.randn(n, self.style_dim, generator=g))
        return w[:, None].expand(-1, self.n_latent, -1).reshape(n, -1).clone()

    def mean_latent(self) -> Tensor:
        if self._w_avg is None:
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                self._w_avg = self.w_from_z(torch.randn(4096, self.style_dim, generator=g)).mean(0)
        return self._w_avg[None, None].expand(1, self.n_latent, -1).reshape(1, -1).clone()
