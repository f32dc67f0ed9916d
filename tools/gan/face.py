"""Find a face, cut the generator's view of it, and put a change back into the photo.

Detection is OpenCV's Haar frontal-face cascade (ships inside opencv-python, offline).
Alignment is a square crop framed the way the generator frames its faces: the constants
below were measured by running `detect_faces` on 90 generated faces pasted at 100-220 px
into a photo (the box is 0.82 of the frame wide, sd 0.11; its centre 0.567 of the way down). That is
only a start: `invert.invert_aligned` refines it to sub-pixel position, size and a small
turn (a DCGAN latent cannot express a 1 px shift, and 2 px off at 120 px costs ~6 dB), so
crops may be fractional and turned; `cut` and `paste` sample those with grid_sample. A crop
that runs past the photo's border is padded by replication.

Blend back (`paste_delta`): the edit is carried as a delta, edited minus reconstructed,
upsampled to the crop's size and added under a feathered elliptical mask, so the photo's
own detail survives and pixels outside the mask are untouched, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tools.registry import ToolError

BOX_TO_FRAME = 0.82  # detected box width / generated frame width
BOX_CENTRE_Y = 0.567  # detected box centre, as a fraction of the frame height
DETECT_SIZE = 512  # the longer side the detector sees (small faces need upscaling, huge photos down)


@dataclass(frozen=True)
class Crop:
    """A square region of the photo (may extend past its borders), in pixels.

    The detector gives whole pixels; alignment (`invert.invert_aligned`) refines it to
    sub-pixel position and size and a small `angle` (degrees; the frame's x axis turned
    towards the photo's +y axis, i.e. clockwise on screen).
    """

    x0: float
    y0: float
    size: float
    angle: float = 0.0

    @property
    def centre(self) -> tuple[float, float]:
        return self.x0 + self.size / 2, self.y0 + self.size / 2

    def on_pixel_grid(self) -> bool:
        return self.angle == 0 and all(float(v).is_integer() for v in (self.x0, self.y0, self.size))

    def clip(self, h: int, w: int) -> tuple[int, int, int, int]:
        """The photo pixels the crop touches (its bounding box when turned), clipped to the photo."""
        half = self.size / 2 * (abs(math.cos(math.radians(self.angle))) + abs(math.sin(math.radians(self.angle))))
        cx, cy = self.centre
        return (max(math.floor(cx - half), 0), max(math.floor(cy - half), 0),
                min(math.ceil(cx + half), w), min(math.ceil(cy + half), h))

    def describe(self) -> str:
        turn = f", turned {self.angle:.1f} deg" if self.angle else ""
        return f"{self.size:.1f}px at ({self.x0:.1f},{self.y0:.1f}){turn}"


def frame_grid(crop: Crop, xs: Tensor, ys: Tensor) -> Tensor:
    """Photo pixel-centre coordinates -> grid_sample coordinates (-1..1, align_corners=False) in the crop's frame."""
    cx, cy = crop.centre
    a = math.radians(crop.angle)
    dx, dy = xs - cx, ys - cy
    u = (math.cos(a) * dx + math.sin(a) * dy) / crop.size
    v = (-math.sin(a) * dx + math.cos(a) * dy) / crop.size
    return torch.stack([2 * u, 2 * v], -1)


def crop_points(crop: Crop, n: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Photo coordinates (xs, ys), each (n, n), of the centres of an n x n grid over the crop's frame."""
    t = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n - 0.5
    v, u = torch.meshgrid(t, t, indexing="ij")
    a = math.radians(crop.angle)
    cx, cy = crop.centre
    return (cx + crop.size * (math.cos(a) * u - math.sin(a) * v),
            cy + crop.size * (math.sin(a) * u + math.cos(a) * v))


@cache
def _cascade(name: str):  # type: ignore[no-untyped-def]
    import cv2

    c = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if c.empty():
        raise ToolError(f"OpenCV could not load {name}; reinstall opencv-python-headless")
    return c


def to_gray_u8(image: Tensor) -> np.ndarray:
    """(3,H,W) float in [0,1] -> (H,W) uint8 luma for OpenCV."""
    a = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    import cv2

    return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)


def detect_faces(image: Tensor) -> list[tuple[int, int, int, int]]:
    """Frontal faces of one (3,H,W) image as (x, y, w, h) boxes, largest first."""
    import cv2

    gray = to_gray_u8(image)
    h, w = gray.shape
    scale = DETECT_SIZE / max(h, w)
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    small = cv2.equalizeHist(small)
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=4, minSize=(48, 48))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in found]
    return sorted(boxes, key=lambda b: -b[2] * b[3])  # type: ignore[return-value]


def crop_for_box(box: tuple[int, int, int, int]) -> Crop:
    """The square the generator would frame around a detected face box."""
    x, y, w, h = box
    side = max(w, h) / BOX_TO_FRAME
    cx, cy = x + w / 2, y + h / 2 - (BOX_CENTRE_Y - 0.5) * side
    return Crop(round(cx - side / 2), round(cy - side / 2), max(2, round(side)))


def find_face(image: Tensor, index: int) -> Crop:
    """The crop of face number `index` (0 = largest); -1 = the whole image is the face."""
    h, w = image.shape[-2:]
    if index < 0:
        side = min(h, w)
        return Crop((w - side) // 2, (h - side) // 2, side)
    boxes = detect_faces(image)
    if not boxes:
        raise ToolError("no face found in the image (OpenCV frontal-face detector); the GAN face tools "
                        "need a frontal face, or pass face=-1 if the whole image is a face crop")
    if index >= len(boxes):
        raise ToolError(f"face={index} but only {len(boxes)} face(s) were found; use 0..{len(boxes) - 1}")
    return crop_for_box(boxes[index])


def cut(image: Tensor, crop: Crop, res: int) -> Tensor:
    """(3,H,W) -> the crop resized to (1,3,res,res), padding by replication past the border."""
    if not crop.on_pixel_grid():
        # Sub-pixel or turned: sample k x k points per output pixel and average (an area filter).
        k = max(1, math.ceil(crop.size / res))
        xs, ys = crop_points(crop, res * k, image.device)
        h, w = image.shape[-2:]
        grid = torch.stack([(xs / w) * 2 - 1, (ys / h) * 2 - 1], -1)[None].to(image.dtype)
        x = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        return (F.avg_pool2d(x, k) if k > 1 else x).clamp(0, 1)
    x0, y0, size = int(crop.x0), int(crop.y0), int(crop.size)
    h, w = image.shape[-2:]
    pad = (max(0, -x0), max(0, x0 + size - w), max(0, -y0), max(0, y0 + size - h))
    x = image[None]
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    x0, y0 = x0 + pad[0], y0 + pad[2]
    x = x[..., y0 : y0 + size, x0 : x0 + size]
    return F.interpolate(x, size=(res, res), mode="area" if size > res else "bilinear",
                         align_corners=None if size > res else False).clamp(0, 1)


def ellipse_mask(size: int, feather: float = 0.15, rx: float = 0.40, ry: float = 0.47,
                 cy: float = 0.54, device: torch.device | None = None) -> Tensor:
    """(1,1,size,size) soft ellipse over the face: 1 inside, 0 outside, a smooth ramp between."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    r = torch.sqrt(((xx - 0.5) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    m = ((1 - r) / feather).clamp(0, 1)
    m = m * m * (3 - 2 * m)  # smoothstep: no visible seam at the ramp's ends
    return m[None, None]


def paste(image: Tensor, crop: Crop, patch: Tensor, mask: Tensor, *, delta: bool) -> Tensor:
    """Add (delta=True) or blend in (delta=False) a (1,3,r,r) patch over `crop` under a (1,1,r',r') mask.

    Both are resized to the crop; only pixels where the mask is > 0 change.
    """
    h, w = image.shape[-2:]
    x0, y0, x1, y1 = crop.clip(h, w)
    if x1 <= x0 or y1 <= y0:
        return image.clone()
    if crop.on_pixel_grid():
        size = int(crop.size)
        up = F.interpolate(patch, size=(size, size), mode="bicubic", align_corners=False)
        m = F.interpolate(mask, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        sl = (slice(y0 - int(crop.y0), y1 - int(crop.y0)), slice(x0 - int(crop.x0), x1 - int(crop.x0)))
        up, m = up[0][:, sl[0], sl[1]].to(image), m[0][:, sl[0], sl[1]].to(image)
    else:  # sample the patch and mask at each photo pixel's place in the (sub-pixel, turned) frame
        ys, xs = torch.meshgrid(torch.arange(y0, y1, device=image.device, dtype=torch.float32) + 0.5,
                                torch.arange(x0, x1, device=image.device, dtype=torch.float32) + 0.5, indexing="ij")
        grid = frame_grid(crop, xs, ys)[None]
        up = F.grid_sample(patch.float(), grid, mode="bicubic", padding_mode="border", align_corners=False)[0]
        m = F.grid_sample(mask.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
        up, m = up.to(image), m.clamp(0, 1).to(image)
    out = image.clone()
    region = out[:, y0:y1, x0:x1]
    new = region + m * up if delta else region + m * (up.clamp(0, 1) - region)
    # Where the mask is exactly 0 the pixel is left as it was, bit for bit.
    out[:, y0:y1, x0:x1] = torch.where(m > 0, new.clamp(0, 1), region)
    return out
