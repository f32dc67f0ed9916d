"""StyleGAN2 backend (rosinality checkpoint format) on a tiny random configuration."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tools.gan import invert as inv
from tools.gan.backends import get_backend
from tools.gan.stylegan2 import Generator, StyleGAN2Backend, config_from_state, upfirdn2d
from tools.registry import ToolError

TINY = {"size": 16, "style_dim": 32, "n_mlp": 2, "channels": {4: 32, 8: 32, 16: 16}}


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    g = Generator(**TINY)
    path = tmp_path / "tiny.pt"
    # the layout rosinality's train.py writes: several nets, the EMA generator under g_ema
    torch.save({"g_ema": g.state_dict(), "g": g.state_dict(), "args": {"size": 16}}, path)
    return path


def test_config_is_read_from_the_weights(ckpt) -> None:
    state = torch.load(ckpt, weights_only=True)["g_ema"]
    assert config_from_state(state) == TINY
    assert "convs.0.conv.blur.kernel" in state and "to_rgbs.1.upsample.kernel" in state  # rosinality key names
    assert "noises.noise_4" in state and "style.2.weight" in state


def test_checkpoint_loads_and_synthesizes_w_plus(ckpt) -> None:
    b = get_backend(f"stylegan2:{ckpt}")
    assert isinstance(b, StyleGAN2Backend) and b is get_backend(f"stylegan2:{ckpt}"), "cached"
    assert (b.resolution, b.n_latent, b.latent_dim, b.latent_space) == (16, 6, 6 * 32, "w+")
    x = b.sample(2, 1)
    assert x.shape == (2, 3, 16, 16) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(x, b.sample(2, 1)), "fixed noise: deterministic"
    w = b.random_latents(1, 3).view(1, 6, 32)
    w2 = w.clone()
    w2[:, 5] = b.mean_latent().view(1, 6, 32)[:, 5]  # change only the last layer's style
    assert not torch.allclose(b.synthesize(w.view(1, -1)), b.synthesize(w2.view(1, -1))), "per-layer styles"


def test_inversion_in_w_plus_improves_on_the_mean(ckpt) -> None:
    b = get_backend(f"stylegan2:{ckpt}")
    target = b.sample(1, 11)
    start = inv.quality(b.synthesize(b.mean_latent()), target)[0][0]
    s = dataclasses.replace(inv.DEFAULTS, steps=120, restarts=2, seconds=1e9)
    result = inv.invert(b, target, settings=s)
    assert result.warm_start == "mean" and result.latents.shape == (1, b.latent_dim)
    assert result.psnr[0] > start + 5, (start, result.psnr)


def test_upfirdn2d_upsamples_a_constant_to_a_constant() -> None:
    from tools.gan.stylegan2 import _kernel

    x = torch.ones(1, 2, 4, 4)
    y = upfirdn2d(x, _kernel([1, 3, 3, 1]) * 4, up=2, pad=(2, 1))
    assert y.shape == (1, 2, 8, 8)
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.ones(1, 2, 4, 4), atol=1e-6)


def test_bad_checkpoints_are_named(tmp_path) -> None:
    with pytest.raises(ToolError, match="not found"):
        StyleGAN2Backend.from_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"g_ema": {"foo": torch.zeros(1)}}, bad)
    with pytest.raises(ToolError, match="not a rosinality StyleGAN2 generator"):
        StyleGAN2Backend.from_checkpoint(bad)
    with pytest.raises(ToolError, match="unknown generator"):
        get_backend("biggan")
