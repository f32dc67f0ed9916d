"""One pixel limit for every decoder: imagent's header check, Pillow's bomb guard, OpenCV's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from agent.errors import UserError
from agent.settings import load_settings, parse_size
from tests.helpers import png_bytes
from tools.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    load_image,
    pixel_limit,
    read_header,
    set_pixel_limit,
)

ROOT = Path(__file__).resolve().parents[2]




@pytest.fixture
def limit_10k():
    set_pixel_limit(10_000)
    yield
    set_pixel_limit(DEFAULT_MAX_PIXELS)


def test_pillow_guard_is_on_at_the_default_limit() -> None:
    assert Image.MAX_IMAGE_PIXELS == pixel_limit() == DEFAULT_MAX_PIXELS == 100_000_000
    assert os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == str(DEFAULT_MAX_PIXELS)


def test_bomb_is_refused_by_pillow_at_the_shared_limit(tmp_path: Path, limit_10k: None) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(200, 100))  # 20,000 px: between the limit and Pillow's own 2x error threshold
    assert Image.MAX_IMAGE_PIXELS == 10_000 and os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] == "10000"
    # Pillow itself refuses, for any code in the process that opens images, not only imagent's loader
    with pytest.raises((Image.DecompressionBombWarning, Image.DecompressionBombError)):
        Image.open(bomb).load()
    for fn in (load_image, read_header):
        with pytest.raises(ImageLoadError) as err:
            fn(bomb)
        assert str(err.value) == (f"{bomb} is 200 x 100 = 0.02 MP, over the 0.01 MP limit; "
                                  "pass --max-pixels or set IMAGENT_MAX_PIXELS to raise it")
    (tmp_path / "ok.png").write_bytes(png_bytes(100, 100))  # exactly the limit
    assert load_image(tmp_path / "ok.png").size == (100, 100)
    assert load_image(bomb, max_pixels=20_000).size == (200, 100)  # a caller may allow more, explicitly


def test_a_bomb_over_twice_the_limit_names_its_size(tmp_path: Path, limit_10k: None) -> None:
    bomb = tmp_path / "big.png"
    bomb.write_bytes(png_bytes(1000, 1000))  # Pillow raises its DecompressionBombError here
    with pytest.raises(ImageLoadError, match=r"big.png is 1,000 x 1,000 = 1 MP, over the 0.01 MP limit; pass"):
        load_image(bomb)


def test_opencv_follows_the_limit(tmp_path: Path) -> None:
    """OpenCV reads OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is imported: a fresh process shows it.

    The 16-bit PNG (64 x 48 = 3,072 px) is allowed by the call (max_pixels=5000), so only
    OpenCV, which decodes 16-bit RGB, stands in the way, at the process limit.
    """
    import numpy as np

    from tools.io import save_image, to_tensor

    deep = tmp_path / "deep.png"
    save_image(to_tensor(np.full((48, 64, 3), 30000, np.uint16)), deep, bit_depth=16)
    code = ("import sys; from tools.io import set_pixel_limit, load_image, ImageLoadError;"
            "set_pixel_limit(int(sys.argv[1]));"
            "exec('try: print(load_image(sys.argv[2], max_pixels=5000).bit_depth)\\n"
            "except ImageLoadError as e: print(e)')")
    for limit, says in ((1000, "deep.png is 64 x 48 = 0.00307 MP, over the 0.001 MP limit; pass --max-pixels"),
                        (10_000, "16")):
        res = subprocess.run([sys.executable, "-c", code, str(limit), str(deep)], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
        assert says in res.stdout, res.stdout + res.stderr


def test_the_limit_and_caps_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_MAX_PIXELS", "5000")
    monkeypatch.setenv("IMAGENT_MAX_PHOTO_MEMORY", "512M")
    monkeypatch.setenv("IMAGENT_MAX_PHOTO_SECONDS", "none")
    cfg = load_settings()
    assert (cfg.max_pixels, cfg.max_photo_memory, cfg.max_photo_seconds) == (5000, 512 << 20, None)
    assert load_settings(max_photo_memory="1.5g").max_photo_memory == 3 << 29
    assert parse_size("0") is None and parse_size("300k") == 300 << 10 and parse_size("2") == 2 << 20
    monkeypatch.setenv("IMAGENT_MAX_PHOTO_MEMORY", "lots")
    with pytest.raises(UserError, match="max_photo_memory.*write it like 4G"):
        load_settings()


def test_batch_bomb_fails_alone_naming_the_limit_and_the_fix(tmp_path: Path, capsys, monkeypatch) -> None:
    from tests.helpers import run_cli, sample
    from tools.io import save_image

    src = tmp_path / "in"
    src.mkdir()
    save_image(sample("coffee", (48, 32)), src / "a.png")
    (src / "bomb.png").write_bytes(png_bytes(300, 300))
    monkeypatch.setenv("IMAGENT_MAX_PIXELS", "10000")
    try:
        code, _, err = run_cli(["batch", str(src), "-g", "brighten", "-o", str(tmp_path / "out"),
                                "--max-photo-seconds", "0", "--max-photo-memory", "0"], capsys)
    finally:
        set_pixel_limit(DEFAULT_MAX_PIXELS)
    import csv

    rows = {r["file"]: r for r in csv.DictReader((tmp_path / "out" / "summary.csv").open())}
    assert rows["a.png"]["status"] == "ok"
    assert rows["bomb.png"]["status"] == "unreadable" and rows["bomb.png"]["exit_status"] == "2"
    assert "300 x 300 = 0.09 MP, over the 0.01 MP limit; pass --max-pixels or set IMAGENT_MAX_PIXELS" \
        in rows["bomb.png"]["error"]
    assert code == 2, err
