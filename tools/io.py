"""Safe image I/O: the one place where files become (1,3,H,W) float tensors and back.

Loading trusts nothing: the format is detected from the content (only PNG, JPEG,
WebP, TIFF and BMP reach a decoder), the pixel count is checked from the header
before anything is decoded, and every failure becomes an `ImageLoadError` that
names the file and the reason. Images come out upright (EXIF orientation
applied), in sRGB (an embedded ICC profile is converted), with alpha, EXIF and
bit depth kept beside the pixels on the `LoadedImage`.

Saving picks the format from the extension, never writes over the input unless
told to, and is atomic: the file is encoded in memory, written to a temporary
file in the target folder, fsynced and renamed into place, so a failure leaves
neither a half-written file nor temp litter.

Conventions (scikit-image's): uint8 / 255 and uint16 / 65535 to float32 in [0,1];
back with rounding and clipping. Choices, stated once:
- 16 bits to JPEG/WebP/BMP: an explicit `bit_depth=16` is an error; a depth
  inherited from `like` falls back to 8 bits with a warning.
- Alpha to JPEG/BMP: flattened onto white (Photoshop's default matte), with a warning.
- Metadata: EXIF (GPS included) is written only with `keep_metadata=True`,
  orientation reset to 1; XMP, text chunks and comments are never written.
- Colour: output is untagged sRGB (no ICC profile embedded; untagged means sRGB).
"""

from __future__ import annotations

import io
import itertools
import os
import re
import secrets
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000
FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
SAVE_EXTENSIONS = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP",
    ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
}
_READS = "imagent reads PNG, JPEG, WebP, TIFF, BMP"
_ALPHA_FORMATS = {"PNG", "WEBP", "TIFF"}
_DEEP_FORMATS = {"PNG", "TIFF"}
_ORIENTATION = 0x0112
# IFD0 tags worth keeping from a TIFF: the rest describe the TIFF's own strips.
_TIFF_EXIF_TAGS = {0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298, 0x8769, 0x8825}


# ------------------------------------------------------------------ the pixel limit
# One limit for every decoder in the process (ImageMagick's resource policy): imagent's
# own header check, Pillow's decompression-bomb guard (its over-the-limit warning is made
# an error, so Pillow refuses at the limit, not at twice it) and OpenCV's, which reads
# OPENCV_IO_MAX_IMAGE_PIXELS once, when cv2 is imported (batch workers get it in their
# environment; OpenCV decodes only after the header check anyway). The setting is `max_pixels`
# (--max-pixels, IMAGENT_MAX_PIXELS); the agent layer calls `set_pixel_limit` with it.
_limit_lock = threading.Lock()
_FIX = "pass --max-pixels or set IMAGENT_MAX_PIXELS to raise it"


def set_pixel_limit(pixels: int) -> None:
    """Make `pixels` the limit of every decoder in this process (Pillow, OpenCV, load_image's default)."""
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 1:
        raise ValueError(f"the pixel limit must be a positive whole number, got {pixels!r}")
    with _limit_lock:
        Image.MAX_IMAGE_PIXELS = pixels
        os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(pixels)
    _arm_pillow()


def pixel_limit() -> int:
    """The process's pixel limit (`set_pixel_limit`; 100 MP unless changed)."""
    return int(Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS)


def _arm_pillow() -> None:
    """Make Pillow's over-the-limit warning an error, so it refuses at the limit, not at twice it."""
    # pytest and `warnings.catch_warnings` restore the filters they found: re-arm ours.
    if not any(f[2] is Image.DecompressionBombWarning and f[0] == "error" for f in warnings.filters):
        warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def _too_large(name: str, pixels: int, limit: int, size: tuple[int, int] | None = None) -> str:
    dims = f"{size[0]:,} x {size[1]:,} = " if size else ""
    return f"{name} is {dims}{_mp(pixels)} MP, over the {_mp(limit)} MP limit; {_FIX}"


set_pixel_limit(DEFAULT_MAX_PIXELS)


class ImageLoadError(Exception):
    """A file could not be loaded; the message names the file, the reason and the fix."""


class ImageSaveError(Exception):
    """An image could not be saved; nothing was written at the target path."""


@dataclass(eq=False)
class LoadedImage:
    """Pixels plus everything the I/O layer keeps beside them to restore on save."""

    image: torch.Tensor  # (1,3,H,W) float32 sRGB in [0,1]
    alpha: torch.Tensor | None  # (1,1,H,W) float32 in [0,1]
    bit_depth: int  # 8 or 16: precision of the source
    format: str  # "PNG", "JPEG", "WEBP", "TIFF", "BMP"
    mode: str  # source Pillow mode
    exif: bytes | None  # raw EXIF of the source, orientation reset to 1
    icc_converted: bool  # an embedded ICC profile was converted to sRGB
    path: Path | None = None
    # the decoded HWC uint8 RGB of an 8-bit colour source, kept for `tools.render8` (+25 % memory)
    pixels8: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return int(self.image.shape[-1]), int(self.image.shape[-2])


# ------------------------------------------------------------------ dtype and range


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """HWC or HW uint8/uint16/float array -> (1,3,H,W) float32 in [0,1] (gray is repeated).

    uint8 is divided by 255, uint16 by 65535; floats are taken as [0,1] and clipped.
    """
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3):
        raise ValueError(f"to_tensor: expected an HW or HWC array with 1 or 3 channels, got {a.shape}")
    return _to_float(a, 3)


def to_array(image: torch.Tensor, bit_depth: int = 8) -> np.ndarray:
    """(1,3,H,W) or (3,H,W) float in [0,1] -> HWC uint8 (bit_depth=8) or uint16 (16), rounded."""
    x = image[0] if image.ndim == 4 and image.shape[0] == 1 else image
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"to_array: expected (1,3,H,W) or (3,H,W), got {tuple(image.shape)}")
    return _quantize(x, bit_depth)


def encode_png(image: torch.Tensor, bit_depth: int = 8, compression: int = 3) -> bytes:
    """(1,3,H,W) or (1,1,H,W) in [0,1] -> lossless PNG bytes, 8- or 16-bit (deterministic for equal pixels)."""
    import cv2

    x = image.detach().to("cpu", torch.float32)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    ok, buf = cv2.imencode(".png", to_array(x, bit_depth)[..., ::-1].copy(), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ImageSaveError("could not encode an image as PNG")
    return buf.tobytes()


def _to_float(a: np.ndarray, channels: int) -> torch.Tensor:
    """HWC array -> (1,channels,H,W) float32 in [0,1]; a single channel is repeated."""
    if a.dtype == np.uint8:
        scale = 255.0
    elif a.dtype == np.uint16:
        scale = 65535.0
    elif a.dtype.kind == "f":
        scale = 0.0
    else:
        raise TypeError(f"to_tensor: expected uint8, uint16 or float pixels, got {a.dtype}")
    h, w, c = a.shape
    # Pillow hands out read-only arrays; torch warns on those, so copy just then.
    a = np.ascontiguousarray(a) if a.flags.writeable else np.array(a, order="C")
    src = torch.from_numpy(a).permute(2, 0, 1)
    out = torch.empty((1, channels, h, w), dtype=torch.float32)
    out[0].copy_(src.expand(channels, h, w) if c == 1 else src)
    return out.div_(scale) if scale else out.nan_to_num_(0.0).clamp_(0, 1)


def _quantize(x: torch.Tensor, bit_depth: int) -> np.ndarray:
    """(C,H,W) float -> HWC uint8/uint16; NaN becomes 0, values are clipped then rounded."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    # nan_to_num copies, so the in-place ops below never touch the caller's tensor.
    y = x.detach().to("cpu", torch.float32).nan_to_num(0.0)
    y.clamp_(0, 1).mul_(255.0 if bit_depth == 8 else 65535.0).round_()
    y = y.to(torch.uint8 if bit_depth == 8 else torch.uint16)
    return y.permute(1, 2, 0).contiguous().numpy()


# ------------------------------------------------------------------ loading


def read_header(path: str | Path, *, max_pixels: int | None = None) -> tuple[str, int, int]:
    """(format, width, height) of the upright image, read from the header without decoding.

    Like load_image, it refuses an image over the pixel limit (default: the process's).
    """
    name = str(path)
    limit = pixel_limit() if max_pixels is None else max_pixels
    _arm_pillow()
    with _open_file(Path(path)) as fp, _load_errors(name), _open_image(fp, name, limit) as im:
        w, h = im.size
        if w * h > limit:
            raise ImageLoadError(_too_large(name, w * h, limit, (w, h)))
        orientation, _ = _read_exif(im, name)
        return _format(im), *((h, w) if orientation >= 5 else (w, h))


def load_image(
    path: str | Path, *, max_pixels: int | None = None, device: str | torch.device = "cpu"
) -> LoadedImage:
    """Load an image file upright, in sRGB, as (1,3,H,W) float32 in [0,1].

    Raises ImageLoadError (and nothing else) for a missing, unsupported, damaged or
    oversized file; the pixel limit (default: the process's, `set_pixel_limit`) is
    checked from the header before decoding.
    """
    path = Path(path)
    name = str(path)
    max_pixels = pixel_limit() if max_pixels is None else max_pixels
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ImageLoadError(f"max_pixels must be a positive whole number, got {max_pixels!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ImageLoadError(f"unknown device {device!r}; use 'cpu' or 'cuda'") from None
    _arm_pillow()
    with _open_file(path) as fp, _load_errors(name), _open_image(fp, name, max_pixels) as im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageLoadError(_too_large(name, w * h, max_pixels, (w, h)))
        _warn_frames(im, name)
        if _is_deep_rgb(im):
            color, alpha, depth = _decode_deep(fp, name, w, h)
        else:
            im.load()
            color, alpha, depth = _split(im, name)
        orientation, exif = _read_exif(im, name)
        rgb, converted = _to_srgb(color, im.info.get("icc_profile"), name)
        upright = _orient(rgb, orientation)
        image = to_tensor(upright)
        pixels8 = upright if upright.dtype == np.uint8 and upright.ndim == 3 and upright.shape[2] == 3 else None
        alpha_t = None if alpha is None else _to_float(_orient(alpha, orientation)[..., None], 1)
        fmt, mode = _format(im), im.mode
    try:
        image = image.to(dev)
        alpha_t = None if alpha_t is None else alpha_t.to(dev)
    except (RuntimeError, AssertionError) as exc:
        raise ImageLoadError(f"could not put {name} on device {dev}: {exc}") from None
    return LoadedImage(image, alpha_t, depth, fmt, mode, exif, converted, path, pixels8)


def _open_file(path: Path) -> IO[bytes]:
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device would block or never end
            kind = "a folder" if path.is_dir() else "a pipe or device, not a regular file"
            raise ImageLoadError(f"{path} is {kind}; give the path of an image file")
        return open(path, "rb")
    except FileNotFoundError:
        raise ImageLoadError(f"{path} does not exist; check the path") from None
    except PermissionError:
        raise ImageLoadError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read {path}: {exc.strerror or exc}") from None


@contextmanager
def _load_errors(name: str) -> Iterator[None]:
    """Turn anything a decoder can throw into an ImageLoadError naming the file."""
    try:
        yield
    except ImageLoadError:
        raise
    except MemoryError:
        raise ImageLoadError(f"{name} is too large to decode in the memory available") from None
    except Exception as exc:  # decoders raise OSError, SyntaxError, struct.error, zlib.error ...
        reason = str(exc) or type(exc).__name__
        raise ImageLoadError(
            f"{name} is damaged or truncated ({reason}); re-export it or use another copy"
        ) from exc


def _open_image(fp: IO[bytes], name: str, limit: int) -> Image.Image:
    """Pillow restricted to the five formats, so no other plugin parses untrusted bytes."""
    try:
        return Image.open(fp, formats=FORMATS)
    except UnidentifiedImageError:
        fp.seek(0)
        raise ImageLoadError(_refusal(name, fp.read(2048))) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        im = _open_unguarded(fp)
        if im is not None and im.size[0] * im.size[1] <= limit:
            return im  # this call allows more than the process limit (the session store's own files)
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = im.size[0] * im.size[1] if im else int(found.group(1)) if found else limit + 1
        raise ImageLoadError(_too_large(name, pixels, limit, im.size if im else None)) from None


def _open_unguarded(fp: IO[bytes]) -> Image.Image | None:
    """The file Pillow's guard refused, opened by its plugin directly (the header only, nothing
    decoded), to tell its size or honour a larger per-call limit; None when that fails."""
    with suppress(Exception):
        fp.seek(0)
        head = fp.read(16)
        for fmt in FORMATS:
            factory, accept = Image.OPEN[fmt]
            if accept is None or accept(head):
                fp.seek(0)
                return factory(fp, "")
    return None


_OURS = [(b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"),
         (b"MM\x00*", "TIFF"), (b"BM", "BMP")]
_DOCUMENTS = [(b"%PDF", "a PDF document"), (b"%!PS", "a PostScript/EPS document"),
              (b"\xc5\xd0\xd3\xc6", "an EPS document"), (b"PK\x03\x04", "a ZIP archive")]
_RASTERS = [(b"GIF8", "a GIF image"), (b"\x00\x00\x01\x00", "an ICO icon"), (b"8BPS", "a Photoshop document"),
            (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"), (b"\xffO\xffQ", "a JPEG 2000 image"),
            (b"II+\x00", "a BigTIFF image"), (b"MM\x00+", "a BigTIFF image")]


def _refusal(name: str, head: bytes) -> str:
    """Say what a refused file actually is: SVG, PDF, GIF, text, or damaged."""
    if not head:
        return f"{name} is empty (0 bytes), not an image: {_READS}"
    for magic, fmt in _OURS:
        if head.startswith(magic):
            return f"{name} starts like a {fmt} file but its header is damaged; re-export it"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return f"{name} starts like a WebP file but its header is damaged; re-export it"
    lower = head.lower()
    what = next((w for m, w in _DOCUMENTS if head.startswith(m)), None)
    if what is None and b"<svg" in lower:
        what = "an SVG document"
    elif what is None and (b"<html" in lower or b"<!doctype html" in lower):
        what = "an HTML page"
    elif what is None and b"\x00" not in head:
        printable = sum(32 <= c < 127 or c in b"\t\r\n" or c >= 128 for c in head)
        what = "a text file" if printable >= 0.95 * len(head) else None
    if what is not None:
        return f"{name} is {what}, not a raster image: {_READS}"
    raster = next((w for m, w in _RASTERS if head.startswith(m)), None)
    if raster is None and head[4:8] == b"ftyp":
        raster = "an AVIF image" if head[8:12] in (b"avif", b"avis") else "a HEIF/HEIC or video file"
    if raster is not None:
        return f"{name} is {raster}, which imagent does not read: {_READS}; convert it first"
    return f"{name} is not an image imagent recognises: {_READS}"


def _format(im: Image.Image) -> str:
    return "JPEG" if im.format == "MPO" else str(im.format)


def _mp(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:,.0f}" if mp >= 100 else f"{mp:.3g}"


def _warn_frames(im: Image.Image, name: str) -> None:
    try:
        frames = int(getattr(im, "n_frames", 1))
    except Exception:  # a damaged later frame must not cost the first one
        return
    if frames > 1:
        _warn(f"{name} has {frames} frames/pages; only the first is loaded")


def _rawmode(im: Image.Image) -> str:
    if not im.tile:
        return ""
    args = im.tile[0].args
    return str(args[0] if isinstance(args, tuple) and args else args)


def _is_deep_rgb(im: Image.Image) -> bool:
    # Pillow has no 16-bit RGB mode: it reads 48/64-bit PNG and TIFF as 8-bit "RGB(A)".
    return im.format in _DEEP_FORMATS and im.mode in ("RGB", "RGBA") and ";16" in _rawmode(im)


def _decode_deep(fp: IO[bytes], name: str, w: int, h: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    """16-bit RGB(A) PNG/TIFF through OpenCV, after Pillow has vetted the header."""
    import cv2

    fp.seek(0)
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our error says it once
    try:
        a = cv2.imdecode(np.frombuffer(fp.read(), np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" not in str(exc):
            raise
        limit = int(os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS") or 1 << 30)
        raise ImageLoadError(_too_large(name, w * h, limit, (w, h))) from None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if a is None or a.shape[:2] != (h, w) or a.dtype not in (np.uint8, np.uint16):
        raise ImageLoadError(f"{name} is damaged: its 16-bit pixel data could not be decoded")
    depth = 16 if a.dtype == np.uint16 else 8
    if a.ndim == 2:
        return a, None, depth
    if a.shape[2] == 4:  # OpenCV is BGR(A)
        return a[..., 2::-1], a[..., 3], depth
    return a[..., ::-1], None, depth


def _split(im: Image.Image, name: str) -> tuple[Image.Image | np.ndarray, np.ndarray | None, int]:
    """A decoded Pillow image -> (colour: 8-bit L/RGB/CMYK image or uint16 gray array, alpha, depth)."""
    mode = im.mode
    if "transparency" in im.info and mode in ("L", "RGB", "P"):
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" else "RGB")
    elif mode in ("1", "RGBX", "YCbCr", "HSV"):
        im = im.convert("L" if mode == "1" else "RGB")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    if im.mode in ("L", "RGB", "CMYK"):
        return im, None, 8
    if im.mode in ("LA", "RGBA"):
        return im.convert(im.mode[:-1]), np.asarray(im.getchannel("A")), 8
    if im.mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), None, 16
    if im.mode == "I":  # Pillow's 32-bit gray holds 16-bit sources at 0..65535
        return np.asarray(im).clip(0, 65535).astype(np.uint16), None, 16
    raise ImageLoadError(
        f"{name} uses the {mode} pixel mode, which imagent does not read; export it as 8- or 16-bit RGB"
    )


def _read_exif(im: Image.Image, name: str) -> tuple[int, bytes | None]:
    """(orientation 1-8, EXIF bytes with orientation reset to 1 or None); bad EXIF is ignored."""
    # Pillow's PNG getexif() decodes the whole image to look for a late eXIf chunk.
    if im.format == "PNG" and "exif" not in im.info:
        return 1, None
    try:
        exif = im.getexif()
        value = exif.get(_ORIENTATION, 1)
        orientation = value if isinstance(value, int) and 1 <= value <= 8 else 1
        if im.format == "TIFF":
            for tag in [t for t in exif if t not in _TIFF_EXIF_TAGS]:
                del exif[tag]
        if not set(exif) - {_ORIENTATION}:
            return orientation, None
        exif[_ORIENTATION] = 1
        return orientation, exif.tobytes()
    except Exception as exc:  # metadata must never cost the image
        _warn(f"{name}: its EXIF metadata is unreadable ({exc}); ignored, image loaded as stored")
        return 1, None


_TRANSPOSE = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation (as Pillow's ImageOps.exif_transpose) to an HW(C) array."""
    return _TRANSPOSE[orientation](a) if orientation in _TRANSPOSE else a


@cache
def _srgb() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(color: Image.Image | np.ndarray, icc: bytes | None, name: str) -> tuple[np.ndarray, bool]:
    """Colour data -> HWC (or HW gray) array in sRGB; (array, whether a profile was converted)."""
    if icc:
        try:
            return _convert_icc(color, icc), True
        except Exception as exc:  # a bad profile must never cost the image
            _warn(f"{name}: its ICC profile could not be converted to sRGB ({exc}); "
                  "loaded without conversion, colours may be off")
    if isinstance(color, np.ndarray):
        return color, False
    return np.asarray(color if color.mode in ("L", "RGB") else color.convert("RGB")), False


def _convert_icc(color: Image.Image | np.ndarray, icc: bytes) -> np.ndarray:
    from PIL import ImageCms

    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    if isinstance(color, Image.Image):
        return np.asarray(ImageCms.profileToProfile(color, src, _srgb(), outputMode="RGB"))
    # Pillow runs LittleCMS on 8-bit data only. Keep 16-bit sources smooth: convert
    # the 8-bit values just below and above every pixel (the corners of its cell)
    # and interpolate between them (trilinear; linear for gray).
    gray = color.ndim == 2
    x = color.astype(np.float32)[..., None] if gray else color.astype(np.float32)
    x *= 255 / np.iinfo(color.dtype).max
    lo = np.minimum(x, 254).astype(np.uint8)
    frac = x - lo
    mode = "L" if gray else "RGB"
    transform = ImageCms.buildTransform(src, _srgb(), mode, "RGB")
    out = np.zeros((*x.shape[:2], 3), np.float32)
    for corner in itertools.product((0, 1), repeat=x.shape[2]):
        step = np.array(corner, np.uint8)
        weight = np.prod(np.where(step.astype(bool), frac, 1 - frac), axis=2)
        cell = Image.fromarray(lo[..., 0] + step[0] if gray else lo + step)
        out += weight[..., None] * np.asarray(ImageCms.applyTransform(cell, transform), np.float32)
    return out / 255


def _warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


# ------------------------------------------------------------------ saving


def save_image(
    image: torch.Tensor | np.ndarray | LoadedImage,
    path: str | Path,
    *,
    like: LoadedImage | None = None,
    alpha: torch.Tensor | None = None,
    quality: int = 95,
    bit_depth: int | None = None,
    keep_metadata: bool = False,
    overwrite: bool = False,
    source: str | Path | None = None,
) -> Path:
    """Save a (1,3,H,W) image atomically, format from the extension; returns the path.

    `image` may also be an HWC uint8 RGB array (what `tools.render8` renders), saved at
    8 bits. `like` (or the LoadedImage itself) supplies alpha, bit depth, EXIF and the input
    path that must not be overwritten. Raises ImageSaveError; nothing is left behind.
    """
    path = Path(path)
    own_path = None
    if isinstance(image, LoadedImage):
        own_path, like = image.path, like or image
        alpha = image.alpha if alpha is None else alpha
        image = image.image
    fmt = SAVE_EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ImageSaveError(
            f"cannot save {path}: unknown extension {path.suffix or '(none)'!r}; "
            f"use one of {', '.join(SAVE_EXTENSIONS)}"
        )
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ImageSaveError(f"quality={quality!r} is invalid: must be a whole number from 1 to 100")
    depth = _save_depth(bit_depth, like, fmt, path)
    _check_target(path, [source, like.path if like else None, own_path], overwrite)
    if isinstance(image, np.ndarray) and depth != 8:
        raise ImageSaveError(f"cannot save {path} at {depth} bits from 8-bit pixels; render it as a float image")
    rgb = _check_image(image, path)
    if alpha is None and like is not None and like.alpha is not None:
        if tuple(like.alpha.shape[-2:]) == tuple(rgb.shape[-2:]):
            alpha = like.alpha
        else:
            _warn(f"{path}: the source's alpha does not fit the edited size; saved without it")
    a = None if alpha is None else _check_alpha(alpha, rgb, path)
    if a is not None and isinstance(rgb, np.ndarray):
        rgb = to_tensor(rgb)[0]
    if a is not None and fmt not in _ALPHA_FORMATS:
        _warn(f"{path}: {fmt} has no transparency; transparent areas flattened onto white")
        rgb, a = rgb * a + (1 - a), None
    exif = like.exif if keep_metadata and like is not None else None
    try:
        data = _encode(fmt, rgb, a, depth, quality, exif, path)
        _write_atomic(data, path)
    except ImageSaveError:
        raise
    except Exception as exc:
        raise ImageSaveError(f"could not save {path}: {exc}") from exc
    return path


def _save_depth(bit_depth: int | None, like: LoadedImage | None, fmt: str, path: Path) -> int:
    if bit_depth is None:
        depth = like.bit_depth if like is not None else 8
        if depth == 16 and fmt not in _DEEP_FORMATS:
            _warn(f"{path}: {fmt} holds 8 bits per channel; saved at 8 bits (the source had 16)")
            depth = 8
        return depth
    if bit_depth not in (8, 16) or isinstance(bit_depth, bool):
        raise ImageSaveError(f"bit_depth={bit_depth!r} is invalid: must be 8 or 16")
    if bit_depth == 16 and fmt not in _DEEP_FORMATS:
        raise ImageSaveError(
            f"cannot save {path} at 16 bits: {fmt} holds 8 bits per channel; "
            "save as .png or .tif, or pass bit_depth=8"
        )
    return bit_depth


def _check_target(path: Path, sources: list[Any], overwrite: bool) -> None:
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ImageSaveError(f"cannot save {path}: the folder {parent} does not exist; create it first")
    if path.is_dir():
        raise ImageSaveError(f"cannot save {path}: it is a folder; give a file name")
    for src in sources:
        if src is not None and not overwrite and _same_file(path, Path(src)):
            raise ImageSaveError(
                f"refusing to overwrite the original {src} with {path}; "
                "save under another name or pass overwrite=True"
            )


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))


def _check_image(image: Any, path: Path) -> torch.Tensor | np.ndarray:
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
        return image
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise ImageSaveError(f"cannot save {path}: expected a float image tensor or HxWx3 uint8 pixels, got {_describe(image)}")
    x = image[0] if image.ndim == 4 and image.shape[0] == 1 else image
    if x.ndim != 3 or x.shape[0] != 3:
        raise ImageSaveError(f"cannot save {path}: image must be (1,3,H,W) or (3,H,W), got {tuple(image.shape)}")
    x = x.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        raise ImageSaveError(f"cannot save {path}: the image has NaN or infinite values (an edit step failed)")
    return x


def _check_alpha(alpha: Any, rgb: torch.Tensor, path: Path) -> torch.Tensor:
    if not isinstance(alpha, torch.Tensor):
        raise ImageSaveError(f"cannot save {path}: alpha must be a tensor, got {_describe(alpha)}")
    a = alpha.detach().to("cpu", torch.float32).reshape(-1, *alpha.shape[-2:])
    if a.shape != (1, *rgb.shape[-2:]):
        raise ImageSaveError(
            f"cannot save {path}: alpha {tuple(alpha.shape)} does not fit the image {tuple(rgb.shape[-2:])}"
        )
    return a.nan_to_num(0.0).clamp(0, 1)


def _describe(x: Any) -> str:
    return f"{x.dtype} tensor" if isinstance(x, torch.Tensor) else type(x).__name__


def _encode(fmt: str, rgb: torch.Tensor | np.ndarray, alpha: torch.Tensor | None, depth: int, quality: int,
            exif: bytes | None, path: Path) -> bytes:
    """Encode fully in memory: a failing encoder never touches the disk."""
    if isinstance(rgb, np.ndarray):  # 8-bit pixels, no alpha (save_image converted those)
        pixels = np.ascontiguousarray(rgb)
    else:
        pixels = _quantize(rgb if alpha is None else torch.cat([rgb, alpha]), depth)
    if exif is not None and fmt == "BMP":
        _warn(f"{path}: BMP cannot carry EXIF; metadata not kept")
    if depth == 16:
        return _encode_deep(fmt, pixels, exif, path)
    options: dict[str, Any] = {
        "JPEG": {"quality": quality, "subsampling": 0 if quality >= 90 else 2},
        "WEBP": {"quality": quality, "method": 4},
        "PNG": {"compress_level": 6},
        # libtiff cannot write EXIF sub-IFDs (GPS); Pillow's own writer can, uncompressed.
        "TIFF": {"compression": "tiff_adobe_deflate" if exif is None else None},
        "BMP": {},
    }[fmt]
    if exif is not None and fmt != "BMP":
        options["exif"] = exif
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **options)
    return buf.getvalue()


def _encode_deep(fmt: str, pixels: np.ndarray, exif: bytes | None, path: Path) -> bytes:
    """16-bit PNG/TIFF through OpenCV (Pillow writes no 16-bit RGB)."""
    import cv2

    bgr = np.ascontiguousarray(pixels[..., [2, 1, 0, 3] if pixels.shape[2] == 4 else [2, 1, 0]])
    if fmt == "PNG":
        ext, params = ".png", [cv2.IMWRITE_PNG_COMPRESSION, 6]
    else:
        ext, params = ".tif", [cv2.IMWRITE_TIFF_COMPRESSION, cv2.IMWRITE_TIFF_COMPRESSION_ADOBE_DEFLATE]
    if exif is not None and fmt == "PNG":
        payload = np.frombuffer(exif.removeprefix(b"Exif\x00\x00"), np.uint8)
        ok, buf = cv2.imencodeWithMetadata(ext, bgr, [cv2.IMAGE_METADATA_EXIF], [payload], params)
    else:
        if exif is not None:
            _warn(f"{path}: 16-bit TIFF is written without EXIF; metadata not kept")
        ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ImageSaveError(f"could not encode {path} as 16-bit {fmt}")
    return buf.tobytes()


def _write_atomic(data: bytes, path: Path) -> None:
    """Temp file in the same folder, fsync, rename over the target; no litter on failure."""
    tmp: str | None = None
    try:
        for _ in range(100):
            candidate = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
            try:
                # mode 0o666 lets the umask decide, like any newly created file
                fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise ImageSaveError(f"could not create a temporary file next to {path}")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        with suppress(OSError):  # an overwritten file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.absolute().parent)
    except ImageSaveError:
        raise
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ImageSaveError(f"could not write {path}: {reason}; nothing was saved") from exc
    finally:
        if tmp is not None:
            with suppress(OSError):
                os.unlink(tmp)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename durable on POSIX; folders cannot be opened this way on Windows.
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write any file (a recipe, a trace, a CSV) with the same atomic, no-litter guarantee."""
    path = Path(path)
    _check_target(path, [], overwrite=False)
    _write_atomic(data, path)
    return path


def check_output_path(path: str | Path, *, source: str | Path | None = None, overwrite: bool = False) -> Path:
    """Fail before any work is done if `path` cannot be an image output (bad extension,
    missing folder, or the input itself without `overwrite`)."""
    path = Path(path)
    if path.suffix.lower() not in SAVE_EXTENSIONS:
        raise ImageSaveError(
            f"cannot save {path}: unknown extension {path.suffix or '(none)'!r}; use one of {', '.join(SAVE_EXTENSIONS)}"
        )
    _check_target(path, [source], overwrite)
    return path
