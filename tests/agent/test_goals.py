"""Goals: instruction -> intents -> targets on the original's stats; unmapped parts reported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agent import goals, intents
from agent.goals import Budget, Goal, Target, parse_goal

try:
    from tools.analysis import Stats
except ImportError:  # analysis still being written: same fields, same meaning
    from pydantic import BaseModel

    class Stats(BaseModel):  # type: ignore[no-redef]
        width: int
        height: int
        mean_L: float
        median_L: float
        p01_L: float
        p05_L: float
        p95_L: float
        p99_L: float
        clipped_shadows_pct: float
        clipped_highlights_pct: float
        rms_contrast: float
        colorfulness: float
        cast_a: float
        cast_b: float
        cast: float
        mean_saturation: float
        noise_sigma: float
        sharpness: float
        dynamic_range: float


NORMAL = dict(width=64, height=48, mean_L=52.0, median_L=51.0, p01_L=3.0, p05_L=8.0,
              p95_L=88.0, p99_L=95.0, clipped_shadows_pct=0.5, clipped_highlights_pct=0.5,
              rms_contrast=0.22, colorfulness=35.0, cast_a=0.5, cast_b=1.0, cast=1.1,
              mean_saturation=0.3, noise_sigma=0.008, sharpness=0.02, dynamic_range=7.0)


def stats(**changes: float) -> Stats:
    return Stats(**{**NORMAL, **changes})


DARK = dict(mean_L=30.0, median_L=28.0, p05_L=2.0, p95_L=60.0, p99_L=70.0)
BRIGHT = dict(mean_L=78.0, median_L=80.0, p05_L=40.0, p95_L=99.0, p99_L=100.0,
              clipped_highlights_pct=9.0)


@pytest.fixture(scope="module")
def model() -> intents.Embedder:
    m = intents.embedder()  # loaded once per process (~1-4 s), cached by the module
    assert m is not None, intents.embedder_problem()
    return m


def names(goal: Goal) -> set[str]:
    return {i.name for i in goal.intents}


PARAPHRASES: list[tuple[str, set[str]]] = [
    ("too gloomy", {"brighten"}),
    ("it's too dark", {"brighten"}),
    ("the photo is dark", {"brighten"}),
    ("you can hardly make anything out", {"brighten"}),
    ("it seems a little dim", {"brighten"}),
    ("the picture is overexposed, tone it down", {"darken"}),
    ("it's too bright", {"darken"}),
    ("+1 stop", {"brighten"}),
    ("-2 EV", {"darken"}),
    ("1 stop darker", {"darken"}),
    ("fix the exposure", {"fix_exposure"}),
    ("it looks washed out", {"more_contrast", "more_saturation"}),
    ("make it pop", {"more_contrast", "more_saturation"}),
    ("it looks flat", {"more_contrast"}),
    ("the picture lacks depth", {"more_contrast"}),
    ("make the sky more dramatic", {"more_contrast"}),
    ("20% more contrast", {"more_contrast"}),
    ("too contrasty", {"less_contrast"}),
    ("the whole thing is too punchy", {"less_contrast"}),
    ("it looks too processed", {"less_contrast", "less_saturation"}),
    ("warm it up a little", {"warmer"}),
    ("it's too cold", {"warmer"}),
    ("too yellow", {"cooler"}),
    ("can you make it a touch cooler please", {"cooler"}),
    ("the photo has a blue tint", {"neutralize_cast"}),
    ("it looks sickly green", {"neutralize_cast"}),
    ("the whites look yellow", {"neutralize_cast"}),
    ("the colours are dull", {"more_saturation"}),
    ("can you make the colours richer", {"more_saturation"}),
    ("the photo is too pale", {"more_saturation"}),
    ("too saturated", {"less_saturation"}),
    ("the colors are too intense", {"less_saturation"}),
    ("make it black and white", {"black_and_white"}),
    ("convert to greyscale", {"black_and_white"}),
    ("get rid of the grain", {"denoise"}),
    ("the image has lots of little dots", {"denoise"}),
    ("it's blurry", {"sharpen"}),
    ("the photo is soft", {"sharpen"}),
    ("bring out the detail", {"sharpen"}),
    ("it's too sharp", {"soften"}),
    ("it's foggy", {"dehaze"}),
    ("there's a haze over the mountains", {"dehaze"}),
    ("the shadows are too deep", {"lift_shadows"}),
    ("I can't see the faces in the shadows", {"lift_shadows"}),
    ("the sky is blown out", {"recover_highlights"}),
    ("the clouds have no detail", {"recover_highlights"}),
    ("make it look like the reference", {"match_reference"}),
    ("make it look better", {"enhance"}),  # NORMAL stats: nothing measurably wrong
]


@pytest.mark.parametrize("text,expected", PARAPHRASES, ids=[p[0] for p in PARAPHRASES])
def test_paraphrases(model, text, expected):
    goal = parse_goal(text, stats(), reference_stats=stats(mean_L=60))
    assert names(goal) == expected, (goal.intents, goal.unmapped)
    assert goal.unmapped == [] and goal.parser == "embedding"


def test_embedding_decides_where_no_rule_fires(model):
    goal = parse_goal("there's a haze over the mountains", stats())
    assert goal.intents[0].source == "embedding" and goal.intents[0].confidence >= intents.THRESHOLD


@pytest.mark.parametrize("text,degree", [
    ("a bit brighter", 0.5), ("slightly more saturated", 0.5), ("a touch warmer", 0.5),
    ("make it brighter", 1.0), ("much darker", 2.0), ("way too dark", 2.0),
    ("a lot more contrast", 2.0), ("too much contrast", 1.0),
])
def test_degree_words(model, text, degree):
    goal = parse_goal(text, stats())
    assert [i.degree for i in goal.intents] == [degree]


def test_degree_scales_the_target(model):
    lows = [parse_goal(t, stats(mean_L=40)).targets[0].low for t in
            ("a bit brighter", "brighter", "much brighter")]
    assert lows == sorted(lows) and lows[0] > 40


def test_stops_become_a_mean_L_target(model):
    goal = parse_goal("+1 stop", stats(mean_L=40))
    (t,) = [t for t in goal.targets if t.metric == "mean_L"]
    expected = goals.lstar(2 * goals.luminance_of(40))  # ~54.6: twice the light
    assert t.low < expected < t.high and t.high - t.low <= 6
    assert goal.intents[0].stops == 1 and not t.met(40)
    down = parse_goal("-2 EV", stats(mean_L=60)).targets[0]
    assert down.high < 60 and down.met(goals.lstar(goals.luminance_of(60) / 4))
    lighter = parse_goal("make it 50% brighter", stats(mean_L=40)).targets[0]
    assert lighter.met(goals.lstar(1.5 * goals.luminance_of(40))) and not lighter.met(40)


def test_relative_wish_resolved_against_the_original(model):
    goal = parse_goal("20% more contrast", stats(rms_contrast=0.2))
    (t,) = [t for t in goal.targets if t.metric == "rms_contrast"]
    assert t.met(0.24) and not t.met(0.2) and not t.met(0.4)
    assert "20%" in t.label and "0.2" in t.label
    less = parse_goal("reduce saturation by 30%", stats(mean_saturation=0.4)).targets[0]
    assert less.met(0.28) and not less.met(0.4)


def test_fix_exposure_direction_comes_from_the_measurements(model):
    dark = parse_goal("fix the exposure", stats(**DARK))
    bright = parse_goal("fix the exposure", stats(**BRIGHT))
    assert names(dark) == {"brighten"} and names(bright) == {"darken"}
    assert dark.intents[0].source == bright.intents[0].source == "measurement"
    d = next(t for t in dark.targets if t.metric == "mean_L")
    b = next(t for t in bright.targets if t.metric == "mean_L")
    assert d.low > 30 and b.high < 78  # up for the dark photo, down for the bright one
    assert not dark.met(stats(**DARK)) and not bright.met(stats(**BRIGHT))
    assert dark.met(stats(mean_L=52)) and bright.met(stats(mean_L=55))
    assert any(t.metric == "clipped_highlights_pct" and t.high <= 2 for t in bright.targets)


def test_fix_colour_settled_by_measurement(model):
    # a blue light (illuminant_b -6): b* moves toward 0 by up to 1.5x it; a* (no light cast on it) stays
    cast = parse_goal("fix the colours", stats(cast_a=2, cast_b=-9, cast=9.2, illuminant_b=-6))
    dull = parse_goal("fix the colours", stats(mean_saturation=0.05, colorfulness=6))
    assert names(cast) == {"neutralize_cast"} and names(dull) == {"more_saturation"}
    assert [t.metric for t in cast.targets] == ["cast_b"]
    assert cast.targets[0].met(0.5) and not cast.targets[0].met(-9)


def test_targets_met_by_a_corrected_photo_not_by_the_original(model):
    goal = parse_goal("brighten", stats(mean_L=30))
    assert not goal.met(stats(mean_L=30)) and goal.met(stats(mean_L=50))
    assert goal.distance(stats(mean_L=50)) == 0 < goal.distance(stats(mean_L=34))
    assert goal.distance(stats(mean_L=34)) < goal.distance(stats(mean_L=30))
    warm = parse_goal("warm it up", stats(cast_b=-2))
    assert warm.met(stats(cast_b=4.5)) and not warm.met(stats(cast_b=-2))
    noisy = parse_goal("get rid of the grain", stats(noise_sigma=0.03))
    assert noisy.met(stats(noise_sigma=0.015)) and not noisy.met(stats(noise_sigma=0.025))
    sharp = parse_goal("it's blurry", stats(sharpness=0.01))
    assert sharp.met(stats(sharpness=0.014)) and not sharp.met(stats(sharpness=0.011))
    mono = parse_goal("make it black and white", stats())
    assert mono.met(stats(mean_saturation=0.0, colorfulness=0.5)) and not mono.met(stats())
    sky = parse_goal("the sky is blown out", stats(**BRIGHT))
    assert not sky.met(stats(**BRIGHT))
    assert sky.met(stats(**{**BRIGHT, "clipped_highlights_pct": 0.5, "p99_L": 96}))


@pytest.mark.parametrize("text", ["add a unicorn", "asdfgh", "make the dog smile at the camera"])
def test_unmappable_is_reported_not_edited(model, text):
    goal = parse_goal(text, stats())
    assert goal.intents == [] and goal.targets == []
    assert goal.unmapped == [intents.normalize(text)]


def test_compound_instruction_maps_every_clause(model):
    goal = parse_goal("brighten it and fix the blue cast, a bit more contrast; add a unicorn",
                      stats(mean_L=40, cast_b=-8, cast=8, illuminant_b=-5))
    assert [(i.name, i.degree) for i in goal.intents] == [
        ("brighten", 1.0), ("neutralize_cast", 1.0), ("more_contrast", 0.5)]
    assert {"mean_L", "cast_b", "rms_contrast"} <= {t.metric for t in goal.targets}
    assert goal.unmapped == ["add a unicorn"]


def test_ellipsis_and_anaphora_follow_the_previous_clause(model):
    assert names(parse_goal("more contrast and saturation", stats())) == {
        "more_contrast", "more_saturation"}
    assert names(parse_goal("reduce noise and blur", stats())) == {"denoise", "sharpen"}
    goal = parse_goal("the picture is overexposed, tone it down", stats(**BRIGHT))
    assert [i.name for i in goal.intents] == ["darken"]


def test_opposites_later_wins_and_keep_clauses_are_noted(model):
    goal = parse_goal("make it brighter, no, darker", stats())
    assert names(goal) == {"darken"} and any("overrides" in n for n in goal.notes)
    goal = parse_goal("the exposure is fine but the colours are weak", stats())
    assert names(goal) == {"more_saturation"} and goal.unmapped == []
    assert any("leave it as it is" in n for n in goal.notes)


def test_match_reference_uses_the_reference_stats(model):
    ref = stats(mean_L=65, cast_a=1, cast_b=8, cast=8.1, mean_saturation=0.45, rms_contrast=0.25)
    goal = parse_goal("match the reference", stats(), reference_stats=ref, reference="ref.jpg")
    assert goal.reference == "ref.jpg" and goal.met(ref) and not goal.met(stats())
    lonely = parse_goal("match the reference", stats())
    assert lonely.targets == [] and "no reference" in lonely.unmapped[0]


def test_enhance_finds_the_problems_by_measurement(model):
    # dark by both the mean and the white point (a low mean alone is a low-key photo)
    goal = parse_goal("improve the photo", stats(mean_L=32, p99_L=60, noise_sigma=0.03, rms_contrast=0.1))
    assert {"brighten", "denoise", "more_contrast"} <= names(goal)
    assert all(i.source == "measurement" for i in goal.intents)
    fine = parse_goal("make it look better", stats())
    assert fine.targets == [] and any("nothing to fix" in n for n in fine.notes)


def test_keyword_fallback_without_the_model(monkeypatch):
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    cases = {"the photo is soft": {"sharpen"}, "too gloomy": {"brighten"},
             "make it pop": {"more_contrast", "more_saturation"}, "get rid of the grain": {"denoise"},
             "the sky is blown out": {"recover_highlights"}, "enhance it": {"enhance"}}
    for text, expected in cases.items():
        goal = parse_goal(text, stats())
        assert names(goal) == expected, text
        assert goal.parser == "keyword" and "keyword parser" in goal.notes[0]
        assert all(i.source in ("rule", "keyword", "measurement") for i in goal.intents)
    assert parse_goal("add a unicorn", stats()).unmapped == ["add a unicorn"]


def test_without_stats_only_absolute_targets(model):
    goal = parse_goal("fix the exposure and the blue cast, brighter", None)
    assert {t.metric for t in goal.targets} >= {"mean_L", "cast"}
    assert any("no stats" in n for n in goal.notes)


def test_target_contract():
    t = Target(metric="mean_L", op="between", low=50, high=60)
    assert t.label == "mean L* between 50 and 60" and t.met(55) and not t.met(61)
    assert t.distance(55) == 0 and t.distance(70) == pytest.approx(1.0)  # 10 L* = one unit
    # the scale makes different metrics comparable: 5 L* ~ 2.5 b* ~ 0.025 contrast
    assert Target(metric="cast_b", op="<=", high=0).distance(2.5) == pytest.approx(
        Target(metric="mean_L", op=">=", low=50).distance(45))
    assert Target(metric="rms_contrast", op=">=", low=0.2).distance(0.175) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown metric"):
        Target(metric="vibes", op=">=", low=1)
    with pytest.raises(ValueError, match="low"):
        Target(metric="mean_L", op="between", low=60, high=50)
    with pytest.raises(ValueError, match="needs high"):
        Target(metric="mean_L", op="<=")
    with pytest.raises(KeyError, match="ssim_ref"):
        Goal(instruction="x", targets=[Target(metric="ssim_ref", op=">=", low=0.9)]).met(stats())
    assert Goal(instruction="x", targets=[Target(metric="ssim_ref", op=">=", low=0.9)]).met(
        {"ssim_ref": 0.95})


def test_goal_json_round_trip(model):
    goal = parse_goal("brighten it and fix the blue cast, a bit more contrast, add a unicorn",
                      stats(mean_L=40), lock=0.85, budget=Budget(max_steps=5, max_cost_usd=0.5))
    again = Goal.from_json(goal.to_json())
    assert again == goal and again.budget.max_steps == 5 and again.lock == 0.85
    assert Budget().model_dump() == {"max_steps": 8, "max_seconds": 120.0,
                                     "max_model_calls": 24, "max_cost_usd": None}


def test_intent_phrases_accessor_needs_no_model():
    table = intents.intent_phrases()
    assert set(table) == {n for n, spec in intents.INTENTS.items() if spec.asked}  # words ask for these
    assert all(len(p) >= 8 for p in table.values())
    assert "make it pop" in table["more_contrast"]


def test_importing_goals_loads_no_torch():
    code = ("import sys, agent.goals; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(goals.__file__).rsplit(
        "/agent/", 1)[0])


def test_shipped_phrase_vectors_match_the_phrase_table_and_the_model(model):
    """The shipped example vectors are current (else: python -m agent.intents --rebuild) and equal
    to a fresh embedding of the phrases within float16 rounding."""
    import numpy as np

    with np.load(intents.SHIPPED_EMBEDDINGS) as z:
        assert str(z["key"]) == intents.phrase_key(), "run: python -m agent.intents --rebuild"
        shipped = z["matrix"].astype(np.float32)
    some = list(range(0, len(model.examples), 37))
    fresh = model.embed([model._inputs()[i] for i in some]).numpy()
    assert np.abs(shipped[some] - fresh).max() < 2e-3


def test_a_goal_the_rules_read_never_loads_the_embedding_model(monkeypatch):
    calls = []
    monkeypatch.setattr(intents, "embedder", lambda: calls.append(1))
    goal = parse_goal("brighten a bit and warmer", stats())
    assert names(goal) == {"brighten", "warmer"} and calls == []


def test_more_saturation_on_a_nearly_saturated_photo_is_a_valid_range() -> None:
    import torch

    from tools.analysis import measure

    img = torch.zeros(1, 3, 32, 32)
    img[:, 0] = 0.95  # pure red: mean saturation ~1
    s = measure(img)
    (t,) = parse_goal("more saturated colours", s).targets
    assert t.low <= t.high <= 1.0 and t.low > s.mean_saturation - 1e-6


def test_wordings_that_once_picked_the_wrong_intent() -> None:
    """A colour cast is not a wish for black and white; 'but leave ...' keeps; a bare 'warm' warms."""
    names = lambda g: sorted(i.name for i in parse_goal(g, None).intents)  # noqa: E731
    assert names("remove the color cast") == ["neutralize_cast"]
    assert names("remove the colour") == ["black_and_white"]
    assert names("brighten, but leave the colours") == ["brighten"]
    assert names("warm") == ["warmer"]


def _labels(text: str) -> list[str]:
    return sorted(f"{i.name}@{i.region}" if i.region else i.name
                  for i in parse_goal(text, None).intents if i.source != "measurement")


def test_small_talk_about_the_weather_is_refused_but_colour_complaints_still_warm() -> None:
    """'it is cold outside' speaks of the world, not the photo; 'the photo looks too cold' is a colour wish."""
    for text in ("it is cold outside", "such a hot day today", "the weather is freezing this morning"):
        goal = parse_goal(text, None)
        assert _labels(text) == [] and goal.unmapped, text
    assert _labels("the photo looks too cold") == ["warmer"]
    assert _labels("make it warmer") == ["warmer"]
    assert _labels("too cold") == ["warmer"]
    assert _labels("it's cold outside, make it warmer") == ["warmer"]
    assert _labels("the sky outside looks too dark") == ["brighten@sky"]


def test_a_remedy_after_a_complaint_is_the_same_wish_made_exact() -> None:
    """'the face is too dark, brighten' is one wish on the face; 'washed out, add contrast' asks contrast only."""
    assert _labels("the face is too dark, brighten") == ["brighten@face"]
    assert _labels("the face is too dark, brighten it a bit") == ["brighten@face"]
    assert _labels("the picture looks washed out, add contrast") == ["more_contrast"]
    assert _labels("it's overexposed, tone it down") == ["darken"]
    # not a complaint: two separate asks stay two
    assert _labels("brighten the face, brighten") == ["brighten", "brighten@face"]
    # a remedy that asks something else is added, not narrowed
    assert _labels("the face is too dark, add contrast") == ["brighten@face", "more_contrast"]


def test_clean_it_up_refers_back_to_the_complaint() -> None:
    assert _labels("the image is grainy, clean it up") == ["denoise"]
    assert _labels("it looks hazy, clear it up") == ["dehaze"]


def test_politeness_alone_is_not_an_empty_goal() -> None:
    """'thanks, that's all' asks for nothing: refused, not a general enhancement."""
    goal = parse_goal("thanks, that's all", None)
    assert _labels("thanks, that's all") == [] and goal.unmapped


def test_colours_that_should_pop_ask_for_saturation_and_widescreen_is_16_9() -> None:
    assert _labels("make the colours pop") == ["more_saturation"]
    assert _labels("give it some pop") == ["more_contrast", "more_saturation"]
    from agent.wishes import find_framing

    assert find_framing(intents.normalize("make it widescreen")).argument == "16:9"


def test_a_refused_framing_is_not_applied() -> None:
    """'no vignette', "don't rotate it", "don't crop it square": the framing named is the one not wanted."""
    assert _labels("no vignette please") == []
    assert _labels("don't rotate it, just brighten") == ["brighten"]
    assert _labels("don't crop it square, make it warmer") == ["warmer"]
    assert _labels("crop to square") == ["crop"] and _labels("add a vignette") == ["vignette"]


def test_without_changing_keeps_rather_than_refuses_an_edit() -> None:
    assert _labels("without changing the colors, sharpen it") == ["sharpen"]
    assert _labels("sharpen it without touching the colours") == ["sharpen"]


def test_green_or_magenta_is_a_cast_and_except_the_face_is_not_the_face() -> None:
    assert _labels("it looks too green") == ["neutralize_cast"]
    assert _labels("the skin looks too pink") == ["neutralize_cast"]
    assert _labels("the photo is too blue") == ["warmer"]  # blue is on the warm-cool axis
    assert _labels("darken everything except the face") == ["darken"]
    assert _labels("brighten the face") == ["brighten@face"]
    assert _labels("blue sky please") == ["bluer@sky"]
    assert _labels("the blue sky is blown out") == ["recover_highlights"]


def test_the_speakers_own_state_is_small_talk() -> None:
    assert _labels("my room is too cold") == [] and _labels("I'm feeling blue") == []
    assert _labels("i'm thinking a warmer tone") == ["warmer"]
    assert _labels("my face is too dark") == ["brighten@face"]


def test_phrases_for_clean_up_crooked_and_small_talk() -> None:
    """'clean it up' alone is a general clean-up, not 'warm it up'; a crooked picture and weather talk are not
    wishes any tool grants (embedding matcher; without the model the keyword fallback reads none of them)."""
    if not intents.embedder_available():
        pytest.skip("embedding model not installed")
    assert "warmer" not in _labels("clean it up")
    assert _labels("the picture is crooked") == []
    assert _labels("it's freezing out there") == [] and _labels("what lovely weather") == []
    assert _labels("it looks cold") == ["warmer"]


def test_a_described_darkness_is_a_complaint_and_the_reason_after_a_remedy_adds_nothing() -> None:
    assert _labels("her face looks dark, can you fix that") == ["brighten@face"]
    assert _labels("the photo looks dark") == ["brighten"]
    assert _labels("make it look dark and moody") == ["look"]  # the moody look, not a brightening
    assert _labels("brighten the face, it's too dark") == ["brighten@face"]
    assert _labels("it's overexposed, can you tone it down") == ["darken"]
    assert _labels("it's dark outside") == []


def test_counter_clockwise_spelt_apart_turns_left() -> None:
    from agent.wishes import find_framing

    assert find_framing(intents.normalize("rotate it 90 degrees counter clockwise")).argument == "-90"
    assert find_framing(intents.normalize("rotate it anti clockwise")).argument == "-90"
    assert find_framing(intents.normalize("rotate it clockwise")).argument == "90"



@pytest.mark.parametrize("text, labels", [
    # a remedy on "it" after a region's complaint stays in that region: the sky made bluer, not a
    # cooler photo whose highlights are recovered
    ("the sky is too white, make it bluer", ["bluer@sky"]),
    ("the sky is too bright, darken it a bit", ["darken@sky"]),
    ("her face is too dark, brighten it", ["brighten@face"]),
    # "I don't want", "no need to", "without making": what follows is refused
    ("i dont want it darker, just more contrast", ["more_contrast"]),
    ("increase contrast without making it darker", ["more_contrast"]),
    ("no need to crop it, just warm it up", ["warmer"]),
    # a flaw refused is a flaw removed; "without adding noise" refuses an edit that adds it (none does)
    ("no more noise please", ["denoise"]),
    ("I don't want any haze", ["dehaze"]),
    ("sharpen it without adding noise", ["sharpen"]),
    ("no more saturation, just sharpen it", ["sharpen"]),
])
def test_regions_refusals_and_flaws_in_everyday_words(text: str, labels: list[str]) -> None:
    assert _labels(text) == labels


@pytest.mark.parametrize("text, labels", [
    ("it should not be darker, only more contrasty", ["more_contrast"]),  # a subject before the negation
    ("the photo shouldn't get any warmer, just sharper", ["sharpen"]),
    ("the contrast is too low", ["more_contrast"]),  # the amount of an attribute judged
    ("the colours are way too strong", ["less_saturation"]),
    ("make the colours less intense", ["less_saturation"]),
    ("make it 3:2", ["crop"]),  # a ratio alone is a crop
    ("not so bright please", ["darken"]),  # less of it, not a refusal
    ("don't make it too warm, just a little warmer", ["warmer"]),  # "too" limits, it does not refuse
    ("contrast up, brightness unchanged", ["more_contrast"]),
    ("everything but the sky should be brighter", ["brighten"]),
    ("the details are mushy", ["sharpen"]),
    ("sharpen it without more noise", ["sharpen"]),  # refuses adding noise; "no more noise" removes it
    ("make it look good", ["fix_exposure", "neutralize_cast"]),  # to improve: not "it looks good"
    ("please make it sharper, it's soft", ["sharpen"]),  # the focus described is a complaint
    ("boost contrast & saturation", ["more_contrast", "more_saturation"]),
    ("make it brighter without blowing out the highlights", ["brighten"]),  # a constraint, not a wish
    ("don't brighten the sky, brighten the face", ["brighten@face"]),  # a refusal keeps its region
    ("It's too vibrant", ["less_saturation"]),
    ("could you lift the exposure a little", ["brighten"]),
    ("brighter please, though not warmer", ["brighten"]),  # "though" joins a refusal like "but"
    ("please keep the original colours and just straighten the exposure", ["fix_exposure"]),
])
def test_more_everyday_negations_amounts_and_ratios(text: str, labels: list[str]) -> None:
    assert _labels(text) == labels


def test_a_question_about_the_photo_or_what_it_shows_is_no_wish() -> None:
    """'is this a good photo?' asks nothing of the tools; 'a landscape photo' says what it shows (embedding matcher)."""
    if not intents.embedder_available():
        pytest.skip("embedding model not installed")
    assert _labels("is this a good photo?") == []
    assert _labels("it's a landscape photo, add some contrast") == ["more_contrast"]


def test_remove_it_after_a_complaint_refers_back() -> None:
    """'there is an ugly colour cast, remove it': 'remove it' is the complaint's remedy, not a second wish
    (it was read by the embedding matcher as an exposure fix, which added a contrast step)."""
    assert _labels("there is an ugly colour cast, remove it") == ["neutralize_cast"]
    assert _labels("it's so noisy, get rid of it") == ["denoise"]


def test_a_named_cast_moves_only_as_far_as_the_lights_own_cast(model):
    # a blue sky read as the neutrals' cast (b* -10.8) under a neutral light: nothing to neutralize
    sky = parse_goal("remove the colour cast", stats(cast_b=-10.8, cast=10.8))
    assert names(sky) == {"neutralize_cast"} and sky.targets == []
    # a warm light: b* toward 0 by at most 1.5x the light's +4 (to 3, +-1.5), a* (green scene, pink light) kept
    warm = parse_goal("remove the colour cast", stats(cast_a=-4, cast_b=9, cast=9.8, illuminant_a=2, illuminant_b=4))
    assert [(t.metric, t.low, t.high) for t in warm.targets] == [("cast_b", 1.5, 4.5)]
    # a blue photo with nothing near neutral (cast -50): nothing is read, nothing moved
    blue = parse_goal("remove the colour cast", stats(cast_b=-50, cast=50, illuminant_b=-6))
    assert blue.targets == []
