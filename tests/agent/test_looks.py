"""The looks library: every look is a valid recipe, degree 0 is the identity, the degree orders strength."""

from __future__ import annotations

import pytest

from agent.errors import UserError
from agent.looks import get_look, looks
from tests.helpers import run_cli, sample, ssim
from tools.recipe import apply_recipe

PHOTO = sample("astronaut", (64, 48))


@pytest.mark.parametrize("name", sorted(looks()))
def test_each_look_scales_from_nothing_to_strong(name):
    look = looks()[name]
    none = apply_recipe(PHOTO, look.recipe(0.0))
    assert ssim(none, PHOTO) > 0.999
    change = [float((apply_recipe(PHOTO, look.recipe(d)) - PHOTO).abs().mean()) for d in (0.5, 1.0, 1.5)]
    assert change[0] < change[1] < change[2], change
    assert change[1] > 0.01, "the look as designed is visible"


def test_the_library_has_the_looks_people_ask_for():
    wanted = {"film", "vintage", "sepia", "moody", "cinematic", "high_key", "low_key", "matte", "faded",
              "cross_process", "warm_summer", "cool_winter"}
    assert wanted <= set(looks())


def test_words_name_one_look_each_in_six_languages():
    seen: dict[str, str] = {}
    for look in looks().values():
        for w in look.words:
            assert seen.setdefault(w.lower(), look.name) == look.name, f"{w!r} names {seen[w.lower()]} and {look.name}"
    assert get_look("old photo").name == get_look("老照片").name == get_look("altes Foto").name == "vintage"
    assert get_look("High-Key").name == "high_key" and get_look("セピア").name == "sepia"


def test_unknown_looks_and_degrees_are_refused_with_the_fix():
    with pytest.raises(UserError, match="known looks: film"):
        get_look("psychedelic")
    with pytest.raises(UserError, match="0 \\(none\\) to 1.5"):
        looks()["film"].recipe(2.0)


def test_sepia_is_toned_monochrome():
    import cv2

    out = apply_recipe(PHOTO, looks()["sepia"].recipe())
    hsv = cv2.cvtColor(out[0].permute(1, 2, 0).numpy(), cv2.COLOR_RGB2HSV)  # H in degrees
    toned = hsv[..., 1] > 0.04
    assert toned.mean() > 0.8  # hardly a neutral pixel left...
    assert ((hsv[..., 0] > 15) & (hsv[..., 0] < 50))[toned].mean() > 0.95  # ...and every tone is brown


def test_looks_command_lists_and_previews(tmp_path, capsys):
    code, out, _ = run_cli(["looks"], capsys)
    assert code == 0 and "cinematic" in out and "cross_process" in out
    from tools.io import load_image, save_image

    photo = save_image(PHOTO, tmp_path / "p.png")
    code, out, err = run_cli(["looks", str(photo), "--sheet", str(tmp_path / "sheet.png"), "--thumb", "64"], capsys)
    assert code == 0, out + err
    assert load_image(tmp_path / "sheet.png").size == (6 * 72, 3 * 92)
    code, out, err = run_cli(["looks", str(photo)], capsys)
    assert code == 2 and "--sheet" in err
