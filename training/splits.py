"""The fixed train/test split of the real face photos (Helen, FMD), by identity.

Pseudo-STRAT data (:mod:`training.pseudo_strat`) are built from real photos; a person must
never appear on both sides of the split, or test numbers measure memorisation. The split is
computed ONCE by :func:`build_face_split` and recorded in ``training/splits/faces_split_v1.json``
(file names only, no image data), which is committed; builds read it with :func:`load_split`.

Grouping (a group goes to one side as a whole):

* **Helen** ``<id>_<n>.jpg``: ``<id>`` is the source (Flickr) photo; faces cut from the same
  photo share it -> group ``helen:<id>``.
* **FMD** ``<0|1>_0_<person>_NNNN.jpg``: the name embeds the person -> ``fmd:person:<person>``.
  Every other FMD file (plain numbers ``N.jpg``, ``augmented_image_N.jpg``, ``... (another
  copy).jpg``) reveals no identity -> its own group ``fmd:file:<stem>``, merged by image
  similarity (below).
* **Near-duplicates** (``augmented_image_*`` are rotated / flipped / noised copies of other FMD
  photos on black backgrounds, e.g. ``augmented_image_150`` = ``170``): each photo with a face
  in the teacher cache gets a signature, the grey face patch aligned by a similarity transform
  on the two iris centres and the mouth centre (so rotation, scale and mirroring do not matter:
  the patch is compared with the other's and with its mirror image). Two photos are linked when
  the normalised correlation is >= :data:`DUP_CORR_STRICT`, or >= :data:`DUP_CORR_LOOSE` and
  their mesh shapes agree (:data:`DUP_SHAPE_MAX`); linked groups are merged (union-find).
  Links between two DIFFERENT named FMD persons are not made: their names already say they are
  different people (similar-looking celebrities correlate up to ~0.93 at this patch size).
* ``augmented_image_*`` files whose group holds no other (non-augmented) photo (their source
  was held back, or the copy is too distorted to match) are **excluded** from both sides, since
  their source cannot be ruled out of the other side.

Assignment: groups in the order of ``sha256(f"{seed}:{group}")``; a group goes to test while
every folder it touches stays within its quota ``round(test_fraction * photos in the folder)``,
so both folders are represented in test at about ``test_fraction``.

Limitation: identities are only known from names and near-duplicates; two different photos of
the same unnamed person (two FMD ``N.jpg``, or two Helen ids) cannot be detected.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from realtime.config import IMAGE_SUFFIXES
from realtime.io import atomic_write_bytes
from training.teacher.cache import FACE_IRIS_L_CENTER, FACE_IRIS_R_CENTER, iter_teacher_cache

log = logging.getLogger(__name__)

SPLIT_VERSION = "v1"
SPLITS_DIR = Path(__file__).resolve().with_name("splits")
DEFAULT_SPLIT_FILE = SPLITS_DIR / f"faces_split_{SPLIT_VERSION}.json"
#: Share of each folder's photos in test.
DEFAULT_TEST_FRACTION = 0.15
SPLITS = ("train", "test")
EXCLUDED = "excluded"

#: Aligned face patch for the near-duplicate signature: side (px) and where the two iris
#: centres and the mouth centre go (a canonical frontal layout, eyes 20 px apart).
SIGNATURE_SIDE = 48
_SIG_DST_XY = np.float32([[14.0, 18.0], [34.0, 18.0], [24.0, 36.0]])
_MOUTH_INNER_TOP, _MOUTH_INNER_BOTTOM = 13, 14  # face-mesh inner-lip midpoints
#: Correlation of aligned patches that alone marks a near-duplicate. Measured on Helen + FMD
#: (2002 photos): of the pairs >= 0.93 between differently named identities, 261 of 268
#: involve an ``augmented_image_*`` copy; the rest are similar-looking named celebrities.
DUP_CORR_STRICT = 0.93
#: Lower correlation accepted when the meshes also agree (augmented copies carry noise,
#: colour changes and black corners that lower the correlation, but not the mesh shape).
DUP_CORR_LOOSE = 0.85
#: Max shape distance (``sqrt(1 - |<z1, z2>|^2)`` of the centred, unit-RMS 2-D meshes as
#: complex vectors, i.e. the residual after the best similarity; mirror allowed). Copies of one
#: photo: <= 0.03; the 1st percentile over all pairs of different photos is 0.053.
DUP_SHAPE_MAX = 0.03

_HELEN_RE = re.compile(r"^(\d+)_\d+$")
_FMD_PERSON_RE = re.compile(r"^[01]_0_([a-z]+)_\d+$")
_AUGMENTED_RE = re.compile(r"^augmented_image_\d+$")


class SplitError(ValueError):
    """A split file is malformed or inconsistent; the message names the file and the key."""


def identity_key(folder: str, file_name: str) -> str:
    """Identity group a photo belongs to from its name alone (see the module docstring).

    Args:
        folder: Photo folder name (``helen``, ``fmd``, or any other).
        file_name: File name inside it.

    Returns:
        ``helen:<id>``, ``fmd:person:<person>``, or ``<folder>:file:<stem>`` when the name
        reveals nothing.
    """
    stem = Path(file_name).stem
    if folder == "helen":
        m = _HELEN_RE.match(stem)
        if m:
            return f"helen:{m.group(1)}"
    if folder == "fmd":
        m = _FMD_PERSON_RE.match(stem)
        if m:
            return f"fmd:person:{m.group(1)}"
    return f"{folder}:file:{stem}"


def is_named(key: str) -> bool:
    """True when the identity comes from a person name (two such keys differ = two people)."""
    return key.startswith("fmd:person:")


def is_augmented(file_name: str) -> bool:
    """True for FMD's ``augmented_image_N`` copies."""
    return bool(_AUGMENTED_RE.match(Path(file_name).stem))


# --------------------------------------------------------------------------------------
# Near-duplicate signatures
# --------------------------------------------------------------------------------------

def face_signature(gray: np.ndarray, landmarks_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation/scale-invariant appearance and shape signature of one face.

    Args:
        gray: (H, W) uint8 photo.
        landmarks_xy: (478, 2) face-mesh points in photo pixels.

    Returns:
        ``(patch, shape)``: (S*S,) float32 zero-mean unit-norm aligned grey patch, and
        (468,) complex128 centred unit-RMS mesh (x + iy).
    """
    pts = np.asarray(landmarks_xy, np.float64)
    src = np.float32([pts[FACE_IRIS_R_CENTER], pts[FACE_IRIS_L_CENTER],
                      0.5 * (pts[_MOUTH_INNER_TOP] + pts[_MOUTH_INNER_BOTTOM])])
    mat, _ = cv2.estimateAffinePartial2D(src, _SIG_DST_XY)
    if mat is None:
        raise ValueError("degenerate face landmarks: cannot align the signature patch")
    s = SIGNATURE_SIDE
    patch = cv2.warpAffine(gray, mat, (s, s), flags=cv2.INTER_AREA).astype(np.float32).ravel()
    patch -= patch.mean()
    patch /= float(np.linalg.norm(patch)) + 1e-6
    mesh = pts[:468, 0] + 1j * pts[:468, 1]
    mesh = mesh - mesh.mean()
    mesh /= np.sqrt(np.mean(np.abs(mesh) ** 2)) + 1e-12
    return patch, mesh


def _mirror_permutation(meshes: np.ndarray) -> np.ndarray:
    """Mesh index permutation of the left-right mirror, from the mean shape (nearest point)."""
    mean = meshes.mean(axis=0)
    mirrored = -mean.real + 1j * mean.imag
    return np.array([int(np.argmin(np.abs(mean - m))) for m in mirrored])


def duplicate_links(patches: np.ndarray, meshes: np.ndarray) -> np.ndarray:
    """Boolean (N, N) matrix of near-duplicate pairs (symmetric, False on the diagonal).

    Args:
        patches: (N, S*S) signatures from :func:`face_signature`.
        meshes: (N, 468) complex shapes from :func:`face_signature`.
    """
    n = len(patches)
    if n == 0:
        return np.zeros((0, 0), bool)
    s = SIGNATURE_SIDE
    flipped = patches.reshape(n, s, s)[:, :, ::-1].reshape(n, -1)
    corr = np.maximum(patches @ patches.T, patches @ flipped.T)
    perm = _mirror_permutation(meshes)
    mirror = -meshes[:, perm].real + 1j * meshes[:, perm].imag
    k = meshes.shape[1]

    def shape_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        g = np.abs(a.conj() @ b.T) / k
        return np.sqrt(np.clip(1.0 - g ** 2, 0.0, 1.0))

    dist = np.minimum(shape_dist(meshes, meshes), shape_dist(meshes, mirror))
    corr = np.maximum(corr, corr.T)
    dist = np.minimum(dist, dist.T)
    links = (corr >= DUP_CORR_STRICT) | ((corr >= DUP_CORR_LOOSE) & (dist <= DUP_SHAPE_MAX))
    np.fill_diagonal(links, False)
    return links


# --------------------------------------------------------------------------------------
# Grouping and assignment (pure: no files)
# --------------------------------------------------------------------------------------

class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # Deterministic representative: the smaller key.
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo


@dataclass
class FaceSplit:
    """A recorded split.

    Attributes:
        files: ``{(folder, file_name): (split, group)}``; split is ``train``, ``test`` or
            ``excluded``; group the merged identity group.
        meta: Everything else in the file (version, seed, rules, counts).
        path: Where it was loaded from (None if built in memory).
    """

    files: dict[tuple[str, str], tuple[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def split_of(self, folder: str, file_name: str) -> str | None:
        """``train`` / ``test`` / ``excluded``, or None when the photo is not in the split."""
        entry = self.files.get((folder, file_name))
        return None if entry is None else entry[0]

    def group_of(self, folder: str, file_name: str) -> str | None:
        """The photo's identity group, or None when it is not in the split."""
        entry = self.files.get((folder, file_name))
        return None if entry is None else entry[1]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{folder: {split: photos}}``."""
        out: dict[str, Counter] = defaultdict(Counter)
        for (folder, _), (split, _) in self.files.items():
            out[folder][split] += 1
        return {f: dict(sorted(c.items())) for f, c in sorted(out.items())}

    def check(self) -> None:
        """Raises SplitError when a group or a name identity lies on both sides."""
        sides: dict[str, set[str]] = defaultdict(set)
        for (folder, name), (split, group) in self.files.items():
            if split not in (*SPLITS, EXCLUDED):
                raise SplitError(f"{self.path}: {folder}/{name}: unknown split {split!r}")
            if split == EXCLUDED:
                continue
            sides[group].add(split)
            sides["name:" + identity_key(folder, name)].add(split)
        both = sorted(k for k, s in sides.items() if len(s) > 1)
        if both:
            raise SplitError(f"{self.path}: identities on both sides of the split: {', '.join(both[:10])}")


def group_photos(files: Sequence[tuple[str, str]], links: Iterable[tuple[int, int]] = ()) -> dict[tuple[str, str], str]:
    """Merge name identities and near-duplicate links into groups.

    Args:
        files: ``(folder, file_name)`` per photo.
        links: Index pairs into ``files`` that are near-duplicates. A link between two
            differently NAMED identities is ignored (names already tell them apart).

    Returns:
        ``{(folder, file_name): group}`` (a group is its smallest identity key).
    """
    keys = [identity_key(f, n) for f, n in files]
    uf = _UnionFind(keys)
    for i, j in links:
        if is_named(keys[i]) and is_named(keys[j]) and keys[i] != keys[j]:
            continue
        uf.union(keys[i], keys[j])
    return {fn: uf.find(k) for fn, k in zip(files, keys)}


def _hash_order(group: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def assign_splits(groups: dict[tuple[str, str], str], test_fraction: float = DEFAULT_TEST_FRACTION,
                  seed: int = 0, excluded: Iterable[tuple[str, str]] = ()) -> dict[tuple[str, str], str]:
    """Assign whole groups to train / test with a per-folder test quota.

    Args:
        groups: ``{(folder, file_name): group}`` from :func:`group_photos`.
        test_fraction: Target share of each folder's (non-excluded) photos in test.
        seed: Changes the hash order of the groups.
        excluded: Photos marked ``excluded`` (no side).

    Returns:
        ``{(folder, file_name): "train" | "test" | "excluded"}``.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    excluded = set(excluded)
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for fn, g in groups.items():
        if fn not in excluded:
            members[g].append(fn)
    folder_total = Counter(f for f, _ in (fn for fns in members.values() for fn in fns))
    quota = {f: int(round(test_fraction * n)) for f, n in folder_total.items()}
    in_test: Counter = Counter()
    out = {fn: EXCLUDED for fn in excluded}
    for g in sorted(members, key=lambda g: _hash_order(g, seed)):
        per_folder = Counter(f for f, _ in members[g])
        to_test = all(in_test[f] + c <= quota[f] for f, c in per_folder.items())
        if to_test:
            in_test.update(per_folder)
        for fn in members[g]:
            out[fn] = "test" if to_test else "train"
    return out


# --------------------------------------------------------------------------------------
# Building from photos + teacher cache, and the file
# --------------------------------------------------------------------------------------

def list_photos(photo_dir: str | Path) -> list[str]:
    """Photo file names in a folder (sorted)."""
    d = Path(photo_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"photo folder not found: {d}")
    return sorted(p.name for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def build_face_split(photos_dirs: Sequence[str | Path], cache_dir: str | Path,
                     test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0,
                     progress: bool = True) -> FaceSplit:
    """Compute the identity-grouped split of the photo folders (see the module docstring).

    Args:
        photos_dirs: Photo folders (their base names are the folder keys, e.g. ``helen``).
        cache_dir: Teacher cache with ``<folder>/<stem>.json`` records (faces for signatures).
        test_fraction: Share of each folder in test.
        seed: Hash seed of the group order.
        progress: Show a tqdm bar while computing signatures.

    Returns:
        The split (checked: no group on both sides).
    """
    from tqdm import tqdm  # lazy: only the builder shows a bar

    files: list[tuple[str, str]] = []
    for d in photos_dirs:
        files += [(Path(d).name, n) for n in list_photos(d)]
    index = {fn: i for i, fn in enumerate(files)}
    sig_idx, patches, meshes = [], [], []
    records = [r for f in sorted({f for f, _ in files}) if (Path(cache_dir) / f).is_dir()
               for r in iter_teacher_cache(cache_dir, [f])]
    for rec in tqdm(records, desc="face signatures", unit="img", disable=not progress):
        fn = (rec.json_path.parent.name, rec.image_path.name)
        if fn not in index or rec.landmarks is None:
            continue
        photo = Path(next(str(d) for d in photos_dirs if Path(d).name == fn[0])) / fn[1]
        gray = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise FileNotFoundError(f"cannot read photo {photo}")
        p, m = face_signature(gray, rec.landmarks[:, :2])
        sig_idx.append(index[fn])
        patches.append(p)
        meshes.append(m)
    links_mat = duplicate_links(np.array(patches), np.array(meshes))
    links = [(sig_idx[i], sig_idx[j]) for i, j in zip(*np.nonzero(np.triu(links_mat, 1)))]
    groups = group_photos(files, links)
    has_source = {g for fn, g in groups.items() if not is_augmented(fn[1])}
    excluded = [fn for fn in files if is_augmented(fn[1]) and groups[fn] not in has_source]
    splits = assign_splits(groups, test_fraction, seed, excluded)
    n_merged = sum(1 for fn in files if groups[fn] != identity_key(*fn))
    meta = {
        "version": SPLIT_VERSION,
        "created_by": "training.splits.build_face_split",
        "test_fraction": test_fraction,
        "seed": seed,
        "rules": {
            "helen": "group by <id> of <id>_<n>.jpg",
            "fmd": "group by <person> of <0|1>_0_<person>_NNNN.jpg; other names: one group per file",
            "near_duplicates": {"signature": f"{SIGNATURE_SIDE}px grey patch aligned on irises + mouth, "
                                             "mirror-invariant", "corr_strict": DUP_CORR_STRICT,
                                "corr_loose": DUP_CORR_LOOSE, "shape_max": DUP_SHAPE_MAX,
                                "named_vs_named": "never linked"},
            "excluded": "augmented_image_* whose group holds no non-augmented photo",
            "assignment": "groups in sha256(seed:group) order, test while each folder is within "
                          "round(test_fraction * folder size)",
        },
        "stats": {"photos": len(files), "with_signature": len(sig_idx), "duplicate_links": len(links),
                  "photos_in_merged_groups": n_merged, "excluded": len(excluded)},
    }
    split = FaceSplit({fn: (splits[fn], groups[fn]) for fn in files}, meta)
    split.check()
    split.meta["counts"] = split.counts()
    return split


def save_split(split: FaceSplit, path: str | Path) -> Path:
    """Write the split JSON atomically (one file per line, sorted, for readable diffs)."""
    path = Path(path)
    folders: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for (folder, name), (s, g) in sorted(split.files.items()):
        folders[folder][name] = [s, g]
    meta = json.dumps(split.meta, indent=1, sort_keys=True)
    lines = []
    for folder in sorted(folders):
        rows = ",\n".join(f"  {json.dumps(n)}: {json.dumps(v)}" for n, v in folders[folder].items())
        lines.append(f" {json.dumps(folder)}: {{\n{rows}\n }}")
    text = "{\n\"meta\": " + meta + ",\n\"files\": {\n" + ",\n".join(lines) + "\n}\n}\n"
    json.loads(text)  # guard: what we write must parse
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())
    return path


def load_split(path: str | Path = DEFAULT_SPLIT_FILE) -> FaceSplit:
    """Read and check a split file.

    Raises:
        FileNotFoundError: No such file.
        SplitError: Malformed JSON, a bad entry, or an identity on both sides.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path} (build it with "
                                f"`python -m training.splits --photos DIR... --teacher-cache DIR --out {path}`)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SplitError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("files"), dict):
        raise SplitError(f"{path}: expected an object with key 'files'")
    files = {}
    for folder, entries in raw["files"].items():
        if not isinstance(entries, dict):
            raise SplitError(f"{path}: files.{folder} must be an object")
        for name, val in entries.items():
            if not (isinstance(val, list) and len(val) == 2 and all(isinstance(v, str) for v in val)):
                raise SplitError(f"{path}: files.{folder}.{name} must be [split, group], got {val!r}")
            files[(folder, name)] = (val[0], val[1])
    split = FaceSplit(files, dict(raw.get("meta", {})), path)
    split.check()
    return split


def hash_split(folder: str, file_name: str, test_fraction: float, seed: int = 0) -> str:
    """Split of a photo NOT in a split file: by its name identity's hash (stable, no leakage
    between photos of one named identity)."""
    h = int(_hash_order(identity_key(folder, file_name), seed)[:12], 16) / float(16 ** 12)
    return "test" if h < test_fraction else "train"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.splits``: build and write a split file."""
    parser = argparse.ArgumentParser(prog="python -m training.splits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", nargs="+", required=True, type=Path, help="photo folders")
    parser.add_argument("--teacher-cache", required=True, type=Path, help="teacher cache folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_SPLIT_FILE)
    parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    split = build_face_split(args.photos, args.teacher_cache, args.test_fraction, args.seed)
    save_split(split, args.out)
    print(f"wrote {args.out}: {json.dumps(split.meta['counts'])}; {json.dumps(split.meta['stats'])}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
