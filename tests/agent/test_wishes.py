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
