"""The photo prior: its steps are valid recipes that invert its degradations, its estimates point
the right way on made-up photos, and its weights load only when they are the recorded ones."""

from __future__ import annotations

import hashlib
import math

import pytest
import torch

from tools import prior
from tools.degrade import color_cast, underexpose
from tools.metrics import psnr
from tools.prior import Correction, correction_steps, degrade, estimate
from tools.recipe import Recipe, Step, apply_recipe


def scene(h: int = 96, w: int = 128, seed: int = 0) -> torch.Tensor:
    """A mid-key made-up photo: a sky-to-ground gradient, coloured blobs, some texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.55 - 0.25 * yy, 0.6 - 0.2 * yy, 0.75 - 0.45 * yy])
    for _ in range(6):
        cy, cx, r = torch.rand(3, generator=g).tolist()
        colour = torch.rand(3, generator=g) * 0.8 + 0.1
        blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (0.02 + 0.05 * r))
        img = img * (1 - blob) + colour[:, None, None] * blob
    img = img + 0.03 * torch.sin(40 * xx + 7 * yy) * torch.cos(33 * yy)
    return img.clamp(0.02, 0.97)[None]


def replay(image: torch.Tensor, steps: list[dict]) -> torch.Tensor:
    return apply_recipe(image, Recipe(steps=[Step.of(s["tool"], s["params"]) for s in steps]), fuse=False)


FULL = Correction(stops=0.8, temperature=-30, tint=12, contrast=25, saturation=30, black=0.05, white=0.93,
                  midtone=1.2, noise=0.03, blur=1.2)


def test_steps_are_valid_registry_steps_in_inverse_order() -> None:
    steps = correction_steps(FULL)
    assert [s["tool"] for s in steps] == ["denoise", "sharpen", "white_balance", "exposure", "levels",
                                         "contrast", "saturation"]
    Recipe(steps=[Step.of(s["tool"], s["params"]) for s in steps])  # raises ToolError when invalid
    assert correction_steps(Correction()) == []
    assert correction_steps(FULL, strength=0.0) == []
    half = {s["tool"]: s["params"] for s in correction_steps(FULL, strength=0.5)}
    assert half["exposure"]["stops"] == pytest.approx(0.4)
    assert half["levels"]["white"] == pytest.approx(1 - 0.07 / 2)


def test_steps_clip_to_the_tools_bounds() -> None:
    wild = Correction(stops=9, temperature=300, tint=-300, contrast=250, saturation=-400, black=0.9, white=0.1)
    Recipe(steps=[Step.of(s["tool"], s["params"]) for s in correction_steps(wild)])


@pytest.mark.parametrize("c", [
    Correction(stops=1.5),
    Correction(stops=-0.4),
    Correction(temperature=40, tint=-20),
    Correction(contrast=40),
    Correction(contrast=-30),
    Correction(saturation=60),
    Correction(black=0.08, white=0.9, midtone=1.3),
    Correction(stops=1.2, temperature=-30, tint=10, contrast=25, saturation=40, black=0.05, white=0.93, midtone=0.8),
])
def test_degrade_then_correction_steps_gives_the_photo_back(c: Correction) -> None:
    clean = scene()
    damaged = degrade(clean, c)
    assert psnr(damaged, clean) < 35  # the damage is real
    assert psnr(replay(damaged, correction_steps(c)), clean) > 45


def test_targets_round_trip() -> None:
    back = prior.from_targets(prior.to_targets(FULL))
    for k in prior.TARGETS:
        assert getattr(back, k) == pytest.approx(getattr(FULL, k), rel=1e-5, abs=1e-6)


def test_estimate_points_the_right_way() -> None:
    clean = scene()
    base = estimate(clean)
    dark = estimate(underexpose(clean, 2.0))
    bright = estimate(underexpose(clean, -1.5))
    assert abs(base.stops) < 0.8
    assert dark.stops > 1.0 and dark.stops > base.stops + 1.0
    assert bright.stops < base.stops - 0.5
    # A blue cast (blue gain up, red down in linear light) needs warming: white_balance's + temperature;
    # a yellow one cooling. The prior's temperature is shrunk toward 0 (scenes' own colours look like
    # casts to it), so only the direction is asked.
    blue = estimate(color_cast(clean, r=0.75, b=1.35))
    yellow = estimate(color_cast(clean, r=1.3, b=0.7))
    assert blue.temperature > 0 and blue.temperature > base.temperature + 3
    assert yellow.temperature < base.temperature - 3
    noisy = estimate((clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1))
    assert noisy.noise > base.noise + 0.01


def test_estimate_takes_any_size_and_rejects_batches() -> None:
    c = estimate(torch.nn.functional.interpolate(scene(), size=(300, 700), mode="bilinear"))
    assert all(math.isfinite(v) for v in c.model_dump().values())
    with pytest.raises(prior.ToolError, match="one image"):
        estimate(torch.cat([scene(), scene()]))


def test_shipped_weights_match_the_recorded_sha256() -> None:
    assert hashlib.sha256(prior.WEIGHTS.read_bytes()).hexdigest() == prior.WEIGHTS_SHA256
    assert prior.WEIGHTS.stat().st_size <= 10 * 2**20
    assert isinstance(prior.load(), prior.PriorNet)


def test_missing_corrupt_or_altered_weights_give_one_line_errors(tmp_path) -> None:
    with pytest.raises(prior.PriorError, match="missing") as e:
        prior.load(tmp_path / "absent.pt")
    assert "\n" not in str(e.value) and "make train-prior" in str(e.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(prior.PriorError, match="sha256") as e:
        prior.load(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(prior.PriorError, match="unreadable") as e:
        prior.load(bad, sha256=hashlib.sha256(b"not a torch file").hexdigest())
    assert "\n" not in str(e.value) and "make train-prior" in str(e.value)
