"""Accessories (glasses, hats, ties): the :class:`Accessory` type and the loader of user images.

An :class:`Accessory` is an upright, front-view RGBA image. Its keypoints are the four corners of the tight
bounding box of its alpha (:attr:`Accessory.init_vertex_xy`); the network predicts where those four corners go
on the person, and the app warps the image with the homography between the two quads.

User images come in through :func:`load_accessory` / :func:`load_accessories_dir` (RGBA PNG as is, RGB/JPEG on
a plain background through a colour-distance matte). The procedural generator, the bundled catalogue the live
app and demo cycle through, and the contact sheet live in :mod:`realtime.procedural`.

Only numpy and OpenCV are needed (no torch).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from realtime.config import CATEGORIES, IMAGE_SUFFIXES, check_category

log = logging.getLogger(__name__)

# A pixel belongs to the keypoint box when alpha > 8 (of 255, ~3 %). Below that a pixel adds < 1/32 of its colour
# when composited, i.e. it is invisible; and real PNGs carry stray alpha 1..4 specks from anti-aliasing and
# resampling (all of ../shared/data/accessories/*.png do) that must not stretch the box.
ALPHA_BBOX_THRESHOLD = 8
# Matte for RGB images: Euclidean RGB distance (0..441) to the median border colour. 40 is ~9 % of the range:
# well above JPEG noise on a flat background (typically < 10 at quality >= 75, ringing next to edges < 30),
# well below the distance of any visibly different object colour (a mid-grey object on white is ~220).
MATTE_THRESHOLD = 40.0
# Gaussian sigma (px) of the inward-only feather on the matte edge.
MATTE_FEATHER_SIGMA = 1.0
#: An image without alpha whose matte keeps more than this fraction opaque is warned about (a rectangle).
OPAQUE_COVERAGE = 0.9
# Transparent margin (px) around generated accessories: enough for the anti-aliased edge to fade out.
GEN_MARGIN_PX = 3
_NAME_PREFIX = re.compile(r"^(sunglasses|eyeglasses|spectacles|glasses|bowtie|bow_tie|necktie|bow|tie|hat|cap)"
                          r"(?:e?s)?(?![a-z])")
_PREFIX_CATEGORY = {"sunglasses": "glasses", "eyeglasses": "glasses", "spectacles": "glasses", "glasses": "glasses",
                    "bowtie": "tie", "bow_tie": "tie", "necktie": "tie", "bow": "tie", "tie": "tie",
                    "hat": "hat", "cap": "hat"}



def alpha_bbox_xyxy(alpha: np.ndarray, threshold: int = ALPHA_BBOX_THRESHOLD) -> tuple[int, int, int, int] | None:
    """Tight inclusive box (x0, y0, x1, y1) of the pixels with alpha > threshold, or None when there are none."""
    cols = np.flatnonzero((alpha > threshold).any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero((alpha > threshold).any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


@dataclass(eq=False)
class Accessory:
    """An upright, front-view accessory image.

    Attributes:
        name: Display / lookup name, e.g. ``"glasses/aviator"`` or ``"hat/my_cap"``.
        category: One of :data:`CATEGORIES`.
        rgba: (H, W, 4) uint8 image in RGBA channel order (not BGR).
        source: File path, or ``"procedural:<style>:<seed>"``.
        label: What the user sees (HUD, logs); empty: :attr:`title` derives it from the name.
    """

    name: str
    category: str
    rgba: np.ndarray = field(repr=False)
    source: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        check_category(self.category)
        if self.rgba.ndim != 3 or self.rgba.shape[2] != 4 or self.rgba.dtype != np.uint8:
            raise ValueError(f"accessory {self.name!r}: rgba must be (H, W, 4) uint8, "
                             f"got {self.rgba.shape} {self.rgba.dtype}")

    @property
    def title(self) -> str:
        """The display name: :attr:`label`, else the name without its category and generator seed
        (``"glasses/cat_eye-3"`` -> ``"cat eye"``)."""
        if self.label:
            return self.label
        return re.sub(r"-\d+$", "", self.name.rpartition("/")[2]).replace("_", " ")

    @property
    def size_wh(self) -> tuple[int, int]:
        """Canvas (width, height) in pixels."""
        return int(self.rgba.shape[1]), int(self.rgba.shape[0])

    def bbox_xyxy(self) -> tuple[int, int, int, int]:
        """Inclusive tight box of alpha > :data:`ALPHA_BBOX_THRESHOLD`; ValueError naming the accessory if empty."""
        box = alpha_bbox_xyxy(self.rgba[..., 3])
        if box is None:
            raise ValueError(f"accessory {self.name!r} ({self.source}) has an empty alpha channel "
                             f"(no pixel with alpha > {ALPHA_BBOX_THRESHOLD})")
        return box

    @property
    def init_vertex_xy(self) -> np.ndarray:
        """(4, 2) float32 keypoints: the tight alpha box corners TL, TR, BR, BL in pixel-centre coordinates."""
        x0, y0, x1, y1 = self.bbox_xyxy()
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)

    def cropped(self, pad: int = GEN_MARGIN_PX) -> "Accessory":
        """Copy cropped to the alpha box plus ``pad`` transparent pixels on every side (padding where needed)."""
        x0, y0, x1, y1 = self.bbox_xyxy()
        h, w = self.rgba.shape[:2]
        out = np.zeros((y1 - y0 + 1 + 2 * pad, x1 - x0 + 1 + 2 * pad, 4), np.uint8)
        sx0, sy0, sx1, sy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad + 1, w), min(y1 + pad + 1, h)
        dx0, dy0 = sx0 - (x0 - pad), sy0 - (y0 - pad)
        out[dy0:dy0 + sy1 - sy0, dx0:dx0 + sx1 - sx0] = self.rgba[sy0:sy1, sx0:sx1]
        return dataclasses.replace(self, rgba=out)


# ----------------------------------------------------------------------------------------------------------------
# Loading user images
# ----------------------------------------------------------------------------------------------------------------

def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)  # 65535 -> 255 with rounding
    if np.issubdtype(img.dtype, np.floating):
        return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {img.dtype}")


def matte_from_background(rgb: np.ndarray, threshold: float = MATTE_THRESHOLD) -> np.ndarray:
    """Alpha (uint8) for an RGB object on a plain background, estimated from the 1-px image border.

    alpha = 255 where the Euclidean RGB distance to the median border colour exceeds ``threshold``, after a 3x3
    opening (drops JPEG specks) and closing (seals 1-px cracks), dropping components smaller than 0.2 % of the
    largest; then feathered inwards only (so the box does not grow and no background halo is added). Holes are
    deliberately NOT filled: the inside of a glasses frame must stay transparent.
    """
    bg = np.median(_border(rgb), axis=0)
    dist = np.linalg.norm(rgb.astype(np.float32) - bg, axis=2)
    mask = (dist > threshold).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    mask = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n > 1:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.flatnonzero(areas >= max(4, 0.002 * areas.max())) + 1
        mask = np.isin(labels, keep).astype(np.uint8)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), MATTE_FEATHER_SIGMA)
    # Rescale so a pixel 2 px inside the edge is fully opaque again; only the outermost ring gets softened.
    return np.clip(np.round(np.minimum(soft * 2.0, 1.0) * mask * 255), 0, 255).astype(np.uint8)


def _border(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)


def background_is_plain(rgb: np.ndarray, threshold: float = MATTE_THRESHOLD) -> bool:
    """Whether the 1-px border is one colour (within half the matte threshold, for most of it)."""
    border = _border(rgb)
    return bool(np.median(np.linalg.norm(border - np.median(border, axis=0), axis=1)) <= threshold / 2)


def _category_for(path: Path, category: str | None) -> str:
    if category is not None:
        return check_category(category)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
            cat = meta["category"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{sidecar}: expected JSON like {{\"category\": \"glasses\"}} ({exc})") from exc
        try:
            return check_category(cat)
        except ValueError as exc:
            raise ValueError(f"{sidecar}: {exc}") from None
    match = _NAME_PREFIX.match(path.stem.lower())
    if match:
        return _PREFIX_CATEGORY[match.group(1)]
    raise ValueError(f"cannot tell the category of {path}: pass category= (one of {CATEGORIES}), add a sidecar "
                     f"{sidecar.name} with {{\"category\": ...}}, or start the file name with glasses/sunglasses/"
                     f"hat/cap/tie/bowtie/bow")


def load_accessory(path: str | Path, category: str | None = None) -> Accessory:
    """Load a user accessory image.

    RGBA images are used as is (16-bit scaled to 8-bit, grey+alpha expanded); an image without alpha, or whose
    alpha is fully opaque, gets a matte from its plain background (:func:`matte_from_background`).

    Args:
        path: Image file (png, jpg, ...).
        category: "glasses", "hat" or "tie". None: from ``<stem>.json`` ({"category": ...}) next to the image,
            else from the file name prefix (glasses/sunglasses/hat/cap/tie/bowtie/bow).

    Returns:
        Accessory named ``"<category>/<stem>"`` with source = the path.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: Unreadable image, empty alpha, or unknown / undeterminable category (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"accessory image not found: {path}")
    cat = _category_for(path, category)
    # imdecode(fromfile) instead of imread: works with non-ASCII paths and never returns a half-read image.
    img = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ValueError(f"cannot read image {path} (not an image or unsupported format)")
    try:
        img = _to_uint8(img)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if img.ndim == 2:
        img = img[..., None]
    ch = img.shape[2]
    if ch == 2:  # grey + alpha
        rgba = np.dstack([img[..., 0]] * 3 + [img[..., 1]])
    elif ch == 4:
        rgba = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    else:
        rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if ch == 1 else cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    if rgba[..., 3].min() == 255:
        rgba[..., 3] = matte_from_background(rgba[..., :3])
        coverage = float(np.mean(rgba[..., 3] > ALPHA_BBOX_THRESHOLD))
        if coverage > OPAQUE_COVERAGE or not background_is_plain(rgba[..., :3]):
            log.warning("accessory image %s has no transparency and no plain background to cut it out from "
                        "(%.0f %% of it stays opaque): it will look like a pasted rectangle or a torn patch. Use a "
                        "PNG with an alpha channel, or the object on a plain, evenly coloured background",
                        path, 100 * coverage)
    acc = Accessory(f"{cat}/{path.stem}", cat, np.ascontiguousarray(rgba), str(path))
    if alpha_bbox_xyxy(acc.rgba[..., 3]) is None:
        raise ValueError(f"accessory image {path} has an empty alpha (nothing with alpha > {ALPHA_BBOX_THRESHOLD}"
                         f" after matting)")
    return acc


def load_accessories_dir(directory: str | Path, category: str | None = None) -> list[Accessory]:
    """Load every image in ``directory`` (sorted by name).

    With ``category``, files whose own category (sidecar JSON or name prefix) differs are skipped with a warning,
    and files that declare none are taken as ``category``. Without it, files whose category cannot be told and
    files that fail to load are skipped with a warning.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"accessory directory not found: {directory}")
    if category is not None:
        check_category(category)
    out = []
    for path in sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            try:
                own = _category_for(path, None)
            except ValueError:
                if category is None:
                    raise
                own = category
            if category is not None and own != category:
                log.warning("skipping %s: category %r, not %r", path, own, category)
                continue
            out.append(load_accessory(path, own))
        except ValueError as exc:
            log.warning("skipping %s: %s", path, exc)
    return out
