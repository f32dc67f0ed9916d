"""Suites: reproducible from their seeds, built byte for byte, usable on the user's photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agent.errors import UserError
from evals.baselines import auto_enhance, oracle, parametric_fit, run_system
from evals.suites import (
    Case,
    Degradation,
    Generator,
    TargetSpec,
    build_case,
    generate,
    load_suite,
    read_suite,
    suite_names,
)
from tests.helpers import sample
from tools.analysis import measure
from tools.degrade import blur, jpeg
from tools.io import encode_png, save_image
from tools.metrics import psnr


@pytest.mark.parametrize("name", ["restore", "retouch", "match"])
def test_bundled_suite_is_what_its_seed_generates(name: str) -> None:
    suite = read_suite(name)
    assert len(suite.cases) == suite.generator.count >= 8
    regenerated = generate(suite.generator)
    assert [c.model_dump() for c in regenerated] == [c.model_dump() for c in suite.cases]
    assert len({c.id for c in suite.cases}) == len(suite.cases)


def test_cases_build_to_the_same_bytes_and_seeds_matter() -> None:
    gen = Generator(kind="restore", seed=11, count=3, size=48)
    a, b = generate(gen), generate(gen)
    for ca, cb in zip(a, b, strict=True):
        (ia, ra), (ib, rb) = build_case(ca), build_case(cb)
        assert encode_png(ia) == encode_png(ib) and encode_png(ra) == encode_png(rb)
        assert not torch.equal(ia, ra), "the input is degraded"
    other = generate(gen.model_copy(update={"seed": 12}))
    assert [c.degrade for c in other] != [c.degrade for c in a]
    for case in a:
        assert 2 <= len(case.degrade) <= 3


def test_restore_suite_covers_every_degradation() -> None:
    ops = {d.op for c in read_suite("restore").cases for d in c.degrade}
    assert {"underexpose", "color_cast", "haze", "low_contrast", "blur", "add_noise", "jpeg"} <= ops


def test_images_folder_replaces_the_bundled_sources(tmp_path: Path) -> None:
    for i, name in enumerate(["coffee", "chelsea"]):
        save_image(sample(name, (80, 60)), tmp_path / f"p{i}.png")
    (tmp_path / "notes.txt").write_text("not a photo")
    suite = load_suite("match", images=tmp_path, size=40)
    sources = {c.source for c in suite.cases}
    assert sources == {str((tmp_path / f"p{i}.png").resolve()) for i in range(2)}
    image, reference = build_case(suite.cases[0])
    assert max(image.shape[-2:]) == 40 and reference.shape == image.shape
    assert len(load_suite("match", images=tmp_path, limit=3).cases) == 3


def test_bad_suites_and_folders_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no suite named 'nope'.*restore"):
        read_suite("nope")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(UserError, match="not a valid suite"):
        read_suite(bad)
    with pytest.raises(UserError, match="not a folder"):
        load_suite("restore", images=tmp_path / "missing")
    with pytest.raises(UserError, match="no photos"):
        load_suite("restore", images=tmp_path)
    with pytest.raises(UserError, match="at least one source"):
        generate(Generator(kind="inpaint"), sources=[])
    assert {"restore", "retouch", "match", "inpaint", "chat", "gan"} <= set(suite_names())


def test_targets_relative_to_input_and_reference() -> None:
    img = sample("astronaut", (48, 36))
    s_in, s_dark = measure(img), measure(img * 0.5)
    t = TargetSpec(metric="mean_L", low=-3, high=3, relative_to="reference")
    assert t.met(s_in, s_dark, s_in) and not t.met(s_dark, s_in, s_in)
    up = TargetSpec(metric="mean_L", low=2, relative_to="input")
    assert up.met(s_in, s_dark, None) and not up.met(s_dark, s_in, None)
    with pytest.raises(UserError, match="relative to the reference"):
        t.met(s_in, s_in, None)


def test_new_degradations_blur_and_jpeg() -> None:
    img = sample("astronaut", (64, 48))
    assert measure(blur(img, 1.5)).sharpness < 0.5 * measure(img).sharpness
    assert psnr(jpeg(img, 10), img) < psnr(jpeg(img, 90), img) < 60
    assert jpeg(img, 50).shape == img.shape


def test_oracle_inverts_what_can_be_inverted() -> None:
    case = Case(id="c", kind="restore", source="skimage:coffee", size=48, goal="restore this photo",
                degrade=[Degradation(op="underexpose", params={"stops": 1.0}),
                         Degradation(op="color_cast", params={"r": 0.8, "g": 1.0, "b": 1.2}),
                         Degradation(op="add_noise", params={"sigma": 0.02, "seed": 1})])
    image, clean = build_case(case)
    out = oracle(case, image, clean)
    assert psnr(out.image, clean) > psnr(image, clean) + 5
    assert "add_noise" in out.note


def test_auto_enhance_neutralises_a_cast_and_fit_matches_a_look() -> None:
    img = sample("astronaut", (64, 48))
    from tools.degrade import color_cast

    cast = color_cast(img, r=0.75, b=1.3)
    case = Case(id="m", kind="match", source="skimage:chelsea", size=48, goal="match",
                look=[{"tool": "exposure", "params": {"stops": 0.4}},
                      {"tool": "saturation", "params": {"amount": -30}}])
    assert abs(measure(auto_enhance(case, cast, None).image).cast_b) < abs(measure(cast).cast_b) / 2
    image, ref = build_case(case)
    fit = parametric_fit(case, image, ref)
    assert psnr(fit.image, ref) > psnr(image, ref) + 10
    _, seconds = run_system("identity", case, image, ref)
    assert seconds >= 0
