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
