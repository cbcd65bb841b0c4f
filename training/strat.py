"""STRAT-format data: the one on-disk dataset format, read and written (SPEC section 4).

Layout of one split directory (``ROOT/train`` or ``ROOT/test``)::

    background/<id>.jpg|png          the person WITHOUT the accessory
    foreground/<id>.png              the accessory: RGBA, or RGB + foreground_mask/<id>.png
    foreground_mask/<id>.png         optional (original STRAT): 0/255 (or 0/1) accessory mask
    trans_params.json                {id: {"init_vertex", "final_vertex", "trans_matri*"}}
    background_mask/<id>.png         optional parsing map (used for L_sm)
    background_mask_comp/<id>.png    optional parsing map of the composite (unused here)
    composite/<id>.jpg               optional ground-truth composite, for inspection
    dataset.json                     written by :class:`StratWriter` (format, category, label table)

Tuple semantics (STRAT README, bcmi/Accessory-Try-On-Dataset-STRAT): ``init_vertex`` are
the 4 corners of the accessory in the FOREGROUND image, ``final_vertex`` their targets in
the BACKGROUND image, and the ``trans_matri*`` matrix is background_from_foreground
(``cv2.findHomography(init, final)``). Vertices may be stored flat (8 numbers) or 4x2.

The reader is liberal in what it accepts (the split dir itself, ``ROOT/<split>``, or a
category folder such as ``face_glasses/`` or ``glasses/`` above it; jpg or png; RGBA or
RGB + mask) and strict in what it reports: a malformed entry raises
:class:`StratFormatError` naming the file and the sample id / key.

Corner order is canonicalised on load: the init quad is put in the order TL, TR, BR, BL
(:func:`realtime.codec.canonical_corner_order`) and the final quad is permuted the SAME
way, so keypoint k is always the same corner of the accessory's bounding box.

Parsing-map ids are remapped through an explicit table (:data:`LABEL_TABLES`) to our
class ids (``realtime.config.FACE_CLASSES`` / ``BODY_CLASSES``, ``IGNORE_INDEX`` for
unknown). No torch import here: :class:`StratDataset` is a plain sequence of numpy dicts.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.codec import canonical_corner_order
from realtime.config import (BODY_CLASSES, CATEGORIES, FACE_CLASSES, IGNORE_INDEX, IMAGE_SUFFIXES, category_classes,
                             category_input_size, check_category)
from realtime.geometry import (DegenerateQuadError, PreparedAccessory, composite_roi, homography_from_quads,
                               resize_matrix, validate_quad, warp_points)
from realtime.io import atomic_write_bytes

log = logging.getLogger(__name__)


class StratFormatError(ValueError):
    """A STRAT split is malformed; the message names the file and the sample id / key."""


TRANS_PARAMS = "trans_params.json"
DATASET_JSON = "dataset.json"
FORMAT_NAME = "strat"
FORMAT_VERSION = 1
#: Sub-folders of a split dir.
BACKGROUND_DIR = "background"
FOREGROUND_DIR = "foreground"
FOREGROUND_MASK_DIR = "foreground_mask"
PARSING_DIR = "background_mask"
PARSING_COMP_DIR = "background_mask_comp"
COMPOSITE_DIR = "composite"
#: JPEG quality of written backgrounds and composites (high: the network reads these pixels).
JPEG_QUALITY = 95
#: Prefix of the matrix key in trans_params.json (STRAT README: ``trans_matri``).
MATRIX_KEY_PREFIX = "trans_matri"
#: Key our writer uses for the matrix.
MATRIX_KEY = "trans_matrix"

# --------------------------------------------------------------------------------------
# Label tables: raw parsing id -> our class id
# --------------------------------------------------------------------------------------

_FACE = {name: i for i, name in enumerate(FACE_CLASSES)}
_BODY = {name: i for i, name in enumerate(BODY_CLASSES)}

#: CelebAMask-HQ's 19 ids as emitted by the common face parser (zllrunning/face-parsing.PyTorch:
#: 0 background, then skin, l_brow, r_brow, l_eye, r_eye, eye_g, l_ear, r_ear, ear_r, nose,
#: mouth, u_lip, l_lip, neck, neck_l, cloth, hair, hat) merged into the paper's 12 face classes.
_CELEBAMASK19_TO_FACE: dict[int, int] = {
    0: _FACE["background"], 1: _FACE["skin"], 2: _FACE["eyebrows"], 3: _FACE["eyebrows"],
    4: _FACE["eyes"], 5: _FACE["eyes"], 6: _FACE["glasses"], 7: _FACE["ears"], 8: _FACE["ears"],
    9: _FACE["ears"],  # ear_r = earring: drawn on the ear
    10: _FACE["nose"], 11: _FACE["mouth"], 12: _FACE["mouth"], 13: _FACE["mouth"], 14: _FACE["neck"],
    15: _FACE["neck"],  # neck_l = necklace: drawn on the neck
    16: _FACE["clothing"], 17: _FACE["hair"], 18: _FACE["hat"],
}

#: ATR's 18 human-parsing ids (as in SCHP's "atr" model: background, hat, hair, sunglasses,
#: upper-clothes, skirt, pants, dress, belt, left-shoe, right-shoe, face, left-leg, right-leg,
#: left-arm, right-arm, bag, scarf) merged into the paper's 8 body classes. ATR is the common
#: parser label set that has a "bag" class, which the paper's body classes include.
_ATR18_TO_BODY: dict[int, int] = {
    0: _BODY["background"], 1: _BODY["head"], 2: _BODY["head"], 3: _BODY["head"], 4: _BODY["upper"],
    5: _BODY["lower"], 6: _BODY["lower"], 7: _BODY["upper"], 8: _BODY["lower"], 9: _BODY["shoes"],
    10: _BODY["shoes"], 11: _BODY["head"], 12: _BODY["legs"], 13: _BODY["legs"], 14: _BODY["arms"],
    15: _BODY["arms"], 16: _BODY["bags"], 17: _BODY["upper"],
}

#: Named remap tables, ``{table: {"face" | "body": {raw_id: our_id}}}``. Ids not in a table
#: become ``IGNORE_INDEX`` (not supervised).
#:
#: * ``tryon-v1``: identity; what :class:`StratWriter` writes (our class ids already).
#: * ``celebamask19`` (face) / ``atr18`` (body): the label sets of the usual public parsers.
#: * ``strat-guess``: UNVERIFIED [SPEC I]. The original STRAT ``background_mask`` ids are
#:   undocumented; its README only says they are "results of face/human parsing". We guess
#:   the two common parsers above, because the paper's 12 face classes are exactly a merge
#:   of CelebAMask-HQ's and its 8 body classes (with "bags") fit ATR. Check a few maps
#:   against their images before trusting L_sm on real STRAT data.
LABEL_TABLES: dict[str, dict[str, dict[int, int]]] = {
    "tryon-v1": {"face": {i: i for i in range(len(FACE_CLASSES))},
                 "body": {i: i for i in range(len(BODY_CLASSES))}},
    "celebamask19": {"face": _CELEBAMASK19_TO_FACE},
    "atr18": {"body": _ATR18_TO_BODY},
    "strat-guess": {"face": _CELEBAMASK19_TO_FACE, "body": _ATR18_TO_BODY},
}
#: Table our writer records in dataset.json.
WRITER_LABEL_TABLE = "tryon-v1"
#: Table used when a split has no dataset.json (an original STRAT download).
DEFAULT_LABEL_TABLE = "strat-guess"


def label_group(category: str) -> str:
    """``"body"`` for ties, ``"face"`` for glasses and hats (paper Sec. 4.2)."""
    return "body" if check_category(category) == "tie" else "face"


def label_lut(table: str, category: str) -> np.ndarray:
    """Lookup table (256,) uint8 mapping raw parsing ids to our class ids for ``category``.

    Raises:
        ValueError: unknown table, or a table without an entry for the category's group.
    """
    if table not in LABEL_TABLES:
        raise ValueError(f"unknown label table {table!r}; expected one of {', '.join(LABEL_TABLES)}")
    group = label_group(category)
    mapping = LABEL_TABLES[table].get(group)
    if mapping is None:
        raise ValueError(f"label table {table!r} has no {group} classes (category {category!r})")
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for raw, ours in mapping.items():
        lut[raw] = ours
    return lut


# --------------------------------------------------------------------------------------
# Layout: finding the split dir and its files
# --------------------------------------------------------------------------------------

def _category_dir_names(category: str) -> list[str]:
    return [category, f"face_{category}", f"body_{category}", f"strat_{category}", f"STRAT-{category}",
            f"STRAT_{category}"]


def resolve_split_dir(path: str | Path, split: str | None = None, category: str | None = None) -> Path:
    """Find the split directory (the one holding ``trans_params.json``) under ``path``.

    Accepts the split dir itself, ``path/<split>``, and ``path/<category folder>/<split>``
    with category folders such as ``glasses``, ``face_glasses``, ``STRAT-glasses``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        StratFormatError: no split dir found; the message lists where it looked.
    """
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"STRAT split dir not found: {root}")
    if (root / TRANS_PARAMS).is_file():
        return root
    parents = [root] + ([root / name for name in _category_dir_names(category)] if category else [])
    candidates = [p / split for p in parents] if split else parents[1:]
    for cand in candidates:
        if (cand / TRANS_PARAMS).is_file():
            return cand
    looked = ", ".join(str(c) for c in [root, *candidates])
    hint = "" if split else " (pass split='train' or 'test' if the split dirs are below it)"
    raise StratFormatError(f"no {TRANS_PARAMS} found; looked in: {looked}{hint}")


def _infer_category(split_dir: Path) -> str | None:
    """Category from folder names (``face_glasses/train`` -> glasses), deepest first."""
    for part in reversed(split_dir.resolve().parts):
        tokens = set(re.split(r"[^a-z]+", part.lower()))
        found = [c for c in CATEGORIES if c in tokens]
        if len(found) == 1:
            return found[0]
    return None


def _index_images(folder: Path) -> dict[str, Path]:
    """Map both file stem and full name -> path for the images in ``folder`` (one listing)."""
    index: dict[str, Path] = {}
    if not folder.is_dir():
        return index
    rank = {s: i for i, s in enumerate(IMAGE_SUFFIXES)}
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in rank),
                   key=lambda p: (p.stem, rank[p.suffix.lower()]))
    for p in files:
        index.setdefault(p.stem, p)
        index.setdefault(p.name, p)
    return index


def _lookup(index: dict[str, Path], sample_id: str) -> Path | None:
    return index.get(sample_id) or index.get(Path(sample_id).stem)


def read_dataset_meta(split_dir: str | Path) -> dict[str, Any]:
    """The split's ``dataset.json`` (written by :class:`StratWriter`), or ``{}`` if absent.

    Raises:
        StratFormatError: the file exists but is not a JSON object.
    """
    path = Path(split_dir) / DATASET_JSON
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StratFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise StratFormatError(f"{path}: expected a JSON object at the top level")
    return meta


# --------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class StratRecord:
    """One validated STRAT tuple (paths and geometry; images are read lazily).

    Attributes:
        id: sample id (the key in trans_params.json).
        background_path, foreground_path: the two images.
        init_vertex: (4, 2) float64 accessory corners in original foreground pixels, TL TR BR BL.
        final_vertex: (4, 2) float64 their targets in original background pixels (same order).
        trans_matrix: (3, 3) float64 background_from_foreground as stored, or None if absent.
        foreground_mask_path: explicit accessory mask (original STRAT), or None (use alpha).
        parsing_path: ``background_mask/<id>`` parsing map, or None.
        parsing_comp_path: ``background_mask_comp/<id>``, or None.
        composite_path: ``composite/<id>``, or None.
    """

    id: str
    background_path: Path
    foreground_path: Path
    init_vertex: np.ndarray
    final_vertex: np.ndarray
    trans_matrix: np.ndarray | None = None
    foreground_mask_path: Path | None = None
    parsing_path: Path | None = None
    parsing_comp_path: Path | None = None
    composite_path: Path | None = None


@dataclass
class SplitScan:
    """Result of :func:`scan_split`.

    Attributes:
        split_dir: the resolved split directory.
        records: valid samples, sorted by id.
        skipped: ``(id, reason)`` of the samples dropped with ``skip_bad=True``.
        meta: the split's dataset.json (``{}`` for an original STRAT split).
        category: from the argument, dataset.json or folder names; None if unknown.
    """

    split_dir: Path
    records: list[StratRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    category: str | None = None


def _parse_quad(value: Any, where: str, key: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StratFormatError(f"{where}: key {key!r} is not a list of numbers: {value!r}") from exc
    if arr.size != 8 or arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape != (4, 2)):
        raise StratFormatError(f"{where}: key {key!r} must hold 4 points (8 numbers, flat or 4x2), "
                               f"got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StratFormatError(f"{where}: key {key!r} has non-finite numbers: {arr.reshape(-1).tolist()}")
    return arr.reshape(4, 2)


def _validated(quad: np.ndarray, where: str, key: str) -> np.ndarray:
    try:
        return validate_quad(quad, key, min_area=1.0)
    except DegenerateQuadError as exc:
        raise StratFormatError(f"{where}: key {key!r}: {exc}") from exc


def _parse_matrix(entry: dict[str, Any], where: str) -> np.ndarray | None:
    keys = sorted(k for k in entry if k.startswith(MATRIX_KEY_PREFIX))
    if not keys:
        return None
    key = keys[0]
    try:
        mat = np.asarray(entry[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StratFormatError(f"{where}: key {key!r} is not a 3x3 matrix of numbers") from exc
    if mat.size != 9:
        raise StratFormatError(f"{where}: key {key!r} must be a 3x3 matrix (9 numbers), got shape {mat.shape}")
    if not np.all(np.isfinite(mat)):
        raise StratFormatError(f"{where}: key {key!r} has non-finite numbers")
    return mat.reshape(3, 3)


def canonical_permutation(init_vertex: np.ndarray) -> np.ndarray:
    """Indices that put a quad in canonical order TL, TR, BR, BL (apply to init AND final)."""
    quad = np.asarray(init_vertex, dtype=np.float64).reshape(4, 2)
    canon = canonical_corner_order(quad)
    perm = np.array([int(np.argmin(np.abs(quad - c).sum(axis=1))) for c in canon])
    if len(set(perm.tolist())) != 4:  # repeated corners
        raise DegenerateQuadError(f"cannot order corners {quad.tolist()}: some coincide")
    return perm


def _load_params(params_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(params_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StratFormatError(f"{params_path}: not valid JSON: {exc}") from exc
    if isinstance(data, list):  # liberal: a list of entries carrying their own id
        out: dict[str, Any] = {}
        for i, entry in enumerate(data):
            name = next((entry.get(k) for k in ("id", "name", "image", "img_name") if isinstance(entry, dict)
                         and k in entry), None)
            if name is None:
                raise StratFormatError(f"{params_path}: entry {i} has no 'id' key")
            out[str(name)] = entry
        return out
    if not isinstance(data, dict):
        raise StratFormatError(f"{params_path}: expected an object keyed by sample id")
    return data


def scan_split(split_dir: str | Path, category: str | None = None, skip_bad: bool = False,
               split: str | None = None) -> SplitScan:
    """Read and validate one split: trans_params.json plus the files of every sample.

    Args:
        split_dir: the split dir, or a folder above it (see :func:`resolve_split_dir`).
        category: accessory category; checked against dataset.json when both are given.
        skip_bad: drop malformed samples with a warning each instead of raising.
        split: ``train`` / ``test`` when ``split_dir`` is the dataset root.

    Raises:
        StratFormatError: a malformed sample (unless ``skip_bad``) or a malformed file; the
            message names the file and the sample id / key.
    """
    root = resolve_split_dir(split_dir, split, category)
    meta = read_dataset_meta(root)
    if category is not None:
        check_category(category)
        if meta.get("category") not in (None, category):
            raise StratFormatError(f"{root / DATASET_JSON}: category is {meta['category']!r}, "
                                   f"but {category!r} was requested")
    category = category or meta.get("category") or _infer_category(root)
    params_path = root / TRANS_PARAMS
    params = _load_params(params_path)
    index = {name: _index_images(root / name) for name in
             (BACKGROUND_DIR, FOREGROUND_DIR, FOREGROUND_MASK_DIR, PARSING_DIR, PARSING_COMP_DIR, COMPOSITE_DIR)}
    records: list[StratRecord] = []
    skipped: list[tuple[str, str]] = []
    for sid in sorted(params):
        try:
            rec = _make_record(str(sid), params[sid], params_path, root, index)
            if skip_bad:  # skip_bad covers images that do not open, not only bad entries (header read: cheap)
                for path in (rec.background_path, rec.foreground_path, rec.foreground_mask_path):
                    if path is not None:
                        image_size_wh(path, f"sample {sid!r}")
            records.append(rec)
        except StratFormatError as exc:
            if not skip_bad:
                raise
            log.warning("skipping bad sample: %s", exc)
            skipped.append((str(sid), str(exc)))
    if skipped:
        log.warning("%s: skipped %d of %d samples (skip_bad=True)", root, len(skipped), len(params))
    return SplitScan(split_dir=root, records=records, skipped=skipped, meta=meta, category=category)


def _make_record(sid: str, entry: Any, params_path: Path, root: Path, index: dict[str, dict[str, Path]]
                 ) -> StratRecord:
    where = f"{params_path}: sample {sid!r}"
    if not isinstance(entry, dict):
        raise StratFormatError(f"{where}: expected an object with init_vertex/final_vertex, got {type(entry).__name__}")
    for key in ("init_vertex", "final_vertex"):
        if key not in entry:
            raise StratFormatError(f"{where}: missing key {key!r} (has: {', '.join(sorted(entry)) or 'nothing'})")
    init = _parse_quad(entry["init_vertex"], where, "init_vertex")
    final = _parse_quad(entry["final_vertex"], where, "final_vertex")
    matrix = _parse_matrix(entry, where)
    # Order first (a stored permutation may trace a self-intersecting outline), then validate.
    try:
        perm = canonical_permutation(init)
    except DegenerateQuadError as exc:
        raise StratFormatError(f"{where}: key 'init_vertex': {exc}") from exc
    init, final = _validated(init[perm], where, "init_vertex"), _validated(final[perm], where, "final_vertex")
    paths: dict[str, Path | None] = {}
    for name in (BACKGROUND_DIR, FOREGROUND_DIR):
        found = _lookup(index[name], sid)
        if found is None:
            raise StratFormatError(f"{root / name}: no image file for sample {sid!r} "
                                   f"(looked for {sid}{{{','.join(IMAGE_SUFFIXES)}}}; listed in {params_path})")
        paths[name] = found
    for name in (FOREGROUND_MASK_DIR, PARSING_DIR, PARSING_COMP_DIR, COMPOSITE_DIR):
        paths[name] = _lookup(index[name], sid)
    return StratRecord(
        id=sid, background_path=paths[BACKGROUND_DIR], foreground_path=paths[FOREGROUND_DIR],
        init_vertex=init, final_vertex=final, trans_matrix=matrix,
        foreground_mask_path=paths[FOREGROUND_MASK_DIR], parsing_path=paths[PARSING_DIR],
        parsing_comp_path=paths[PARSING_COMP_DIR], composite_path=paths[COMPOSITE_DIR])


def read_split(split_dir: str | Path, category: str | None = None, skip_bad: bool = False,
               split: str | None = None) -> list[StratRecord]:
    """Validated records of one split (see :func:`scan_split`, which also reports skips)."""
    return scan_split(split_dir, category, skip_bad, split).records


# --------------------------------------------------------------------------------------
# Image reading
# --------------------------------------------------------------------------------------

def image_size_wh(path: str | Path, where: str = "") -> tuple[int, int]:
    """An image's (width, height) from its header (the pixels are not decoded).

    Raises:
        StratFormatError: the file does not open as an image (names it, and ``where``).
    """
    from PIL import Image, UnidentifiedImageError  # lazy; a dependency of scikit-image

    try:
        with Image.open(path) as im:
            return int(im.size[0]), int(im.size[1])
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise StratFormatError(f"{path}: cannot read image{f' ({where})' if where else ''}: {exc}; fix or "
                               "remove the sample, or set skip_bad=true to skip such samples") from None


def _imread(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise StratFormatError(f"{path}: cannot read image (missing, truncated or not an image)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise StratFormatError(f"{path}: unsupported pixel type {img.dtype}")
    return img


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB.

    Raises:
        StratFormatError: unreadable file (message names it).
    """
    return cv2.cvtColor(_imread(Path(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def read_rgba(path: str | Path, mask_path: str | Path | None = None) -> np.ndarray:
    """Read an accessory as (h, w, 4) uint8 RGBA; alpha from ``mask_path`` if given.

    A mask stored as 0/1 is scaled to 0/255.

    Raises:
        StratFormatError: unreadable file, mask of another size, or no alpha and no mask.
    """
    path = Path(path)
    img = _imread(path, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    channels = img.shape[2]
    rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    if mask_path is not None:
        mask_path = Path(mask_path)
        alpha = _imread(mask_path, cv2.IMREAD_GRAYSCALE)
        if alpha.shape != rgb.shape[:2]:
            raise StratFormatError(f"{mask_path}: mask is {alpha.shape[1]}x{alpha.shape[0]} but the foreground "
                                   f"{path} is {rgb.shape[1]}x{rgb.shape[0]}")
        if alpha.max() == 1:
            alpha = alpha * np.uint8(255)
    elif channels == 4:
        alpha = img[..., 3]
    else:
        raise StratFormatError(f"{path}: foreground has no alpha channel and there is no "
                               f"{FOREGROUND_MASK_DIR}/{path.stem}.png beside it")
    return np.dstack([rgb, alpha])


def read_parsing(path: str | Path) -> np.ndarray:
    """Read a parsing map of raw class ids as (H, W) uint16 (palette, grey or 16-bit PNG).

    Raises:
        StratFormatError: unreadable file, or a colour-coded (non-grey RGB) map.
    """
    from PIL import Image, UnidentifiedImageError  # lazy: only parsing maps need PIL

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.array(im)
    except (OSError, UnidentifiedImageError) as exc:
        raise StratFormatError(f"{path}: cannot read parsing map: {exc}") from exc
    if arr.ndim == 3:
        if not np.all(arr[..., :3] == arr[..., :1]):
            raise StratFormatError(f"{path}: parsing map is colour-coded; expected single-channel class ids")
        arr = arr[..., 0]
    if arr.ndim != 2 or arr.dtype.kind not in "ui" or (arr.size and int(arr.min()) < 0):
        raise StratFormatError(f"{path}: parsing map must be (H, W) non-negative ids, got {arr.shape} {arr.dtype}")
    return arr.astype(np.uint16)


def _resize(img: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    h, w = img.shape[:2]
    if (w, h) == (size, size):
        return img
    if nearest:
        interp = cv2.INTER_NEAREST
    else:  # same rule as realtime.preprocess.foreground_input
        interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


# --------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------

class StratDataset:
    """A STRAT split as a sequence of network-size numpy samples (no torch needed).

    ``dataset[i]`` is a dict:

    * ``id`` (str), ``category`` (str);
    * ``background``: (S, S, 3) uint8 RGB; ``foreground``: (S, S, 4) uint8 RGBA (both images
      stretched to the square, as STRAT's loaders and the paper do);
    * ``init_vertex``: (4, 2) float32 in network-size foreground pixels, TL TR BR BL;
    * ``final_vertex``: (4, 2) float32 in network-size background pixels (same corner order);
      both mapped with :func:`realtime.geometry.resize_matrix`, the exact cv2.resize geometry;
    * ``parsing``: (S, S) uint8 our class ids (nearest resize), all ``IGNORE_INDEX`` if none;
    * ``bg_size_wh``, ``fg_size_wh``: original image sizes.

    Args:
        split_dir: the split dir or a folder above it (with ``split``).
        category: accessory category (default: dataset.json, else folder names).
        size: network size S (default: :func:`realtime.config.category_input_size`).
        skip_bad: skip malformed samples with a warning (see :attr:`skipped`).
        label_table: parsing-id table name in :data:`LABEL_TABLES` (default: dataset.json's,
            else ``strat-guess``).
        split: ``train`` / ``test`` when ``split_dir`` is the dataset root.

    Raises:
        StratFormatError: malformed split (see :func:`scan_split`).
        ValueError: the category cannot be determined, or an unknown label table.
    """

    def __init__(self, split_dir: str | Path, category: str | None = None, size: int | None = None,
                 skip_bad: bool = False, label_table: str | None = None, split: str | None = None) -> None:
        scan = scan_split(split_dir, category, skip_bad, split)
        if scan.category is None:
            raise ValueError(f"{scan.split_dir}: cannot tell the accessory category (no {DATASET_JSON}, no "
                             f"category in the folder names); pass category= one of {', '.join(CATEGORIES)}")
        self.split_dir = scan.split_dir
        self.category = scan.category
        self.size = int(size or category_input_size(self.category))
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")
        self.records = scan.records
        self.skipped = scan.skipped
        self.meta = scan.meta
        self.label_table = label_table or scan.meta.get("label_table") or DEFAULT_LABEL_TABLE
        self._lut = label_lut(self.label_table, self.category)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        """Sample ids in dataset order."""
        return [r.id for r in self.records]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.load(self.records[index])

    def load(self, rec: StratRecord) -> dict[str, Any]:
        """Read and resize one record (see the class docstring for the dict)."""
        s = self.size
        bg = read_rgb(rec.background_path)
        fg = read_rgba(rec.foreground_path, rec.foreground_mask_path)
        bg_wh = (bg.shape[1], bg.shape[0])
        fg_wh = (fg.shape[1], fg.shape[0])
        if rec.parsing_path is not None:
            raw = read_parsing(rec.parsing_path)
            if raw.shape != bg.shape[:2]:
                raise StratFormatError(f"{rec.parsing_path}: parsing map is {raw.shape[1]}x{raw.shape[0]} but the "
                                       f"background {rec.background_path} is {bg_wh[0]}x{bg_wh[1]}")
            ids = np.where(raw < 256, raw, IGNORE_INDEX).astype(np.uint8)
            parsing = _resize(self._lut[ids], s, nearest=True)
        else:
            parsing = np.full((s, s), IGNORE_INDEX, dtype=np.uint8)
        init = warp_points(resize_matrix(fg_wh, (s, s)), rec.init_vertex)
        final = warp_points(resize_matrix(bg_wh, (s, s)), rec.final_vertex)
        return {
            "id": rec.id,
            "background": np.ascontiguousarray(_resize(bg, s)),
            "foreground": np.ascontiguousarray(_resize(fg, s)),
            "init_vertex": init.astype(np.float32),
            "final_vertex": final.astype(np.float32),
            "parsing": np.ascontiguousarray(parsing),
            "bg_size_wh": bg_wh,
            "fg_size_wh": fg_wh,
            "category": self.category,
        }


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_SAFE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def composite_sample(background_rgb: np.ndarray, foreground_rgba: np.ndarray, init_vertex: np.ndarray,
                     final_vertex: np.ndarray) -> np.ndarray:
    """Ground-truth composite (paper Eq. 5): the accessory warped by init -> final onto the background.

    Args:
        background_rgb: (H, W, 3) uint8 RGB (not modified).
        foreground_rgba: (h, w, 4) uint8 RGBA accessory.
        init_vertex: (4, 2) corners in foreground pixels.
        final_vertex: (4, 2) their targets in background pixels.

    Returns:
        (H, W, 3) uint8 RGB composite.

    Raises:
        realtime.geometry.DegenerateQuadError: a quad cannot define a homography.
    """
    bg_from_fg = homography_from_quads(init_vertex, final_vertex)
    out = np.ascontiguousarray(background_rgb, dtype=np.uint8).copy()
    composite_roi(out, PreparedAccessory.from_rgba(foreground_rgba, to_bgr=False), bg_from_fg)
    return out


def _imwrite(path: Path, image: np.ndarray, params: list[int] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, params or []):
        raise OSError(f"{path}: cv2.imwrite failed")


def _check_image(name: str, img: np.ndarray, channels: int | None, shape_hw: tuple[int, int] | None = None
                 ) -> np.ndarray:
    arr = np.asarray(img)
    ok = arr.dtype == np.uint8 and (arr.ndim == 2 if channels is None else arr.ndim == 3 and arr.shape[2] == channels)
    if not ok:
        want = "(H, W)" if channels is None else f"(H, W, {channels})"
        raise ValueError(f"{name} must be {want} uint8, got {arr.shape} {arr.dtype}")
    if shape_hw is not None and arr.shape[:2] != shape_hw:
        raise ValueError(f"{name} must match the background's {shape_hw[1]}x{shape_hw[0]}, got "
                         f"{arr.shape[1]}x{arr.shape[0]}")
    return arr


def _as_jsonable_quad(quad: np.ndarray) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in quad]


class StratWriter:
    """Write one STRAT split (the format :class:`StratDataset` reads).

    Images are written by :meth:`add` immediately; ``trans_params.json`` and ``dataset.json``
    are written atomically by :meth:`flush` (every ``flush_every`` samples and on
    :meth:`close` / leaving the ``with`` block, even on error). Re-opening an existing split
    keeps its entries, so an interrupted run can resume (see :attr:`ids`).

    Args:
        split_dir: output split dir (created).
        category: accessory category.
        generator_info: JSON-able description of how the data were made (stored in dataset.json).
        flush_every: samples between automatic flushes.

    Raises:
        ValueError: ``split_dir`` already holds a split of another category or label table.
        StratFormatError: the existing trans_params.json is malformed.
    """

    def __init__(self, split_dir: str | Path, category: str, generator_info: dict[str, Any] | None = None,
                 flush_every: int = 256) -> None:
        self.split_dir = Path(split_dir)
        self.category = check_category(category)
        self.flush_every = max(1, int(flush_every))
        meta = read_dataset_meta(self.split_dir)
        if meta.get("category") not in (None, category):
            raise ValueError(f"{self.split_dir / DATASET_JSON}: existing split is {meta['category']!r}, "
                             f"cannot add {category!r} samples")
        if meta.get("label_table") not in (None, WRITER_LABEL_TABLE):
            raise ValueError(f"{self.split_dir / DATASET_JSON}: existing split uses label table "
                             f"{meta['label_table']!r}, not {WRITER_LABEL_TABLE!r}")
        self.generator_info = generator_info if generator_info is not None else meta.get("generator", {})
        params_path = self.split_dir / TRANS_PARAMS
        self._entries: dict[str, Any] = _load_params(params_path) if params_path.is_file() else {}
        self._pending = 0
        self.split_dir.mkdir(parents=True, exist_ok=True)

    @property
    def ids(self) -> set[str]:
        """Ids already in the split (from earlier runs or this one)."""
        return set(self._entries)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, sample_id: str, background_rgb: np.ndarray, foreground_rgba: np.ndarray,
            init_vertex: np.ndarray, final_vertex: np.ndarray, parsing: np.ndarray | None = None,
            composite_rgb: np.ndarray | None = None) -> None:
        """Write one sample (replacing one with the same id).

        Args:
            sample_id: file-name-safe id (letters, digits, ``_ . -``).
            background_rgb: (H, W, 3) uint8, the person without the accessory.
            foreground_rgba: (h, w, 4) uint8 accessory.
            init_vertex: (4, 2) accessory corners in foreground pixels (any order; stored canonical).
            final_vertex: (4, 2) targets in background pixels, paired with ``init_vertex``.
            parsing: optional (H, W) uint8 parsing map with our class ids.
            composite_rgb: optional (H, W, 3) uint8 composite, for inspection.

        Raises:
            ValueError: bad id or image shapes; DegenerateQuadError for an unusable quad pair.
        """
        if not isinstance(sample_id, str) or not _SAFE_ID.match(sample_id):
            raise ValueError(f"sample id must match {_SAFE_ID.pattern}, got {sample_id!r}")
        bg = _check_image("background_rgb", background_rgb, 3)
        fg = _check_image("foreground_rgba", foreground_rgba, 4)
        shape_hw = bg.shape[:2]
        init = np.asarray(init_vertex, dtype=np.float64).reshape(4, 2)
        final = np.asarray(final_vertex, dtype=np.float64).reshape(4, 2)
        perm = canonical_permutation(init)
        init, final = init[perm], final[perm]
        bg_from_fg = homography_from_quads(init, final)  # validates both quads
        d = self.split_dir
        _imwrite(d / BACKGROUND_DIR / f"{sample_id}.jpg", cv2.cvtColor(bg, cv2.COLOR_RGB2BGR),
                 [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        _imwrite(d / FOREGROUND_DIR / f"{sample_id}.png", cv2.cvtColor(fg, cv2.COLOR_RGBA2BGRA))
        if parsing is not None:
            _imwrite(d / PARSING_DIR / f"{sample_id}.png", _check_image("parsing", parsing, None, shape_hw))
        if composite_rgb is not None:
            comp = _check_image("composite_rgb", composite_rgb, 3, shape_hw)
            _imwrite(d / COMPOSITE_DIR / f"{sample_id}.jpg", cv2.cvtColor(comp, cv2.COLOR_RGB2BGR),
                     [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        self._entries[sample_id] = {
            "init_vertex": _as_jsonable_quad(init),
            "final_vertex": _as_jsonable_quad(final),
            MATRIX_KEY: [[float(v) for v in row] for row in bg_from_fg],
        }
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write trans_params.json and dataset.json atomically."""
        params = json.dumps({k: self._entries[k] for k in sorted(self._entries)}, indent=1)
        atomic_write_bytes(self.split_dir / TRANS_PARAMS, params.encode())
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "category": self.category,
            "label_table": WRITER_LABEL_TABLE,
            "classes": list(category_classes(self.category)),
            "ignore_index": IGNORE_INDEX,
            "count": len(self._entries),
            "generator": self.generator_info,
        }
        atomic_write_bytes(self.split_dir / DATASET_JSON, (json.dumps(meta, indent=2) + "\n").encode())
        self._pending = 0

    def close(self) -> None:
        """Flush; the writer may still be used afterwards (another close flushes again)."""
        self.flush()

    def __enter__(self) -> "StratWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = [
    "StratFormatError", "StratRecord", "SplitScan", "StratDataset", "StratWriter", "LABEL_TABLES",
    "DEFAULT_LABEL_TABLE", "WRITER_LABEL_TABLE", "label_lut", "label_group", "resolve_split_dir", "scan_split",
    "read_split", "read_dataset_meta", "read_rgb", "read_rgba", "read_parsing", "composite_sample",
    "canonical_permutation",
]
