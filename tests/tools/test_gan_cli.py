"""`imagent gan ...` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import run_cli as run
from tools.io import load_image, save_image

pytest.importorskip("gan_face_generate", reason="install with: pip install --no-deps gan-face-generate")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_sample_writes_a_grid_of_faces(tmp_path: Path, capsys) -> None:
    out = tmp_path / "faces.png"
    code, text, err = run(["gan", "sample", "--seed", "3", "-n", "4", "-o", str(out)], capsys)
    assert code == 0, err
    img = load_image(out).image
    assert img.shape == (1, 3, 128, 128) and float(img.std()) > 0.1
    code, _, err = run(["gan", "sample", "--seed", "3", "-o", str(out)], capsys)
    assert code != 0 and "exists" in err and "--overwrite" in err


def test_invert_prints_json_with_quality(tmp_path: Path, capsys) -> None:
    face = tmp_path / "face.png"
    assert run(["gan", "sample", "--seed", "77", "-o", str(face)], capsys)[0] == 0
    code, text, err = run(["gan", "invert", str(face), "--json", "--steps", "60"], capsys)
    assert code == 0, err
    report = json.loads(text)
    assert {"psnr", "ssim", "seconds"} <= report.keys()
    assert report["psnr"] > 22 and 0 < report["ssim"] <= 1 and report["face"] == -1


def test_edit_writes_the_photo_and_never_the_input(tmp_path: Path, capsys, monkeypatch) -> None:
    import dataclasses

    from tests.tools.test_gan import portrait
    from tools.gan import invert as inv

    monkeypatch.setattr(inv, "DEFAULTS", dataclasses.replace(inv.DEFAULTS, steps=40, restarts=2))
    src = tmp_path / "portrait.png"
    save_image(portrait(0), src)
    out = tmp_path / "smile.png"
    code, text, err = run(["gan", "edit", str(src), "--direction", "lighting", "--strength", "2", "-o", str(out)],
                          capsys)
    assert code == 0, err
    assert "PSNR" in text
    a, b = load_image(src).image, load_image(out).image
    assert a.shape == b.shape and not torch.equal(a, b)
    assert torch.equal(a[..., :, :40], b[..., :, :40]), "outside the face untouched"
    code, _, err = run(["gan", "edit", str(src), "--direction", "smile", "-o", str(src), "--overwrite"], capsys)
    assert code != 0 and "input" in err.lower()
    code, _, err = run(["gan", "edit", str(src), "--direction", "beard", "-o", str(tmp_path / "x.png")], capsys)
    assert code != 0 and "direction" in err


def test_directions_lists_measured_accuracy(capsys) -> None:
    code, text, err = run(["gan", "directions", "--json"], capsys)
    assert code == 0, err
    data = json.loads(text)
    assert data["generator"] == "dcgan"
    assert 0 < data["directions"]["smile"]["edit_accuracy"] <= 1
    assert "explained_variance" in data["directions"]["pca0"]
    code, text, _ = run(["gan", "directions"], capsys)
    assert code == 0 and "smile" in text and "eyeglasses" in text
