"""Face detectors behind one small interface, chosen by name, and rotated / padded views.

Every detector is a :class:`FaceDetector`: ``detect(frame_bgr, near=None)`` returns
:class:`~realtime.framing.FaceBox` es (centre, side, score) in frame pixels, largest first;
with ``near`` (the followed face) it searches only a window of 3 face sizes around it,
nearest first. The registry (:data:`DETECTORS`, :func:`make_detector`) is the one place that
knows the names; ``--detector NAME`` on ``tryon live / record / demo / bench`` picks one.

Candidates (measured by ``python benchmarks/detection.py``, benchmarks/results/detection_*):

* ``cascade``: OpenCV's LBP frontal-face cascade bundled with scikit-image
  (``skimage.data.lbp_frontal_face_cascade_filename()``); no extra package.
* ``dlib-hog``: dlib's HOG + linear SVM frontal detector (``dlib.get_frontal_face_detector``,
  compiled into the ``dlib-bin`` wheel, ``pip install -e .[detect]``); imported lazily.
* ``tryon-face``: the project's own detector (:class:`TryonFaceDetector`): a tiny
  anchor-free network trained by ``tryon train-detector`` (:mod:`training.face_detector`),
  shipped as ``realtime/weights/tryon_face.onnx`` (model card ``tryon_face.md``) and run
  through :func:`realtime.backends.graph_runner.open_graph` (OpenVINO on a CPU, TensorRT
  on an NVIDIA GPU, or ONNX Runtime). Rotation-robust: it reports each face's roll.
* ``blazeface``: MediaPipe's short-range BlazeFace (:class:`BlazeFaceDetector`, Apache-2.0),
  rebuilt from the mediapipe wheel's ``.tflite`` by :mod:`training.teacher.tflite_convert` and
  shipped as ``realtime/weights/blazeface_short.onnx`` (card ``blazeface_short.md``); same
  graph runner; decoded by :mod:`realtime.live.blazeface`; roll from its eye keypoints; every
  full-frame candidate must have a face's keypoint layout and score again in a window around it,
  as found and turned upright (:meth:`BlazeFaceDetector.verified`).

Every detector's box is brought to one convention, the cascade's square (about eyebrows
to chin, cheek to cheek), which the crop framing (:class:`realtime.framing.RoiConfig`) is
calibrated on: ``BOX_SCALE`` and ``BOX_DY`` (face sizes, y down) per class, measured
against the cascade on the same photos.

Views (:func:`detect_in_view`): a detector trained on upright faces misses a head rolled by
more than ~20 degrees and a face cut by the frame border. A view is the frame warped by a
similarity (:func:`realtime.geometry.view_from_frame`: de-rotated, scaled, padded with
black); the boxes found in it map back to the frame with their ``roll_deg``. The tracker
uses a de-rotated window around a followed rolled face, and while nobody is followed one
extra view per detection attempt (:data:`ACQUIRE_VIEWS`, cycling).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, ClassVar

import cv2
import numpy as np

from realtime.framing import FaceBox, RoiConfig
from realtime.geometry import letterbox, roll_from_eyes, view_from_frame, warp_points
from realtime.live import native


def _grey(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _window(shape_hw: tuple[int, int], near: FaceBox) -> tuple[int, int, int, int] | None:
    """Integer window (x0, y0, x1, y1) of 3 face sizes around ``near``, clipped to the frame."""
    h, w = shape_hw
    half = 1.5 * near.side
    x0, y0 = max(0, int(near.cx - half)), max(0, int(near.cy - half))
    x1, y1 = min(w, int(near.cx + half) + 1), min(h, int(near.cy + half) + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


class FaceDetector(ABC):
    """Interface of a face detector.

    Attributes:
        name: registry name.
        detect_width: full-frame searches run at this width (px); views are built at it.
        window_face_px: window searches resize the expected face to about this size.
        BOX_SCALE, BOX_DY: the detector's own box -> the cascade-convention face box (side
            times BOX_SCALE, centre moved by BOX_DY face sizes down).
    """

    name: ClassVar[str] = ""
    BOX_SCALE: ClassVar[float] = 1.0
    BOX_DY: ClassVar[float] = 0.0
    #: True: finds rolled faces itself and fills ``FaceBox.roll_deg`` (rotated views add nothing).
    ROLL_AWARE: ClassVar[bool] = False
    detect_width: int = 320
    window_face_px: int = 48

    @abstractmethod
    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        """Faces in ``frame_bgr`` (BGR or grey, frame pixels, with their score), largest
        first; with ``near``, only in a window of 3 face sizes around it, nearest first."""


class PyramidDetector(FaceDetector):
    """A detector that searches a (downscaled) grey image for faces in a size range: the
    full frame at ``detect_width``, or the window around ``near`` with the face resized to
    ``window_face_px``. Only the searched image is converted to grey."""

    @abstractmethod
    def _boxes(self, grey: np.ndarray, min_px: float, max_px: float) -> list[tuple[float, float, float, float]]:
        """(cx, cy, side, score) of faces of side in [min_px, max_px] in a grey image, in its pixels."""

    def _search(self, image: np.ndarray, scale: float, origin: tuple[float, float], min_px: float,
                max_px: float) -> list[FaceBox]:
        h, w = image.shape[:2]
        if scale < 1.0:
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        else:
            scale = 1.0
        grey = _grey(image)
        max_px = min(max_px, min(grey.shape))
        out = []
        for cx, cy, side, score in self._boxes(grey, min_px, max_px):
            side = side / scale * self.BOX_SCALE
            out.append(FaceBox(origin[0] + (cx + 0.5) / scale - 0.5,
                               origin[1] + (cy + 0.5) / scale - 0.5 + self.BOX_DY * side, side, float(score)))
        return out

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        h, w = frame_bgr.shape[:2]
        if near is None:
            scale = min(1.0, self.detect_width / w)
            faces = self._search(frame_bgr, scale, (0.0, 0.0), 0.0, float(min(h, w)) * scale)
            return sorted(faces, key=lambda f: -f.side)
        box = _window((h, w), near)
        if box is None:
            return []
        x0, y0, x1, y1 = box
        side = near.side / self.BOX_SCALE
        scale = min(1.0, self.window_face_px / side)
        faces = self._search(frame_bgr[y0:y1, x0:x1], scale, (x0, y0), 0.6 * side * min(scale, 1.0),
                             1.6 * side * min(scale, 1.0))
        return sorted(faces, key=lambda f: math.hypot(f.cx - near.cx, f.cy - near.cy))


# --------------------------------------------------------------------------------------
# The candidates
# --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cascade():
    """The LBP frontal-face cascade bundled with scikit-image (loaded once)."""
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    return Cascade(lbp_frontal_face_cascade_filename())


class CascadeDetector(PyramidDetector):
    """Frontal faces with scikit-image's bundled LBP cascade, on a downscaled grey image.

    Args:
        detect_width: full-frame searches run at this width (a face must be at least 20 px
            there: 80 px in a 1280-wide frame).
        window_face_px: window searches resize the expected face to this size.
        min_neighbors: cascade vote threshold (higher = fewer false positives).
    """

    name = "cascade"
    #: Smallest face the cascade window sees, px (the cascade's window is 24x24).
    MIN_FACE_PX = 20
    #: scikit-image's recommended pyramid step for speed (1.2).
    SCALE_FACTOR = 1.2

    def __init__(self, detect_width: int = 320, window_face_px: int = 48, min_neighbors: int = 4) -> None:
        self.detect_width, self.window_face_px, self.min_neighbors = detect_width, window_face_px, min_neighbors
        _cascade()  # load now: a missing file fails at start, not on the first frame

    def _boxes(self, grey, min_px, max_px):
        min_px = max(self.MIN_FACE_PX, min_px)
        if max_px < min_px:
            return []
        dets = _cascade().detect_multi_scale(grey, scale_factor=self.SCALE_FACTOR, step_ratio=1,
                                             min_size=(int(min_px), int(min_px)),
                                             max_size=(int(max_px), int(max_px)),
                                             min_neighbor_number=self.min_neighbors)
        # The cascade reports no score: every detection passed all its stages.
        return [(d["c"] + 0.5 * d["width"] - 0.5, d["r"] + 0.5 * d["height"] - 0.5, float(d["width"]), 1.0)
                for d in dets]


class DlibHogDetector(PyramidDetector):
    """dlib's HOG frontal face detector (``dlib-bin`` wheel, imported on construction).

    Args:
        detect_width: full-frame searches run at this width (the HOG window is 80 px: a face
            must be at least 80 px there).
        window_face_px: window searches resize the expected face to this size.
        threshold: SVM score a detection needs (dlib's default 0; higher = fewer false
            positives, lower = more recall).

    Raises:
        ImportError: dlib is not installed (the message says how to install it).
    """

    name = "dlib-hog"
    MIN_FACE_PX = 80
    # To the cascade's convention through the teacher's boxes on TRAIN photos: the teacher box
    # is 0.97 x 1.09 cascade sides and 0.82 x 0.95 (x 1.2) dlib sides, its centre 0.028 / 0.004
    # sides below theirs (benchmarks/detection.py calibration).
    BOX_SCALE = 1.03
    BOX_DY = -0.02

    def __init__(self, detect_width: int = 640, window_face_px: int = 96, threshold: float = 0.0) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise ImportError("detector 'dlib-hog' needs dlib: pip install dlib-bin "
                              "(or pip install -e .[detect])") from exc
        self.detect_width, self.window_face_px, self.threshold = detect_width, window_face_px, threshold
        self._hog = dlib.get_frontal_face_detector()

    def _boxes(self, grey, min_px, max_px):
        if max_px < self.MIN_FACE_PX:
            return []
        rects, scores, _ = self._hog.run(np.ascontiguousarray(grey), 0, self.threshold)
        out = []
        for r, s in zip(rects, scores):
            side = 0.5 * ((r.right() - r.left() + 1) + (r.bottom() - r.top() + 1))
            if min_px <= side <= max_px * 1.25:
                out.append((0.5 * (r.left() + r.right()), 0.5 * (r.top() + r.bottom()), side, s))
        return out


class GraphDetector(FaceDetector):
    """A detector that is one ONNX graph with one image input (1 x 3 x H x W, BGR in [0, 1]), run
    through :func:`realtime.backends.graph_runner.open_graph`."""

    def _open(self, backend: str, threads: int | None) -> tuple[int, ...]:
        """Open ``self.path``; returns the input's shape."""
        from realtime.backends.graph_runner import open_graph

        self._runner = open_graph(self.path, backend, threads=threads)
        (self._input, shape), = self._runner.inputs.items()
        return tuple(int(d) for d in shape)

    @property
    def backend(self) -> str:
        return self._runner.backend

    def raw(self, image_bgr: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs by name for one input-sized BGR image."""
        x = np.ascontiguousarray(image_bgr.transpose(2, 0, 1)[None], dtype=np.float32) * np.float32(1 / 255.0)
        return self._runner.run({self._input: x})


class TryonFaceDetector(GraphDetector):
    """The project's own face detector (``tryon-face``): one network run on the whole frame
    letterboxed to the graph's input (256 x 192), or on a square window of 3 face sizes
    around ``near`` scaled to the input's height; the graph gives face-centre peaks with
    each face's side, sub-cell offset and roll (:mod:`training.face_detector`).

    Args:
        weights: the ONNX graph (default: the shipped ``realtime/weights/tryon_face.onnx``).
        backend: graph runtime (``auto``, ``openvino``, ``onnxruntime``, ``tensorrt``).
        threshold: peak score a face needs (0..1; higher = fewer false detections). The default
            is the lowest with no false detection on 150 procedural clutter frames (TRAIN-side
            data, not the benchmark's no-face images).
        threads: CPU threads of the runtime.

    Raises:
        FileNotFoundError: the graph file is missing.
        realtime.errors.BackendError: no runtime can open it (the message says why).
    """

    name = "tryon-face"
    ROLL_AWARE = True
    #: The network's box is the teacher's face box in the face's own frame (side sqrt(w h)).
    #: To the cascade's convention (the teacher box is 0.97 x 1.09 cascade sides, its centre
    #: 0.028 sides below the cascade's, see dlib-hog) through the benchmark's calibration of
    #: this detector (teacher box 1.08 x 1.16 of its sides with BOX_SCALE 0.973, centre 0.028
    #: below): 0.973 x sqrt(1.08 / 0.97 x 1.16 / 1.09).
    BOX_SCALE = 1.06
    BOX_DY = -0.028
    WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "tryon_face.onnx"
    detect_width = 640
    window_face_px = 64
    #: Two peaks closer than this share of the larger side are one face.
    NMS_DIST = 0.5

    def __init__(self, weights: str | Path | None = None, backend: str = "auto", threshold: float = 0.35,
                 threads: int | None = 1) -> None:
        from realtime.backends.graph_runner import onnx_metadata

        self.path = Path(weights) if weights is not None else self.WEIGHTS
        meta = onnx_metadata(self.path)  # FileNotFoundError names the file
        self.stride = int(meta.get("stride", "4"))
        self.threshold = float(threshold)
        shape = self._open(backend, threads)  # outputs ``peaks``, ``reg``
        self.input_h, self.input_w = shape[2], shape[3]

    def decode(self, out: dict[str, np.ndarray]) -> list[tuple[float, float, float, float, float]]:
        """(cx, cy, side, score, roll_deg) in input pixels of every peak above the threshold, best first."""
        peaks, reg = out["peaks"][0, 0], out["reg"][0]
        ys, xs = np.nonzero(peaks > self.threshold)
        order = np.argsort(-peaks[ys, xs])
        kept: list[tuple[float, float, float, float, float]] = []
        for iy, ix in zip(ys[order], xs[order]):
            lg, dx, dy, sn, cs = (float(v) for v in reg[:, iy, ix])
            cx, cy, side = (ix + dx) * self.stride, (iy + dy) * self.stride, math.exp(min(lg, 8.0)) * self.stride
            if any(math.hypot(cx - k[0], cy - k[1]) < self.NMS_DIST * max(side, k[2]) for k in kept):
                continue
            kept.append((cx, cy, side, float(peaks[iy, ix]), math.degrees(math.atan2(sn, cs))))
        return kept

    def _faces(self, frame: np.ndarray, x0: float, y0: float, side_w: float, side_h: float) -> list[FaceBox]:
        image, back = letterbox(frame, (x0, y0, side_w, side_h), (self.input_w, self.input_h),
                                native.shrink_rows_sampled)
        if back is None:
            return []
        out = []
        for cx, cy, side, score, roll in self.decode(self.raw(image)):
            fx = back[0, 0] * cx + back[0, 2]
            fy = back[1, 1] * cy + back[1, 2]
            side = side * back[0, 0] * self.BOX_SCALE
            t = math.radians(roll)  # the cascade convention's centre, along the face's own down axis
            out.append(FaceBox(fx - math.sin(t) * self.BOX_DY * side, fy + math.cos(t) * self.BOX_DY * side, side,
                               score, roll))
        return out

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        h, w = frame_bgr.shape[:2]
        if near is None:
            return sorted(self._faces(frame_bgr, 0.0, 0.0, float(w), float(h)), key=lambda f: -f.side)
        half = 1.5 * near.side
        faces = [f for f in self._faces(frame_bgr, near.cx - half, near.cy - half, 2 * half, 2 * half)
                 if 0.5 * near.side <= f.side <= 2.0 * near.side and abs(f.cx - near.cx) <= half
                 and abs(f.cy - near.cy) <= half]
        return sorted(faces, key=lambda f: math.hypot(f.cx - near.cx, f.cy - near.cy))


class BlazeFaceDetector(GraphDetector):
    """MediaPipe's short-range BlazeFace (``blazeface``), rebuilt from its TFLite graph by
    :mod:`training.teacher.tflite_convert` and shipped as ``realtime/weights/blazeface_short.onnx``
    (model card ``blazeface_short.md``), run through
    :func:`realtime.backends.graph_runner.open_graph` like ``tryon-face`` (TensorRT on an NVIDIA
    GPU). One run on the whole frame letterboxed into the square 128 x 128 input, or on a
    square window of 3 face sizes around ``near``; decoded by :class:`realtime.live.blazeface.
    BlazeFaceDecoder` (anchors, sigmoid, weighted NMS). The eye keypoints give each face's roll.

    Args:
        weights: the ONNX graph (default: the shipped one).
        backend: graph runtime (``auto``, ``openvino``, ``onnxruntime``, ``tensorrt``).
        threshold: score a face needs (MediaPipe's own default 0.5).
        verify_threshold: a full-frame candidate is re-run in a window of 3 of its sizes and
            kept only when it scores at least this there (:meth:`verified`; None: no re-run).
            The default 0.6 removed every false detection on TRAIN-side no-face images (photo
            regions away from the face, procedural clutter, the accessory sprites) at no recall
            cost on TRAIN photo variants (model card).
        layout: the keypoint layout model (:class:`realtime.live.blazeface.KeypointLayout`) a
            full-frame candidate's 6 keypoints must fit before its re-checks (default: the shipped
            ``blazeface_short_layout.json``, fitted on TRAIN photos; None: no layout check).
        upright_check: a full-frame candidate must also score ``verify_threshold`` in the window
            turned upright by its eye keypoints (:meth:`upright_score`; one more network run).
        pad: full-frame searches also run on the whole frame shrunk inside a black border of
            this fraction of its size on every side (0: not): the short-range model misses a
            face that fills the frame, worst when it is also rolled (a close-up tilted by 45
            degrees); the tracker's padded acquisition view found those only one view cycle
            later (benchmarks/results/detection_all: one search at 45 degrees 93.3 %).
        tile: full-frame searches of a non-square frame also search squares of its short side
            (:meth:`tiles`): the short-range model sees faces from about 15 % of its input's
            side, and a 16:9 frame letterboxed whole leaves 44 % of the input black.
        threads: CPU threads of the runtime.

    Raises:
        FileNotFoundError: the graph file is missing.
        realtime.errors.BackendError: the file is not a readable ONNX graph, is not a BlazeFace
            graph, or no runtime can open it (the message names the file).
    """

    name = "blazeface"
    ROLL_AWARE = True
    #: BlazeFace's box -> the cascade's convention, fitted on 98 upright TRAIN photos
    #: (benchmarks/results/blazeface_parity_*): the teacher's mesh box is 1.010 x 1.017
    #: BlazeFace sides, its centre 0.032 sides above BlazeFace's, and 0.97 x 1.09 cascade sides
    #: with its centre 0.028 cascade sides below the cascade's (see dlib-hog): the cascade side is
    #: sqrt(1.010 x 1.017 / (0.97 x 1.09)) = 0.986 BlazeFace sides, its centre -0.032 / 0.986 - 0.028
    #: = -0.060 cascade sides below BlazeFace's.
    BOX_SCALE = 0.986
    BOX_DY = -0.060
    #: BlazeFace's box shrinks on a rolled face: its side at a roll / upright (median over 100 TRAIN
    #: photos turned by 15 / 30 / 45 / 60 degrees, same results file); the side is divided by this,
    #: interpolated at the |roll| the eye keypoints give (held beyond 60).
    ROLL_SIDE: ClassVar[tuple[tuple[float, ...], tuple[float, ...]]] = (
        (0.0, 15.0, 30.0, 45.0, 60.0), (1.0, 0.971, 0.899, 0.847, 0.859))
    WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "blazeface_short.onnx"
    #: The keypoint layout model of :meth:`verified` (fitted by ``benchmarks/blazeface_layout.py``).
    LAYOUT = WEIGHTS.with_name("blazeface_short_layout.json")
    detect_width = 640
    window_face_px = 43

    def __init__(self, weights: str | Path | None = None, backend: str = "auto", threshold: float | None = None,
                 verify_threshold: float | None = 0.6, layout: str | Path | None = "default",
                 upright_check: bool = True, pad: float = 0.25, tile: bool = True, threads: int | None = 1) -> None:
        import json

        from realtime.backends.graph_runner import onnx_metadata
        from realtime.errors import BackendError
        from realtime.live.blazeface import BlazeFaceDecoder, KeypointLayout

        self.path = Path(weights) if weights is not None else self.WEIGHTS
        meta = onnx_metadata(self.path)  # FileNotFoundError / BackendError name the file
        if meta.get("format") != "blazeface" or "options" not in meta:
            raise BackendError(f"{self.path}: not a BlazeFace graph (metadata format {meta.get('format')!r}; "
                               "convert one with python -m training.teacher.tflite_convert)")
        try:
            self.decoder = BlazeFaceDecoder(json.loads(meta["options"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{self.path}: bad BlazeFace options in its metadata ({exc})") from exc
        self.threshold = float(self.decoder.opts["min_score"] if threshold is None else threshold)
        self.verify_threshold = None if verify_threshold is None else float(verify_threshold)
        if layout is None:
            self.layout = None
        else:
            lpath = self.LAYOUT if isinstance(layout, str) and layout == "default" else Path(layout)
            try:
                self.layout = KeypointLayout.load(lpath)
            except ValueError as exc:
                raise BackendError(str(exc)) from exc
        self.upright_check = bool(upright_check)
        self.tile = bool(tile)
        if not 0.0 <= float(pad) <= 2.0:
            raise ValueError(f"blazeface pad must be in [0, 2] (a fraction of the frame), got {pad!r}")
        self.pad = float(pad)
        shape = self._open(backend, threads)  # outputs ``regressors``, ``classificators``
        if shape[2:] != (self.decoder.size, self.decoder.size):
            raise BackendError(f"{self.path}: input {shape}, its options say {self.decoder.size} px")
        self.size = self.decoder.size

    def detections(self, frame: np.ndarray, region_xywh: tuple[float, float, float, float] | None = None):
        """BlazeFace's own detections in a frame region (default: the whole frame), in frame
        pixels: [(score, box xyxy, keypoints (6, 2))], best first (the parity check's view)."""
        h, w = frame.shape[:2]
        image, back = letterbox(frame, region_xywh or (0.0, 0.0, float(w), float(h)), (self.size, self.size),
                                native.shrink_rows_sampled)
        if back is None:
            return []
        out = self.raw(image)
        found = []
        for d in self.decoder.decode(out["regressors"], out["classificators"], min_score=self.threshold):
            box = d.box.reshape(2, 2) @ back[:, :2].T + back[:, 2]
            kps = d.keypoints @ back[:, :2].T + back[:, 2]
            found.append((d.score, box.reshape(4), kps))
        return found

    def _face(self, score: float, box: np.ndarray, kps: np.ndarray) -> FaceBox:
        roll = roll_from_eyes(kps[0], kps[1])
        bw, bh = box[2] - box[0], box[3] - box[1]
        shrink = float(np.interp(min(abs(roll), 180.0 - abs(roll)), *self.ROLL_SIDE))
        side = math.sqrt(max(bw * bh, 1e-6)) * self.BOX_SCALE / shrink
        t = math.radians(roll)  # the cascade convention's centre, along the face's own down axis
        cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
        return FaceBox(cx - math.sin(t) * self.BOX_DY * side, cy + math.cos(t) * self.BOX_DY * side, side,
                       score, roll)

    def verified(self, frame: np.ndarray, found) -> list:
        """Full-frame candidates that pass every check, in turn (the free one first):

        1. keypoint layout: the 6 keypoints lie where a face's would (:attr:`layout`'s
           Mahalanobis limit, fitted on TRAIN photos at rolls up to 60 degrees and faces of
           15-80 % of the frame height);
        2. window: run again in a window of 3 of their sizes (the face then fills a third of
           the input, the model's sweet spot), a detection overlapping the candidate (IoU > 0.3)
           scores >= ``verify_threshold``;
        3. upright (``upright_check``): the same in that window turned upright by the eye
           keypoints (:meth:`upright_score`) -- a face stays a face when turned, a chance
           pattern seldom does.
        Without ``verify_threshold`` only the layout check runs. Kept with the candidate's own
        box and keypoints and the better score."""
        from realtime.live.blazeface import box_iou

        out = []
        for score, box, kps in found:
            if self.layout is not None and not self.layout.plausible(box, kps):
                continue
            if self.verify_threshold is None:
                out.append((score, box, kps))
                continue
            side = math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))
            cx, cy, half = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]), 1.5 * side
            again = [d for d in self.detections(frame, (cx - half, cy - half, 2 * half, 2 * half))
                     if d[0] >= self.verify_threshold and box_iou(box, d[1][None])[0] > 0.3]
            if not again or (self.upright_check and self.upright_score(frame, box, kps) < self.verify_threshold):
                continue
            out.append((max(score, max(d[0] for d in again)), box, kps))
        return out

    def upright_score(self, frame: np.ndarray, box: np.ndarray, kps: np.ndarray) -> float:
        """Best score of a detection overlapping the candidate (IoU > 0.3) in a window of 3 of
        its sizes around it, turned so that its eye keypoints are level (0: none)."""
        from realtime.live.blazeface import box_iou

        side = math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))
        scale = self.size / (3.0 * side)
        mat = view_from_frame((0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])), scale, (self.size, self.size),
                              roll_from_eyes(kps[0], kps[1]))
        view = cv2.warpAffine(frame, np.ascontiguousarray(mat[:2]), (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        out = self.raw(view)
        c, half = (self.size - 1) / 2.0, 0.5 * side * scale
        ref = np.array([[c - half, c - half, c + half, c + half]])
        return max((d.score for d in self.decoder.decode(out["regressors"], out["classificators"],
                                                         min_score=self.threshold)
                    if box_iou(d.box, ref)[0] > 0.3), default=0.0)

    def tiles(self, shape_hw: tuple[int, int]) -> list[tuple[float, float, float, float]]:
        """Square regions of a full-frame search besides the whole frame: a wide (or tall) frame
        letterboxed whole shrinks its faces by its long side, so squares of the short side are
        searched too, evenly spaced along the long side and overlapping by at least a third
        (2 for 4:3, 3 for 16:9; none for a square frame or with ``tile`` off)."""
        h, w = shape_hw
        short, long_ = min(h, w), max(h, w)
        if not self.tile or long_ < 1.05 * short:
            return []
        n = max(2, math.ceil(2.0 * long_ / short) - 1)
        starts = np.linspace(0.0, long_ - short, n)
        return [(float(a), 0.0, float(short), float(short)) if w >= h else (0.0, float(a), float(short), float(short))
                for a in starts]

    @staticmethod
    def _overlaps(box: np.ndarray, kept: list) -> bool:
        """Whether ``box`` overlaps one of the ``kept`` detections by IoU > 0.3."""
        from realtime.live.blazeface import box_iou

        return bool(kept) and bool(np.any(box_iou(box, np.array([k[1] for k in kept])) > 0.3))

    @classmethod
    def _merged(cls, found: list) -> list:
        """Detections best first, one overlapping a better one by IoU > 0.3 dropped."""
        kept: list = []
        for d in sorted(found, key=lambda d: -d[0]):
            if not cls._overlaps(d[1], kept):
                kept.append(d)
        return kept

    def padded(self, frame: np.ndarray) -> list:
        """Detections in the whole frame shrunk inside a black border of ``pad`` of its size on
        every side (none with ``pad`` 0): the full-frame search's last pass (:meth:`detect`)."""
        if self.pad <= 0.0:
            return []
        h, w = frame.shape[:2]
        return self._merged(self.detections(frame, (-self.pad * w, -self.pad * h, (1.0 + 2.0 * self.pad) * w,
                                                    (1.0 + 2.0 * self.pad) * h)))

    def full_frame(self, frame: np.ndarray) -> list:
        """Detections of the whole frame and its :meth:`tiles`, merged (a detection overlapping a
        better one by IoU > 0.3 is dropped), best first: the full-frame search's candidates before
        the :meth:`padded` pass (what the keypoint layout was fitted on)."""
        h, w = frame.shape[:2]
        found = list(self.detections(frame))
        for region in self.tiles((h, w)):
            found += self.detections(frame, region)
        return self._merged(found)

    def detect(self, frame_bgr: np.ndarray, near: FaceBox | None = None) -> list[FaceBox]:
        if near is None:
            # The whole frame and its tiles, merged, checked (:meth:`verified`); then the padded
            # pass's candidates where no face was accepted, checked too. A candidate of the
            # whole frame that fails its checks still hides the weaker ones of the tiles at its
            # place (letting them through tripled the false detections), but not the padded
            # pass's: a face that fills the frame is too large for the short-range model there,
            # and the smaller, padded view is the one to trust (a close-up rolled by 45 degrees).
            found = self.verified(frame_bgr, self.full_frame(frame_bgr))
            for cand in self.padded(frame_bgr):
                if not self._overlaps(cand[1], found):
                    found += self.verified(frame_bgr, [cand])
            return sorted((self._face(*d) for d in found), key=lambda f: -f.side)
        half = 1.5 * near.side
        faces = [f for f in (self._face(*d) for d in self.detections(frame_bgr, (near.cx - half, near.cy - half,
                                                                                  2 * half, 2 * half)))
                 if 0.5 * near.side <= f.side <= 2.0 * near.side and abs(f.cx - near.cx) <= half
                 and abs(f.cy - near.cy) <= half]
        return sorted(faces, key=lambda f: math.hypot(f.cx - near.cx, f.cy - near.cy))


# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

#: name -> factory from the category's :class:`RoiConfig` (None: the detector's defaults).
DETECTORS: dict[str, Callable[[RoiConfig | None], FaceDetector]] = {
    "cascade": lambda cfg: CascadeDetector() if cfg is None else
    CascadeDetector(cfg.detect_width, cfg.window_face_px, cfg.min_neighbors),  # defaults = RoiConfig's
    "dlib-hog": lambda cfg: DlibHogDetector(),
    "tryon-face": lambda cfg: TryonFaceDetector(),
    "blazeface": lambda cfg: BlazeFaceDetector(),
}
#: The default, chosen by measurement (benchmarks/results/detection_*.md).
DEFAULT_DETECTOR = "blazeface"


def detector_names() -> list[str]:
    """Registered detector names."""
    return list(DETECTORS)


def make_detector(name: str | None = None, cfg: RoiConfig | None = None) -> FaceDetector:
    """The detector called ``name`` (default :data:`DEFAULT_DETECTOR`).

    Raises:
        ValueError: unknown name (the message lists the known ones).
        ImportError: its optional package is missing (the message says which).
    """
    name = name or DEFAULT_DETECTOR
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](cfg)


# --------------------------------------------------------------------------------------
# Views: rotated, padded
# --------------------------------------------------------------------------------------

def detect_in_view(detector: FaceDetector, frame_bgr: np.ndarray, view_from_frame_mat: np.ndarray,
                   view_wh: tuple[int, int], roll_deg: float, near: FaceBox | None = None) -> list[FaceBox]:
    """Run ``detector`` on a similarity view of the frame; boxes come back in frame pixels.

    Args:
        view_from_frame_mat: 3x3 similarity frame -> view (:func:`realtime.geometry.view_from_frame`).
        view_wh: view size.
        roll_deg: the roll the view removes (added to the ``roll_deg`` the detector reports in the view).
        near: a face in *frame* pixels to search around (mapped into the view).
    """
    view = cv2.warpAffine(frame_bgr, np.ascontiguousarray(view_from_frame_mat[:2]), view_wh,
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    scale = math.hypot(view_from_frame_mat[0, 0], view_from_frame_mat[1, 0])
    near_v = None
    if near is not None:
        c = warp_points(view_from_frame_mat, np.array([near.cx, near.cy]))
        near_v = FaceBox(float(c[0]), float(c[1]), near.side * scale)
    frame_from_view = np.linalg.inv(view_from_frame_mat)
    out = []
    for f in detector.detect(view, near=near_v):
        c = warp_points(frame_from_view, np.array([f.cx, f.cy]))
        # the view's roll plus the roll the detector itself saw in the view (0 for an upright-only detector)
        out.append(FaceBox(float(c[0]), float(c[1]), f.side / scale, f.score,
                           (float(roll_deg) + f.roll_deg + 180.0) % 360.0 - 180.0))
    return out


def detect_rolled_near(detector: FaceDetector, frame_bgr: np.ndarray, near: FaceBox, roll_deg: float) -> list[FaceBox]:
    """Window search around a followed face rolled by ``roll_deg``: the window is de-rotated
    (and already scaled to the detector's window size), so the face is upright in it."""
    scale = min(1.0, detector.window_face_px / (near.side / detector.BOX_SCALE))
    side = max(8, int(round(3.0 * near.side * scale)))
    mat = view_from_frame((near.cx, near.cy), scale, (side, side), roll_deg)
    return detect_in_view(detector, frame_bgr, mat, (side, side), roll_deg, near=near)


#: Extra views searched while nobody is followed, one per detection attempt, in turn:
#: (roll_deg, pad): the frame de-rotated by roll_deg, or shrunk into a black border of
#: ``pad`` frame sizes per side (a face cut by the frame border becomes whole).
#: The cascade tolerates about +-10 degrees of roll, hence 15-degree steps; 30 first (a
#: person who sits down tilted), the padded view every third attempt.
ACQUIRE_VIEWS: tuple[tuple[float, float], ...] = (
    (30.0, 0.0), (-30.0, 0.0), (0.0, 0.25), (15.0, 0.0), (-15.0, 0.0), (0.0, 0.25), (45.0, 0.0), (-45.0, 0.0),
    (0.0, 0.25), (60.0, 0.0), (-60.0, 0.0), (0.0, 0.25))


def acquire_view(shape_hw: tuple[int, int], detect_width: int, roll_deg: float,
                 pad: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The view of :func:`detect_acquire_view`: (3x3 view-from-frame similarity, view size)."""
    h, w = shape_hw
    vw = min(w, detect_width)
    vh = max(1, round(h * vw / w))
    scale = vw / w / (1.0 + 2.0 * pad)
    return view_from_frame(((w - 1) / 2.0, (h - 1) / 2.0), scale, (vw, vh), roll_deg), (vw, vh)


def detect_acquire_view(detector: FaceDetector, frame_bgr: np.ndarray, roll_deg: float, pad: float) -> list[FaceBox]:
    """Full-frame search in one extra view (see :data:`ACQUIRE_VIEWS`), at the detector's
    working width; a rotated view keeps the frame's size (its corners are cut)."""
    mat, wh = acquire_view(frame_bgr.shape[:2], detector.detect_width, roll_deg, pad)
    faces = detect_in_view(detector, frame_bgr, mat, wh, roll_deg)
    return sorted(faces, key=lambda f: -f.side)
