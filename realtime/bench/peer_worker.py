"""The peer of ``tryon bench``: MediaPipe FaceMesh + a glasses warp, one frame per request.

This script runs INSIDE the teacher virtualenv (``bash training/teacher/setup_env.sh``;
mediapipe pins numpy<2, so it never enters the project's environment): it imports only the
standard library, numpy, cv2 and, inside :func:`main`, mediapipe. It does not import this
package. :mod:`realtime.bench.peer` starts it and talks to it over its stdin / stdout, one
JSON line each way, so that the peer's frames are interleaved with the pipeline's in the
same run (the ratio comes from the same moments of a shared machine).

Per frame, the work a landmark-based try-on does, timed per stage with ``perf_counter``:

* ``capture``: ``cv2.imdecode`` of the frame's JPEG (the same bytes the pipeline decodes);
* ``landmarks``: BGR -> RGB and ``FaceMesh.process`` (video mode, one face, no iris
  refinement: its fastest configuration) on a square window around the face, the way a
  tracker follows a face: FaceMesh's own detector is the short-range BlazeFace, which misses
  faces under about a fifth of the frame (the benchmark's 720p faces are ~130 px), so the
  window starts from MediaPipe's full-range face detector (run again only when the face is
  lost) and then follows the last landmarks (:data:`WINDOW_PER_FACE` face sizes);
* ``composite``: the glasses quad from the outer eye corners (mesh points 33 and 263),
  ``cv2.getPerspectiveTransform`` from the accessory's alpha-box corners, and the
  premultiplied warp + alpha blend inside the warped footprint only;
* ``display``: the mirror into a buffer allocated once (what the live window does).

Protocol: started with ``--frames DIR`` (``*.jpg``, read into memory up front), ``--accessory``
(an RGBA PNG) and ``--corners`` (its alpha-box corners, JSON); it prints
``{"ready": true, ...}``, then answers each stdin line ``<frame index>`` with
``{"ms": {...}, "found": bool, "quad": [[x, y] x4] | null, "drawn_px": n}`` and exits on
``quit`` or end of input. A failure prints ``{"error": "..."}`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

#: FaceMesh points of the outer eye corners: the subject's right eye (image left), left eye.
EYE_OUTER = (33, 263)
#: FaceMesh points that bound the face: forehead top, chin, the two cheek edges.
FACE_BOUNDS = (10, 152, 234, 454)
#: Side of the window FaceMesh sees, in face sizes (the face's largest extent).
WINDOW_PER_FACE = 2.2
#: Glasses width over the distance between the outer eye corners (a frame is wider than the eyes).
WIDTH_PER_EYE_SPAN = 1.5


def window_around(cx: float, cy: float, side: float, size_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """Square window (x0, y0, x1, y1) of ``side`` pixels centred on (cx, cy), clipped to the frame."""
    half = 0.5 * side
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(size_wh[0], int(cx + half) + 1), min(size_wh[1], int(cy + half) + 1)
    return x0, y0, x1, y1


def landmark_xy(landmarks: Any, index: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """Frame pixels of landmark ``index`` (MediaPipe's coordinates are normalised to the window)."""
    x0, y0, x1, y1 = window
    p = landmarks[index]
    return np.array([x0 + p.x * (x1 - x0), y0 + p.y * (y1 - y0)])


def glasses_quad(landmarks: Any, window: tuple[int, int, int, int], aspect_hw: float) -> np.ndarray:
    """TL, TR, BR, BL of the glasses in frame pixels: centred between the outer eye corners,
    along the eye line, :data:`WIDTH_PER_EYE_SPAN` times their distance wide."""
    a, b = (landmark_xy(landmarks, i, window) for i in EYE_OUTER)
    span = float(np.hypot(*(b - a)))
    ux = (b - a) / max(span, 1e-6)
    uy = np.array([-ux[1], ux[0]])
    half_w = 0.5 * WIDTH_PER_EYE_SPAN * span
    half_h = half_w * aspect_hw
    c = 0.5 * (a + b)
    return np.array([c - half_w * ux - half_h * uy, c + half_w * ux - half_h * uy,
                     c + half_w * ux + half_h * uy, c - half_w * ux + half_h * uy], np.float32)


class GlassesWarp:
    """Premultiplied accessory, warped and blended inside its footprint (in place on the frame)."""

    def __init__(self, rgba: np.ndarray, corners: np.ndarray) -> None:
        alpha = rgba[..., 3:4].astype(np.uint16)
        bgr = rgba[..., 2::-1].astype(np.uint16)
        self.bgra = np.concatenate([(bgr * alpha + 127) // 255, alpha], axis=2).astype(np.uint8)
        self.corners = np.asarray(corners, np.float32)
        ih, iw = rgba.shape[:2]
        self.image_corners = np.array([[0, 0, 1], [iw - 1, 0, 1], [iw - 1, ih - 1, 1], [0, ih - 1, 1]], np.float64)
        x0, y0 = self.corners.min(axis=0)
        x1, y1 = self.corners.max(axis=0)
        self.aspect_hw = float((y1 - y0) / max(x1 - x0, 1e-6))

    def draw(self, frame: np.ndarray, quad: np.ndarray) -> int:
        """Composite onto ``frame`` at ``quad``; returns the number of footprint pixels."""
        mat = cv2.getPerspectiveTransform(self.corners, quad.astype(np.float32))
        hom = self.image_corners @ mat.T
        xy = hom[:, :2] / hom[:, 2:3]
        fh, fw = frame.shape[:2]
        x0, y0 = np.floor(xy.min(axis=0)).astype(int)
        x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + 1
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(fw, x1), min(fh, y1)
        if x1 <= x0 or y1 <= y0:
            return 0
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        warped = cv2.warpPerspective(self.bgra, shift @ mat, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        roi = frame[y0:y1, x0:x1]
        keep = (255 - warped[..., 3:4]).astype(np.uint16)
        roi[...] = ((roi.astype(np.uint16) * keep + 127) // 255 + warped[..., :3]).clip(0, 255).astype(np.uint8)
        return int((x1 - x0) * (y1 - y0))


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=Path, required=True)
    p.add_argument("--accessory", type=Path, required=True)
    p.add_argument("--corners", required=True, help="JSON [[x, y] x 4]: the accessory's alpha-box corners")
    args = p.parse_args(argv)
    try:
        import mediapipe as mp  # the teacher environment only

        jpegs = [f.read_bytes() for f in sorted(args.frames.glob("*.jpg"))]
        rgba = cv2.imread(str(args.accessory), cv2.IMREAD_UNCHANGED)
        if not jpegs:
            raise FileNotFoundError(f"no *.jpg frames in {args.frames}")
        if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"{args.accessory}: not an RGBA image")
        rgba = rgba[..., [2, 1, 0, 3]]  # OpenCV reads BGRA
        warp = GlassesWarp(rgba, np.array(json.loads(args.corners), np.float32))
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                               min_detection_confidence=0.5, min_tracking_confidence=0.5)
        detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    except Exception as exc:  # reported to the parent, which names the environment
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _reply({"ready": True, "frames": len(jpegs), "mediapipe": getattr(mp, "__version__", "?"),
            "numpy": np.__version__, "opencv": cv2.__version__})
    view: np.ndarray | None = None
    window: tuple[int, int, int, int] | None = None  # FaceMesh's window in the frame, None: search
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        try:
            index = int(line)
            ms: dict[str, float] = {}
            t0 = t = time.perf_counter()
            frame = cv2.imdecode(np.frombuffer(jpegs[index % len(jpegs)], np.uint8), cv2.IMREAD_COLOR)
            now = time.perf_counter()
            ms["capture"], t = (now - t) * 1e3, now
            size_wh = (frame.shape[1], frame.shape[0])
            if window is None:  # (re)acquire: the full-range detector on the whole frame
                found = detector.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)).detections or []
                if found:
                    box = found[0].location_data.relative_bounding_box
                    side = WINDOW_PER_FACE * max(box.width * size_wh[0], box.height * size_wh[1])
                    window = window_around((box.xmin + 0.5 * box.width) * size_wh[0],
                                           (box.ymin + 0.5 * box.height) * size_wh[1], side, size_wh)
            faces = []
            if window is not None:
                x0, y0, x1, y1 = window
                faces = mesh.process(cv2.cvtColor(frame[y0:y1, x0:x1], cv2.COLOR_BGR2RGB)).multi_face_landmarks or []
            used = window
            if faces:  # the next window follows the face
                pts = np.array([landmark_xy(faces[0].landmark, i, window) for i in FACE_BOUNDS])
                (fx0, fy0), (fx1, fy1) = pts.min(axis=0), pts.max(axis=0)
                window = window_around(0.5 * (fx0 + fx1), 0.5 * (fy0 + fy1),
                                       WINDOW_PER_FACE * max(fx1 - fx0, fy1 - fy0), size_wh)
            else:
                window = None
            now = time.perf_counter()
            ms["landmarks"], t = (now - t) * 1e3, now
            quad, drawn = None, 0
            if faces and used is not None:
                quad = glasses_quad(faces[0].landmark, used, warp.aspect_hw)
                drawn = warp.draw(frame, quad)
            now = time.perf_counter()
            ms["composite"], t = (now - t) * 1e3, now
            if view is None or view.shape != frame.shape:
                view = np.empty_like(frame)
            cv2.flip(frame, 1, dst=view)
            now = time.perf_counter()
            ms["display"] = (now - t) * 1e3
            ms["end_to_end"] = (now - t0) * 1e3
        except Exception as exc:
            _reply({"error": f"frame {line!r}: {type(exc).__name__}: {exc}"})
            return 1
        _reply({"ms": ms, "found": bool(faces), "quad": None if quad is None else quad.tolist(), "drawn_px": drawn})
    mesh.close()
    detector.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
