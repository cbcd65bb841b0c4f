"""Pseudo-STRAT: STRAT-format tuples from real photos, placed by a landmark teacher.

``tryon make-dataset pseudo-strat`` (:func:`main_build`) turns every usable photo of the
given folders into ``--per-photo`` tuples, one accessory each (real ones from
``--accessories`` mixed with procedural ones from :func:`realtime.procedural.generate_accessory`):

* **background**: the photo cropped like the live app's network crop for the category
  (:func:`training.placement.background_box`: head crops for glasses / hats, upper-body
  portraits for ties), with a random framing jitter, resized to ``--size`` (default 256 for
  glasses / hats, 512 for ties; the loader resizes to 224 / 448). Where the crop leaves the
  photo it is padded with black (:data:`PAD_VALUE`), as ``realtime.framing`` pads live crops and
  training augmentation pads shifted images; STRAT-hat pads faces on white canvases the same
  way. More than ``placement.MAX_PAD_FRACTION`` padding -> rejected (``extreme_padding``);
* **foreground**: the accessory RGBA; **init / final vertex**: its alpha box and where the
  placement rule (:mod:`training.placement`) puts it, in crop pixels;
* **parsing**: pseudo-parsing (:mod:`training.parsing`), ``IGNORE_INDEX`` where unknown;
* **composite**: the accessory warped onto the background, for inspection.

Photos come from the MediaPipe teacher cache (:mod:`training.teacher.cache`,
``<cache>/<folder>/<stem>.json``); the train / test side of each photo from the recorded
identity split (:mod:`training.splits`, ``training/splits/faces_split_v1.json``), photos not
in it by a hash of their name identity. Everything that cannot be labelled is counted by
reason in ``OUT/report.json`` (and printed); ``OUT/samples.json`` says which photo and
accessory made each sample; ``OUT/contact_sheet.png`` shows 24 random composites.

Deterministic: the accessories and jitter of a photo come from its own random stream
``(seed, crc32(folder/name), crc32(category))``. Re-running into the same ``OUT`` keeps the
samples already there (resume); delete ``OUT`` after changing the rules.

``python -m training.pseudo_strat check-glasses --photos .../helen --teacher-cache ...``
measures the glasses rule against Helen's annotated pupils (:func:`check_glasses`).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import logging
import math
import re
import time
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

import cv2
import numpy as np

from realtime.accessories import Accessory, load_accessories_dir
from realtime.config import category_classes, check_category
from realtime.geometry import DegenerateQuadError, resize_matrix, rotated_crop_from_box, warp_points
from realtime.io import atomic_write_bytes
from realtime.procedural import STYLES, accessory_by_name, generate_accessory
from training import placement as pl
from training.parsing import parsing_map
from training.splits import DEFAULT_SPLIT_FILE, FaceSplit, hash_split, list_photos, load_split
from training.strat import StratDataset, StratWriter, composite_sample
from training.teacher.cache import REPO_ROOT, TeacherRecord, load_teacher_record

log = logging.getLogger(__name__)

GENERATOR_NAME = "training.pseudo_strat"
GENERATOR_VERSION = 1
DEFAULT_TEACHER_CACHE = REPO_ROOT / "data" / "teacher_cache"
#: Stored background side per category: above the network size (224 / 448) so the loader
#: downsamples, never upsamples, a well-resolved photo.
DEFAULT_SIZES = {"glasses": 256, "hat": 256, "tie": 512}
#: Procedural accessories per style in the pool (drawn lazily, ~50 ms each).
PROCEDURAL_SEEDS_PER_STYLE = 24
#: Chance that an accessory slot takes a real accessory (while the photo has unused ones):
#: the real images are few (3 glasses, 4 hats, 1 bow tie) but look unlike the procedural ones.
REAL_ACCESSORY_SHARE = 0.35
#: Further accessories tried for a slot whose accessory was rejected for a reason of its own
#: (a necktie hanging out of the photo, a hat too big for the crop); the bow tie or smaller
#: hat that replaces it keeps the photo.
EXTRA_ACCESSORY_TRIES = 3
#: Framing jitter: crop side x exp(U(log lo, log hi)) and centre shift U(-s, s) crop sides.
#: ``realtime.framing.RoiConfig`` derives its sides from STRAT-like ranges of about +-20 %.
CROP_SCALE_RANGE = (0.85, 1.2)
CROP_SHIFT = 0.06
#: Padding colour (RGB) where the crop leaves the photo; black as realtime.framing's live crops.
PAD_VALUE = (0, 0, 0)
#: Share of tie samples whose padding is painted with a synthetic torso (:func:`fill_torso`)
#: instead of black. The photos here are head-and-shoulders crops: without it 83 % of a tie
#: crop below the knot is black (rules v1 test split), so the network never sees the shirt a
#: webcam frame shows there and cannot place the blade's lower corners (peaks ~0.19). The rest
#: stay black: live crops are padded too where the person is near the frame's edge.
TORSO_FILL_SHARE = 0.75
#: Largest padding share of a tie crop whose padding is painted (a tight face photo on a
#: painted torso is still a person; unpainted crops keep ``placement.MAX_PAD_FRACTION``).
TIE_MAX_PAD_FRACTION_FILLED = 0.9
#: Clothing colours (RGB) of painted torsos when the photo shows too little clothing to copy.
TORSO_COLOURS = ((40, 45, 60), (70, 90, 130), (30, 30, 30), (120, 120, 125), (200, 200, 205), (90, 60, 45),
                 (150, 30, 40), (40, 80, 50), (220, 215, 200), (60, 60, 90))
#: Contact sheet: composites shown and their cell size.
CONTACT_SHEET_COUNT = 24
CONTACT_SHEET_CELL = 224
#: Helen's 29-point LFPW annotation: 0-based indices of the image-left and image-right pupils.
LFPW_PUPIL_LEFT, LFPW_PUPIL_RIGHT = 16, 17
LFPW_FILE = "landmarks_lfpw29.json"
#: Glasses used by the pupil check (a bundled accessory name).
CHECK_GLASSES_ACCESSORY = "glasses/rectangular"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------------------
# Accessories
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _procedural(category: str, style: str, seed: int) -> Accessory:
    acc = generate_accessory(category, style, seed)
    acc.rgba.setflags(write=False)
    return acc


@dataclass
class AccessoryPool:
    """The accessories a build draws from.

    Attributes:
        category: Accessory category.
        real: Loaded user / shared accessories.
        procedural: ``(style, seed)`` keys of procedural accessories (drawn on first use).
    """

    category: str
    real: list[Accessory]
    procedural: list[tuple[str, int]]

    def get_procedural(self, index: int) -> Accessory:
        style, seed = self.procedural[index]
        return _procedural(self.category, style, seed)

    def choose(self, rng: np.random.Generator, k: int) -> list[Accessory]:
        """``k`` different accessories (fewer if the pool is smaller), real with probability
        :data:`REAL_ACCESSORY_SHARE` per slot while unused real ones remain."""
        real = list(rng.permutation(len(self.real))) if self.real else []
        proc = list(rng.permutation(len(self.procedural))) if self.procedural else []
        out = []
        for _ in range(k):
            use_real = bool(real) and (not proc or rng.random() < REAL_ACCESSORY_SHARE)
            if use_real:
                out.append(self.real[real.pop()])
            elif proc:
                out.append(self.get_procedural(proc.pop()))
        return out

    def prefer_bow_ties(self, candidates: list[Accessory], rng: np.random.Generator,
                        exclude: set[str] = frozenset()) -> list[Accessory]:
        """``candidates`` with the bow ties first; one drawn from the pool (not named in
        ``exclude``) if there is none."""
        bows = [a for a in candidates if pl.is_bow_tie(a)]
        if not bows:
            real = [a for a in self.real if pl.is_bow_tie(a) and a.name not in exclude]
            proc = [i for i, (style, seed) in enumerate(self.procedural)
                    if style == "bow_tie" and f"tie/{style}-{seed}" not in exclude]
            if real and (not proc or rng.random() < REAL_ACCESSORY_SHARE):
                bows = [real[int(rng.integers(len(real)))]]
            elif proc:
                bows = [self.get_procedural(proc[int(rng.integers(len(proc)))])]
        return bows + [a for a in candidates if not pl.is_bow_tie(a)]


def accessory_pool(category: str, accessories_dir: str | Path | None, procedural: bool = True,
                   seeds_per_style: int = PROCEDURAL_SEEDS_PER_STYLE) -> AccessoryPool:
    """Real accessories of ``category`` from a folder (read in place) plus procedural ones.

    Raises:
        ValueError: The pool would be empty.
    """
    check_category(category)
    real = load_accessories_dir(accessories_dir, category) if accessories_dir is not None else []
    proc = [(s, i) for s in STYLES[category] for i in range(seeds_per_style)] if procedural else []
    if not real and not proc:
        raise ValueError(f"no {category} accessories: {accessories_dir} has none and procedural ones are off")
    return AccessoryPool(category, real, proc)


# --------------------------------------------------------------------------------------
# One sample
# --------------------------------------------------------------------------------------

@dataclass
class PseudoSample:
    """One tuple, in memory.

    Attributes:
        background: (S, S, 3) uint8 RGB crop of the photo.
        foreground: (h, w, 4) uint8 RGBA accessory.
        init_vertex: (4, 2) accessory box in the foreground.
        final_vertex: (4, 2) targets in the background.
        parsing: (S, S) uint8 class ids.
        composite: (S, S, 3) uint8 RGB.
        valid: (S, S) bool, False on padding.
        info: Provenance (accessory, rule kind, crop, padding).
    """

    background: np.ndarray
    foreground: np.ndarray
    init_vertex: np.ndarray
    final_vertex: np.ndarray
    parsing: np.ndarray
    composite: np.ndarray
    valid: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def crop_padded(image_rgb: np.ndarray, crop_from_photo: np.ndarray, size: int,
                pad_value: tuple[int, int, int] = PAD_VALUE) -> tuple[np.ndarray, np.ndarray]:
    """Cut a square crop, padding outside the photo with ``pad_value``.

    Downscaling by more than 2x first shrinks the photo with ``INTER_AREA`` (no aliasing).

    Returns:
        ``(crop (size, size, 3) uint8, valid (size, size) bool)``.
    """
    h, w = image_rgb.shape[:2]
    scale = math.sqrt(abs(np.linalg.det(crop_from_photo[:2, :2])))
    src, mat = image_rgb, np.asarray(crop_from_photo, np.float64)
    if scale < 0.5:
        r = 2.0 * scale
        small_wh = (max(1, int(round(w * r))), max(1, int(round(h * r))))
        src = cv2.resize(image_rgb, small_wh, interpolation=cv2.INTER_AREA)
        mat = mat @ np.linalg.inv(resize_matrix((w, h), small_wh))
    crop = cv2.warpAffine(src, np.ascontiguousarray(mat[:2]), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(int(v) for v in pad_value))
    ones = np.full(src.shape[:2], 255, np.uint8)
    valid = cv2.warpAffine(ones, np.ascontiguousarray(mat[:2]), (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0) >= 128
    return crop, valid


def make_sample(rec: TeacherRecord, photo_rgb: np.ndarray, acc: Accessory, size: int,
                rng: np.random.Generator | None = None, jitter: bool = True,
                torso_fill: float = TORSO_FILL_SHARE) -> PseudoSample:
    """Build one tuple from a teacher record, its photo and an accessory.

    Args:
        rec: The photo's teacher record.
        photo_rgb: (H, W, 3) uint8 photo (``rec.size_wh``).
        acc: The accessory (its category picks the rule).
        size: Background side in pixels.
        rng: Random stream of the framing jitter (None or ``jitter=False``: no jitter).
        jitter: Apply the framing jitter.
        torso_fill: Chance (ties only, needs ``rng``) that the padding is painted with a
            synthetic torso (:func:`fill_torso`); such crops may hold up to
            :data:`TIE_MAX_PAD_FRACTION_FILLED` padding.

    Raises:
        training.placement.PlacementRejected: The photo cannot be labelled for this accessory.
    """
    if photo_rgb.shape[:2] != (rec.size_wh[1], rec.size_wh[0]):
        raise ValueError(f"{rec.image_path}: photo is {photo_rgb.shape[1]}x{photo_rgb.shape[0]}, the teacher "
                         f"record {rec.json_path} says {rec.size_wh[0]}x{rec.size_wh[1]}")
    face = pl.record_face(rec)
    place = pl.place_accessory(rec, acc)
    scale, shift = 1.0, (0.0, 0.0)
    if jitter and rng is not None:
        scale = float(np.exp(rng.uniform(*np.log(CROP_SCALE_RANGE))))
        shift = tuple(float(v) for v in rng.uniform(-CROP_SHIFT, CROP_SHIFT, 2))
    fill = (place.category == "tie" and torso_fill > 0 and rng is not None and rec.pose_landmarks is not None
            and float(rng.random()) < torso_fill)
    centre, side = pl.background_box(place, face, scale, shift)
    pad = pl.pad_fraction(centre, side, rec.size_wh)
    if pad > (TIE_MAX_PAD_FRACTION_FILLED if fill else pl.MAX_PAD_FRACTION):
        raise pl.PlacementRejected("extreme_padding", f"{pad:.0%} of the crop outside the photo")
    # The live tracker's crop transform (roll 0: the teacher's photos keep their head roll,
    # which the network learns to follow; live crops are de-rotated by the followed roll).
    crop_from_photo = rotated_crop_from_box((float(centre[0]), float(centre[1])), side, size, 0.0)
    background, valid = crop_padded(photo_rgb, crop_from_photo, size)
    seg = cv2.warpAffine(rec.seg_mask, np.ascontiguousarray(crop_from_photo[:2]), (size, size),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    face_xy = warp_points(crop_from_photo, face.pts[:, :2])
    pose = None
    if rec.pose_landmarks is not None:
        pose = np.column_stack([warp_points(crop_from_photo, rec.pose_landmarks[:, :2]), rec.pose_landmarks[:, 3]])
    parsing = parsing_map(place.category, (size, size), face_xy, pose, seg, valid)
    if fill and not valid.all():
        background = fill_torso(background, valid, seg, face_xy, pose[:, :2], rng)
    final = warp_points(crop_from_photo, place.final_vertex)
    fg = np.ascontiguousarray(acc.rgba)
    try:
        composite = composite_sample(background, fg, place.init_vertex, final)
    except DegenerateQuadError as exc:
        raise pl.PlacementRejected("degenerate_quad", str(exc)) from exc
    info = {"accessory": acc.name, "accessory_source": acc.source, "kind": place.kind,
            "crop_center_xy": [round(float(v), 2) for v in centre], "crop_side": round(side, 2),
            "pad_fraction": round(pad, 4), "torso_fill": bool(fill and pad > 0), **{k: v for k, v in place.info.items() if k != "lens_centres_fg"}}
    return PseudoSample(background, fg, place.init_vertex, final, parsing, composite, valid, info)


def _median_colour(image: np.ndarray, mask: np.ndarray, min_pixels: int = 50) -> np.ndarray | None:
    """Median RGB of ``image`` under ``mask`` (None with fewer than ``min_pixels``)."""
    if int(mask.sum()) < min_pixels:
        return None
    return np.median(image[mask].reshape(-1, 3), axis=0)


def fill_torso(background: np.ndarray, valid: np.ndarray, seg: np.ndarray, face_xy: np.ndarray,
               pose_xy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Paint the padding of a tie crop (``~valid``) with a synthetic upper body.

    The body continues the photo's person below its shoulders (pose 11 / 12): a torso a
    little wider than the shoulders, in the clothing colour the photo shows under them (a
    random one when it shows too little), often with a light shirt front in a jacket's V,
    and a neck in the skin colour between the chin and the shoulder line; the rest is the
    photo's background colour. Both get shading and noise, and the seam with the photo is
    blended over a few pixels. The labels do not change: the tie rule already hangs the tie
    from these shoulders.

    Args:
        background: (S, S, 3) uint8 crop (padding black).
        valid: (S, S) bool, True inside the photo.
        seg: (S, S) float selfie segmentation in the crop (person ~1).
        face_xy: (478, 2) face mesh in crop pixels.
        pose_xy: (33, 2) pose landmarks in crop pixels.
        rng: random stream (colours, shirt front, noise).

    Returns:
        The filled (S, S, 3) uint8 crop (a new array).
    """
    s = background.shape[0]
    sl, sr = np.asarray(pose_xy[pl.POSE_SHOULDER_L], np.float64), np.asarray(pose_xy[pl.POSE_SHOULDER_R], np.float64)
    width = float(np.linalg.norm(sl - sr))
    x = (sl - sr) / max(width, 1e-6)
    down = np.array([-x[1], x[0]])
    if down[1] < 0:
        down = -down
    chin = np.asarray(face_xy[pl.FACE_CHIN], np.float64)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    mid = 0.5 * (sl + sr)
    body_x = (xx - mid[0]) * x[0] + (yy - mid[1]) * x[1]
    body_y = (xx - mid[0]) * down[0] + (yy - mid[1]) * down[1]
    person = valid & (seg >= 0.6)
    clothing = _median_colour(background, person & (body_y > 0.1 * width) & (np.abs(body_x) < 0.45 * width))
    if clothing is None or float(rng.random()) < 0.3:
        clothing = np.asarray(TORSO_COLOURS[int(rng.integers(len(TORSO_COLOURS)))], np.float64)
    back = _median_colour(background, valid & (seg <= 0.3))
    if back is None:
        back = rng.uniform(40, 220, 3)
    skin = _median_colour(background, valid & (np.hypot(xx - chin[0], yy - chin[1]) < 0.08 * width)
                          & (yy < chin[1]), 10)
    if skin is None:
        skin = np.array([200.0, 160.0, 135.0])
    out = np.empty((s, s, 3), np.float64)
    out[:] = back
    # Torso: shoulders rounded 0.08 widths above the joints, sides widening toward the arms.
    half = 0.5 * width * (1.12 + 0.25 * np.clip(body_y / max(width, 1e-6), 0.0, 2.0))
    torso = (body_y > width * (0.3 * (np.abs(body_x) / (0.56 * width)) ** 4 - 0.08)) & (np.abs(body_x) < half)
    neck_half = 0.22 * width
    chin_y = float((chin - mid) @ down)
    neck = (np.abs(body_x - float((chin - mid) @ x)) < neck_half) & (body_y > chin_y) & (body_y <= 0.05 * width)
    out[neck] = skin
    shade = 1.0 - 0.25 * np.clip(np.abs(body_x) / (0.6 * width), 0.0, 1.0) ** 2
    out[torso] = clothing * shade[torso, None]
    if float(rng.random()) < 0.6:  # a shirt front in the jacket's V (where a tie sits)
        depth = float(rng.uniform(0.5, 1.1)) * width
        v = torso & (np.abs(body_x) < 0.18 * width * (1.0 - np.clip(body_y / depth, 0.0, 1.0)) + 0.02 * width) \
            & (body_y < depth)
        out[v] = rng.uniform(200, 250) * np.array([1.0, 1.0, float(rng.uniform(0.95, 1.05))])
    out += rng.normal(0.0, float(rng.uniform(2.0, 7.0)), out.shape)
    out = np.clip(out, 0, 255)
    keep = cv2.GaussianBlur(valid.astype(np.float32), (0, 0), 1.5)[..., None]
    keep = np.where(valid[..., None], np.maximum(keep, 0.5), keep)
    blended = keep * background.astype(np.float64) + (1.0 - keep) * out
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# The build
# --------------------------------------------------------------------------------------

@dataclass
class PhotoEntry:
    """A photo to process: its folder key, file name, path and teacher record path."""

    folder: str
    name: str
    path: Path
    record_path: Path


def sample_id(folder: str, name: str, slot: int) -> str:
    """File-name-safe sample id ``<folder>_<stem>_<slot>``."""
    stem = _UNSAFE.sub("_", Path(name).stem).strip("_.") or "photo"
    return f"{_UNSAFE.sub('_', folder)}_{stem}_{slot}"


def photo_rng(seed: int, folder: str, name: str, category: str) -> np.random.Generator:
    """The random stream of one photo (accessory choice, framing jitter)."""
    return np.random.default_rng([int(seed), zlib.crc32(f"{folder}/{name}".encode()), zlib.crc32(category.encode())])


def list_entries(photos_dirs: Sequence[str | Path], cache_dir: str | Path, limit: int | None = None
                 ) -> list[PhotoEntry]:
    """Photos of the folders with their expected teacher record paths (``limit``: first N)."""
    out = []
    for d in photos_dirs:
        folder = Path(d).name
        for name in list_photos(d):
            out.append(PhotoEntry(folder, name, Path(d) / name, Path(cache_dir) / folder / f"{Path(name).stem}.json"))
    return out[:limit] if limit is not None else out


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def build_pseudo_strat(photos_dirs: Sequence[str | Path], accessories_dir: str | Path | None, category: str,
                       out_dir: str | Path, cache_dir: str | Path | None = None, per_photo: int = 2, seed: int = 0,
                       split_file: str | Path | None = DEFAULT_SPLIT_FILE, test_fraction: float = 0.15,
                       limit: int | None = None, size: int | None = None, procedural: bool = True,
                       progress: bool = True, contact_sheet: bool = True,
                       torso_fill: float = TORSO_FILL_SHARE) -> dict[str, Any]:
    """Write ``out_dir/train`` and ``out_dir/test`` (see the module docstring).

    Args:
        photos_dirs: Photo folders; ``cache_dir/<folder name>`` must hold their teacher records.
        accessories_dir: Folder of real accessories (read in place; None: procedural only).
        category: ``glasses``, ``hat`` or ``tie``.
        out_dir: Dataset root.
        cache_dir: Teacher cache (default ``<repo>/data/teacher_cache``).
        per_photo: Samples (different accessories) per photo.
        seed: Base seed.
        split_file: Recorded split; None: every photo by :func:`training.splits.hash_split`.
        test_fraction: Test share for photos the split file does not list.
        limit: Use only the first N photos.
        size: Background side (default :data:`DEFAULT_SIZES`).
        procedural: Add procedural accessories to the real ones.
        progress: Show a tqdm bar.
        contact_sheet: Write ``out_dir/contact_sheet.png`` (and ``contact_sheet_parsing.png``).
        torso_fill: Share of tie samples whose padding is painted with a synthetic torso
            (:func:`make_sample`; 0 = black padding as rules v1's reference build).

    Returns:
        The report (also written to ``out_dir/report.json``).

    Raises:
        FileNotFoundError: A folder, the split file or the whole teacher cache folder is missing.
    """
    from tqdm import tqdm  # lazy: only the build shows a bar

    check_category(category)
    if per_photo < 1:
        raise ValueError(f"per_photo must be >= 1, got {per_photo}")
    size = int(size or DEFAULT_SIZES[category])
    if size < 32:
        raise ValueError(f"size must be >= 32, got {size}")
    if not 0.0 <= torso_fill <= 1.0:
        raise ValueError(f"torso_fill must be in [0, 1], got {torso_fill}")
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_TEACHER_CACHE
    for d in photos_dirs:
        if not (cache_dir / Path(d).name).is_dir():
            raise FileNotFoundError(
                f"no teacher cache for {d} in {cache_dir / Path(d).name}; run the teacher first: "
                f"python -c \"from training.teacher.cache import run_teacher; run_teacher(['{d}'], '{cache_dir}')\"")
    split: FaceSplit | None = load_split(split_file) if split_file is not None else None
    pool = accessory_pool(category, accessories_dir, procedural)
    entries = list_entries(photos_dirs, cache_dir, limit)
    out_dir = Path(out_dir)

    teacher_info: dict[str, Any] = {}
    photo_rejects: Counter = Counter()
    sample_rejects: Counter = Counter()
    written: Counter = Counter()
    photos_used: Counter = Counter()
    split_source: Counter = Counter()
    per_folder: dict[str, Counter] = defaultdict(Counter)
    samples_meta: dict[str, Any] = {}
    kinds: Counter = Counter()
    generator = {
        "name": GENERATOR_NAME, "version": GENERATOR_VERSION, "seed": int(seed), "per_photo": int(per_photo),
        "size": size, "procedural": bool(procedural), "accessories_dir": str(accessories_dir),
        "real_accessories": [a.name for a in pool.real], "procedural_seeds_per_style": PROCEDURAL_SEEDS_PER_STYLE,
        "placement_rules": pl.rules_info(), "photos_dirs": [str(d) for d in photos_dirs],
        "split_file": None if split is None else {"path": _relative(Path(split_file)),
                                                  "version": split.meta.get("version"),
                                                  "sha256": _file_sha256(Path(split_file))},
        "jitter": {"crop_scale_range": list(CROP_SCALE_RANGE), "crop_shift": CROP_SHIFT}, "pad_value": list(PAD_VALUE),
        "torso_fill": {"share": float(torso_fill) if category == "tie" else 0.0,
                       "max_pad_fraction": TIE_MAX_PAD_FRACTION_FILLED},
    }
    t0 = time.perf_counter()
    writers = {}
    try:
        for name in ("train", "test"):
            writers[name] = StratWriter(out_dir / name, category, generator_info=generator)
        for entry in tqdm(entries, desc=f"pseudo-strat {category}", unit="photo", disable=not progress):
            side = split.split_of(entry.folder, entry.name) if split is not None else None
            if side is None:
                side = hash_split(entry.folder, entry.name, test_fraction, seed)
                split_source["hash"] += 1
            else:
                split_source["file"] += 1
            if side not in writers:
                photo_rejects[f"split_{side}"] += 1
                continue
            if not entry.record_path.is_file():
                photo_rejects["not_in_teacher_cache"] += 1
                continue
            rec = load_teacher_record(entry.record_path)
            if not teacher_info:
                teacher_info = rec.teacher
                generator["teacher"] = teacher_info  # the writers hold this dict: dataset.json gets it
            if rec.reject is not None:
                photo_rejects[f"teacher_{rec.reject}"] += 1
                continue
            rng = photo_rng(seed, entry.folder, entry.name, category)
            candidates = pool.choose(rng, per_photo + EXTRA_ACCESSORY_TRIES)
            photo_rgb = None
            n_ok, reasons, used = 0, [], set()
            for slot in range(per_photo):
                sid = sample_id(entry.folder, entry.name, slot)
                slot_rng = np.random.default_rng([int(rng.integers(2 ** 32)), slot])
                if sid in writers[side]:
                    n_ok += 1
                    continue
                if photo_rgb is None:
                    bgr = cv2.imread(str(entry.path), cv2.IMREAD_COLOR)
                    if bgr is None:
                        raise FileNotFoundError(f"cannot read photo {entry.path}")
                    photo_rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                smp = None
                while candidates and smp is None:
                    acc = candidates.pop(0)
                    try:
                        smp = make_sample(rec, photo_rgb, acc, size, slot_rng, torso_fill=torso_fill)
                    except pl.PlacementRejected as exc:
                        sample_rejects[exc.reason] += 1
                        reasons.append(exc.reason)
                        if exc.reason in pl.PHOTO_LEVEL_REASONS:
                            candidates = []
                        elif category == "tie" and not pl.is_bow_tie(acc):
                            # A necktie too long for the photo: a bow tie only needs the collar.
                            candidates = pool.prefer_bow_ties(candidates, rng, used)
                if smp is None:
                    break
                used.add(acc.name)
                writers[side].add(sid, smp.background, smp.foreground, smp.init_vertex, smp.final_vertex,
                                  parsing=smp.parsing, composite_rgb=smp.composite)
                samples_meta[sid] = {"split": side, "photo": f"{entry.folder}/{entry.name}", **smp.info}
                kinds[smp.info["kind"]] += 1
                n_ok += 1
            if n_ok:
                photos_used[side] += 1
                per_folder[entry.folder][side] += 1
            else:
                top = Counter(reasons).most_common(1)[0][0] if reasons else None
                photo_rejects[f"all_samples_{top}" if top else "no_accessory"] += 1
    finally:
        for w in writers.values():
            w.close()
    seconds = time.perf_counter() - t0
    for name, w in writers.items():
        written[name] = len(w)
    report = {
        "category": category,
        "out": str(out_dir),
        "photos": {"listed": len(entries), "used": dict(photos_used), "rejected": dict(sorted(photo_rejects.items())),
                   "split_source": dict(split_source),
                   "per_folder": {k: dict(v) for k, v in sorted(per_folder.items())}},
        "samples": {"train": written["train"], "test": written["test"], "new": len(samples_meta),
                    "rejected": dict(sorted(sample_rejects.items())), "kinds_new": dict(sorted(kinds.items()))},
        "seconds": round(seconds, 1),
        "generator": generator,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    old = {}
    samples_path = out_dir / "samples.json"
    if samples_path.is_file():
        old = json.loads(samples_path.read_text())
    old.update(samples_meta)
    atomic_write_bytes(samples_path, (json.dumps(old, indent=1, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    if contact_sheet and (written["train"] + written["test"]):
        write_contact_sheets(out_dir, seed=seed)
    return report


def format_report(report: dict[str, Any]) -> str:
    """Plain-text table of a build report."""
    lines = [f"pseudo-strat {report['category']} -> {report['out']} ({report['seconds']} s)",
             f"  photos listed {report['photos']['listed']}, used train {report['photos']['used'].get('train', 0)}"
             f" / test {report['photos']['used'].get('test', 0)}",
             f"  samples train {report['samples']['train']} / test {report['samples']['test']}"
             f" (new this run {report['samples']['new']})"]
    for title, table in (("photos rejected", report["photos"]["rejected"]),
                         ("samples rejected", report["samples"]["rejected"]),
                         ("sample kinds (new)", report["samples"]["kinds_new"])):
        lines.append(f"  {title}:" + ("" if table else " none"))
        lines += [f"    {k:<40s} {v:>6d}" for k, v in table.items()]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Contact sheets
# --------------------------------------------------------------------------------------

#: Parsing colours (RGB) by class name for the contact sheet; ignore = white.
CLASS_COLOURS = {
    "background": (20, 30, 110), "hair": (140, 80, 30), "hat": (255, 160, 0), "eyebrows": (0, 110, 0),
    "glasses": (255, 255, 0), "eyes": (0, 230, 230), "nose": (60, 60, 255), "mouth": (230, 0, 0),
    "skin": (255, 185, 200), "neck": (200, 120, 255), "ears": (120, 255, 120), "clothing": (0, 160, 90),
    "head": (255, 185, 200), "upper": (0, 160, 90), "lower": (60, 60, 255), "arms": (255, 160, 0),
    "legs": (200, 120, 255), "shoes": (120, 255, 120), "bags": (255, 255, 0),
}


def _palette(category: str) -> np.ndarray:
    """(256, 3) uint8 colour of each class id of ``category``; ignore and unused ids white."""
    pal = np.full((256, 3), 255, np.uint8)
    for i, name in enumerate(category_classes(category)):
        pal[i] = CLASS_COLOURS[name]
    return pal


def write_contact_sheets(out_dir: str | Path, count: int = CONTACT_SHEET_COUNT, seed: int = 0, cols: int = 6,
                         cell: int = CONTACT_SHEET_CELL) -> Path:
    """``out_dir/contact_sheet.png``: ``count`` random composites (train and test) with the
    final quad (green, vertex 0 red); ``contact_sheet_parsing.png``: their parsing maps
    blended over the backgrounds (white = ignore).

    Returns:
        The composite sheet's path.
    """
    out_dir = Path(out_dir)
    items = []
    for split in ("train", "test"):
        if (out_dir / split / "trans_params.json").is_file():
            ds = StratDataset(out_dir / split, size=cell)
            items += [(ds, r) for r in ds.records]
            pal = _palette(ds.category)
    if not items:
        raise FileNotFoundError(f"no samples under {out_dir}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(items), size=min(count, len(items)), replace=False)
    tiles, ptiles = [], []
    for i in pick:
        ds, rec = items[i]
        smp = ds.load(rec)
        if rec.composite_path is not None:
            comp = cv2.cvtColor(cv2.imread(str(rec.composite_path)), cv2.COLOR_BGR2RGB)
            comp = cv2.resize(comp, (cell, cell), interpolation=cv2.INTER_AREA)
        else:
            comp = composite_sample(smp["background"], smp["foreground"], smp["init_vertex"], smp["final_vertex"])
        q = np.round(smp["final_vertex"] * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(comp, [q], True, (0, 220, 0), 1, cv2.LINE_AA, shift=4)
        cv2.circle(comp, tuple(int(v) for v in np.round(smp["final_vertex"][0])), 3, (255, 0, 0), -1)
        cv2.putText(comp, rec.id[:30], (3, cell - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(comp)
        ptiles.append(cv2.addWeighted(smp["background"], 0.35, pal[smp["parsing"]], 0.65, 0))
    blank = np.zeros_like(tiles[0])
    while len(tiles) % cols:
        tiles.append(blank)
        ptiles.append(blank)
    for name, tl in (("contact_sheet.png", tiles), ("contact_sheet_parsing.png", ptiles)):
        grid = np.vstack([np.hstack(tl[r * cols:(r + 1) * cols]) for r in range(len(tl) // cols)])
        ok, buf = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"cannot encode {name}")
        atomic_write_bytes(out_dir / name, buf.tobytes())
    return out_dir / "contact_sheet.png"


# --------------------------------------------------------------------------------------
# Independent check of the glasses rule against annotated pupils
# --------------------------------------------------------------------------------------

def _angle_deg(v: np.ndarray) -> float:
    return math.degrees(math.atan2(float(v[1]), float(v[0])))


def glasses_pupil_errors(rec: TeacherRecord, pupils_xy: np.ndarray, acc: Accessory) -> dict[str, float]:
    """Errors of one photo's glasses placement against its two annotated pupils.

    Args:
        rec: Teacher record.
        pupils_xy: (2, 2) image-left and image-right pupil.
        acc: The glasses.

    Returns:
        ``lens_mid`` (distance of the projected lens centres' midpoint from the pupils'
        midpoint / inter-pupil distance), ``quad_centre`` (same for the mean of the 4 quad
        corners), ``iris_mid`` (the teacher's iris midpoint, the rule's input, for reference)
        and ``roll_deg`` (absolute angle between the lens-centre line and the pupil line).
    """
    place = pl.place_accessory(rec, acc)
    p = np.asarray(pupils_xy, np.float64)
    ipd = float(np.linalg.norm(p[1] - p[0]))
    if ipd < 1.0:
        raise ValueError(f"{rec.image_path}: annotated pupils coincide")
    mid = p.mean(axis=0)
    lens = np.stack([place.anchors_xy["lens_left"], place.anchors_xy["lens_right"]])
    face = pl.record_face(rec)
    roll = (_angle_deg(lens[1] - lens[0]) - _angle_deg(p[1] - p[0]) + 180.0) % 360.0 - 180.0
    return {"lens_mid": float(np.linalg.norm(lens.mean(0) - mid)) / ipd,
            "quad_centre": float(np.linalg.norm(place.final_vertex.mean(0) - mid)) / ipd,
            "iris_mid": float(np.linalg.norm(face.iris_mid[:2] - mid)) / ipd,
            "roll_deg": abs(roll)}


def check_glasses(photos_dir: str | Path, cache_dir: str | Path | None = None, landmarks_file: str | Path | None = None,
                  accessory: Accessory | None = None, only: Collection[str] | None = None) -> dict[str, Any]:
    """The glasses rule against Helen's annotated pupils (LFPW points 16 / 17), all accepted photos
    (or those whose file name is in ``only``).

    Returns:
        ``{"n": photos, "skipped": {...}, "<metric>": {"mean", "median", "p90"}}`` for the
        metrics of :func:`glasses_pupil_errors`.
    """
    photos_dir = Path(photos_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else DEFAULT_TEACHER_CACHE
    lm_path = Path(landmarks_file) if landmarks_file is not None else photos_dir / LFPW_FILE
    if not lm_path.is_file():
        raise FileNotFoundError(f"pupil annotations not found: {lm_path}")
    annotations = json.loads(lm_path.read_text())
    acc = accessory or accessory_by_name(CHECK_GLASSES_ACCESSORY)
    rows: dict[str, list[float]] = defaultdict(list)
    skipped: Counter = Counter()
    for name in list_photos(photos_dir):
        if only is not None and name not in only:
            continue
        js = cache_dir / photos_dir.name / f"{Path(name).stem}.json"
        if name not in annotations:
            skipped["no_annotation"] += 1
            continue
        if not js.is_file():
            skipped["not_in_teacher_cache"] += 1
            continue
        rec = load_teacher_record(js)
        if rec.reject is not None:
            skipped[f"teacher_{rec.reject}"] += 1
            continue
        pts = np.asarray(annotations[name], np.float64)
        if pts.shape != (29, 2):
            raise ValueError(f"{lm_path}: {name} must have 29 [x, y] points, got shape {pts.shape}")
        try:
            errs = glasses_pupil_errors(rec, pts[[LFPW_PUPIL_LEFT, LFPW_PUPIL_RIGHT]], acc)
        except pl.PlacementRejected as exc:
            skipped[exc.reason] += 1
            continue
        for k, v in errs.items():
            rows[k].append(v)
    out: dict[str, Any] = {"n": len(rows.get("lens_mid", [])), "skipped": dict(skipped), "accessory": acc.name,
                           "rules_version": pl.PLACEMENT_RULES_VERSION}
    for k, vals in rows.items():
        out[k] = summary_stats(vals)
    return out


def summary_stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, median and 90th percentile of ``values``, rounded to 4 decimals (pupil checks)."""
    a = np.asarray(values, np.float64)
    return {"mean": round(float(a.mean()), 4), "median": round(float(np.median(a)), 4),
            "p90": round(float(np.percentile(a, 90)), 4)}


# --------------------------------------------------------------------------------------
# Figure of the rules (on the synthetic face template, no photo)
# --------------------------------------------------------------------------------------

def _draw_template_person(canvas: np.ndarray, face: np.ndarray, pose: np.ndarray | None) -> None:
    """Paint a flat cartoon of a template face (and torso) onto an RGB canvas, in place."""
    from training.parsing import FACE_OVAL, LEFT_EYE, LEFT_EYEBROW, LIPS_OUTER, RIGHT_EYE, RIGHT_EYEBROW

    def poly(idx: Sequence[int] | np.ndarray, colour: tuple[int, int, int], fill: bool = True) -> None:
        pts = np.round((face[list(idx), :2] if not isinstance(idx, np.ndarray) else idx) * 16).astype(np.int32)
        if fill:
            cv2.fillPoly(canvas, [pts.reshape(-1, 1, 2)], colour, cv2.LINE_AA, shift=4)
        else:
            cv2.polylines(canvas, [pts.reshape(-1, 1, 2)], True, colour, 2, cv2.LINE_AA, shift=4)

    if pose is not None:
        sl, sr = pose[11, :2], pose[12, :2]
        down = np.array([-(sl - sr)[1], (sl - sr)[0]])
        down /= np.linalg.norm(down)
        chin = face[152, :2]
        neck = np.array([chin + 0.2 * (sr - chin), chin + 0.2 * (sl - chin), 0.5 * (sl + chin), 0.5 * (sr + chin)])
        poly(np.array([sr, sl, sl + 900 * down, sr + 900 * down]), (70, 90, 130))
        poly(neck, (225, 185, 160))
        poly(np.array([0.6 * sr + 0.4 * chin, 0.6 * sl + 0.4 * chin, 0.5 * (sl + sr) + 60 * down]), (235, 235, 240))
    up = face[10, :2] - face[152, :2]
    fh = float(np.linalg.norm(up))
    fw = float(np.linalg.norm(face[454, :2] - face[234, :2]))
    skull = face[10, :2] - 0.05 * up
    cv2.ellipse(canvas, (int(round(skull[0])), int(round(skull[1]))), (int(0.6 * fw), int(0.5 * fh)),
                math.degrees(math.atan2(up[1], up[0])) + 90.0, 0, 360, (95, 65, 45), -1, cv2.LINE_AA)
    poly(FACE_OVAL, (240, 200, 175))
    for loop in (RIGHT_EYE, LEFT_EYE):
        poly(loop, (250, 250, 250))
    for c in (468, 473):
        cv2.circle(canvas, tuple(int(v) for v in np.round(face[c, :2])), 4, (60, 90, 140), -1, cv2.LINE_AA)
    for loop in (RIGHT_EYEBROW, LEFT_EYEBROW):
        poly(loop, (90, 60, 40))
    poly(LIPS_OUTER, (200, 80, 90))
    nose = face[[168, 1, 2], :2]
    cv2.polylines(canvas, [np.round(nose * 16).astype(np.int32).reshape(-1, 1, 2)], False, (170, 120, 100), 2,
                  cv2.LINE_AA, shift=4)


def rules_figure(panel: int = 300) -> np.ndarray:
    """RGB figure of the four placement rules on the synthetic face template (docs).

    Each panel: the template person (turned and tilted), the accessory the rule places
    (procedural), its final quad (green), and the landmarks the rule reads (red).
    """
    from training.parsing import template_face_landmarks, template_pose_landmarks

    def dot(img: np.ndarray, xy: np.ndarray, label: str = "") -> None:
        p = tuple(int(v) for v in np.round(xy))
        cv2.circle(img, p, 4, (220, 30, 30), -1, cv2.LINE_AA)
        if label:
            cv2.putText(img, label, (p[0] + 5, p[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (180, 20, 20), 1, cv2.LINE_AA)

    specs = [
        ("glasses", generate_accessory("glasses", "rectangular", 1), (150, 175), 110, (20.0, -5.0, 10.0),
         ["lens centres on irises 468/473", f"width {pl.GLASSES_WIDTH_PER_TEMPLE_WIDTH} x temples 127-356",
          f"plane {pl.GLASSES_FORWARD_PER_EYE_SPAN} eye span in front"]),
        ("hat", generate_accessory("hat", "fedora", 3), (150, 200), 100, (-20.0, 0.0, -8.0),
         [f"bottom {-pl.HAT_FITS['fedora'].bottom_up} face h. below 10", f"fedora width {pl.HAT_FITS['fedora'].width}"
          " x face w. 234-454", f"roll, {pl.HAT_YAW_GAIN} x yaw"]),
        ("necktie", generate_accessory("tie", "necktie_stripes", 5), (150, 80), 64, (10.0, 0.0, 5.0),
         [f"knot top {pl.TIE_KNOT_FRAC} chin -> shoulders", f"length {pl.NECKTIE_LENGTH_PER_SHOULDER_WIDTH}"
          " x shoulders 11-12", "axis normal to shoulder line"]),
        ("bow tie", generate_accessory("tie", "bow_tie", 0), (150, 95), 80, (-10.0, 0.0, -6.0),
         [f"centre {pl.BOWTIE_CENTRE_FRAC} chin -> shoulders", f"width {pl.BOWTIE_WIDTH_PER_FACE_WIDTH}"
          " x face w. 234-454", "rotated with shoulder line"]),
    ]
    panels = []
    for title, acc, centre, fw, (yaw, pitch, roll), notes in specs:
        face = template_face_landmarks(centre, fw, yaw, pitch, roll)
        is_tie = acc.category == "tie"
        pose = template_pose_landmarks(face, 2.0, body_roll_deg=roll) if is_tie else None
        rec = TeacherRecord(json_path=Path("template.json"), image_path=Path("template.png"), size_wh=(panel, panel),
                            faces=[], landmarks=face.astype(np.float32), pose_landmarks=pose, head_pose=None,
                            reject=None, reject_all=(), seg_path=Path("template_seg.png"))
        canvas = np.full((panel, panel, 3), 250, np.uint8)
        _draw_template_person(canvas, face, pose)
        place = pl.place_accessory(rec, acc)
        img = composite_sample(canvas, acc.rgba, place.init_vertex, place.final_vertex)
        q = np.round(place.final_vertex * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [q], True, (0, 170, 0), 2, cv2.LINE_AA, shift=4)
        if acc.category == "glasses":
            for k in ("lens_left", "lens_right"):
                c = tuple(int(v) for v in np.round(place.anchors_xy[k]))
                cv2.drawMarker(img, c, (0, 120, 255), cv2.MARKER_CROSS, 10, 2)
            for i, lab in ((127, "127"), (356, "356")):
                dot(img, face[i, :2], lab)
        elif acc.category == "hat":
            for i, lab in ((10, "10"), (234, "234"), (454, "454"), (152, "152")):
                dot(img, face[i, :2], lab)
        else:
            dot(img, face[152, :2], "152")
            dot(img, pose[11, :2], "11")
            dot(img, pose[12, :2], "12")
        strip = np.full((62, panel, 3), 255, np.uint8)
        cv2.putText(strip, title, (6, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j, note in enumerate(notes):
            cv2.putText(strip, note, (6, 30 + 13 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (40, 40, 40), 1, cv2.LINE_AA)
        panels.append(np.vstack([img, strip]))
    sep = np.full((panels[0].shape[0], 4, 3), 200, np.uint8)
    row = [panels[0]]
    for p in panels[1:]:
        row += [sep, p]
    return np.hstack(row)


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------

def main_build(args: argparse.Namespace) -> int:
    """``tryon make-dataset pseudo-strat`` (arguments parsed by :mod:`training.make_dataset`)."""
    split_file = getattr(args, "split_file", None) or DEFAULT_SPLIT_FILE
    report = build_pseudo_strat(
        args.photos, args.accessories, args.category, args.out, cache_dir=args.teacher_cache,
        per_photo=args.per_photo, seed=args.seed,
        split_file=None if getattr(args, "no_split_file", False) else split_file,
        test_fraction=args.test_fraction, limit=args.limit, size=getattr(args, "size", None),
        procedural=not getattr(args, "no_procedural", False), progress=not getattr(args, "no_progress", False),
        torso_fill=TORSO_FILL_SHARE if getattr(args, "torso_fill", None) is None else args.torso_fill)
    print(format_report(report))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.pseudo_strat check-glasses | contact-sheet | figure``."""
    parser = argparse.ArgumentParser(prog="python -m training.pseudo_strat", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check-glasses", help="glasses rule vs Helen's annotated pupils")
    chk.add_argument("--photos", required=True, type=Path, help="the Helen folder (with landmarks_lfpw29.json)")
    chk.add_argument("--teacher-cache", type=Path, default=None)
    chk.add_argument("--accessory", default=CHECK_GLASSES_ACCESSORY, help="bundled accessory name")
    chk.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    sheet = sub.add_parser("contact-sheet", help="(re)write OUT/contact_sheet.png of a built dataset")
    sheet.add_argument("--out", required=True, type=Path)
    sheet.add_argument("--seed", type=int, default=0)
    figure = sub.add_parser("figure", help="draw the placement rules on the synthetic face template")
    figure.add_argument("--out", required=True, type=Path, help="PNG path, e.g. docs/placement_rules.png")
    args = parser.parse_args(argv)
    if args.command == "contact-sheet":
        print(write_contact_sheets(args.out, seed=args.seed))
        return 0
    if args.command == "figure":
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rules_figure(), cv2.COLOR_RGB2BGR))
        if not ok:
            raise OSError(f"cannot encode {args.out}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, buf.tobytes())
        print(args.out)
        return 0
    res = check_glasses(args.photos, args.teacher_cache, accessory=accessory_by_name(args.accessory))
    print(f"glasses rule vs annotated pupils: n={res['n']} ({res['accessory']}, rules {res['rules_version']}); "
          f"skipped {res['skipped']}")
    for k in ("lens_mid", "quad_centre", "iris_mid", "roll_deg"):
        if k in res:
            unit = "deg" if k == "roll_deg" else "x IPD"
            r = res[k]
            print(f"  {k:<12s} mean {r['mean']:.4f}  median {r['median']:.4f}  p90 {r['p90']:.4f} {unit}")
    if args.json is not None:
        atomic_write_bytes(args.json, (json.dumps(res, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
