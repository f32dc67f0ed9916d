"""The gan suite: inversion fidelity and direction edits on faces the embedded generator draws."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from evals.gan import build, tile, untile
from evals.runner import read_results, run_eval
from evals.suites import Case, Generator, Suite, generate, read_suite
from tools.gan.backends import available

pytestmark = pytest.mark.skipif(not available()[0], reason="the embedded face generator is not installed")


def _quick(task: str, seed: int, **kw: object) -> Case:
    spec = {"task": task, "seed": seed, "steps": 40, "seconds": 3.0, **kw}
    return Case(id=f"{task}-{seed}", kind="gan", source="generator:dcgan", goal="g", gan=spec, lock=0.0)


def test_gan_cases_are_reproducible_from_their_seeds() -> None:
    suite = read_suite("gan")
    assert [c.model_dump() for c in generate(suite.generator)] == [c.model_dump() for c in suite.cases]
    assert {c.gan["task"] for c in suite.cases} == {"invert", "edit"}
    a, _ = build(_quick("edit", 7, n=4, direction="lighting", amount=3.0))
    b, _ = build(_quick("edit", 7, n=4, direction="lighting", amount=3.0))
    c, _ = build(_quick("edit", 8, n=4, direction="lighting", amount=3.0))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(tile(untile(a, 4, 64)), a)


def test_refined_inversion_beats_the_encoder_and_edits_move_the_attribute(tmp_path: Path) -> None:
    cases = [_quick("invert", 11), _quick("edit", 12, n=4, direction="lighting", amount=3.0)]
    suite = Suite(name="tiny-gan", generator=Generator(kind="gan", count=2, size=64), cases=cases)
    rows = {r["system"]: r for r in run_eval(suite, ["gan-encoder", "gan-invert", "gan-latent"], tmp_path,
                                             report=False)}
    assert rows["gan-invert"]["psnr"] > rows["gan-encoder"]["psnr"] + 1
    assert rows["gan-invert"]["psnr"] > 20
    recs = read_results(tmp_path)
    assert recs["invert-11"]["systems"]["gan-latent"]["status"] == "n/a"
    assert recs["edit-12"]["systems"]["gan-latent"]["moved"] >= 75, "lighting moves nearly every face"
    assert 0 <= recs["edit-12"]["systems"]["gan-invert"]["moved"] <= 100
