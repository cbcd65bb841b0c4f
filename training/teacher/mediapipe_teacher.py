"""MediaPipe landmark teacher: photos in, a JSON + segmentation-PNG cache out.

This script runs INSIDE the teacher virtualenv (``bash
training/teacher/setup_env.sh``), never in the project's main environment: it
imports only the standard library, numpy, cv2 and mediapipe (mediapipe pins
numpy<2). The main environment reads its output with
``training/teacher/cache.py``.

Usage::

    .venv-teacher/bin/python training/teacher/mediapipe_teacher.py \
        --photos ../shared/data/faces/helen --photos ../shared/data/faces/fmd \
        --out data/teacher_cache --workers 2 [--limit N] [--overwrite]

For every ``*.jpg``/``*.jpeg``/``*.png`` directly inside each ``--photos``
directory it writes ``OUT/<basename of the photo dir>/<stem>.json`` and
``OUT/<basename>/<stem>_seg.png``; at the end ``OUT/summary.json`` counts the
records per folder and per reject reason (over everything in the cache, not
just this run). Photos whose JSON already exists are skipped unless
``--overwrite``; every file is written to a temporary name and moved into place
with ``os.replace``, and the JSON is written last, so an interrupted run
resumes cleanly.

Models (all bundled in the mediapipe 0.10.21 wheel, no download):

* FaceMesh ``static_image_mode=True, max_num_faces=4, refine_landmarks=True``
  (face_detection_short_range + face_landmark_with_attention: 468 mesh points
  + 10 iris points = 478).
* Pose ``static_image_mode=True, model_complexity=1`` (pose_landmark_full, 33
  points; the only pose model the wheel bundles).
* SelfieSegmentation ``model_selection=0`` (the "general" 256x256 model). The
  alternative, model 1 "landscape", is a 144x256 model made for 16:9 video
  calls; these photos are portrait or square and the cache is built offline,
  so the square, higher-resolution general model is the better fit.

When FaceMesh finds no face, it is retried once on a copy of the photo with a
black border (``NO_FACE_RETRY_PAD_FRAC``); tight crops with the forehead or
chin cut off are found that way. Landmarks are shifted back to the photo, and
``face_detect_pad_px`` in the JSON says how wide the border was (0: none).

Coordinates: image pixels of the photo as ``cv2.imread`` decodes it (EXIF
orientation applied), x right, y down; MediaPipe's normalised coordinates are
multiplied by W and H with no half-pixel shift (the image spans [0, W]).
MediaPipe gives normalised x, y in [0, 1] and a relative depth z "with roughly
the same scale as x"; we store ``x*W, y*H, z*W`` so all three are in pixels.
z < 0 is closer to the camera than the face's (pose: hips') centre.

Left/right: MediaPipe names are the SUBJECT's. In a non-mirrored photo the
subject's right eye (mesh 33/133, iris 468) appears on the IMAGE LEFT and the
subject's left eye (263/362, iris 473) on the image right.

Head pose convention (``POSE_CONVENTION`` below, also stored in each JSON):
MediaPipe's face geometry model (``canonical_face_model.obj``) is NOT in the
0.10.21 wheel, so the rotation is built from the detected 3D landmarks alone
(a landmark frame, orthographic): head x axis = subject's right eye -> left eye
(sum of outer 33->263 and inner 133->362 corner vectors), head y axis =
forehead top 10 -> chin 152 made orthogonal to x, head z axis = x cross y
(pointing from the face into the head, away from the camera for a frontal
face). ``R`` holds these axes as COLUMNS in camera coordinates (x right,
y down, z away from the camera; right-handed), so an upright frontal face has
R = I. Angles in degrees, ``R = Ry(-yaw) @ Rx(-pitch) @ Rz(roll)`` with the
usual right-handed axis rotations:

* yaw > 0: the nose points toward the image's +x (right) side, i.e. in a
  non-mirrored photo the subject turned to their own left;
* pitch > 0: the nose points up in the image (subject looks up);
* roll > 0: the eye line turns clockwise on screen (the subject's left eye,
  image right, is lower), i.e. the head tilts toward the image-right side.

Pitch 0 means the forehead top (10) and chin (152) are at equal depth. In
MediaPipe's canonical face model (read from the MediaPipe repository; y up,
z toward the viewer) vertex 10 is at (y 8.26, z 4.48) and 152 at (y -9.40,
z 4.26), so the canonical frontal face reads pitch -0.7 deg here: this frame
agrees with the canonical one to within a degree. On real photos the median
pitch is negative (Helen about -8 deg, FMD about -12 deg); camera height and
the scale of MediaPipe's relative depth z may both contribute.
``translation_xyz`` is the midpoint of the outer eye corners (33, 263) in
pixels (z on the same pixel scale) and ``scale_px`` their 3D distance.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import cv2
import numpy as np

# Runs in the teacher venv without this package, so it cannot import realtime.config.IMAGE_SUFFIXES;
# MediaPipe reads these three.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
SCHEMA_VERSION = 1

# --- model settings (mp.solutions defaults unless stated) -------------------
FACE_MESH_MAX_FACES = 4  # asked for by the data builder: see all faces, then reject crowds
MIN_DETECTION_CONFIDENCE = 0.5  # mp.solutions default for FaceMesh and Pose
POSE_MODEL_COMPLEXITY = 1  # the only pose landmark model bundled in the 0.10.21 wheel
SELFIE_MODEL_SELECTION = 0  # general 256x256 model; see module docstring

# --- reject rules -----------------------------------------------------------
# A second face whose bbox area exceeds this fraction of the largest one makes
# "which face is the subject" ambiguous (group photo / face-to-face crop).
MULTI_FACE_AREA_RATIO = 0.5
# Face mesh bbox narrower than this is rejected. 48 px: the landmark model sees
# a 192x192 crop (face_landmark_with_attention), so a 48 px face is already
# upsampled 4x and its eye/iris points (a few px apart) become guesswork.
MIN_FACE_WIDTH_PX = 48.0
# ... or narrower than this fraction of the image width: a face that small is
# a full-body / crowd photo, far from the app's selfie framing where the face
# spans roughly 20-60% of the frame, so crops from it would be huge upscales.
MIN_FACE_WIDTH_FRAC = 0.08
# "extreme_crop": more than this fraction of the face mesh bbox AREA lies
# outside the image (landmarks there are hallucinated), ...
MAX_BBOX_OUTSIDE_FRAC = 0.25
# ... or an eye (iris centre 468 / 473) is outside the image.
# When FaceMesh finds no face, retry once on the photo with a black border of
# this fraction of max(W, H) on every side (0 disables). Tight crops whose
# forehead/chin are cut off defeat the short-range face detector; on the FMD
# crops borders of 0.15, 0.3 and 0.5 each recovered 39 of 43 misses and 0.25
# (mid-range) recovers 38.
NO_FACE_RETRY_PAD_FRAC = 0.25
# Priority when several reasons apply (the first one becomes ``reject``; all
# are listed in ``reject_all``).
REJECT_ORDER = ("no_face", "multiple_faces_similar_size", "face_too_small", "extreme_crop")

# --- face-mesh indices used here (MediaPipe face mesh canonical index map,
# mediapipe/modules/face_geometry/data/canonical_face_model_uv_visualization.png)
MESH_R_EYE_OUTER, MESH_R_EYE_INNER = 33, 133  # subject's right = image left
MESH_L_EYE_OUTER, MESH_L_EYE_INNER = 263, 362  # subject's left = image right
MESH_R_IRIS, MESH_L_IRIS = 468, 473  # iris centres (refine_landmarks=True)
MESH_FOREHEAD_TOP, MESH_CHIN = 10, 152
NUM_FACE_LANDMARKS = 478
NUM_POSE_LANDMARKS = 33

POSE_CONVENTION = (
    "R: 3x3, columns = head axes in camera coords (x right, y down, z away from camera; "
    "right-handed, pixels, z = mediapipe z * image width). Head x = subject's right eye -> "
    "left eye (mesh 33->263 + 133->362), head y = forehead 10 -> chin 152 orthogonalised, "
    "head z = x cross y (into the head). Upright frontal face: R = I. Degrees; "
    "R = Ry(-yaw) @ Rx(-pitch) @ Rz(roll). yaw > 0: nose toward image right (+x) = subject "
    "turned to their own left in a non-mirrored photo. pitch > 0: nose up in the image "
    "(looking up); pitch 0 = forehead top and chin at equal depth. roll > 0: eye line "
    "clockwise on screen (subject's left eye, image right, lower). translation_xyz = "
    "midpoint of outer eye corners 33/263 (pixels), scale_px = their 3D distance. "
    "Method: orthographic landmark frame (canonical_face_model.obj is not in the wheel)."
)


# ---------------------------------------------------------------------------
# Geometry helpers (numpy only)
# ---------------------------------------------------------------------------
def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_euler(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Builds ``R`` from angles in the documented convention.

    Args:
        yaw_deg: Yaw in degrees (> 0: nose toward image +x).
        pitch_deg: Pitch in degrees (> 0: nose up).
        roll_deg: Roll in degrees (> 0: eye line clockwise on screen).

    Returns:
        The (3, 3) rotation ``Ry(-yaw) @ Rx(-pitch) @ Rz(roll)``.
    """
    return (
        _rot_y(-math.radians(yaw_deg))
        @ _rot_x(-math.radians(pitch_deg))
        @ _rot_z(math.radians(roll_deg))
    )


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """Inverse of :func:`rotation_from_euler`.

    With ``R = Ry(a) Rx(b) Rz(c)``: ``R[1,2] = -sin b``, ``R[0,2]/R[2,2] = tan a``
    and ``R[1,0]/R[1,1] = tan c``; yaw = -a, pitch = -b, roll = c.

    Args:
        rot: (3, 3) rotation matrix.

    Returns:
        ``(yaw_deg, pitch_deg, roll_deg)``.
    """
    b = math.asin(float(np.clip(-rot[1, 2], -1.0, 1.0)))
    a = math.atan2(float(rot[0, 2]), float(rot[2, 2]))
    c = math.atan2(float(rot[1, 0]), float(rot[1, 1]))
    return -math.degrees(a), -math.degrees(b), math.degrees(c)


def head_pose_from_landmarks(pts_xyz: np.ndarray) -> dict[str, Any]:
    """Estimates the head rotation from one face's 3D mesh (landmark frame).

    Args:
        pts_xyz: (478, 3) landmarks in pixels (z scaled by image width).

    Returns:
        Dict with ``yaw_deg``, ``pitch_deg``, ``roll_deg``, ``R`` (3x3 list),
        ``translation_xyz`` and ``scale_px``; see ``POSE_CONVENTION``.
    """
    p = pts_xyz.astype(np.float64)
    x_axis = (p[MESH_L_EYE_OUTER] - p[MESH_R_EYE_OUTER]) + (p[MESH_L_EYE_INNER] - p[MESH_R_EYE_INNER])
    x_axis /= np.linalg.norm(x_axis)
    y_raw = p[MESH_CHIN] - p[MESH_FOREHEAD_TOP]
    y_axis = y_raw - float(y_raw @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    z_axis = np.cross(x_axis, y_axis)
    rot = np.stack([x_axis, y_axis, z_axis], axis=1)
    yaw, pitch, roll = euler_from_rotation(rot)
    origin = 0.5 * (p[MESH_R_EYE_OUTER] + p[MESH_L_EYE_OUTER])
    scale = float(np.linalg.norm(p[MESH_L_EYE_OUTER] - p[MESH_R_EYE_OUTER]))
    return {
        "method": "landmark_frame",
        "yaw_deg": round(yaw, 3),
        "pitch_deg": round(pitch, 3),
        "roll_deg": round(roll, 3),
        "R": np.round(rot, 6).tolist(),
        "translation_xyz": np.round(origin, 3).tolist(),
        "scale_px": round(scale, 3),
    }


def bbox_outside_fraction(bbox_xyxy: Sequence[float], size_wh: tuple[int, int]) -> float:
    """Fraction of a box's area that lies outside ``[0, W] x [0, H]``.

    Args:
        bbox_xyxy: Box ``(x0, y0, x1, y1)`` in pixels.
        size_wh: Image ``(W, H)``.

    Returns:
        Value in [0, 1] (1 for a degenerate box).
    """
    x0, y0, x1, y1 = (float(v) for v in bbox_xyxy)
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    if area <= 0.0:
        return 1.0
    iw = max(min(x1, size_wh[0]) - max(x0, 0.0), 0.0)
    ih = max(min(y1, size_wh[1]) - max(y0, 0.0), 0.0)
    return 1.0 - (iw * ih) / area


def reject_reasons(faces: list[dict[str, Any]], size_wh: tuple[int, int]) -> list[str]:
    """Applies the reject rules (module constants) to faces sorted by area.

    Args:
        faces: Face dicts with ``landmarks_xyz`` and ``bbox_xyxy``, largest first.
        size_wh: Image ``(W, H)``.

    Returns:
        All applicable reasons in ``REJECT_ORDER`` order; empty when usable.
    """
    if not faces:
        return ["no_face"]
    reasons: list[str] = []
    areas = [_bbox_area(f["bbox_xyxy"]) for f in faces]
    if len(faces) > 1 and areas[1] > MULTI_FACE_AREA_RATIO * areas[0]:
        reasons.append("multiple_faces_similar_size")
    x0, y0, x1, y1 = faces[0]["bbox_xyxy"]
    width = x1 - x0
    if width < MIN_FACE_WIDTH_PX or width < MIN_FACE_WIDTH_FRAC * size_wh[0]:
        reasons.append("face_too_small")
    pts = np.asarray(faces[0]["landmarks_xyz"], dtype=np.float64)
    eyes_xy = pts[[MESH_R_IRIS, MESH_L_IRIS], :2]
    eyes_inside = bool(
        np.all((eyes_xy >= 0.0) & (eyes_xy < np.array(size_wh, dtype=np.float64)))
    )
    if bbox_outside_fraction(faces[0]["bbox_xyxy"], size_wh) > MAX_BBOX_OUTSIDE_FRAC or not eyes_inside:
        reasons.append("extreme_crop")
    return [r for r in REJECT_ORDER if r in reasons]


def _bbox_area(bbox_xyxy: Sequence[float]) -> float:
    x0, y0, x1, y1 = bbox_xyxy
    return max(x1 - x0, 0.0) * max(y1 - y0, 0.0)


# ---------------------------------------------------------------------------
# MediaPipe models (one set per worker process)
# ---------------------------------------------------------------------------
@dataclass
class _Models:
    face_mesh: Any
    pose: Any
    selfie: Any
    version: str


_MODELS: _Models | None = None


def _init_models() -> None:
    """Builds this process's mediapipe graphs once (pool initializer)."""
    global _MODELS
    import mediapipe as mp  # teacher env only

    cv2.setNumThreads(1)
    _MODELS = _Models(
        face_mesh=mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True,
            max_num_faces=FACE_MESH_MAX_FACES,
            refine_landmarks=True,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
        ),
        pose=mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=POSE_MODEL_COMPLEXITY,
            enable_segmentation=False,
            min_detection_confidence=MIN_DETECTION_CONFIDENCE,
        ),
        selfie=mp.solutions.selfie_segmentation.SelfieSegmentation(
            model_selection=SELFIE_MODEL_SELECTION
        ),
        version=mp.__version__,
    )


def teacher_info(version: str) -> dict[str, Any]:
    """Describes the teacher models for the ``teacher`` JSON field.

    Args:
        version: ``mediapipe.__version__``.

    Returns:
        JSON-ready dict.
    """
    return {
        "name": "mediapipe",
        "version": version,
        "models": {
            "face_mesh": {
                "api": "mp.solutions.face_mesh.FaceMesh",
                "graph_models": ["face_detection_short_range.tflite", "face_landmark_with_attention.tflite"],
                "static_image_mode": True,
                "max_num_faces": FACE_MESH_MAX_FACES,
                "refine_landmarks": True,
                "min_detection_confidence": MIN_DETECTION_CONFIDENCE,
            },
            "pose": {
                "api": "mp.solutions.pose.Pose",
                "graph_models": ["pose_detection.tflite", "pose_landmark_full.tflite"],
                "static_image_mode": True,
                "model_complexity": POSE_MODEL_COMPLEXITY,
                "min_detection_confidence": MIN_DETECTION_CONFIDENCE,
            },
            "selfie_segmentation": {
                "api": "mp.solutions.selfie_segmentation.SelfieSegmentation",
                "graph_models": ["selfie_segmentation.tflite"],
                "model_selection": SELFIE_MODEL_SELECTION,
            },
        },
    }


# ---------------------------------------------------------------------------
# One photo
# ---------------------------------------------------------------------------
def _faces_from_result(
    result: Any,
    size_wh: tuple[int, int],
    shift_xy: tuple[float, float] = (0.0, 0.0),
    clip_size_wh: tuple[int, int] | None = None,
) -> list[dict[str, Any]]:
    """Converts a FaceMesh result to face dicts sorted by bbox area.

    Args:
        result: ``FaceMesh.process`` output.
        size_wh: Size of the image the mesh ran on (denormalises x, y, z;
            z is scaled by that image's width, i.e. pixel units).
        shift_xy: Added to x, y afterwards (undoes a detection padding).
        clip_size_wh: Size of the original photo for ``bbox_outside_frac``;
            ``size_wh`` when None.

    Returns:
        Face dicts, largest bbox first.
    """
    w, h = size_wh
    photo_wh = clip_size_wh or size_wh
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([[lm.x * w, lm.y * h, lm.z * w] for lm in face.landmark], dtype=np.float64)
        if pts.shape != (NUM_FACE_LANDMARKS, 3):
            raise RuntimeError(f"face mesh gave {pts.shape[0]} landmarks, expected {NUM_FACE_LANDMARKS}")
        # Padding does not change the pixel scale: z * (padded width) is
        # already in the photo's pixels, so only x, y need the shift.
        pts[:, 0] += shift_xy[0]
        pts[:, 1] += shift_xy[1]
        x0, y0 = pts[:, 0].min(), pts[:, 1].min()
        x1, y1 = pts[:, 0].max(), pts[:, 1].max()
        faces.append(
            {
                "bbox_xyxy": [round(float(v), 2) for v in (x0, y0, x1, y1)],
                "bbox_outside_frac": round(bbox_outside_fraction((x0, y0, x1, y1), photo_wh), 4),
                "landmarks_xyz": np.round(pts, 2).tolist(),
            }
        )
    faces.sort(key=lambda f: _bbox_area(f["bbox_xyxy"]), reverse=True)
    return faces


def _pose_from_result(result: Any, size_wh: tuple[int, int]) -> dict[str, Any] | None:
    if result.pose_landmarks is None:
        return None
    w, h = size_wh
    pts = [
        [round(lm.x * w, 2), round(lm.y * h, 2), round(lm.z * w, 2), round(lm.visibility, 4)]
        for lm in result.pose_landmarks.landmark
    ]
    if len(pts) != NUM_POSE_LANDMARKS:
        raise RuntimeError(f"pose gave {len(pts)} landmarks, expected {NUM_POSE_LANDMARKS}")
    return {"landmarks_xyzv": pts}


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def safe_process_photo(task: tuple[str, str]) -> dict[str, Any]:
    """:func:`process_photo` that reports a failure instead of killing the run.

    Args:
        task: ``(photo_path, out_folder)``.

    Returns:
        The status dict; on failure it has ``error`` (no JSON is written, so a
        re-run retries the photo).
    """
    try:
        return process_photo(task)
    except (RuntimeError, ValueError, OSError, cv2.error) as exc:
        return {"folder": Path(task[1]).name, "stem": Path(task[0]).stem, "photo": task[0],
                "error": f"{type(exc).__name__}: {exc}"}


def process_photo(task: tuple[str, str]) -> dict[str, Any]:
    """Runs the three models on one photo and writes its JSON + seg PNG.

    Args:
        task: ``(photo_path, out_folder)``.

    Returns:
        Small status dict: ``folder``, ``stem``, ``reject`` (or ``error``),
        ``timing_ms``.
    """
    photo_path, out_folder = task
    photo = Path(photo_path)
    out_dir = Path(out_folder)
    status: dict[str, Any] = {"folder": out_dir.name, "stem": photo.stem, "photo": str(photo)}
    if _MODELS is None:
        _init_models()
    assert _MODELS is not None
    bgr = cv2.imread(str(photo), cv2.IMREAD_COLOR)  # applies EXIF orientation
    if bgr is None:
        status["error"] = "unreadable_image"
        return status
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    h, w = rgb.shape[:2]
    size_wh = (int(w), int(h))
    timing: dict[str, float] = {}

    t0 = time.perf_counter()
    faces = _faces_from_result(_MODELS.face_mesh.process(rgb), size_wh)
    detect_pad_px = 0
    if not faces and NO_FACE_RETRY_PAD_FRAC > 0.0:
        # Tight crops (forehead/chin cut off) defeat the face detector; retry on
        # a black-bordered copy and shift the landmarks back to this image.
        detect_pad_px = int(round(NO_FACE_RETRY_PAD_FRAC * max(w, h)))
        padded = cv2.copyMakeBorder(rgb, *([detect_pad_px] * 4), cv2.BORDER_CONSTANT, value=(0, 0, 0))
        faces = _faces_from_result(
            _MODELS.face_mesh.process(padded), (w + 2 * detect_pad_px, h + 2 * detect_pad_px),
            shift_xy=(-detect_pad_px, -detect_pad_px), clip_size_wh=size_wh,
        )
        if not faces:
            detect_pad_px = 0
    t1 = time.perf_counter()
    pose = _pose_from_result(_MODELS.pose.process(rgb), size_wh)
    t2 = time.perf_counter()
    seg = _MODELS.selfie.process(rgb).segmentation_mask
    t3 = time.perf_counter()
    timing.update(face_mesh=round((t1 - t0) * 1e3, 2), pose=round((t2 - t1) * 1e3, 2), seg=round((t3 - t2) * 1e3, 2))

    if seg is None or seg.shape[:2] != (h, w):
        raise RuntimeError(f"selfie segmentation mask shape {None if seg is None else seg.shape} != {(h, w)}")
    seg_u8 = np.clip(np.rint(seg * 255.0), 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", seg_u8)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {photo}")
    seg_name = f"{photo.stem}_seg.png"
    _atomic_write_bytes(out_dir / seg_name, png.tobytes())

    reasons = reject_reasons(faces, size_wh)
    record = {
        "schema_version": SCHEMA_VERSION,
        "image": str(photo.resolve()),
        "size_wh": list(size_wh),
        "faces": faces,
        "head_pose": head_pose_from_landmarks(np.asarray(faces[0]["landmarks_xyz"])) if faces else None,
        "pose_convention": POSE_CONVENTION,
        "pose": pose,
        "seg": seg_name,
        "seg_encoding": "8-bit grey PNG, person probability = value / 255, photo resolution",
        "face_detect_pad_px": detect_pad_px,
        "reject": reasons[0] if reasons else None,
        "reject_all": reasons,
        "teacher": teacher_info(_MODELS.version),
        "timing_ms": timing,
    }
    _atomic_write_bytes(out_dir / f"{photo.stem}.json", json.dumps(record, separators=(",", ":")).encode())
    status["reject"] = record["reject"]
    status["timing_ms"] = timing
    return status


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------
def list_photos(photo_dir: Path, limit: int | None) -> list[Path]:
    """Lists the photos directly inside a folder, sorted by name.

    Args:
        photo_dir: Folder to scan (not recursive).
        limit: Keep only the first N (per folder) when set.

    Returns:
        Photo paths.

    Raises:
        ValueError: Two photos share a stem (their outputs would collide).
    """
    photos = sorted(p for p in photo_dir.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES)
    seen: dict[str, Path] = {}
    for p in photos:
        if p.stem in seen:
            raise ValueError(f"{photo_dir}: {seen[p.stem].name} and {p.name} share the stem {p.stem!r}")
        seen[p.stem] = p
    return photos[:limit] if limit is not None else photos


def _progress(items: Iterable[dict[str, Any]], total: int) -> Iterator[dict[str, Any]]:
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        yield from tqdm(items, total=total, unit="photo", file=sys.stderr, smoothing=0.05)
        return
    for i, item in enumerate(items, 1):
        if i == total or i % 25 == 0:
            print(f"\r{i}/{total} photos", end="\n" if i == total else "", file=sys.stderr, flush=True)
        yield item


def build_summary(out_root: Path, run_info: dict[str, Any]) -> dict[str, Any]:
    """Counts every cached record per folder and per reject reason.

    Args:
        out_root: Cache root.
        run_info: Facts about this run (timings, errors) to embed.

    Returns:
        The summary dict (also what is written to ``summary.json``).
    """
    folders: dict[str, Any] = {}
    for sub in sorted(p for p in out_root.iterdir() if p.is_dir()):
        counts: dict[str, int] = {"total": 0, "accepted": 0}
        by_reason: dict[str, int] = {}
        any_reason: dict[str, int] = {}
        with_pose = 0
        for js in sorted(sub.glob("*.json")):
            with open(js, encoding="utf-8") as fh:
                rec = json.load(fh)
            counts["total"] += 1
            if rec.get("reject") is None:
                counts["accepted"] += 1
            else:
                by_reason[rec["reject"]] = by_reason.get(rec["reject"], 0) + 1
            for r in rec.get("reject_all", []):
                any_reason[r] = any_reason.get(r, 0) + 1
            with_pose += rec.get("pose") is not None
        if counts["total"]:
            folders[sub.name] = {
                **counts,
                "reject": dict(sorted(by_reason.items())),
                "reject_any": dict(sorted(any_reason.items())),
                "with_pose": with_pose,
            }
    return {
        "schema_version": SCHEMA_VERSION,
        "reject_rules": {
            "priority": list(REJECT_ORDER),
            "multiple_faces_similar_size": f"2nd face bbox area > {MULTI_FACE_AREA_RATIO} x largest",
            "face_too_small": f"largest face bbox width < {MIN_FACE_WIDTH_PX} px or < {MIN_FACE_WIDTH_FRAC} x image width",
            "extreme_crop": f"> {MAX_BBOX_OUTSIDE_FRAC} of the face bbox area outside the image, or an iris centre outside",
        },
        "folders": folders,
        "last_run": run_info,
    }


MAX_RUNS_KEPT = 20  # run history kept in summary.json ("runs"), newest last


def _previous_runs(summary_path: Path) -> list[dict[str, Any]]:
    """Returns the ``runs`` history of an existing summary (empty if none/unreadable)."""
    if not summary_path.exists():
        return []
    try:
        with open(summary_path, encoding="utf-8") as fh:
            old = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return []
    runs = old.get("runs") if isinstance(old, dict) else None
    if isinstance(runs, list):
        return runs
    last = old.get("last_run") if isinstance(old, dict) else None
    return [last] if isinstance(last, dict) else []


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses the command line (see module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=Path, action="append", required=True, help="photo folder (repeatable)")
    ap.add_argument("--out", type=Path, required=True, help="cache folder")
    ap.add_argument("--limit", type=int, default=None, help="first N photos of EACH folder")
    ap.add_argument("--workers", type=int, default=1, help="processes, each with its own models")
    ap.add_argument("--overwrite", action="store_true", help="recompute photos already cached")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point.

    Args:
        argv: Command line without the program name (``sys.argv[1:]`` if None).

    Returns:
        Process exit code: 0, or 1 when some photos failed.
    """
    args = parse_args(argv)
    if args.workers < 1:
        raise SystemExit("--workers must be >= 1")
    out_root: Path = args.out.resolve()
    names = [p.resolve().name for p in args.photos]
    if len(set(names)) != len(names):
        raise SystemExit(f"--photos folders must have distinct basenames, got {names}")

    tasks: list[tuple[str, str]] = []
    skipped = 0
    for photo_dir in args.photos:
        photo_dir = photo_dir.resolve()
        if not photo_dir.is_dir():
            raise SystemExit(f"--photos {photo_dir} is not a directory")
        out_dir = out_root / photo_dir.name
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in out_dir.glob(".*.tmp*"):  # left by an interrupted run
            stale.unlink()
        for photo in list_photos(photo_dir, args.limit):
            if not args.overwrite and (out_dir / f"{photo.stem}.json").exists():
                skipped += 1
                continue
            tasks.append((str(photo), str(out_dir)))

    print(f"teacher: {len(tasks)} photos to process, {skipped} already cached, {args.workers} worker(s)", file=sys.stderr)
    t_start = time.perf_counter()
    results: list[dict[str, Any]] = []
    if tasks:
        if args.workers == 1:
            _init_models()
            results = list(_progress(map(safe_process_photo, tasks), len(tasks)))
        else:
            ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked mediapipe state
            with ctx.Pool(args.workers, initializer=_init_models) as pool:
                results = list(_progress(pool.imap_unordered(safe_process_photo, tasks, chunksize=1), len(tasks)))
    elapsed = time.perf_counter() - t_start

    errors = [{"photo": r["photo"], "error": r["error"]} for r in results if "error" in r]
    stage_ms = {
        k: round(float(np.mean([r["timing_ms"][k] for r in results if "timing_ms" in r])), 2)
        for k in ("face_mesh", "pose", "seg")
    } if any("timing_ms" in r for r in results) else {}
    run_info = {
        "photos_processed": len(results),
        "photos_skipped_cached": skipped,
        "errors": errors,
        "workers": args.workers,
        "elapsed_s": round(elapsed, 2),
        "photos_per_s": round(len(results) / elapsed, 3) if results and elapsed > 0 else None,
        "mean_stage_ms_per_photo": stage_ms,
        "finished_unix": round(time.time(), 1),
    }
    summary = build_summary(out_root, run_info)
    summary["runs"] = (_previous_runs(out_root / "summary.json") + [run_info])[-MAX_RUNS_KEPT:]
    _atomic_write_bytes(out_root / "summary.json", json.dumps(summary, indent=2).encode())
    print(json.dumps({"folders": summary["folders"], "last_run": run_info}, indent=2), file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
