"""tools/io.py: safe loading (formats by content, limits, damage, orientation, ICC, 16-bit,
alpha) and safe saving (formats, depth, metadata, atomic writes, overwrite refusal).

Every fixture is generated here under tmp_path from tests.helpers.sample.
"""

from __future__ import annotations

import faulthandler
import io
import os
import random
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageCms, ImageFile, ImageOps

from tests.helpers import sample
from tools.io import (
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    ImageSaveError,
    LoadedImage,
    load_image,
    read_header,
    save_image,
    to_array,
    to_tensor,
)

ORIENTATION, GPS = 0x0112, 0x8825


def rgb8(w: int = 64, h: int = 48) -> np.ndarray:
    return to_array(sample("astronaut", (w, h)))


def rgb16(w: int = 32, h: int = 24) -> np.ndarray:
    """Full 16-bit values: the low byte differs from the high byte, so 8-bit paths fail."""
    return np.random.default_rng(0).integers(0, 65536, (h, w, 3)).astype(np.uint16)


def pil_bytes(array: np.ndarray, fmt: str, **opts) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **opts)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def crafted_png(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height RGB but carries one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b""))


def exif_bytes(orientation: int = 1, gps: bool = False) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[0x010F] = "TestCam"
    if gps:
        exif[GPS] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    return exif.tobytes()


def adobe_like_profile() -> bytes:
    """A minimal ICC v2 matrix/TRC profile with Adobe RGB (1998) primaries and gamma 563/256."""
    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + s15(x) + s15(y) + s15(z)

    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 563) + b"\0\0"
    name = b"Adobe-like RGB\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(name)) + name + b"\0" * 78
    tags = [(b"desc", desc), (b"cprt", b"text\0\0\0\0none\0"), (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
            (b"rXYZ", xyz(0.60974, 0.31111, 0.01947)), (b"gXYZ", xyz(0.20528, 0.62567, 0.06087)),
            (b"bXYZ", xyz(0.14919, 0.06322, 0.74457)),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    start, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        data += b"\0" * (-(start + len(data)) % 4)
        table += sig + struct.pack(">II", start + len(data), len(body))
        data += body
    body = struct.pack(">I", len(tags)) + table + data
    header = (struct.pack(">I", 128 + len(body)) + b"lcms" + struct.pack(">I", 0x02100000)
              + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
              + s15(0.9642) + s15(1.0) + s15(0.8249) + b"\0" * 48)
    return header + body


def adobe_to_srgb(a: np.ndarray, scale: float) -> np.ndarray:
    """Reference Adobe RGB -> sRGB in float (D65 matrices), in [0,1]."""
    to_xyz = np.array([[0.5767309, 0.1855540, 0.1881852], [0.2973769, 0.6273491, 0.0752741],
                       [0.0270343, 0.0706872, 0.9911085]])
    to_srgb = np.array([[3.2404542, -1.5371385, -0.4985314], [-0.9692660, 1.8760108, 0.0415560],
                        [0.0556434, -0.2040259, 1.0572252]])
    lin = ((a / scale) ** (563 / 256) @ to_xyz.T @ to_srgb.T).clip(0, 1)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def loaded_array(img: LoadedImage, depth: int = 8) -> np.ndarray:
    return to_array(img.image, depth)


# ------------------------------------------------------------------ formats by content


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP"])
def test_each_format_loads_by_content_not_extension(tmp_path, fmt):
    lossy = fmt in ("JPEG", "WEBP")
    path = write(tmp_path / "misnamed.gif", pil_bytes(rgb8(), fmt, **({"quality": 95} if lossy else {})))
    img = load_image(path)
    assert (img.format, img.bit_depth, img.mode, img.size, img.path) == (fmt, 8, "RGB", (64, 48), path)
    assert img.image.shape == (1, 3, 48, 64) and img.image.dtype == torch.float32
    assert img.alpha is None and img.exif is None and not img.icc_converted
    assert np.abs(loaded_array(img).astype(int) - rgb8()).mean() < (6 if lossy else 1e-9)
    assert read_header(path) == (fmt, 64, 48)


@pytest.mark.parametrize(("name", "data", "says"), [
    ("notes.png", b"just some notes\nnothing to see\n", "is a text file, not a raster image"),
    ("logo.png", b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "is an SVG document"),
    ("scan.jpg", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "is a PDF document"),
    ("art.tif", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "PostScript/EPS document"),
    ("empty.png", b"", "is empty (0 bytes)"),
    ("anim.png", pil_bytes(rgb8(16, 12), "GIF"), "is a GIF image, which imagent does not read"),
    ("icon.png", pil_bytes(rgb8(16, 16), "ICO"), "is an ICO icon"),
    ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "starts like a PNG file but its header is damaged"),
])
def test_non_images_refused_by_name(tmp_path, name, data, says):
    path = write(tmp_path / name, data)
    for fn in (load_image, read_header):
        with pytest.raises(ImageLoadError) as err:
            fn(path)
        assert says in str(err.value) and name in str(err.value)
        assert "imagent reads PNG, JPEG, WebP, TIFF, BMP" in str(err.value) or "damaged" in says


def test_missing_file_folder_and_bad_arguments(tmp_path):
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)
    path = write(tmp_path / "a.png", pil_bytes(rgb8(), "PNG"))
    with pytest.raises(ImageLoadError, match="max_pixels"):
        load_image(path, max_pixels=0)
    with pytest.raises(ImageLoadError, match="unknown device"):
        load_image(path, device="no-such-device")


# ------------------------------------------------------------------ limits and damage


def test_decompression_bomb_refused_from_header_fast(tmp_path):
    path = write(tmp_path / "x.png", crafted_png(100_000, 100_000))
    t = time.perf_counter()
    with pytest.raises(ImageLoadError) as err:
        load_image(path)
    assert time.perf_counter() - t < 1.0
    assert str(err.value) == (f"{path} is 100,000 x 100,000 = 10,000 MP, over the 100 MP limit; "
                              "pass --max-pixels or set IMAGENT_MAX_PIXELS to raise it")
    with pytest.raises(ImageLoadError, match="10,000 MP, over the 100 MP limit"):
        read_header(path)  # Pillow's guard refuses it at open, before any pixel is decoded
    assert read_header(path, max_pixels=10**10) == ("PNG", 100_000, 100_000)
    assert DEFAULT_MAX_PIXELS == 100_000_000


def test_max_pixels_is_configurable(tmp_path):
    path = write(tmp_path / "a.png", pil_bytes(rgb8(), "PNG"))  # 64 x 48 = 3,072 px
    assert load_image(path, max_pixels=3072).size == (64, 48)
    with pytest.raises(ImageLoadError, match=r"64 x 48 = 0.00307 MP, over the 0.003 MP limit; pass --max-pixels"):
        load_image(path, max_pixels=3000)


def test_pillow_bomb_types_never_escape(tmp_path, monkeypatch):
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # Pillow's guard is on, at imagent's limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # someone lowered Pillow's own check
    path = write(tmp_path / "a.png", pil_bytes(rgb8(), "PNG"))  # 3,072 px: over 1000, under 2 x 1000
    for mode in ("error", "default"):
        with warnings.catch_warnings():
            warnings.simplefilter(mode)
            with pytest.raises(ImageLoadError, match="a.png is 64 x 48 = 0.00307 MP, over the 0.001 MP limit"):
                load_image(path, max_pixels=1000)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_truncated_files_raise_with_reason(tmp_path, fmt):
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # damage is reported, never silently padded
    data = pil_bytes(rgb8(), fmt)
    path = write(tmp_path / f"cut.{fmt.lower()}", data[: len(data) * 2 // 3])
    with pytest.raises(ImageLoadError, match="cut") as err:
        load_image(path)
    assert "damaged" in str(err.value) or "truncated" in str(err.value)


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    op = rng.randrange(4)
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif op == 1:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == 2:
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 32)]
    else:
        del b[rng.randrange(len(b)) :]
    return bytes(b)


def test_fuzzed_files_load_or_raise_image_load_error(tmp_path):
    small = rgb8(32, 24)
    deep = small.astype(np.uint16) * 257
    sources = {
        "png": pil_bytes(small, "PNG"),
        "jpg": pil_bytes(small, "JPEG", quality=90),
        "tif": pil_bytes(small, "TIFF"),
        "tifz": pil_bytes(small, "TIFF", compression="tiff_adobe_deflate"),
        "webp": pil_bytes(small, "WEBP"),
        "png16": cv2.imencode(".png", deep)[1].tobytes(),  # the OpenCV 16-bit path
        "tif16": cv2.imencode(".tif", deep)[1].tobytes(),
    }
    rng = random.Random(20240611)
    outcomes = {"loaded": 0, "refused": 0}
    slowest = 0.0
    faulthandler.dump_traceback_later(120, exit=True)  # a hang fails loudly instead of stalling CI
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for i in range(1400):
                kind = list(sources)[i % len(sources)]
                path = write(tmp_path / f"f{i}.img", mutate(sources[kind], rng))
                t = time.perf_counter()
                try:
                    img = load_image(path)
                    assert img.image.shape[:2] == (1, 3) and 0 <= float(img.image.min())
                    assert float(img.image.max()) <= 1
                    outcomes["loaded"] += 1
                except ImageLoadError:
                    outcomes["refused"] += 1
                elapsed = time.perf_counter() - t
                slowest = max(slowest, elapsed)
                assert elapsed < 2.0, f"{kind} mutation {i} took {elapsed:.1f} s"
                path.unlink()
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert outcomes["loaded"] > 50 and outcomes["refused"] > 500, outcomes


# ------------------------------------------------------------------ modes and depths


def test_16bit_png_round_trip_is_exact(tmp_path):
    a = rgb16()
    path = write(tmp_path / "deep.png", cv2.imencode(".png", a[..., ::-1])[1].tobytes())
    img = load_image(path)
    assert img.bit_depth == 16 and img.format == "PNG"
    assert np.array_equal(loaded_array(img, 16), a)
    out = save_image(img, tmp_path / "copy.png")  # depth follows the LoadedImage
    again = load_image(out)
    assert again.bit_depth == 16 and np.array_equal(loaded_array(again, 16), a)


def test_16bit_tiff_and_gray_load_at_full_precision(tmp_path):
    a = rgb16()
    img = load_image(write(tmp_path / "deep.tif", cv2.imencode(".tif", a[..., ::-1])[1].tobytes()))
    assert (img.format, img.bit_depth) == ("TIFF", 16) and np.array_equal(loaded_array(img, 16), a)
    out = save_image(img.image, tmp_path / "out.tiff", bit_depth=16)
    assert np.array_equal(loaded_array(load_image(out), 16), a)
    gray = a[..., 0]
    g = load_image(write(tmp_path / "gray16.png", cv2.imencode(".png", gray)[1].tobytes()))
    assert g.mode.startswith("I;16") and g.bit_depth == 16
    assert np.array_equal(loaded_array(g, 16), np.stack([gray] * 3, -1))


def test_cmyk_jpeg_loads_as_plausible_rgb(tmp_path):
    a = rgb8()
    path = tmp_path / "print.jpg"
    Image.fromarray(a).convert("CMYK").save(path, quality=95)
    img = load_image(path)
    assert img.mode == "CMYK" and img.format == "JPEG"
    assert np.abs(loaded_array(img).astype(int) - a).mean() < 6


def test_rgba_png_alpha_kept_through_load_and_save(tmp_path):
    a = rgb8()
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    path = tmp_path / "cut.png"
    Image.fromarray(np.dstack([a, alpha])).save(path)
    img = load_image(path)
    assert img.mode == "RGBA" and img.alpha is not None and img.alpha.shape == (1, 1, 48, 64)
    assert np.array_equal(to_array(img.alpha.expand(1, 3, 48, 64))[..., 0], alpha)
    for ext in (".png", ".tif", ".webp"):
        out = save_image(img, tmp_path / f"out{ext}")
        back = np.asarray(Image.open(out))
        assert back.shape == (48, 64, 4) and np.abs(back[..., 3].astype(int) - alpha).max() <= 1
    with pytest.warns(UserWarning, match="flattened onto white"):
        out = save_image(img, tmp_path / "flat.jpg")
    flat = np.asarray(Image.open(out)).astype(float)
    assert flat[:, 0].mean() > 245  # alpha 0 column became white
    with pytest.warns(UserWarning, match="alpha does not fit the edited size"):
        out = save_image(img.image[..., :40], tmp_path / "cropped.png", like=img)
    assert Image.open(out).mode == "RGB"
    with pytest.raises(ImageSaveError, match="does not fit the image"):
        save_image(img.image[..., :40], tmp_path / "bad.png", alpha=img.alpha)


def test_palette_with_transparency_and_la(tmp_path):
    pal = Image.fromarray(rgb8()).quantize(16)
    pal.save(tmp_path / "pal.png", transparency=0)
    img = load_image(tmp_path / "pal.png")
    idx = np.asarray(pal)
    assert img.mode == "P" and img.alpha is not None
    assert np.array_equal(to_array(img.alpha.expand(1, 3, 48, 64))[..., 0] == 0, idx == 0)
    la = np.dstack([rgb8()[..., 1], np.full((48, 64), 128, np.uint8)])
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    out = loaded_array(img)
    assert img.mode == "LA" and np.array_equal(out[..., 0], la[..., 0]) and np.array_equal(out[..., 2], la[..., 0])
    assert torch.allclose(img.alpha, torch.full((1, 1, 48, 64), 128 / 255))


# ------------------------------------------------------------------ orientation and colour

# The stored (sideways) picture for each tag: the inverse of what the tag asks a viewer to do.
STORE = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
         7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_loads_upright(tmp_path, orientation):
    upright = Image.fromarray(rgb8())
    stored = upright if STORE[orientation] is None else upright.transpose(STORE[orientation])
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif_bytes(orientation))
    assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(path))), rgb8())  # fixture sanity
    img = load_image(path)
    assert img.size == (64, 48) and read_header(path) == ("PNG", 64, 48)
    assert np.array_equal(loaded_array(img), rgb8())
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[ORIENTATION] == 1 and exif[0x010F] == "TestCam"


def test_orientation_on_jpeg_and_on_the_16bit_path(tmp_path):
    sideways = Image.fromarray(rgb8()).transpose(Image.Transpose.ROTATE_90)
    sideways.save(tmp_path / "o6.jpg", quality=95, exif=exif_bytes(6))
    img = load_image(tmp_path / "o6.jpg")
    assert img.size == (64, 48) and np.abs(loaded_array(img).astype(int) - rgb8()).mean() < 6
    a = rgb16()
    stored = np.rot90(a, 1)  # 90 degrees counter-clockwise; tag 6 turns it back clockwise
    payload = np.frombuffer(exif_bytes(6)[6:], np.uint8)
    ok, buf = cv2.imencodeWithMetadata(".png", np.ascontiguousarray(stored[..., ::-1]),
                                       [cv2.IMAGE_METADATA_EXIF], [payload])
    img = load_image(write(tmp_path / "o6.png", buf.tobytes()))
    assert ok and img.bit_depth == 16 and np.array_equal(loaded_array(img, 16), a)


def test_srgb_profile_converts_as_a_no_op(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb8()).save(tmp_path / "tagged.png", icc_profile=srgb)
    img = load_image(tmp_path / "tagged.png")
    assert img.icc_converted
    assert np.abs(loaded_array(img).astype(int) - rgb8()).max() <= 2


def test_wide_gamut_profile_converted_to_srgb(tmp_path):
    a = rgb8()
    Image.fromarray(a).save(tmp_path / "adobe.png", icc_profile=adobe_like_profile())
    img = load_image(tmp_path / "adobe.png")
    got = img.image[0].permute(1, 2, 0).numpy()
    assert img.icc_converted
    assert np.abs(got - adobe_to_srgb(a, 255)).max() < 1.5 / 255  # LittleCMS agrees with the maths
    assert np.abs(got - a / 255).mean() > 4 / 255  # and colours really moved
    deep = rgb16()
    icc = np.frombuffer(adobe_like_profile(), np.uint8)
    ok, buf = cv2.imencodeWithMetadata(".png", np.ascontiguousarray(deep[..., ::-1]),
                                       [cv2.IMAGE_METADATA_ICCP], [icc])
    img = load_image(write(tmp_path / "adobe16.png", buf.tobytes()))
    got = img.image[0].permute(1, 2, 0).numpy()
    assert ok and img.icc_converted and img.bit_depth == 16
    # 16-bit path: interpolated between the 8-bit neighbours, so smooth but only 8-bit exact;
    # the worst pixels sit where the gamut clip bends the curve inside one 8-bit step.
    err = np.abs(got - adobe_to_srgb(deep, 65535))
    assert np.percentile(err, 99) < 1 / 255 and err.max() < 5 / 255


def test_broken_profile_warns_but_loads(tmp_path):
    Image.fromarray(rgb8()).save(tmp_path / "bad.png", icc_profile=b"not a profile" * 20)
    with pytest.warns(UserWarning, match="ICC profile could not be converted"):
        img = load_image(tmp_path / "bad.png")
    assert not img.icc_converted and np.array_equal(loaded_array(img), rgb8())


# ------------------------------------------------------------------ saving


def test_save_formats_by_extension_and_quality(tmp_path):
    img = sample()
    for ext, fmt in [(".png", "PNG"), (".JPG", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP"),
                     (".tif", "TIFF"), (".tiff", "TIFF"), (".bmp", "BMP")]:
        out = save_image(img, tmp_path / f"a{ext}")
        assert out == tmp_path / f"a{ext}" and Image.open(out).format == fmt
    assert save_image(img, tmp_path / "lo.jpg", quality=10).stat().st_size < (tmp_path / "a.JPG").stat().st_size
    with pytest.raises(ImageSaveError, match=r"unknown extension '.gif'; use one of .png, .jpg"):
        save_image(img, tmp_path / "a.gif")
    for bad in (0, 101, 95.5, True):
        with pytest.raises(ImageSaveError, match="quality"):
            save_image(img, tmp_path / "q.jpg", quality=bad)
    for bad in (img[0, 0], img.to(torch.uint8), torch.cat([img, img]), img * float("nan")):
        with pytest.raises(ImageSaveError):
            save_image(bad, tmp_path / "bad.png")
    assert not (tmp_path / "q.jpg").exists() and not (tmp_path / "bad.png").exists()


def test_16bit_to_8bit_formats(tmp_path):
    img = sample()
    with pytest.raises(ImageSaveError, match="16 bits: JPEG holds 8 bits"):
        save_image(img, tmp_path / "a.jpg", bit_depth=16)
    with pytest.raises(ImageSaveError, match="bit_depth"):
        save_image(img, tmp_path / "a.png", bit_depth=12)
    deep = load_image(write(tmp_path / "d.png", cv2.imencode(".png", rgb16())[1].tobytes()))
    with pytest.warns(UserWarning, match="saved at 8 bits"):
        out = save_image(deep, tmp_path / "d.jpg")
    assert load_image(out).bit_depth == 8
    assert load_image(save_image(img, tmp_path / "e.png", like=deep)).bit_depth == 16


def test_metadata_stripped_by_default_and_kept_on_request(tmp_path):
    Image.fromarray(rgb8()).save(tmp_path / "gps.jpg", exif=exif_bytes(1, gps=True))
    Image.fromarray(rgb8()).save(tmp_path / "gps.png", exif=exif_bytes(1, gps=True), pnginfo=None)
    src = load_image(tmp_path / "gps.jpg")
    assert src.exif is not None
    for ext in (".jpg", ".png", ".webp", ".tif"):
        plain = Image.open(save_image(src, tmp_path / f"plain{ext}"))
        assert GPS not in plain.getexif() and 0x010F not in plain.getexif()
        kept = Image.open(save_image(src, tmp_path / f"kept{ext}", keep_metadata=True)).getexif()
        assert kept[0x010F] == "TestCam" and kept[ORIENTATION] == 1
        assert kept.get_ifd(GPS)[1] == "N"
    deep = load_image(write(tmp_path / "d.png", cv2.imencode(".png", rgb16())[1].tobytes()))
    deep.exif = src.exif  # 16-bit PNG carries EXIF too (through OpenCV)
    kept = Image.open(save_image(deep, tmp_path / "d_kept.png", keep_metadata=True)).getexif()
    assert kept.get_ifd(GPS)[1] == "N"


def test_overwriting_the_input_is_refused(tmp_path):
    path = write(tmp_path / "orig.png", pil_bytes(rgb8(), "PNG"))
    before = path.read_bytes()
    img = load_image(path)
    (tmp_path / "sub").mkdir()
    os.symlink(path, tmp_path / "link.png")
    spellings = [path, tmp_path / "sub" / ".." / "orig.png", tmp_path / "link.png"]
    for target in spellings:
        with pytest.raises(ImageSaveError, match="refusing to overwrite the original"):
            save_image(img, target)
        with pytest.raises(ImageSaveError, match="overwrite=True"):
            save_image(img.image, target, like=img)
        with pytest.raises(ImageSaveError, match="refusing"):
            save_image(img.image, target, source=path)
    assert path.read_bytes() == before
    edited = img.image.flip(-1)
    save_image(edited, path, source=path, overwrite=True)
    assert np.array_equal(loaded_array(load_image(path)), to_array(edited))


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ImageSaveError, match="does not exist; create it first"):
        save_image(sample(), tmp_path / "no" / "such" / "out.png")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageSaveError, match="it is a folder"):
        save_image(sample(), tmp_path / "dir.png")


def test_failed_save_leaves_no_file_and_no_litter(tmp_path, monkeypatch):
    real_save = Image.Image.save

    def half_then_fail(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG\r\n\x1a\n half")  # the encoder gets halfway
        raise OSError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", half_then_fail)
    with pytest.raises(ImageSaveError, match="disk on fire"):
        save_image(sample(), tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(Image.Image, "save", real_save)

    existing = write(tmp_path / "b.png", b"previous contents")
    for name in ("fsync", "replace"):
        with monkeypatch.context() as m:
            m.setattr(os, name, lambda *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))
            with pytest.raises(ImageSaveError, match="I/O error; nothing was saved"):
                save_image(sample(), existing)
            with pytest.raises(ImageSaveError):
                save_image(sample(), tmp_path / "c.png")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png"]
        assert existing.read_bytes() == b"previous contents"


def test_save_keeps_the_input_tensor_and_permissions(tmp_path):
    img = sample().clone()
    img[0, 0, 0, 0] = 1.7  # out of range: clipped on save, never in the caller's tensor
    before = img.clone()
    out = save_image(img, tmp_path / "a.png")
    assert torch.equal(img, before)
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------ dtype and range


def test_to_tensor_and_to_array_conversions():
    a8 = rgb8()
    t = to_tensor(a8)
    assert t.shape == (1, 3, 48, 64) and t.dtype == torch.float32 and t.is_contiguous()
    assert np.array_equal(to_array(t), a8) and np.array_equal(to_array(t[0]), a8)
    a16 = rgb16()
    assert torch.allclose(to_tensor(a16), to_tensor(a16.astype(np.float64) / 65535))
    assert np.array_equal(to_array(to_tensor(a16), 16), a16) and to_array(to_tensor(a16), 16).dtype == np.uint16
    gray = to_tensor(a8[..., 0])
    assert torch.equal(gray[:, 0], gray[:, 2])
    f = np.array([[[-0.5, 0.5, 1.5]]], np.float32)
    assert to_tensor(f).flatten().tolist() == [0.0, 0.5, 1.0]
    assert to_array(torch.tensor([0.0, 0.5, 1.2, float("nan")]).view(1, 1, 4).expand(3, 1, 4))[0, :, 0].tolist() == [
        0, 128, 255, 0]
    with pytest.raises(ValueError):
        to_tensor(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(TypeError):
        to_tensor(np.zeros((4, 4, 3), np.int32))
    with pytest.raises(ValueError):
        to_array(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError):
        to_array(torch.zeros(1, 3, 4, 4), bit_depth=12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_load_to_cuda_and_save_from_it(tmp_path):
    path = write(tmp_path / "a.png", pil_bytes(rgb8(), "PNG"))
    img = load_image(path, device="cuda")
    assert img.image.device.type == "cuda"
    out = save_image(img, tmp_path / "b.png")
    assert np.array_equal(loaded_array(load_image(out)), rgb8())
