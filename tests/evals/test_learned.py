"""The restore-learned suite (evals/learned.py): its cases, systems and measures, on 64 px photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evals import learned
from evals.baselines import LEARNED_SYSTEMS, NotApplicable, run_system
from evals.suites import build_case, read_suite
from tools.io import save_image


def photo(size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(size, size), mode="bicubic", align_corners=False)
    return (0.2 + 0.6 * base).clamp(0, 1)


@pytest.fixture
def cases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(tmp_path)  # sources are stored relative to the repository root
    src = tmp_path / "p.png"
    save_image(photo(66), src)  # not a multiple of 4: the upscale reference is cut to 64
    made = learned.make_cases([src], tmp_path)
    return {learned.kind_of(c): c.model_copy(update={"size": 66}) for c in made}


def test_measures_are_one_for_the_reference_and_fall_for_a_blur() -> None:
    x = (photo() + 0.3 * (torch.arange(64) // 8 % 2).float().view(1, 1, 1, 64)).clamp(0, 1)  # stripes
    assert learned.gradient_similarity(x, x) == pytest.approx(1.0)
    assert learned.sharpness(x, x) == pytest.approx(1.0)
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1)
    assert learned.gradient_similarity(soft, x) < 0.999 and learned.sharpness(soft, x) < 0.95


def test_three_damages_per_photo_with_matching_references(cases: dict[str, object]) -> None:
    assert set(cases) == {"noise", "night", "upscale"}
    noisy, clean = build_case(cases["noise"])
    assert noisy.shape == clean.shape and (noisy - clean).abs().mean() > 0.01
    small, ref = build_case(cases["upscale"])
    assert ref.shape[-2:] == (64, 64) and small.shape[-2:] == (16, 16)
    dark, _ = build_case(cases["night"])
    assert dark.mean() < clean.mean() / 2


def test_systems_run_on_their_damage_only(cases: dict[str, object]) -> None:
    assert set(learned.SYSTEMS) == set(LEARNED_SYSTEMS)
    image, reference = build_case(cases["noise"])
    out, _ = run_system("nlm", cases["noise"], image, reference)
    assert out.image.shape == image.shape
    with pytest.raises(NotApplicable):
        learned.run("lanczos", cases["noise"], image)
    small, ref = build_case(cases["upscale"])
    assert learned.run("lanczos", cases["upscale"], small).image.shape == ref.shape
    dark, _ = build_case(cases["night"])
    assert learned.run("exposure", cases["night"], dark).image.mean() > dark.mean()


def test_rows_and_table(cases: dict[str, object]) -> None:
    rows = learned.measure_case(cases["noise"], ["nlm", "bilateral", "lanczos"])
    assert [r["system"] for r in rows] == ["input", "nlm", "bilateral"]
    assert rows[1]["psnr"] > rows[0]["psnr"]
    table = learned.table(rows)
    assert "| noise | nlm | 1 |" in table


def test_the_bundled_suite_reads() -> None:
    suite = read_suite("restore-learned")
    kinds = [learned.kind_of(c) for c in suite.cases]
    assert len(suite.cases) == 24 and kinds.count("noise") == kinds.count("night") == kinds.count("upscale") == 8


def test_a_noise_level_override_changes_the_noise_cases_only(cases: dict[str, object]) -> None:
    from tools.metrics import psnr

    mild = learned.with_noise(cases["noise"], 0.002, 1e-5, 100)
    assert learned.with_noise(cases["night"], 0.002, 1e-5, 100) == cases["night"]
    heavy_in, clean = build_case(cases["noise"])
    mild_in, _ = build_case(mild)
    assert psnr(mild_in, clean) > psnr(heavy_in, clean) + 3


def test_the_exposure_oracle_bounds_night_cases_only(cases: dict[str, object], tmp_path: Path) -> None:
    from tools.metrics import psnr

    dark, clean = build_case(cases["night"])
    out = learned.run("oracle-exposure+neural", cases["night"], dark).image
    assert psnr(out, clean) > psnr(dark, clean) + 10, "the exact inverse exposure brings the photo back"
    with pytest.raises(NotApplicable):
        learned.run("oracle-exposure+neural", cases["noise"], build_case(cases["noise"])[0])
    rows = learned.measure_case(cases["night"], ["exposure", "oracle-exposure+neural"])
    assert [r["system"] for r in rows] == ["input", "exposure", "oracle-exposure+neural"]


def test_nlm_tuning_scores_every_strength(tmp_path: Path) -> None:
    src = tmp_path / "t.png"
    save_image(photo(48), src)
    means = learned.tune_nlm([src], 0.02, 2e-4, 95)
    assert set(means) == set(learned.NLM_STRENGTHS)
    assert max(means.values()) > min(means.values())
