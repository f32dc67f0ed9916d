"""The 8-bit render path gives the float path's pixels, and only takes recipes it can render exactly."""

import numpy as np
import pytest
import torch

from tools.io import ImageSaveError, load_image, save_image, to_array, to_tensor
from tools.recipe import Recipe, apply_recipe
from tools.render8 import render8, render_source, renders8, tables8

PER_CHANNEL = [
    Recipe().then("curves", {"points": [[0, 0], [0.25, 0.32], [0.75, 0.82], [1, 1]]}),
    Recipe().then("whites_blacks", {"whites": 30, "blacks": -20}),
    Recipe().then("exposure", {"stops": 0.7}).then("contrast", {"amount": 25})
    .then("white_balance", {"temperature": 30, "tint": -10}).then("gamma", {"gamma": 1.3}),
    Recipe().then("levels", {"black": 0.1, "white": 0.8, "out_black": 0.9, "out_white": 0.1}),  # inverts
    Recipe().then("measure").then("brightness", {"amount": -0.4}),
]


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(7).integers(0, 256, (67, 91, 3), dtype=np.uint8)


@pytest.mark.parametrize("recipe", PER_CHANNEL, ids=lambda r: "+".join(s.tool for s in r.steps))
def test_same_pixels_as_the_float_path_saved_at_8_bits(pixels, recipe):
    fast = render8(pixels, recipe)
    assert fast is not None and fast.dtype == np.uint8 and fast.shape == pixels.shape
    np.testing.assert_array_equal(fast, to_array(apply_recipe(to_tensor(pixels), recipe)))


@pytest.mark.parametrize("recipe", [
    Recipe().then("saturation", {"amount": 20}),  # mixes channels
    Recipe().then("exposure", {"stops": 0.5}).then("blur", {"sigma": 2}),  # spatial
    Recipe().then("exposure", {"stops": 0.5}, mask="sky"),  # masked
], ids=["colour", "spatial", "masked"])
def test_other_recipes_take_the_float_path(pixels, recipe):
    assert tables8(recipe) is None and render8(pixels, recipe) is None


def test_identity_recipe_is_the_identity(pixels):
    np.testing.assert_array_equal(render8(pixels, Recipe()), pixels)


def test_render_source_picks_the_path_and_saves(tmp_path, pixels):
    src_path = tmp_path / "src.png"
    save_image(to_tensor(pixels), src_path)
    src = load_image(src_path)
    np.testing.assert_array_equal(src.pixels8, pixels)
    recipe = PER_CHANNEL[2]
    fast = render_source(src, recipe)
    assert isinstance(fast, np.ndarray)
    deep = render_source(src, recipe, bit_depth=16)  # 16-bit output: float path, full precision
    assert isinstance(deep, torch.Tensor)
    assert isinstance(render_source(src, Recipe().then("saturation", {"amount": 20})), torch.Tensor)
    out = save_image(fast, tmp_path / "out.png", like=src)
    np.testing.assert_array_equal(to_array(load_image(out).image), fast)
    with pytest.raises(ImageSaveError, match="8-bit pixels"):
        save_image(fast, tmp_path / "out16.png", like=src, bit_depth=16)


def test_sixteen_bit_sources_keep_no_8_bit_copy(tmp_path):
    deep = torch.rand(1, 3, 20, 30)
    save_image(deep, tmp_path / "deep.png", bit_depth=16)
    src = load_image(tmp_path / "deep.png")
    assert src.bit_depth == 16 and src.pixels8 is None
    assert isinstance(render_source(src, PER_CHANNEL[0]), torch.Tensor)


EQUALIZE = [Recipe().then("equalize", {"strength": 1}),
            Recipe().then("measure").then("equalize", {"strength": 0.4})]


@pytest.fixture(scope="module")
def colourful():
    """Random pixels plus the cases equalize's hue-keeping move must clip: pure and saturated
    primaries and secondaries (a spike in the histogram), black, white and greys."""
    rng = np.random.default_rng(11)
    px = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
    px[:12] = rng.choice([0, 255], (12, 96, 3))
    px[12:24, :, 0] = rng.integers(0, 30, (12, 96))
    px[24:30] = rng.integers(0, 256, (6, 1, 1))  # grey rows
    return px


@pytest.mark.parametrize("recipe", EQUALIZE, ids=["full", "measure+0.4"])
@pytest.mark.parametrize("band_px", [None, 96 * 6], ids=["one band", "bands of 6 rows"])
@pytest.mark.parametrize("full_count_px", [None, 1000], ids=["every pixel", "every second"])
@pytest.mark.parametrize("dense", [0.0, 1.0], ids=["clipping bands in float32", "clipping pixels gathered"])
def test_equalize_within_one_level_of_the_float_path(colourful, recipe, band_px, full_count_px, dense,
                                                     monkeypatch):
    monkeypatch.setattr("tools.render8._DENSE", dense)
    if band_px:
        monkeypatch.setattr("tools.render8._BAND_PX", band_px)
    if full_count_px:  # both paths count the histogram on every second pixel of every second row
        monkeypatch.setattr("tools.tone._EQ_FULL_COUNT_PX", full_count_px)
    fast = render8(colourful, recipe)
    assert fast is not None and fast.dtype == np.uint8 and fast.shape == colourful.shape
    ref = to_array(apply_recipe(to_tensor(colourful), recipe))
    diff = np.abs(fast.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.05
    moved = ref.astype(int) - colourful
    clipped = (moved.max(2) - moved.min(2)) > 8  # channels moved apart: the hue-keeping clip acted
    assert clipped.mean() > 0.05


@pytest.mark.parametrize("recipe", [
    Recipe().then("equalize", {"strength": 1}, mask="sky"),
    Recipe().then("equalize", {"strength": 1}).then("exposure", {"stops": 0.5}),
], ids=["masked", "with another step"])
def test_equalize_with_anything_else_takes_the_float_path(colourful, recipe):
    assert not renders8(recipe) and render8(colourful, recipe) is None


def test_equalize_strength_zero_is_the_identity(colourful):
    np.testing.assert_array_equal(render8(colourful, Recipe().then("equalize", {"strength": 0})), colourful)


def test_equalize_bins_a_flat_colour_by_its_exact_luma(colourful):
    """(0,0,100) has luma 0.028314, bin 28.993 of 1024; its 16-bit luma 1856/65535 reads bin 29.0004.
    A third of the photo in that colour moves the CDF by a third if the two paths bin it apart."""
    px = colourful.copy()
    px[::3] = (0, 0, 100)
    recipe = EQUALIZE[0]
    diff = np.abs(render8(px, recipe).astype(int) - to_array(apply_recipe(to_tensor(px), recipe)))
    assert diff.max() <= 1


def test_render_source_renders_equalize_on_8_bits(tmp_path, colourful):
    save_image(to_tensor(colourful), tmp_path / "src.png")
    src = load_image(tmp_path / "src.png")
    out = render_source(src, EQUALIZE[0])
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, render8(colourful, EQUALIZE[0]))
