"""Decoding MediaPipe BlazeFace outputs: SSD anchors, score sigmoid, boxes and keypoints, weighted NMS.

The graph (``realtime/weights/blazeface_short.onnx``, converted from MediaPipe's short-range
``.tflite`` by :mod:`training.teacher.tflite_convert`) gives, per anchor, 16 regression values
(box centre x, y, width, height, then 6 keypoints x, y) and one score logit. The anchor and
decoding options travel in the graph's metadata (``options``); :class:`BlazeFaceDecoder` builds
the anchors from them the way MediaPipe's ``SsdAnchorsCalculator`` does and decodes like its
``TensorsToDetectionsCalculator`` (reverse output order: x before y) and
``NonMaxSuppressionCalculator`` (weighted). Everything is in the input's pixels; the detector
(:class:`realtime.live.detectors.BlazeFaceDetector`) maps it back to the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


def _layer_scale(min_scale: float, max_scale: float, index: int, count: int) -> float:
    return (min_scale + max_scale) / 2.0 if count == 1 else min_scale + (max_scale - min_scale) * index / (count - 1)


def ssd_anchors(opts: dict[str, Any]) -> np.ndarray:
    """(N, 4) anchors (x centre, y centre, width, height), in units of the input size.

    Layers of equal stride share one feature map; each gets one anchor per aspect ratio plus,
    with ``interpolated_scale_aspect_ratio`` > 0, one between its scale and the next; with
    ``fixed_anchor_size`` every width and height is 1. Order: feature map, row, column, anchor.

    Raises:
        ValueError: a missing or inconsistent option (the message names it).
    """
    try:
        size, strides, n_layers = int(opts["input_size"]), list(opts["strides"]), int(opts["num_layers"])
        lo, hi, offset = float(opts["min_scale"]), float(opts["max_scale"]), float(opts["anchor_offset"])
        ratios, interp = list(opts["aspect_ratios"]), float(opts["interpolated_scale_aspect_ratio"])
        fixed = bool(opts["fixed_anchor_size"])
    except KeyError as exc:
        raise ValueError(f"anchor options lack {exc.args[0]!r}") from exc
    if len(strides) != n_layers:
        raise ValueError(f"anchor options: {len(strides)} strides for num_layers {n_layers}")
    out = []
    layer = 0
    while layer < n_layers:
        sizes = []  # (w, h) of the anchors per cell of this feature map
        last = layer
        while last < n_layers and strides[last] == strides[layer]:
            scale = _layer_scale(lo, hi, last, n_layers)
            for r in ratios:
                sizes.append((scale * math.sqrt(r), scale / math.sqrt(r)))
            if interp > 0:
                nxt = 1.0 if last == n_layers - 1 else _layer_scale(lo, hi, last + 1, n_layers)
                s = math.sqrt(scale * nxt)
                sizes.append((s * math.sqrt(interp), s / math.sqrt(interp)))
            last += 1
        fm = int(math.ceil(size / strides[layer]))
        for y in range(fm):
            for x in range(fm):
                for w, h in sizes:
                    out.append(((x + offset) / fm, (y + offset) / fm, 1.0 if fixed else w, 1.0 if fixed else h))
        layer = last
    return np.array(out, np.float64)


@dataclass
class Detection:
    """One face in input pixels: score (0..1), box (x0, y0, x1, y1), keypoints (K, 2)."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box (x0, y0, x1, y1) with each of ``boxes`` (N, 4)."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, iou_thr: float) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression: the best remaining detection takes every
    other one overlapping it by IoU > ``iou_thr``; its box and keypoints become their
    score-weighted mean, its score stays the best one's. Best first."""
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        top = order[0]
        overlap = box_iou(boxes[top], boxes[order]) > iou_thr
        overlap[0] = True
        group = order[overlap]
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        kps = (keypoints[group] * w[:, :, None]).sum(0) / w.sum()
        out.append(Detection(float(scores[top]), box, kps))
        order = order[~overlap]
    return out


class BlazeFaceDecoder:
    """Anchors and decoding for one graph's options (its ``options`` metadata, JSON-decoded).

    Args:
        opts: the options; ``min_score`` and ``nms_iou`` are the defaults of :meth:`decode`.
    """

    def __init__(self, opts: dict[str, Any]) -> None:
        self.opts = dict(opts)
        self.anchors = ssd_anchors(self.opts)
        self.size = int(self.opts["input_size"])
        self.num_keypoints = int(self.opts["num_keypoints"])
        if len(self.anchors) != int(self.opts["num_boxes"]):
            raise ValueError(f"anchor options give {len(self.anchors)} anchors, the graph has {self.opts['num_boxes']}")

    def decode(self, regressors: np.ndarray, classificators: np.ndarray, min_score: float | None = None,
               nms_iou: float | None = None) -> list[Detection]:
        """Faces from one run's outputs ((1, N, 16) and (1, N, 1) or without the batch axis), in input px."""
        reg = np.asarray(regressors, np.float64).reshape(len(self.anchors), -1)
        logit = np.asarray(classificators, np.float64).reshape(len(self.anchors))
        clip = float(self.opts["score_clip"])
        scores = 1.0 / (1.0 + np.exp(-np.clip(logit, -clip, clip)))
        keep = np.nonzero(scores >= (self.opts["min_score"] if min_score is None else min_score))[0]
        if keep.size == 0:
            return []
        a, r = self.anchors[keep], reg[keep]
        scale = float(self.opts["box_scale"])
        cx = r[:, 0] / scale * a[:, 2] + a[:, 0]
        cy = r[:, 1] / scale * a[:, 3] + a[:, 1]
        w, h = r[:, 2] / scale * a[:, 2], r[:, 3] / scale * a[:, 3]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * self.size
        k = self.num_keypoints
        kp = r[:, 4:4 + 2 * k].reshape(-1, k, 2) / scale * a[:, None, 2:4] + a[:, None, 0:2]
        return weighted_nms(scores[keep], boxes, kp * self.size,
                            float(self.opts["nms_iou"] if nms_iou is None else nms_iou))


# --------------------------------------------------------------------------------------
# Keypoint layout: is this where a face's eyes, nose, mouth and ears would be?
# --------------------------------------------------------------------------------------

#: The features of :func:`keypoint_layout`, in order.
LAYOUT_FEATURES = ("eyes_per_side", "nose_x", "nose_y", "mouth_x", "mouth_y", "right_ear_x", "right_ear_y",
                   "left_ear_x", "left_ear_y", "box_x", "box_y")


def keypoint_layout(box: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """A detection's keypoints in the face's own frame (:data:`LAYOUT_FEATURES`).

    The frame: origin at the midpoint of the eyes (keypoints 0 and 1), x from the subject's
    right eye to the left one, y perpendicular to it (down the face on an upright face), one
    unit the distance between the eyes. Features: that distance over the box side
    (sqrt(w h)); the nose tip, mouth centre, right and left ear, and the box centre in that
    frame (x, y each). Independent of the face's roll, position and size.
    """
    box = np.asarray(box, np.float64).reshape(4)
    k = np.asarray(keypoints, np.float64).reshape(-1, 2)
    side = math.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 1e-12))
    eyes = k[1] - k[0]
    iod = max(float(np.hypot(*eyes)), 1e-9)
    ux = eyes / iod
    axes = np.array([ux, [-ux[1], ux[0]]])  # rows: the face's x and y directions
    mid = 0.5 * (k[0] + k[1])
    pts = np.vstack([k[2:6], [[0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])]]])
    return np.concatenate([[iod / side], ((pts - mid) @ axes.T / iod).reshape(-1)])


@dataclass
class KeypointLayout:
    """A Gaussian model of face keypoint layouts (:func:`keypoint_layout`) and a distance limit.

    Attributes:
        mean: (F,) mean layout.
        inv_cov: (F, F) inverse covariance.
        limit: a detection whose Mahalanobis distance from ``mean`` exceeds this is implausible.
        info: where the model was fitted (free-form, kept in the file).
    """

    mean: np.ndarray
    inv_cov: np.ndarray
    limit: float
    info: dict[str, Any]

    @classmethod
    def fit(cls, layouts: np.ndarray, quantile: float, info: dict[str, Any] | None = None) -> "KeypointLayout":
        """Mean and covariance of ``layouts`` (N, F); ``limit`` the ``quantile`` (0..1) of their own distances."""
        x = np.asarray(layouts, np.float64)
        if x.ndim != 2 or x.shape[1] != len(LAYOUT_FEATURES) or len(x) <= x.shape[1]:
            raise ValueError(f"need more than {len(LAYOUT_FEATURES)} layouts of {len(LAYOUT_FEATURES)} features, "
                             f"got shape {x.shape}")
        model = cls(x.mean(0), np.linalg.inv(np.cov(x.T)), 0.0, dict(info or {}))
        model.limit = float(np.quantile([model.distance_of(f) for f in x], quantile))
        return model

    def distance_of(self, layout: np.ndarray) -> float:
        d = np.asarray(layout, np.float64) - self.mean
        return float(math.sqrt(max(float(d @ self.inv_cov @ d), 0.0)))

    def distance(self, box: np.ndarray, keypoints: np.ndarray) -> float:
        """Mahalanobis distance of a detection's keypoint layout from the model's mean."""
        return self.distance_of(keypoint_layout(box, keypoints))

    def plausible(self, box: np.ndarray, keypoints: np.ndarray) -> bool:
        """True when the detection's keypoints lie where a face's would (distance <= ``limit``)."""
        return self.distance(box, keypoints) <= self.limit

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(LAYOUT_FEATURES), "mean": self.mean.tolist(), "inv_cov": self.inv_cov.tolist(),
                "limit": self.limit, "info": self.info}

    @classmethod
    def load(cls, path) -> "KeypointLayout":
        """Read a model written with :meth:`to_dict` as JSON.

        Raises:
            FileNotFoundError: no such file.
            ValueError: not such a model (the message names the file and what is wrong).
        """
        import json
        from pathlib import Path

        path = Path(path)
        text = path.read_text()  # FileNotFoundError names the file
        try:
            d = json.loads(text)
            if list(d["features"]) != list(LAYOUT_FEATURES):
                raise ValueError(f"features {d['features']} are not {list(LAYOUT_FEATURES)}")
            n = len(LAYOUT_FEATURES)
            mean, inv = np.asarray(d["mean"], np.float64), np.asarray(d["inv_cov"], np.float64)
            if mean.shape != (n,) or inv.shape != (n, n) or not (np.all(np.isfinite(inv)) and np.all(np.isfinite(mean))):
                raise ValueError(f"mean {mean.shape} / inv_cov {inv.shape}: want ({n},) / ({n}, {n}), finite")
            limit = float(d["limit"])
            if not limit > 0:
                raise ValueError(f"limit {limit} is not positive")
            return cls(mean, inv, limit, dict(d.get("info", {})))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a keypoint layout model ({exc})") from exc
