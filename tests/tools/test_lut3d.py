"""3-D LUTs: exact at the lattice, identity, fused recipes vs op by op, .cube files, masks not fused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import sample
from tools import lut3d
from tools.recipe import Recipe, apply_recipe
from tools.registry import get


def _steps(*calls: tuple[str, dict]) -> list:
    return [(get(name), get(name).validate(params)) for name, params in calls]


COLOUR_CHAIN = (("exposure", {"stops": 0.4}), ("saturation", {"amount": 30}), ("hue", {"degrees": 15}),
                ("gamma", {"gamma": 1.2}), ("white_balance", {"temperature": 20, "tint": 5}))


def _chain(image: torch.Tensor, steps: list) -> torch.Tensor:
    for tool, params in steps:
        image = tool(image, params)
    return image


def _delta_e(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    from skimage.color import deltaE_ciede2000, rgb2lab

    lab = [rgb2lab(x[0].permute(1, 2, 0).double().numpy()) for x in (a, b)]
    return deltaE_ciede2000(*lab)


@pytest.mark.parametrize("gamma", [1.0, lut3d.SHAPER_GAMMA])
def test_table_is_exact_at_the_lattice(gamma: float) -> None:
    steps = _steps(*COLOUR_CHAIN, ("hsl", {"blue_saturation": -40, "orange_luminance": 30}))
    lut = lut3d.bake(steps, 9, gamma)
    points = lut3d.lattice(9, gamma)
    expected = _chain(points, steps)
    assert torch.allclose(lut3d.apply(points, lut), expected, atol=1e-5), "CPU (remap) path"
    assert torch.allclose(lut3d._apply_torch(points, lut), expected, atol=1e-5), "torch (grid_sample) path"


def test_identity_table_is_the_identity() -> None:
    img = sample("astronaut", (48, 32))
    assert torch.allclose(lut3d._apply_torch(img, lut3d.identity(17, gamma=1)), img, atol=1e-6)
    # the CPU path rounds blue to 1/512 and the bilinear weights to 1/32 of a cell
    assert (lut3d.apply(img, lut3d.identity(17, gamma=1)) - img).abs().max() < 1.2e-3
    assert (lut3d.apply(img, lut3d.identity()) - img).abs().max() < 2e-3  # shaped: bent between points


def test_cpu_and_torch_paths_agree_and_batches_keep_shape() -> None:
    batch = torch.cat([sample("astronaut", (48, 32)), sample("coffee", (48, 32))])
    lut = lut3d.bake(_steps(*COLOUR_CHAIN))
    cpu, ref = lut3d.apply(batch, lut), lut3d._apply_torch(batch, lut)
    assert cpu.shape == batch.shape and (cpu - ref).abs().max() < 4e-3
    assert float(cpu.min()) >= 0 and float(cpu.max()) <= 1


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_fused_recipe_stays_within_the_stated_colour_error(name: str) -> None:
    img = sample(name, (96, 64))
    r = Recipe()
    for tool, params in COLOUR_CHAIN:
        r = r.then(tool, params)
    fused, plain = apply_recipe(img, r), apply_recipe(img, r, fuse=False)
    de = _delta_e(fused, plain)
    assert de.mean() < 0.25 and de.max() < 2.5, (de.mean(), de.max())
    assert (fused - plain).abs().max() < 0.05


def test_per_channel_runs_keep_the_exact_16_bit_path() -> None:
    img = sample("coffee", (48, 32))
    r = Recipe().then("exposure", {"stops": 0.5}).then("curves", {"points": [[0, 0], [0.5, 0.6], [1, 1]]})
    assert (apply_recipe(img, r) - apply_recipe(img, r, fuse=False)).abs().max() < 1e-4


def test_masked_and_image_dependent_steps_break_the_run() -> None:
    img = sample("astronaut", (48, 32))
    m = torch.zeros(1, 1, 32, 48)
    m[..., :24] = 1
    r = (Recipe(masks={"left": {}}).then("saturation", {"amount": 40}).then("hue", {"degrees": 60}, mask="left")
         .then("contrast", {"amount": 30}))
    out = apply_recipe(img, r, {"left": m})
    unmasked = apply_recipe(img, Recipe().then("saturation", {"amount": 40}).then("contrast", {"amount": 30}),
                            fuse=False)
    assert torch.allclose(out[..., 24:], unmasked[..., 24:], atol=1e-4), "the hue step stays outside its mask"
    assert (out[..., :24] - unmasked[..., :24]).abs().max() > 0.05, "and acts inside it"
    # auto white balance measures the image: it must not be baked on the lattice
    assert not lut3d.fusable(get("auto_white_balance")) and lut3d.fusable(get("hsl"))
    r2 = Recipe().then("auto_white_balance", {"strength": 1}).then("saturation", {"amount": 30})
    assert torch.equal(apply_recipe(img, r2), apply_recipe(img, r2, fuse=False))


@pytest.mark.parametrize("gamma", [1.0, lut3d.SHAPER_GAMMA])
def test_cube_round_trip_and_format(gamma: float) -> None:
    lut = lut3d.bake(_steps(("saturation", {"amount": 40}), ("hue", {"degrees": 20})), 5, gamma)
    text = lut3d.to_cube(lut, title="warm look")
    lines = text.splitlines()
    assert lines[0] == 'TITLE "warm look"' and "LUT_3D_SIZE 5" in lines
    rows = [x for x in lines if x[0].isdigit()]
    shaper = 0 if gamma == 1 else int(next(x for x in lines if x.startswith("LUT_1D_SIZE")).split()[1])
    assert len(rows) == shaper + 5**3
    if gamma == 1:
        assert "DOMAIN_MIN 0.0 0.0 0.0" in lines and not any(x.startswith("LUT_1D") for x in lines)
    back = lut3d.from_cube(text)
    assert back.gamma == gamma and torch.allclose(back.table, lut.table, atol=1e-6)
    # red runs fastest: the identity's second row is (1/(N-1), 0, 0)
    ident = [x for x in lut3d.to_cube(lut3d.identity(5, gamma=1)).splitlines() if x[0].isdigit()]
    assert ident[1] == "0.250000 0.000000 0.000000" and ident[5] == "0.000000 0.250000 0.000000"


def test_bad_cube_files_and_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="no LUT_3D_SIZE"):
        lut3d.from_cube("LUT_1D_SIZE 2\n0 0 0\n1 1 1\n")
    with pytest.raises(ValueError, match="need 8 rows, found 1"):
        lut3d.from_cube("LUT_3D_SIZE 2\n0 0 0\n")
    with pytest.raises(ValueError, match="only the \\[0,1\\] domain"):
        lut3d.from_cube("LUT_3D_SIZE 2\nDOMAIN_MAX 2 2 2\n")
    with pytest.raises(ValueError, match="out of range: use 2 to 65"):
        lut3d.bake([], 129)
