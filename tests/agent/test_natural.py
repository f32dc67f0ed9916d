"""Magnitudes from the learned prior (agent/natural.py): direction and degree from the words, how far from the prior."""

from __future__ import annotations

import pytest

from agent.goals import parse_goal
from agent.natural import Natural, exposure_stops
from agent.offline import BoundTool, decide
from agent.protocol import PlanState, TargetState
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import underexpose
from tools.prior import Correction, correction_steps


def _natural(image, **correction) -> Natural:
    from agent.natural import _render

    c = Correction(**correction)
    return Natural(c, measure(_render(image, correction_steps(c))), image)


def test_exposure_stops_follow_the_prior_within_the_degrees_band() -> None:
    assert exposure_stops(1.8, +1, 1.0) == pytest.approx(1.8)  # "too dark": the prior's estimate
    assert exposure_stops(1.8, +1, 0.5) == pytest.approx(0.5)  # "a little brighter": at most half a stop
    assert exposure_stops(3.5, +1, 2.0) == pytest.approx(3.5)  # "way too dark": up to the tool's 4
    assert exposure_stops(1.2, -1, 0.5) == pytest.approx(-0.2)  # the prior disagrees: a small visible change
    assert exposure_stops(-1.2, -1, 0.5) == pytest.approx(-0.5)
    assert exposure_stops(0.0, -1, 1.0) == pytest.approx(-0.5)  # "darker": a visible, usual step


def test_a_little_darker_is_a_little_whatever_the_photo() -> None:
    img = sample("astronaut", (64, 48))
    s = measure(img)
    for prior_stops in (-2.0, 0.0, 1.5):  # the prior wants darker, nothing, brighter
        g = parse_goal("a little darker", s, natural=lambda p=prior_stops: _natural(img, stops=p))
        (intent,) = g.intents
        assert intent.name == "darken" and -0.5 <= intent.stops <= -0.2
        assert intent.steps == [{"tool": "exposure", "params": {"stops": intent.stops}}]
        (t,) = [t for t in g.targets if t.metric == "mean_L"]
        assert t.high < s.mean_L


def test_way_too_dark_takes_the_priors_estimate_and_targets_where_its_step_lands() -> None:
    img = underexpose(sample("astronaut", (64, 48)), 2.0)
    nat = _natural(img, stops=2.0)
    g = parse_goal("this shot came out way too dark", measure(img), natural=lambda: nat)
    (intent,) = g.intents
    assert intent.name == "brighten" and intent.stops == pytest.approx(2.0)
    (t,) = [t for t in g.targets if t.metric == "mean_L"]
    landed = nat.stats_after(intent.steps).mean_L
    assert t.low < landed < t.high and t.low > measure(img).mean_L + 5  # at least half the stops


def test_fix_the_exposure_of_a_photo_the_prior_finds_right_changes_nothing() -> None:
    img = sample("astronaut", (64, 48))
    g = parse_goal("fix the exposure", measure(img), natural=lambda: _natural(img, stops=0.05))
    assert not g.targets and not g.intents
    assert any("already natural" in n for n in g.notes)


def test_blind_restore_is_the_priors_correction_and_the_planner_tries_it_first() -> None:
    img = sample("coffee", (64, 48))
    nat = _natural(img, stops=0.6, temperature=-20.0, contrast=15.0, saturation=20.0)
    g = parse_goal("restore this photo", measure(img), natural=lambda: nat)
    restore = next(i for i in g.intents if i.name == "restore")
    assert [s["tool"] for s in restore.steps] == ["white_balance", "exposure", "contrast", "saturation"]
    assert {t.metric for t in g.targets} >= {"mean_L", "cast_a", "cast_b", "rms_contrast", "mean_saturation"}
    mine = [t for t in g.targets if t.intent == "restore"]
    landed = nat.stats_after(restore.steps)  # the prior at its blind strength
    assert restore.steps == nat.steps(("white_balance", "exposure", "levels", "contrast", "saturation"), 0.6)
    assert all(t.met(getattr(landed, t.metric)) for t in mine)
    assert not all(t.met(getattr(measure(img), t.metric)) for t in mine)
    state = PlanState(instruction=g.instruction, intents=[i.model_dump() for i in g.intents],
                      targets=[TargetState(label=t.label, metric=t.metric, op=t.op, low=t.low, high=t.high,
                                           value=t.check(measure(img))["value"], met=False) for t in g.targets],
                      stats={}, steps_left=8)
    from tools import registry

    tools = {n: BoundTool(n, registry.get(n).params.model_json_schema()["properties"])
             for n in ("white_balance", "exposure", "levels", "contrast", "saturation", "curves")}
    plan = decide(state, tools)
    assert [(c.name, c.args) for c in plan.calls] == [(s["tool"], s["params"]) for s in restore.steps]


def test_without_the_prior_the_rules_decide() -> None:
    img = underexpose(sample("astronaut", (64, 48)), 1.5)
    g = parse_goal("too dark", measure(img))
    assert all(i.steps is None for i in g.intents)
