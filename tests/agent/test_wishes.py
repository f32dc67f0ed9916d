"""Direct wishes: looks, crops, rotations, flips and vignettes are read in any language and applied as asked."""

from __future__ import annotations

import pytest
import torch

from agent.api import edit
from agent.goals import parse_goal
from agent.wishes import find_framing, find_look
from tests.agent.test_goals import stats
from tests.helpers import sample
from tools.recipe import apply_recipe

PHOTO = sample("astronaut", (96, 64))  # landscape: a square crop and a quarter turn show


@pytest.mark.parametrize("clause, label", [
    ("crop it to a square", "crop:1:1"), ("crop to 16:9", "crop:16:9"), ("crop to 4x5", "crop:4:5"),
    ("rotate 90 degrees clockwise", "rotate:90"), ("rotate it counterclockwise", "rotate:-90"),
    ("turn it upside down", "rotate:180"), ("flip it horizontally", "flip:horizontal"),
    ("mirror it vertically", "flip:vertical"), ("add a vignette", "vignette"),
])
def test_framing_and_vignette_are_read(clause, label):
    assert find_framing(clause).label == label


@pytest.mark.parametrize("text, look", [
    ("give it a film look", "film"), ("make it look like an old photo", "vintage"), ("做成老照片的效果", "vintage"),
    ("Gib ihm einen Film-Look", "film"), ("En sépia", "sepia"), ("シネマティックな雰囲気に", "cinematic"),
    ("high key, bright and airy", "high_key"), ("film noir please", "film_noir"),
])
def test_looks_are_read_in_any_language(text, look):
    assert find_look(text).argument == look
    goal = parse_goal(text, stats())
    assert [(i.name, i.argument) for i in goal.intents] == [("look", look)] and not goal.unmapped


def test_turning_into_something_is_not_a_rotation():
    assert find_framing("turn it into a black and white photo") is None
    assert find_framing("turn the picture 90 degrees to the left").label == "rotate:-90"


def test_no_look_in_plain_wishes():
    for text in ("convertis en noir et blanc", "more vivid colours", "make it brighter"):
        assert find_look(text) is None


def _replays(result) -> bool:
    return torch.equal(result.image, apply_recipe(PHOTO, result.recipe))


def test_a_square_crop_and_a_quarter_turn_are_done_as_asked():
    square = edit(PHOTO, "crop it to a square")
    assert square.image.shape[-2:] == (64, 64) and square.outcome == "met" and _replays(square)
    turned = edit(PHOTO, "rotate 90 degrees clockwise")
    assert turned.image.shape[-2:] == (96, 64)
    assert (turned.image - torch.rot90(PHOTO, -1, (2, 3))).abs().mean() < 0.02  # clockwise
    assert _replays(turned)


def test_a_look_is_the_start_and_the_measured_edits_follow():
    result = edit(PHOTO * 0.6, "give it a sepia look and make it brighter")
    tools = [s.tool for s in result.recipe.steps]
    assert tools[:3] == ["black_and_white", "split_toning", "levels"] and len(tools) > 3
    assert {i.name for i in result.goal.intents} == {"look", "brighten"}
    assert torch.equal(result.image, apply_recipe(PHOTO * 0.6, result.recipe))
    r, g, b = result.image[0].mean((1, 2))
    assert r > g > b and float(result.image.mean()) > float((PHOTO * 0.6).mean())


def test_a_vignette_darkens_the_corners():
    result = edit(PHOTO, "add a vignette")
    corner, centre = result.image[..., :8, :8].mean(), result.image[..., 28:36, 44:52].mean()
    assert corner < PHOTO[..., :8, :8].mean() - 0.02 and abs(centre - PHOTO[..., 28:36, 44:52].mean()) < 0.01


def test_a_bluer_sky_changes_the_sky_and_not_the_ground():
    from tools import colorspace as cs

    h, w = 64, 96
    y = torch.linspace(0, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
    sky = torch.cat([0.55 + 0.1 * y, 0.65 + 0.1 * y, 0.8 + 0.05 * y], 1)  # pale blue, lighter at the horizon
    ground = torch.cat([0.3 + 0 * y, 0.4 + 0 * y, 0.2 + 0 * y], 1) + 0.03 * torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    top = (torch.arange(h) < h * 0.45).view(1, 1, h, 1).float()
    photo = sky * top + ground * (1 - top)
    result = edit(photo, "make the sky bluer")
    assert [i.name for i in result.goal.intents] == ["bluer"] and result.goal.intents[0].region == "sky"
    db = (cs.rgb_to_lab(result.image) - cs.rgb_to_lab(photo))[:, 2]
    assert float(db[:, : int(h * 0.4)].mean()) < -5 and abs(float(db[:, int(h * 0.55):].mean())) < 1


def test_a_chat_applies_a_look_and_says_why_it_keeps_the_framing(tmp_path):
    from agent.chat import Session

    with Session.open(PHOTO, session=tmp_path / "s") as chat:
        looked = chat.say("give it a sepia look")
        assert [s.tool for s in chat.recipe().steps] == ["black_and_white", "split_toning", "levels"]
        assert "(as asked)" in looked.text
        framed = chat.say("crop it to a square")
        assert "keeps the photo's framing" in framed.text and chat.image().shape == PHOTO.shape


def test_an_upscale_comes_last_at_the_size_asked(monkeypatch):
    import agent.wishes

    monkeypatch.setattr(agent.wishes, "_upscaler", lambda: "lanczos")  # the network: tests/tools/test_neural.py
    result = edit(PHOTO, "make it 2x bigger and a little brighter")
    assert result.recipe.steps[-1].tool == "upscale" and result.image.shape[-2:] == (128, 192)
    assert _replays(result)


@pytest.mark.parametrize("clause, label", [
    ("portrait 4:3", "crop:3:4"), ("crop to portrait 2:3", "crop:2:3"), ("crop it 3:2 landscape", "crop:3:2"),
    ("crop to 4:5 portrait", "crop:4:5"), ("16:9 please", "crop:16:9"),
])
def test_a_ratio_is_turned_the_way_the_orientation_says(clause, label):
    """W:H is width by height: a portrait frame is taller than wide whichever way round the ratio is written."""
    assert find_framing(clause).label == label


@pytest.mark.parametrize("text, look", [
    ("make it look old", "vintage"), ("make it look like a polaroid", "vintage"), ("Polaroid-Look", "vintage"),
    ("フィルムノワール", "film_noir"), ("make it look like an old photograph", "vintage"),
    ("like an old 70s photo", "vintage"), ("make it look like a movie", "cinematic"), ("a noir look", "film_noir"),
    ("I want it to look like a sunset", "golden_hour"), ("an orange and teal grade", "cinematic"),
    ("ambiance coucher de soleil", "golden_hour"), ("make it look like an old postcard", "vintage"),
    ("tons froids d'hiver", "cool_winter"), ("effet années 80", "vintage"), ("can you do a teal orange grade", "cinematic"), ("电影色调", "cinematic"), ("映画のような雰囲気", "cinematic"),
])
def test_everyday_names_of_looks(text, look):
    assert find_look(text).argument == look


@pytest.mark.parametrize("text, look", [("go for a dark, moody vibe", "moody"), ("a film look with some grain", "film")])
def test_a_looks_own_words_add_nothing_to_it(text, look):
    goal = parse_goal(text, stats())
    assert [(i.name, i.argument) for i in goal.intents] == [("look", look)]


def test_soft_alone_is_no_pastel_look():
    assert find_look("柔和一点") is None and find_look("让画面柔和一些") is None
