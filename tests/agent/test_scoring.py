"""Scoring: the structure lock keeps tone edits and catches damage; Score picks the right version."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from agent.goals import Goal, Target
from agent.scoring import (
    Score,
    score_version,
    structure_per_image,
    structure_similarity,
    target_states,
)
from tests.helpers import sample
from tools.colorspace import luminance
from tools.degrade import add_noise, color_cast, low_contrast, underexpose
from tools.registry import ToolError

SIZE = (96, 72)
PHOTOS = ("astronaut", "coffee", "chelsea")


def photo(name: str) -> torch.Tensor:
    return sample(name, SIZE)


# ------------------------------------------------------------------ edits that keep structure


def saturation(x: torch.Tensor, k: float) -> torch.Tensor:
    y = luminance(x)
    return (y + k * (x - y)).clamp(0, 1)


def grey_luma(x: torch.Tensor) -> torch.Tensor:
    return luminance(x).expand(-1, 3, -1, -1).contiguous()


def grey_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(1, keepdim=True).expand(-1, 3, -1, -1).contiguous()


KEEP = {  # name -> (original, candidate) made from a clean photo x
    "dark photo brightened +1 stop": lambda x: (underexpose(x, 1.0), x),
    "white balance fixed": lambda x: (color_cast(x, r=0.85, b=1.25), x),
    "contrast x1.2": lambda x: (x, low_contrast(x, 1.2)),
    "contrast x0.75": lambda x: (x, low_contrast(x, 0.75)),
    "saturation x1.4": lambda x: (x, saturation(x, 1.4)),
    "saturation x0.6": lambda x: (x, saturation(x, 0.6)),
    "grayscale (luma)": lambda x: (x, grey_luma(x)),
    "grayscale (channel mean)": lambda x: (x, grey_mean(x)),
}


# ------------------------------------------------------------------ edits that break it


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    import kornia.filters

    k = 2 * int(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    rgb = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None]


def blocks(x: torch.Tensor, n: int = 8) -> torch.Tensor:
    pooled = torch.nn.functional.avg_pool2d(x, n, ceil_mode=True)
    return torch.nn.functional.interpolate(pooled, scale_factor=n, mode="nearest")[..., : x.shape[2], : x.shape[3]]


def salt_and_pepper(x: torch.Tensor, amount: float) -> torch.Tensor:
    r = torch.rand(1, 1, *x.shape[-2:], generator=torch.Generator().manual_seed(1))
    return torch.where(r < amount / 2, 0.0, torch.where(r > 1 - amount / 2, 1.0, x))


def pasted(x: torch.Tensor, other: str) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = round(h * 0.2**0.5), round(w * 0.2**0.5)  # 20% of the area
    y = x.clone()
    y[..., h // 4 : h // 4 + ph, w // 4 : w // 4 + pw] = sample(other, SIZE)[..., :ph, :pw]
    return y


BREAK = {
    "gaussian blur sigma 2": lambda x: gaussian_blur(x, 2.0),
    "jpeg quality 5": lambda x: jpeg(x, 5),
    "8x8 blocking": blocks,
    "salt and pepper 5%": lambda x: salt_and_pepper(x, 0.05),
    "another photo pasted over 20%": lambda x: pasted(x, "rocket"),
    "mirrored": lambda x: x.flip(-1),
}


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("edit", list(KEEP))
def test_lock_keeps_tone_and_colour_edits(edit: str, name: str) -> None:
    original, candidate = KEEP[edit](photo(name))
    assert structure_similarity(original, candidate) >= 0.95


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("edit", list(BREAK))
def test_lock_catches_damage(edit: str, name: str) -> None:
    x = photo(name)
    assert structure_similarity(x, BREAK[edit](x)) <= 0.75  # "clearly below 0.8"


def test_plain_ssim_would_have_broken_the_lock() -> None:
    # Why the lock is not plain SSIM: a correct +1 stop on a dark photo costs ~0.1 of it.
    x = photo("astronaut")
    s = score_version(underexpose(x, 1.0), x, Goal(instruction="brighten"), stats={})
    assert s.structure > 0.99 and s.ssim < 0.92


def test_identity_and_range() -> None:
    x = photo("coffee")
    assert structure_similarity(x, x.clone()) == 1.0
    noise = torch.rand(1, 3, 72, 96, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= structure_similarity(x, noise) < 0.3
    flat = torch.full_like(x, 0.5)
    assert structure_similarity(flat, flat * 0.9) == pytest.approx(1.0, abs=1e-4)  # nothing to lose


def test_batch_and_resized_candidate() -> None:
    x = photo("astronaut")
    per = structure_per_image(x, torch.cat([x, x.flip(-1)]))
    assert per.shape == (2,) and per[0] > 0.999 and per[1] < 0.5
    bigger = torch.nn.functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert structure_similarity(x, bigger) > 0.95  # same framing at another size
    with pytest.raises(ToolError, match="batch"):
        structure_similarity(torch.cat([x, x, x]), torch.cat([x, x]))


def test_cpu_and_torch_paths_agree() -> None:
    # 700x525 is downscaled to the 512 px lock grid at a non-integer ratio: OpenCV's
    # INTER_AREA on the CPU path, overlap matrices on the torch path. Tolerance 1e-4.
    x = sample("coffee", (700, 525))
    for y in (underexpose(x, -1.0), add_noise(x, 0.05), x.flip(-1)):
        fast = float(structure_per_image(x, y)[0])
        torch_path = float(structure_per_image(x.clone().requires_grad_(True), y)[0].detach())
        assert fast == pytest.approx(torch_path, abs=1e-4)


def test_differentiable() -> None:
    x = photo("chelsea")
    y = underexpose(x, -0.5).requires_grad_(True)
    structure_per_image(x, y).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


# ------------------------------------------------------------------ the score


def brighten_goal(lock: float = 0.8) -> Goal:
    return Goal(instruction="brighten it", lock=lock, targets=[
        Target(metric="mean_L", op="between", low=40, high=60),
        Target(metric="clipped_highlights_pct", op="<=", high=2.0, weight=0.5),
    ])


def test_score_prefers_meeting_targets() -> None:
    from tools.analysis import measure

    clean = photo("coffee")
    dark = underexpose(clean, 1.5)
    goal = brighten_goal()
    before = score_version(dark, dark, goal, stats=measure(dark))
    after = score_version(dark, clean, goal, stats=measure(clean))
    assert before.structure == 1.0 and before.lock_ok
    assert after.lock_ok and after.structure > 0.95
    assert after.targets_met > before.targets_met and after.target_distance < before.target_distance
    assert after.combined > before.combined
    assert [t.label for t in after.targets] == [t.label for t in goal.targets]
    assert after.targets[0].value == pytest.approx(measure(clean).mean_L)


def test_smaller_distance_wins_when_nothing_is_met() -> None:
    goal = brighten_goal()
    x = photo("astronaut")
    far = score_version(x, x, goal, stats={"mean_L": 20.0, "clipped_highlights_pct": 0.0})
    near = score_version(x, x, goal, stats={"mean_L": 35.0, "clipped_highlights_pct": 0.0})
    assert far.targets_met == near.targets_met == 1
    assert near.target_distance < far.target_distance and near.combined > far.combined


@pytest.mark.parametrize("damage", ["mirrored", "gaussian blur sigma 2", "salt and pepper 5%"])
def test_lock_breaking_version_never_wins(damage: str) -> None:
    x = photo("chelsea")
    goal = brighten_goal(lock=0.8)
    # The original at its worst: every target badly missed, the critic hates it.
    worst = {"mean_L": 0.0, "clipped_highlights_pct": 100.0}
    original = score_version(x, x, goal, stats=worst, critique=0.0)
    # The damaged version at its best: every target met, a perfect critique, and a
    # reference that is the damaged image itself.
    bad = BREAK[damage](x)
    best = {"mean_L": 55.0, "clipped_highlights_pct": 0.0}
    broken = score_version(x, bad, goal, stats=best, critique=10.0, reference=bad)
    assert not broken.lock_ok and broken.targets_met == broken.targets_total
    assert broken.combined < original.combined


def test_reference_metrics() -> None:
    clean = photo("coffee")
    cast = color_cast(clean, r=0.85, b=1.25)
    goal = Goal(instruction="match the reference", targets=[
        Target(metric="delta_e_ref", op="<=", high=2.0),
        Target(metric="ssim_ref", op=">=", low=0.95),
    ])
    none = score_version(cast, cast, goal, stats={})
    assert none.reference is None and none.targets_met == 0 and none.targets[0].value is None
    ref_big = sample("coffee", (192, 144))  # another size: resampled onto the candidate's grid
    far = score_version(cast, cast, goal, stats={}, reference=ref_big)
    near = score_version(cast, clean, goal, stats={}, reference=ref_big)
    assert set(far.reference) == {"psnr", "ssim", "delta_e_mean", "delta_e_max"}
    assert near.reference["delta_e_mean"] < 2.0 < far.reference["delta_e_mean"]
    assert near.reference["psnr"] > far.reference["psnr"]
    assert near.targets_met == 2 and near.combined > far.combined
    same = score_version(clean, clean, goal, stats={}, reference=clean)
    assert same.reference["psnr"] == 100.0 and same.reference["delta_e_mean"] == 0.0  # capped, JSON-safe
    assert Score.model_validate_json(same.model_dump_json()) == same


def test_critique_counts_a_little() -> None:
    x = photo("astronaut")
    goal = brighten_goal()
    stats = {"mean_L": 30.0, "clipped_highlights_pct": 0.0}
    low = score_version(x, x, goal, stats=stats, critique=2.0)
    high = score_version(x, x, goal, stats=stats, critique=9.0)
    met = score_version(x, x, goal, stats={"mean_L": 55.0, "clipped_highlights_pct": 0.0}, critique=0.0)
    assert high.combined > low.combined and met.combined > high.combined
    with pytest.raises(ToolError, match="between 0 and 10"):
        score_version(x, x, goal, stats=stats, critique=11.0)


def test_target_states() -> None:
    goal = Goal(instruction="x", targets=[
        Target(metric="mean_L", op=">=", low=50),
        Target(metric="ssim_ref", op=">=", low=0.9),
        Target(metric="cast", op="<=", high=3),
    ])
    states = target_states(goal, {"mean_L": 55.0, "cast": 5.0}, {"ssim_ref": 0.95})
    assert [(s.value, s.met) for s in states] == [(55.0, True), (0.95, True), (5.0, False)]
    assert states[2].op == "<=" and states[2].high == 3
    missing = target_states(goal, {"mean_L": 55.0, "cast": 1.0})
    assert missing[1].value is None and not missing[1].met


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu() -> None:
    x = sample("coffee", (700, 525))
    goal = brighten_goal()
    stats = {"mean_L": 45.0, "clipped_highlights_pct": 0.0}
    for y in (underexpose(x, -1.0), add_noise(x, 0.05)):
        cpu = score_version(x, y, goal, stats=stats, reference=x)
        gpu = score_version(x.cuda(), y.cuda(), goal, stats=stats, reference=x.cuda())
        assert gpu.structure == pytest.approx(cpu.structure, abs=1e-4)
        assert gpu.ssim == pytest.approx(cpu.ssim, abs=1e-4)
        # Lab comes from OpenCV on the CPU and from kornia on CUDA.
        assert gpu.reference["delta_e_mean"] == pytest.approx(cpu.reference["delta_e_mean"], abs=0.02)


# ------------------------------------------------------------------ the naturalness guard


def test_naturalness_of_the_original_is_no_damage_and_the_goal_sets_the_allowances() -> None:
    from agent.goals import parse_goal
    from agent.scoring import (
        CLIP_NEW,
        CLIP_NEW_ASKED,
        Naturalness,
        naturalness,
        naturalness_vetoes,
        tint_allowed,
    )
    from tools.analysis import measure

    x = photo("coffee")
    st = measure(x)
    assert naturalness(x, x.clone(), original_stats=st, stats=st) == Naturalness()
    warmer, neutral = parse_goal("make it warmer", st), parse_goal("more contrast", st)
    (a_lo, a_hi), (b_lo, b_hi) = tint_allowed(warmer, st)
    assert (a_lo, a_hi) == (0.0, 0.0) and b_lo == 0.0 and b_hi > 4  # warmer: b* up, as far as its target
    assert tint_allowed(neutral, st) == ((0.0, 0.0), (0.0, 0.0))  # nothing asked of the neutrals
    blown = Naturalness(blown_highlights=3.0)  # between the two limits
    assert CLIP_NEW < 3.0 < CLIP_NEW_ASKED
    assert [v.check for v in naturalness_vetoes(blown, parse_goal("make it greener", st), st)] == ["blown_highlights"]
    assert naturalness_vetoes(blown, parse_goal("make it brighter", st), st) == []
    # damage the step's parent already had (a look asked for) is not the step's
    assert naturalness_vetoes(blown, parse_goal("more saturation", st), st, parent=blown) == []
