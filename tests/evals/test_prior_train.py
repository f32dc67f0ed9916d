"""The prior's trainer end to end on a few tiny made-up photos: features, fit, weights, report."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from evals import prior_train
from tools import prior
from tools.recipe import Recipe, Step


def photo(seed: int, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    base = torch.rand(3, 1, 1, generator=g) * 0.5 + 0.25
    img = base * (0.7 + 0.5 * xx) + 0.1 * torch.sin(9 * yy + seed)
    return img.clamp(0, 1)[None].float()


def test_sampled_corrections_are_valid_and_seeded() -> None:
    rng = np.random.default_rng(0)
    seen = []
    for _ in range(60):
        c, q = prior_train.sample_correction(rng)
        Recipe(steps=[Step.of(s["tool"], s["params"]) for s in prior.correction_steps(c)])
        assert q is None or 20 <= q <= 80
        seen.append(c)
    assert any(c == prior.Correction() for c in seen) and any(c.stops != 0 for c in seen)
    again = [prior_train.sample_correction(np.random.default_rng(0))[0] for _ in range(1)]
    assert again[0] == seen[0]


def test_train_writes_loadable_weights_and_reports(tmp_path) -> None:
    images = [(f"p{i}", photo(i)) for i in range(3)]
    out = tmp_path / "prior.pt"
    source = tmp_path / "prior_src.py"
    source.write_text('WEIGHTS_SHA256 = "' + "0" * 64 + '"\n')
    result = prior_train.train(images, out, per_photo=4, epochs=3, workers=1, record_in=source,
                               holdout=0.34, log=lambda _: None)
    assert result["samples"] == 12
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert result["sha256"] == sha and sha in source.read_text()
    assert set(result["holdout_mae"]) == set(prior.TARGETS)
    net = prior.load(out, sha256=sha)
    rows = prior_train.report(images[:1], rules=True, workers=1, weights=out)
    assert len(rows) == prior_train.REPORT_PER_PHOTO
    for r in rows:
        assert set(r["rules"]) == set(prior_train.PARAMS)
        assert np.isfinite(r["psnr_prior"]) and r["psnr_oracle"] >= r["psnr_identity"] - 0.5
    text = prior_train.table(rows)
    assert "| stops |" in text and "| prior |" in text and "| rules |" in text
    # The same seed gives the same network.
    again = prior_train.train(images, tmp_path / "again.pt", per_photo=4, epochs=3, workers=1, holdout=0.34,
                              log=lambda _: None)
    assert again["sha256"] == sha
    assert isinstance(net, prior.PriorNet)


def test_rules_estimate_reads_the_agents_steps() -> None:
    from tools.analysis import measure

    steps = [Step.of("exposure", {"stops": 0.5}), Step.of("white_balance", {"temperature": 10, "tint": -3}),
             Step.of("exposure", {"stops": 0.25}), Step.of("levels", {"black": 0.1, "white": 0.9})]
    got = prior_train.rules_estimate(steps, measure(photo(0)))
    assert got["stops"] == 0.75 and got["temperature"] == 10 and got["tint"] == -3
    assert got["black"] == 0.1 and got["white"] == 0.9 and got["midtone"] == 1.0
