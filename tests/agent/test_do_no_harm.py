"""Do no harm: the naturalness guard vetoes the damage seen on real photos, each with its measured reason.

Each test replays one damage from issue 12 on a corpus-like photo it makes itself (an overcast
sky gradient, a textured foreground, a neutral grey card, dark posts) through the loop with a
scripted planner, and checks the step is rolled back with a typed reason the planner reads,
while the edit the goal asked for, done gently, is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agent.goals import parse_goal
from agent.loop import run_loop
from agent.protocol import parse_state
from agent.state import EditSession
from tests.agent.fakes import ScriptedModel, call, say
from tools.registry import get


def corpus_like(texture: float = 0.12, posts: bool = True, soft: bool = True, h: int = 96, w: int = 128) -> torch.Tensor:
    """(1,3,96,128): pale overcast sky over a brown textured ground, a grey card, two dark posts, soft edges."""
    g = torch.Generator().manual_seed(0)
    y = torch.linspace(0, 1, h // 2).view(-1, 1).expand(-1, w)
    sky = torch.stack([0.62 + 0.1 * y, 0.66 + 0.08 * y, 0.76 + 0.04 * y])
    t = F.avg_pool2d(torch.rand(1, 1, h - h // 2 + 2, w + 2, generator=g), 3, 1)[0, 0] - 0.5
    ground = torch.stack([0.42 + texture * t, 0.36 + texture * t, 0.26 + texture * t])
    img = torch.cat([sky, ground], 1)
    img[:, h // 2 + 10: h // 2 + 34, 12:44] = 0.5  # the neutral grey card
    if posts:
        img[:, 20:, 70:76] = 0.25
        img[:, 30:, 100:104] = 0.25
    blur = get("blur")
    img = img.clamp(0, 1)[None]
    return blur(img, blur.validate({"sigma": 0.8})) if soft else img  # a lens's soft edges


def _run(image: torch.Tensor, instruction: str, *calls: dict) -> tuple:
    session = EditSession(image, preview_size=128)
    goal = parse_goal(instruction, session.measure("v0"))
    model = ScriptedModel(script=[say(c) for c in calls] + [say(text="done")])
    result = run_loop(session, goal, model, critic=None)
    return result, model


def _vetoed(result, tool: str) -> list[dict]:
    entries = [e for e in result.trace if e.tool == tool and e.kind == "naturalness"]
    assert entries, f"{tool} was not vetoed: {[(e.tool, e.outcome, e.reason) for e in result.trace]}"
    assert entries[0].outcome == "rolled_back" and entries[0].reason.startswith("naturalness guard:")
    return entries[0].vetoes


def _planner_read(model: ScriptedModel, tool: str) -> list:
    """The attempts of `tool` as the planner read them in its last state block."""
    state = parse_state(model.seen[-1])
    return [a for a in state.history if a.tool == tool]


def test_an_exposure_that_blows_a_third_of_the_sky_is_rolled_back_with_the_figure() -> None:
    # "make it warmer and brighter" left 37 % of a facade clipped, reported as success
    result, model = _run(corpus_like(), "make it brighter", call("exposure", stops=1.2), call("gamma", gamma=1.25))
    vetoes = _vetoed(result, "exposure")
    blown = next(v for v in vetoes if v["check"] == "blown_highlights")
    assert blown["value"] > 25 and blown["limit"] < 5 and "% of the pixels" in blown["text"]
    seen = _planner_read(model, "exposure")[0]  # fields, not only words
    assert seen.kind == "naturalness" and not seen.kept and "blown_highlights" in [v.check for v in seen.vetoes]
    kept = [e for e in result.trace if e.outcome == "kept" and e.tool != "refine"]  # the planner's calls
    assert [e.tool for e in kept] == ["gamma"]  # brightening by a curve, which clips nothing, is kept
    assert result.best.stats.clipped_highlights_pct < 2


def test_a_strong_denoise_that_smears_a_clean_texture_is_vetoed_and_a_gentle_one_kept() -> None:
    # "remove the noise" smeared fine detail (sharpness / 3) and scored 10/10
    photo = corpus_like(texture=0.2, posts=False, soft=False)  # fine texture near the noise's scale
    result, _ = _run(photo, "remove the noise", call("denoise", method="nlm", strength=1.0),
                     call("denoise", method="nlm", strength=0.3))
    (detail,) = [v for v in _vetoed(result, "denoise") if v["check"] == "detail"]
    assert detail["value"] < detail["limit"] and "smeared" in detail["text"]
    assert [e.params["strength"] for e in result.trace if e.outcome == "kept"] == [0.3]


def test_neutrals_turned_pink_are_vetoed_but_warmer_by_the_amount_asked_is_kept() -> None:
    # "fix the colours" turned a green-cream cloth pink (tint +74)
    result, _ = _run(corpus_like(), "fix the colours", call("white_balance", tint=60))
    (tint,) = [v for v in _vetoed(result, "white_balance") if v["check"] == "tint"]
    assert tint["value"] > tint["limit"] and "neutral greys turned a* +" in tint["text"]
    assert result.best.id == "v0" and not result.goal_met
    # "warmer" asks b* +4..+10 of the neutrals: a white balance that moves them that far is kept
    result, _ = _run(corpus_like(), "make it warmer", call("white_balance", temperature=20))
    assert [e.outcome for e in result.trace] == ["kept"], result.trace[0].reason


def test_halos_from_a_huge_clarity_are_vetoed_and_a_moderate_sharpen_kept() -> None:
    # --reference produced 4x clarity + saturation 100 with halos
    result, _ = _run(corpus_like(), "sharpen it", call("sharpen", amount=2, radius=4), call("sharpen", amount=0.5))
    (halos,) = [v for v in _vetoed(result, "sharpen") if v["check"] == "halos"]
    assert halos["value"] > halos["limit"] and "overshoot" in halos["text"]
    assert [(e.params["amount"], e.outcome) for e in result.trace] == [(2.0, "rolled_back"), (0.5, "kept")]


def test_a_goal_left_unmet_by_a_veto_exits_3_and_still_writes_the_best_version(tmp_path, capsys, monkeypatch) -> None:
    # `batch` reads the same EditResult.exit_code per photo (its planner runs in worker processes)
    import agent.api
    from tests.helpers import run_cli
    from tools.io import save_image

    photo, out = tmp_path / "field.png", tmp_path / "out.png"
    save_image(corpus_like(texture=0.2, posts=False, soft=False), photo)
    smear = ScriptedModel(script=[say(call("denoise", method="nlm", strength=1.0)), say(text="done")])
    monkeypatch.setattr(agent.api, "make_planner", lambda *a, **k: smear)  # where `edit` builds its planner
    code, stdout, err = run_cli(["edit", str(photo), "-g", "remove the noise", "-o", str(out), "--critic", "none"],
                                capsys)
    assert code == 3 and "goal not met" in err and out.exists(), stdout + err
    assert "naturalness guard" in stdout  # the steps table shows why the denoise was not kept


# --- a blind goal keeps a photo's key (issue 12: high-key photos were pushed toward mid grey) ---------


def high_key(h: int = 96, w: int = 128) -> torch.Tensor:
    """(1,3,96,128): a bright snowy scene: white sky and snow, pale grey shadows (darkest tone ~0.3), no black."""
    img = corpus_like(h=h, w=w)
    return (0.3 + 0.7 * img / img.amax()).clamp(0, 1)


def test_a_high_key_photo_with_no_veil_gets_no_levels_from_a_blind_goal() -> None:
    from tools.analysis import measure

    s = measure(high_key())
    assert s.p01_L > 15 and s.black_lift > 0.2 and s.white_drop < 0.02  # lifted blacks, full whites: its key
    goal = parse_goal("restore this photo", s)
    assert "set_levels" not in {i.name for i in goal.intents}


def test_a_faded_high_key_photo_is_stretched_at_both_ends_and_keeps_its_key() -> None:
    from agent.api import edit
    from tools.analysis import measure
    from tools.degrade import low_contrast
    from tools.metrics import psnr

    clean = high_key()
    faded = low_contrast(clean, 0.75)
    res = edit(faded, "restore this photo", model="offline", lock=0.7, preview=128, prior=False)
    assert "set_levels" in {i.name for i in res.goal.intents}
    assert psnr(res.image, clean) > psnr(faded, clean) + 3
    assert measure(res.image).mean_L > measure(faded).mean_L  # brighter again, not pushed toward mid grey


def sky_scene(sky_rows: int = 45, h: int = 96, w: int = 128) -> torch.Tensor:
    """(1,3,96,128): a pale blue sky (b* ~ -11, read as near-neutral) over a grey wall, brown earth,
    green grass, a neutral grey card and a white sign; `sky_rows` 0 for none."""
    g = torch.Generator().manual_seed(0)
    t = F.avg_pool2d(torch.rand(1, 1, h + 2, w + 2, generator=g), 3, 1)[0, 0] - 0.5
    img = (0.55 + 0.15 * t).expand(3, h, w).clone()
    img[:, 60:, :64] = torch.tensor([0.45, 0.36, 0.24]).view(3, 1, 1) + 0.1 * t[60:, :64]
    img[:, 60:, 64:] = torch.tensor([0.25, 0.42, 0.2]).view(3, 1, 1) + 0.1 * t[60:, 64:]
    img[:, 70:90, 20:50] = 0.5  # the grey card
    y = torch.linspace(0, 1, sky_rows).view(-1, 1)
    for k, v in enumerate((0.66, 0.70, 0.78)):
        img[k, :sky_rows] = v + 0.05 * y
    img[:, 5:25, 100:120] = 0.95  # the white sign
    return img.clamp(0, 1)[None]


def _card_ab(image: torch.Tensor) -> tuple[float, float]:
    from tools.colorspace import rgb_to_lab

    lab = rgb_to_lab(image)[0, 1:, 72:88, 22:48]
    return float(lab[0].mean()), float(lab[1].mean())


def test_a_blue_sky_read_as_a_cast_is_not_neutralized_and_the_grey_card_stays_grey() -> None:
    from agent.api import edit
    from tools.analysis import measure

    photo = sky_scene()
    s = measure(photo)
    assert s.cast_b < -6 and abs(s.illuminant_b) < 1  # the sky reads as a blue cast; the light is white
    res = edit(photo, "remove the colour cast", model="offline", preview=128, prior=False)
    a, b = _card_ab(res.image)
    assert abs(a) < 1 and abs(b) < 1  # it warmed the whole photo to make the sky grey (card b* +7) before


def test_a_real_warm_cast_is_still_corrected() -> None:
    from agent.api import edit
    from tools.degrade import color_cast
    from tools.metrics import psnr

    clean = sky_scene(sky_rows=0)
    warm = color_cast(clean, 1.2, 1.0, 0.75)
    res = edit(warm, "remove the colour cast", model="offline", preview=128, prior=False)
    assert abs(_card_ab(res.image)[1]) < abs(_card_ab(warm)[1]) / 2
    assert psnr(res.image, clean) > psnr(warm, clean) + 3
