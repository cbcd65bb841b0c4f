"""Read the MediaPipe teacher cache (and run the teacher) from the MAIN environment.

The teacher itself (``mediapipe_teacher.py``) runs in its own virtualenv,
created by ``bash training/teacher/setup_env.sh [VENV_DIR]``, because
mediapipe pins numpy<2. This module imports only numpy and cv2: it starts the
teacher with :func:`run_teacher` (a subprocess using the teacher venv's
python) and loads what it wrote with :func:`load_teacher_record` /
:func:`iter_teacher_cache`.

Cache layout (written by the teacher)::

    CACHE_DIR/summary.json                 counts per folder and reject reason
    CACHE_DIR/<folder>/<stem>.json         one record per photo (schema below)
    CACHE_DIR/<folder>/<stem>_seg.png      person probability, 8-bit, photo size

Record JSON (``schema_version`` 1)::

    image: str                 absolute photo path
    size_wh: [W, H]            photo size as cv2.imread decodes it
    faces: [ {landmarks_xyz: 478 x [x, y, z], bbox_xyxy: [x0, y0, x1, y1],
              bbox_outside_frac: float}, ... ]   largest bbox area first
    head_pose: null | {yaw_deg, pitch_deg, roll_deg, R: 3x3,
                       translation_xyz: [x, y, z], scale_px, method}
    pose_convention: str       axes/sign conventions of head_pose
    pose: null | {landmarks_xyzv: 33 x [x, y, z, visibility]}
    seg: str                   seg PNG file name, relative to the JSON's folder
    face_detect_pad_px: int    > 0: face found only on a black-padded copy
    reject: null | "no_face" | "multiple_faces_similar_size" |
            "face_too_small" | "extreme_crop"
    reject_all: [str]          every reason that applies, priority order
    teacher: {name: "mediapipe", version, models: {...}}
    timing_ms: {face_mesh, pose, seg}

Units: x, y in pixels of the photo (x right, y down); z in the same pixel
scale (MediaPipe's normalised z times the image width; negative = closer to
the camera than the face centre, for pose than the hips' midpoint).

Head pose (see ``pose_convention`` in each record): ``R``'s columns are the
head axes in camera coordinates (x right, y down, z away from the camera);
an upright frontal face has R = I. yaw > 0: nose toward image right; pitch >
0: looking up; roll > 0: eye line clockwise on screen.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
TEACHER_SCRIPT = Path(__file__).resolve().with_name("mediapipe_teacher.py")
SETUP_SCRIPT_REL = "training/teacher/setup_env.sh"
DEFAULT_TEACHER_VENV = REPO_ROOT / ".venv-teacher"
TEACHER_VENV_ENV = "TEACHER_VENV"  # environment variable overriding the default venv

NUM_FACE_LANDMARKS = 478  # 468 mesh + 10 iris points (refine_landmarks=True)
NUM_POSE_LANDMARKS = 33
REJECT_REASONS = ("no_face", "multiple_faces_similar_size", "face_too_small", "extreme_crop")

# ---------------------------------------------------------------------------
# Landmark indices.
# Face mesh: MediaPipe's canonical face-mesh index map
# (mediapipe/modules/face_geometry/data/canonical_face_model_uv_visualization.png;
# groups in mediapipe/python/solutions/face_mesh_connections.py, e.g.
# FACEMESH_RIGHT_EYE, FACEMESH_LEFT_IRIS, FACEMESH_FACE_OVAL).
# Pose: mediapipe/python/solutions/pose.py, enum PoseLandmark.
#
# LEFT/RIGHT ARE THE SUBJECT'S. In a non-mirrored photo the subject's RIGHT
# side appears on the IMAGE LEFT (smaller x) and the subject's LEFT side on the
# image right. (A selfie preview that is mirrored flips this.) Checked on the
# Helen/FMD cache: for faces with |yaw| < 20 deg, x[33] < x[263] and
# x[468] < x[473]; for pose, x[12] < x[11].
# ---------------------------------------------------------------------------
FACE_EYE_R_OUTER = 33  # subject's right eye, outer (temporal) corner; image left
FACE_EYE_R_INNER = 133  # subject's right eye, inner (nasal) corner
FACE_EYE_L_OUTER = 263  # subject's left eye, outer corner; image right
FACE_EYE_L_INNER = 362  # subject's left eye, inner corner
FACE_IRIS_R_CENTER = 468  # subject's right iris centre (ring 469-472)
FACE_IRIS_L_CENTER = 473  # subject's left iris centre (ring 474-477)
FACE_IRIS_R_RING = (469, 470, 471, 472)
FACE_IRIS_L_RING = (474, 475, 476, 477)
FACE_BROW_R_TOP = 105  # subject's right eyebrow, top contour middle (70-63-105-66-107)
FACE_BROW_L_TOP = 334  # subject's left eyebrow, top contour middle (300-293-334-296-336)
FACE_FOREHEAD_TOP = 10  # top of the face oval, mid-forehead: hairline proxy
FACE_CHIN = 152  # bottom of the face oval
FACE_NOSE_TIP = 1
FACE_NOSE_BRIDGE = 168  # between the eyes: glasses bridge rest point
FACE_TEMPLE_R = 127  # face oval at eye height, subject's right (image left)
FACE_TEMPLE_L = 356  # face oval at eye height, subject's left (image right)
FACE_CHEEK_R = 234  # widest face-oval point, subject's right (image left)
FACE_CHEEK_L = 454  # widest face-oval point, subject's left (image right)

POSE_NOSE = 0
POSE_EAR_L = 7  # subject's left ear (image right)
POSE_EAR_R = 8
POSE_MOUTH_L = 9
POSE_MOUTH_R = 10
POSE_SHOULDER_L = 11  # subject's left shoulder (image right)
POSE_SHOULDER_R = 12
POSE_HIP_L = 23
POSE_HIP_R = 24


class TeacherCacheError(ValueError):
    """A cache record is malformed; the message names the file and the key."""


class TeacherEnvMissingError(FileNotFoundError):
    """The teacher virtualenv does not exist; the message gives the setup command."""


class TeacherRunError(RuntimeError):
    """The teacher subprocess exited with a non-zero code."""


@dataclass(frozen=True)
class TeacherFace:
    """One detected face.

    Attributes:
        landmarks_xyz: (478, 3) float32, pixels (z on the x pixel scale).
        bbox_xyxy: (4,) float32 bbox of the landmarks (may exceed the image).
        bbox_outside_frac: Fraction of the bbox area outside the image.
    """

    landmarks_xyz: np.ndarray
    bbox_xyxy: np.ndarray
    bbox_outside_frac: float


@dataclass(frozen=True)
class HeadPose:
    """Head rotation of the largest face (convention in the module docstring).

    Attributes:
        yaw_deg: > 0: nose toward image right.
        pitch_deg: > 0: looking up.
        roll_deg: > 0: eye line clockwise on screen.
        R: (3, 3) float32, columns = head x/y/z axes in camera coordinates.
        translation_xyz: (3,) float32, midpoint of the outer eye corners, pixels.
        scale_px: 3D distance between the outer eye corners, pixels.
    """

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    R: np.ndarray
    translation_xyz: np.ndarray
    scale_px: float


@dataclass
class TeacherRecord:
    """One photo's teacher output.

    Attributes:
        json_path: The record file.
        image_path: The photo (absolute).
        size_wh: Photo ``(W, H)``.
        faces: All faces, largest bbox first.
        landmarks: (478, 3) float32 of the largest face, or None.
        pose_landmarks: (33, 4) float32 ``x, y, z, visibility`` or None.
        head_pose: Head pose of the largest face, or None.
        reject: Primary reject reason or None (usable).
        reject_all: Every applicable reason.
        seg_path: The person-probability PNG.
        face_detect_pad_px: > 0 when the face was found only on a padded copy.
        pose_convention: The record's head-pose convention text.
        teacher: Teacher name/version/models.
    """

    json_path: Path
    image_path: Path
    size_wh: tuple[int, int]
    faces: list[TeacherFace]
    landmarks: np.ndarray | None
    pose_landmarks: np.ndarray | None
    head_pose: HeadPose | None
    reject: str | None
    reject_all: tuple[str, ...]
    seg_path: Path
    face_detect_pad_px: int = 0
    pose_convention: str = ""
    teacher: dict[str, Any] = field(default_factory=dict)
    _seg: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """True when the teacher found no reason to reject the photo."""
        return self.reject is None

    @property
    def seg_mask(self) -> np.ndarray:
        """Person probability, (H, W) float32 in [0, 1], loaded on first use.

        Raises:
            TeacherCacheError: The PNG is missing, unreadable or of the wrong size.
        """
        if self._seg is None:
            img = cv2.imread(str(self.seg_path), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise TeacherCacheError(f"{self.json_path}: key 'seg': cannot read {self.seg_path}")
            if img.ndim != 2 or img.dtype != np.uint8:
                raise TeacherCacheError(
                    f"{self.json_path}: key 'seg': {self.seg_path} must be 8-bit grey, "
                    f"got shape {img.shape} dtype {img.dtype}"
                )
            if (img.shape[1], img.shape[0]) != self.size_wh:
                raise TeacherCacheError(
                    f"{self.json_path}: key 'seg': {self.seg_path} is {img.shape[1]}x{img.shape[0]}, "
                    f"size_wh is {self.size_wh[0]}x{self.size_wh[1]}"
                )
            self._seg = img.astype(np.float32) / 255.0
        return self._seg


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------
def _get(obj: dict[str, Any], key: str, path: Path, where: str = "") -> Any:
    """Returns ``obj[key]`` or raises an error naming the file and the key."""
    if not isinstance(obj, dict):
        raise TeacherCacheError(f"{path}: '{where or 'record'}' must be an object, got {type(obj).__name__}")
    if key not in obj:
        raise TeacherCacheError(f"{path}: missing key '{where + '.' if where else ''}{key}'")
    return obj[key]


def _array(value: Any, shape: tuple[int, ...], path: Path, key: str) -> np.ndarray:
    """Converts ``value`` to float32 of an exact shape or raises naming the key."""
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TeacherCacheError(f"{path}: key '{key}' is not numeric: {exc}") from exc
    if arr.shape != shape:
        raise TeacherCacheError(f"{path}: key '{key}' has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise TeacherCacheError(f"{path}: key '{key}' has non-finite values")
    return arr


def load_teacher_record(json_path: str | Path) -> TeacherRecord:
    """Loads and validates one record written by ``mediapipe_teacher.py``.

    The segmentation PNG is not read here (see :attr:`TeacherRecord.seg_mask`).

    Args:
        json_path: ``CACHE_DIR/<folder>/<stem>.json``.

    Returns:
        The record with typed numpy arrays.

    Raises:
        TeacherCacheError: Unreadable JSON, a missing key or a wrong shape;
            the message names the file and the key.
    """
    path = Path(json_path)
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except json.JSONDecodeError as exc:
        raise TeacherCacheError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise TeacherCacheError(f"{path}: top level must be an object, got {type(raw).__name__}")

    size = _get(raw, "size_wh", path)
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise TeacherCacheError(f"{path}: key 'size_wh' must be [W, H] positive ints, got {size!r}")
    size_wh = (int(size[0]), int(size[1]))

    faces_raw = _get(raw, "faces", path)
    if not isinstance(faces_raw, list):
        raise TeacherCacheError(f"{path}: key 'faces' must be a list")
    faces = []
    for i, f in enumerate(faces_raw):
        where = f"faces[{i}]"
        faces.append(
            TeacherFace(
                landmarks_xyz=_array(
                    _get(f, "landmarks_xyz", path, where), (NUM_FACE_LANDMARKS, 3), path, f"{where}.landmarks_xyz"
                ),
                bbox_xyxy=_array(_get(f, "bbox_xyxy", path, where), (4,), path, f"{where}.bbox_xyxy"),
                bbox_outside_frac=float(f.get("bbox_outside_frac", 0.0)),
            )
        )

    hp_raw = _get(raw, "head_pose", path)
    head_pose = None
    if hp_raw is not None:
        head_pose = HeadPose(
            yaw_deg=float(_get(hp_raw, "yaw_deg", path, "head_pose")),
            pitch_deg=float(_get(hp_raw, "pitch_deg", path, "head_pose")),
            roll_deg=float(_get(hp_raw, "roll_deg", path, "head_pose")),
            R=_array(_get(hp_raw, "R", path, "head_pose"), (3, 3), path, "head_pose.R"),
            translation_xyz=_array(
                _get(hp_raw, "translation_xyz", path, "head_pose"), (3,), path, "head_pose.translation_xyz"
            ),
            scale_px=float(_get(hp_raw, "scale_px", path, "head_pose")),
        )

    pose_raw = _get(raw, "pose", path)
    pose_landmarks = None
    if pose_raw is not None:
        pose_landmarks = _array(
            _get(pose_raw, "landmarks_xyzv", path, "pose"), (NUM_POSE_LANDMARKS, 4), path, "pose.landmarks_xyzv"
        )

    reject = _get(raw, "reject", path)
    if reject is not None and reject not in REJECT_REASONS:
        raise TeacherCacheError(f"{path}: key 'reject' is {reject!r}, expected null or one of {REJECT_REASONS}")
    seg_name = _get(raw, "seg", path)
    if not isinstance(seg_name, str) or not seg_name:
        raise TeacherCacheError(f"{path}: key 'seg' must be a file name, got {seg_name!r}")

    return TeacherRecord(
        json_path=path,
        image_path=Path(_get(raw, "image", path)),
        size_wh=size_wh,
        faces=faces,
        landmarks=faces[0].landmarks_xyz if faces else None,
        pose_landmarks=pose_landmarks,
        head_pose=head_pose,
        reject=reject,
        reject_all=tuple(raw.get("reject_all", [] if reject is None else [reject])),
        seg_path=path.parent / seg_name,
        face_detect_pad_px=int(raw.get("face_detect_pad_px", 0)),
        pose_convention=str(raw.get("pose_convention", "")),
        teacher=dict(_get(raw, "teacher", path)),
    )


def iter_teacher_cache(
    cache_dir: str | Path,
    folders: Sequence[str] | None = None,
    accepted_only: bool = False,
) -> Iterator[TeacherRecord]:
    """Yields every record in a cache, folder by folder, sorted by name.

    Args:
        cache_dir: The teacher's ``--out`` folder.
        folders: Only these subfolders (e.g. ``["helen"]``); all when None.
        accepted_only: Skip records with a reject reason.

    Yields:
        Records.

    Raises:
        FileNotFoundError: ``cache_dir`` or a requested folder is missing.
        TeacherCacheError: A malformed record.
    """
    root = Path(cache_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"teacher cache {root} does not exist; build it with run_teacher()")
    subs = sorted(p for p in root.iterdir() if p.is_dir()) if folders is None else [root / f for f in folders]
    for sub in subs:
        if not sub.is_dir():
            raise FileNotFoundError(f"teacher cache folder {sub} does not exist")
        for js in sorted(sub.glob("*.json")):
            rec = load_teacher_record(js)
            if accepted_only and not rec.accepted:
                continue
            yield rec


# ---------------------------------------------------------------------------
# Running the teacher
# ---------------------------------------------------------------------------
def teacher_python(venv: str | Path | None = None) -> Path:
    """Returns the teacher venv's python, checking that it exists.

    Args:
        venv: The venv folder; ``$TEACHER_VENV`` or ``<repo>/.venv-teacher`` if None.

    Returns:
        Path to ``<venv>/bin/python``.

    Raises:
        TeacherEnvMissingError: No python there; the message gives the setup command.
    """
    venv_dir = Path(venv) if venv is not None else Path(os.environ.get(TEACHER_VENV_ENV, DEFAULT_TEACHER_VENV))
    py = venv_dir / "bin" / "python"
    if not py.exists():
        raise TeacherEnvMissingError(
            f"teacher virtualenv {venv_dir} not found (no {py}). Create it with:\n"
            f"    bash {SETUP_SCRIPT_REL} {venv_dir}\n"
            "(mediapipe==0.10.21 needs numpy<2, so it lives outside the main .venv)"
        )
    return py


def run_teacher(
    photos_dirs: Sequence[str | Path],
    cache_dir: str | Path,
    venv: str | Path | None = None,
    workers: int = 1,
    limit: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs ``mediapipe_teacher.py`` in the teacher venv and returns its summary.

    Progress goes to this process's stderr. Already cached photos are skipped
    unless ``overwrite``.

    Args:
        photos_dirs: Photo folders; each becomes ``cache_dir/<basename>``.
        cache_dir: Output cache folder.
        venv: Teacher venv; ``$TEACHER_VENV`` or ``<repo>/.venv-teacher`` if None.
        workers: Worker processes (each loads its own models).
        limit: Only the first N photos of each folder.
        overwrite: Recompute photos already cached.

    Returns:
        The parsed ``cache_dir/summary.json``.

    Raises:
        TeacherEnvMissingError: The venv is missing (message has the setup command).
        TeacherRunError: The teacher exited non-zero (some photos failed, or it crashed).
    """
    if not photos_dirs:
        raise ValueError("run_teacher needs at least one photo folder")
    py = teacher_python(venv)
    cmd = [str(py), str(TEACHER_SCRIPT), "--out", str(cache_dir), "--workers", str(int(workers))]
    for d in photos_dirs:
        cmd += ["--photos", str(d)]
    if limit is not None:
        cmd += ["--limit", str(int(limit))]
    if overwrite:
        cmd.append("--overwrite")
    # Keep the main env's PYTHONPATH/PYTHONHOME out of the teacher interpreter.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, env=env, check=False)
    summary_path = Path(cache_dir) / "summary.json"
    if proc.returncode != 0:
        raise TeacherRunError(
            f"teacher exited with code {proc.returncode}: {' '.join(cmd)}"
            + (f" (see {summary_path} 'last_run.errors')" if summary_path.exists() else "")
        )
    with open(summary_path, encoding="utf-8") as fh:
        return json.load(fh)
