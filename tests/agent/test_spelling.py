"""Typing slips in English goals are put right; real words, short words and other languages are left alone."""

from __future__ import annotations

import pytest

from agent import spelling
from agent.goals import parse_goal

needs_vocabulary = pytest.mark.skipif(not spelling._english(), reason="the embedding model's vocabulary is not installed")


@needs_vocabulary
@pytest.mark.parametrize("slip, word", [
    ("brigther", "brighter"), ("contarst", "contrast"), ("vingette", "vignette"), ("saturatd", "saturated"),
    ("sharpn", "sharpen"), ("hilights", "highlights"), ("monocrome", "monochrome"),
])
def test_a_slip_is_read_as_the_parser_word_it_stands_for(slip, word):
    assert spelling.correction(slip) == word


@pytest.mark.parametrize("word", ["funny", "lightning", "instagram", "polaroid", "grainy", "dark", "oversaturating"])
def test_real_short_or_unknown_words_stay_as_typed(word):
    assert spelling.correction(word) is None  # "funny" is no slip for "sunny", "dark" too short to judge


@needs_vocabulary
def test_a_goal_with_slips_is_parsed_and_says_how_it_was_read():
    goal = parse_goal("pls make it brigther and add a vingette")
    assert {i.name for i in goal.intents} == {"brighten", "vignette"} and not goal.unmapped
    assert "read 'brigther' as 'brighter'" in goal.notes


def test_goals_in_other_languages_are_not_corrected():
    goal = parse_goal("quita el ruido")  # "ruido" is one edit from no English word, but it is Spanish
    assert not [n for n in goal.notes if n.startswith("read '")]
