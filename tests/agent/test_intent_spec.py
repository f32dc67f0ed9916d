"""IntentSpec: every intent declared once, complete and consistent; a new one is one entry."""

from __future__ import annotations

from typing import Any

import pytest

from agent import intent_spec, intents
from agent.goals import parse_goal, targets_for, wish_names
from agent.intent_spec import INTENTS, IntentSpec, register
from agent.offline import BoundTool, decide
from agent.protocol import PlanState, TargetState
from agent.strategies import NAMED
from agent.targets import Intent, make_target
from tools import registry
from tools.analysis import Stats

NORMAL = dict(width=64, height=64, mean_L=50.0, median_L=50.0, p01_L=3.0, p05_L=10.0, p95_L=90.0, p99_L=96.0,
              clipped_shadows_pct=0.5, clipped_highlights_pct=0.5, rms_contrast=0.2, colorfulness=30.0,
              cast_a=0.0, cast_b=0.0, cast=1.0, mean_saturation=0.3, noise_sigma=0.01, sharpness=0.002,
              dynamic_range=8.0, illuminant_a=5.0, illuminant_b=-4.0, blur_sigma=1.4, blockiness=1.6)


def stats(**changes: float) -> Stats:
    return Stats(**{**NORMAL, **changes})


@pytest.fixture
def registry_copy() -> Any:
    """INTENTS as it was after the test: a spec registered by a test is gone afterwards."""
    before = dict(INTENTS)
    yield INTENTS
    INTENTS.clear()
    INTENTS.update(before)


def test_every_spec_is_complete() -> None:
    phrases = intents.intent_phrases()
    for name, spec in INTENTS.items():
        assert spec.name == name and spec.description.strip(), name
        assert all(x in NAMED for names in spec.first.values() for x in names), (name, spec.first)
        assert (name in phrases) == spec.asked, name  # words ask for it: it has example phrases
        assert not spec.offered or spec.asked, name  # a language model names only what words can ask


def test_opposites_are_symmetric() -> None:
    intent_spec.check()
    for name, spec in INTENTS.items():
        for other in spec.opposite:
            assert name in INTENTS[other].opposite, (name, other)
    assert intent_spec.opposites("brighten") == {"darken"}
    assert intent_spec.opposites("more_saturation") == {"less_saturation", "black_and_white"}


def test_every_recipe_gives_valid_targets_for_a_measured_photo() -> None:
    """Each intent's recipe runs on a photo's stats and names metrics its targets can be checked on."""
    s = stats()
    extra = {"region": None, "box": (0.1, 0.1, 0.2, 0.2), "aim": {"mean_L": 55.0}}
    for name, spec in INTENTS.items():
        got = targets_for(Intent(name=name, source="rule", **extra), s)
        for t in got:
            assert t.region is not None or t.met(getattr(s, t.metric)) in (True, False), (name, t)
        if spec.holds:
            assert got, name  # refusing it ("not brighter") must hold something measurable


def test_region_intents_name_typed_region_metrics() -> None:
    (t,) = targets_for(Intent(name="brighten", source="rule", region="face"), stats())
    assert t.region is not None and (t.region.kind, t.region.mask) == ("dL", "face") and t.metric == "dL@face"
    (t,) = targets_for(Intent(name="remove_object", source="rule", box=(0.1, 0.2, 0.3, 0.4)), stats())
    assert t.region is not None and t.region.box == (0.1, 0.2, 0.3, 0.4)


def test_a_spec_must_name_its_opposite_back(registry_copy: Any) -> None:
    with pytest.raises(ValueError, match="must be registered"):
        register(IntentSpec("glow", "a soft glow", opposite=("brighten",)))
    assert "glow" not in INTENTS
    with pytest.raises(ValueError, match="itself"):
        IntentSpec("glow", "a soft glow", opposite=("glow",))


def lift_veil(intent: Intent, s: Any, ref: Any = None) -> list[Any]:
    return [] if s is None else [make_target("p01_L", None, 8.0, intent.name)]


def test_a_registered_spec_is_understood_by_the_parser_the_targets_and_the_planner(
        registry_copy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """One entry: a new intent named by the clause mapper gets its targets and its first strategy."""
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")
    register(IntentSpec("lift_veil", "take the milky veil off the blacks", lift_veil, first={"p01_L": ("levels",)}))
    assert "lift_veil" in wish_names()
    veiled = stats(p01_L=22.0, p05_L=26.0)
    goal = parse_goal("zorblify the frobnicator", veiled, mapper=lambda clause: ["lift_veil"])
    assert [i.name for i in goal.intents] == ["lift_veil"] and not goal.unmapped
    (t,) = goal.targets
    assert (t.metric, t.high, t.intent) == ("p01_L", 8.0, "lift_veil")

    values = veiled.model_dump()
    ps = PlanState(instruction=goal.instruction, intents=[i.model_dump() for i in goal.intents],
                   targets=[TargetState(label=t.label, metric=t.metric, op=t.op, high=t.high, value=values["p01_L"])],
                   stats=values, original_stats=values)
    tools = {n: BoundTool(n, registry.get(n).params.model_json_schema()["properties"])
             for n in ("levels", "whites_blacks", "shadows_highlights")}
    (call,) = decide(ps, tools).calls
    assert call.name == "levels"  # the spec's first strategy, not the generic black-point slider
    del INTENTS["lift_veil"]
    (call,) = decide(ps, tools).calls
    assert call.name == "whites_blacks"  # without the spec: the generic lever
