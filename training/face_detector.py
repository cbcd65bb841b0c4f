"""The project's own face detector: a tiny anchor-free (CenterNet-style) network, its
training data, training loop and ONNX export (``tryon train-detector``).

Network (:class:`FaceNet`): a whole frame letterboxed to ``input_w x input_h`` (BGR, 0..1)
-> depthwise-separable backbone (stride 32) -> a small top-down neck back to stride
``STRIDE`` = 4 -> one map of 6 channels per cell:

* ``0``: face-centre heatmap logit (a Gaussian per face, focal loss);
* ``1``: log(face side / STRIDE), the side being sqrt(w * h) of the teacher's face box in
  the face's own (de-rolled) frame;
* ``2, 3``: sub-cell offset of the centre (cells);
* ``4, 5``: sin, cos of the face's roll (positive = eye line clockwise on screen, the
  teacher's ``roll_deg`` convention).

The exported graph (:func:`export_onnx`) takes ``image`` (1, 3, H, W) and gives ``peaks``
(1, 1, H/4, W/4: the sigmoid heatmap where it is a 3x3 local maximum, else 0) and ``reg``
(1, 5, H/4, W/4); :mod:`realtime.live.detectors` decodes them (``tryon-face``).

Data (:class:`FaceSampler`): the TRAIN side of ``training/splits/faces_split_v1.json`` only
(the test side is the detection benchmark), labels from the MediaPipe teacher cache (every
face of a record; centre, side and roll from its 478 landmarks), augmented on the fly:
face 6-95 % of the frame height, roll up to +-90 degrees, centres anywhere (faces cut by
the border), the photo pasted as a rectangle onto a non-face backdrop, extra faces pasted
from other photos, blur, light / dark / noise, grey, mirror. Negatives (no face): procedural
clutter (gradients, noise, shapes, stripes, text) and regions of the photos far from every
teacher face. scikit-image's pictures are never used: the benchmark's no-face images are
made of them.

    tryon train-detector --out runs/face_detector [--set steps=6000] [--resume]
    tryon train-detector --out runs/face_detector --export-only   # last.pt -> face_detector.onnx
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from realtime.config import load_config
from realtime.io import atomic_write_bytes

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
STRIDE = 4
#: Teacher face-mesh eye corners (image left / right on an upright frontal face).
EYE_A, EYE_B = 33, 263
LAST = "last.pt"
ONNX_NAME = "face_detector.onnx"


@dataclass
class DetectorTrainConfig:
    """Recipe of ``tryon train-detector`` (``--config YAML`` and ``--set key=value`` override it).

    Attributes:
        photos: face photo root (folders of the split file); relative to the repository.
        teacher: MediaPipe teacher cache (``<folder>/<stem>.json``); relative to the repository.
        split: the identity-safe split file; only its ``train`` side is read.
        input_w, input_h: network input (a letterboxed frame).
        channels: backbone widths at strides 2, 4, 8, 16, 32; ``neck``: neck / head width.
        steps, batch_size, lr, weight_decay, warmup: AdamW with linear warm-up, cosine decay.
        photo_side: photos are kept in memory with this longer side (px).
        neg_frac: share of samples with no face; extra_face_frac: share with pasted extra faces.
        roll_max: largest roll made by augmentation (degrees).
        scale_min, scale_max: face side as a share of the input height.
        ckpt_every: steps between ``last.pt`` writes; threads: torch CPU threads.
        limit_photos: use only the first N training photos (0 = all; for smoke tests).
    """

    photos: str = "../shared/data/faces"
    teacher: str = "../cache/teacher"
    split: str = "training/splits/faces_split_v1.json"
    input_w: int = 256
    input_h: int = 192
    channels: tuple[int, ...] = (12, 24, 48, 96, 128)
    neck: int = 32
    steps: int = 6000
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup: int = 200
    photo_side: int = 384
    neg_frac: float = 0.12
    extra_face_frac: float = 0.3
    roll_max: float = 90.0
    scale_min: float = 0.06
    scale_max: float = 0.95
    ckpt_every: int = 100
    threads: int = 1
    seed: int = 0
    limit_photos: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d


def _repo_path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else REPO / path


# --------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------

def _torch():
    import torch

    return torch


def build_net(cfg: DetectorTrainConfig):
    """The detector network (torch ``nn.Module``) for ``cfg``."""
    torch = _torch()
    nn = torch.nn

    def cbr(cin, cout, k=3, s=1, groups=1):
        return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    def dws(cin, cout, s=1):
        return nn.Sequential(*cbr(cin, cin, 3, s, cin), *cbr(cin, cout, 1))

    class FaceNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            c = list(cfg.channels)
            if len(c) != 5:
                raise ValueError(f"channels: need 5 widths (strides 2..32), got {c}")
            self.stem = nn.Sequential(*cbr(3, c[0], 3, 2))
            self.s4 = nn.Sequential(dws(c[0], c[1], 2), dws(c[1], c[1]))
            self.s8 = nn.Sequential(dws(c[1], c[2], 2), dws(c[2], c[2]))
            self.s16 = nn.Sequential(dws(c[2], c[3], 2), dws(c[3], c[3]), dws(c[3], c[3]))
            self.s32 = nn.Sequential(dws(c[3], c[4], 2), dws(c[4], c[4]), dws(c[4], c[4]))
            n = cfg.neck
            self.lat = nn.ModuleList([nn.Conv2d(ci, n, 1) for ci in (c[1], c[2], c[3], c[4])])
            self.smooth = nn.ModuleList([dws(n, n) for _ in range(3)])
            self.head = nn.Sequential(dws(n, n), nn.Conv2d(n, 6, 1))
            self.head[-1].bias.data.zero_()
            self.head[-1].bias.data[0] = -4.6  # heatmap prior ~1 %

        def forward(self, x):
            x = self.stem(x)
            f4 = self.s4(x)
            f8 = self.s8(f4)
            f16 = self.s16(f8)
            f32 = self.s32(f16)
            up = torch.nn.functional.interpolate
            y = self.lat[3](f32)
            y = self.smooth[0](self.lat[2](f16) + up(y, scale_factor=2.0, mode="nearest"))
            y = self.smooth[1](self.lat[1](f8) + up(y, scale_factor=2.0, mode="nearest"))
            y = self.smooth[2](self.lat[0](f4) + up(y, scale_factor=2.0, mode="nearest"))
            return self.head(y)

    return FaceNet()


class _Exported:
    """Wraps the net for export: sigmoid heatmap kept only at 3x3 local maxima, plus the regression."""

    @staticmethod
    def make(net):
        torch = _torch()

        class Graph(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, image):
                out = self.inner(image)
                heat = torch.sigmoid(out[:, :1])
                peak = torch.nn.functional.max_pool2d(heat, 3, 1, 1)
                return heat * (heat >= peak).to(heat.dtype), out[:, 1:]

        return Graph(net).eval()


def export_onnx(net, cfg: DetectorTrainConfig, path: Path) -> Path:
    """Write the exported graph (inputs ``image``, outputs ``peaks``, ``reg``) atomically."""
    torch = _torch()
    graph = _Exported.make(net.eval())
    x = torch.zeros(1, 3, cfg.input_h, cfg.input_w)
    buf = io.BytesIO()
    torch.onnx.export(graph, (x,), buf, input_names=["image"], output_names=["peaks", "reg"], opset_version=17,
                      dynamo=False)
    import onnx

    model = onnx.load_from_string(buf.getvalue())
    meta = {"kind": "face_detector", "stride": str(STRIDE), "config": json.dumps(cfg.to_dict())}
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    atomic_write_bytes(path, model.SerializeToString())
    return path


# --------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------

@dataclass
class Face:
    """One labelled face: centre (px), side (px, sqrt(w h) of its de-rolled box), roll (deg)."""

    cx: float
    cy: float
    side: float
    roll: float


def face_from_landmarks(lm_xy: np.ndarray) -> Face:
    """Centre, side and roll of a face from its teacher landmarks (N x 2, px)."""
    a, b = lm_xy[EYE_A], lm_xy[EYE_B]
    roll = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
    t = math.radians(roll)
    c, s = math.cos(t), math.sin(t)
    rot = np.array([[c, s], [-s, c]])  # de-roll
    m = lm_xy.mean(0)
    q = (lm_xy - m) @ rot.T
    lo, hi = q.min(0), q.max(0)
    mid = (lo + hi) / 2 @ np.linalg.inv(rot).T + m
    w, h = hi - lo
    return Face(float(mid[0]), float(mid[1]), float(math.sqrt(max(w, 1.0) * max(h, 1.0))), roll)


def load_train_photos(cfg: DetectorTrainConfig, progress: bool = True) -> list[tuple[np.ndarray, list[Face]]]:
    """(photo BGR at ``photo_side``, faces) for every TRAIN photo with a teacher face.

    Raises:
        FileNotFoundError: the split file, photo root or teacher cache is missing.
    """
    from training.splits import load_split

    split = load_split(_repo_path(cfg.split))
    photos, teacher = _repo_path(cfg.photos), _repo_path(cfg.teacher)
    for p, what in ((photos, "photos"), (teacher, "teacher")):
        if not p.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {p} (set {what}=...)")
    keys = sorted(k for k, (s, _) in split.files.items() if s == "train")
    if cfg.limit_photos:
        keys = keys[:cfg.limit_photos]
    out = []
    it = keys
    if progress:
        from tqdm import tqdm

        it = tqdm(keys, desc="load photos", unit="photo")
    for folder, name in it:
        rec_path = teacher / folder / f"{Path(name).stem}.json"
        if not rec_path.is_file():
            continue
        rec = json.loads(rec_path.read_text())
        if not rec.get("faces"):
            continue
        img = cv2.imread(str(photos / folder / name), cv2.IMREAD_COLOR)
        if img is None:
            raise FileNotFoundError(f"{photos / folder / name}: cannot read the photo")
        k = min(1.0, cfg.photo_side / max(img.shape[:2]))
        if k < 1.0:
            img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_AREA)
        faces = []
        for f in rec["faces"]:
            lm = np.asarray(f["landmarks_xyz"], np.float64)[:, :2] * k
            faces.append(face_from_landmarks(lm))
        out.append((img, faces))
    if not out:
        raise FileNotFoundError(f"no TRAIN photo with a teacher record under {photos} / {teacher}")
    return out


# --------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------

def clutter(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A procedural no-face backdrop: gradient, low-frequency noise, stripes, shapes and text."""
    c0 = rng.uniform(0, 255, 3)
    c1 = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.uniform(0, 2 * np.pi)
    t = ((np.cos(ang) * xx + np.sin(ang) * yy) / max(w, h) + 0.5)[..., None]
    img = c0 * (1 - t) + c1 * t
    k = int(rng.integers(2, 12))
    img += cv2.resize(rng.normal(0, 1, (k, k, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC) * rng.uniform(5, 50)
    if rng.random() < 0.35:  # stripes / texture
        f = rng.uniform(0.05, 0.8)
        a2 = rng.uniform(0, np.pi)
        img += (np.sin(f * (np.cos(a2) * xx + np.sin(a2) * yy)) * rng.uniform(10, 60))[..., None]
    if rng.random() < 0.3:  # fine noise texture
        n = rng.normal(0, rng.uniform(5, 40), (h // 2 + 1, w // 2 + 1)).astype(np.float32)
        img += cv2.resize(n, (w, h))[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 20))):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(6))
        p0 = (int(rng.integers(-20, w + 20)), int(rng.integers(-20, h + 20)))
        p1 = (int(rng.integers(-20, w + 20)), int(rng.integers(-20, h + 20)))
        thick = int(rng.integers(1, 6))
        if kind == 0:
            cv2.line(img, p0, p1, col, thick, cv2.LINE_AA)
        elif kind == 1:
            axes = tuple(int(v) for v in rng.integers(3, max(4, h // 2), 2))
            cv2.ellipse(img, p0, axes, float(rng.uniform(0, 180)), 0, 360, col, -1 if rng.random() < 0.6 else thick,
                        cv2.LINE_AA)
        elif kind == 2:
            cv2.rectangle(img, p0, p1, col, -1 if rng.random() < 0.5 else thick)
        elif kind == 3:
            pts = rng.integers(-20, max(w, h) + 20, (int(rng.integers(3, 7)), 2)).astype(np.int32)
            cv2.fillPoly(img, [pts], col, cv2.LINE_AA)
        elif kind == 4:
            cv2.putText(img, "".join(chr(int(v)) for v in rng.integers(33, 122, int(rng.integers(2, 9)))), p0,
                        int(rng.integers(0, 8)), float(rng.uniform(0.3, 2.0)), col, thick, cv2.LINE_AA)
        else:
            cv2.circle(img, p0, int(rng.integers(2, max(3, h // 3))), col, -1 if rng.random() < 0.5 else thick,
                       cv2.LINE_AA)
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))
    return img


def _region_away_from_faces(rng, photo: np.ndarray, faces: list[Face], w: int, h: int) -> np.ndarray | None:
    """A crop of ``photo`` touching no face (each grown to 1.6 sides), resized to w x h; None if none found."""
    ph, pw = photo.shape[:2]
    for _ in range(12):
        cw = rng.uniform(0.2, 0.7) * pw
        ch = cw * h / w
        if ch > ph:
            continue
        x0, y0 = rng.uniform(0, pw - cw), rng.uniform(0, ph - ch)
        if all(abs(x0 + cw / 2 - f.cx) > cw / 2 + 0.8 * f.side or abs(y0 + ch / 2 - f.cy) > ch / 2 + 0.8 * f.side
               for f in faces):
            crop = photo[int(y0):int(y0 + ch), int(x0):int(x0 + cw)]
            if crop.shape[0] >= 16 and crop.shape[1] >= 16:
                return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    return None


def _roll_sample(rng, roll_max: float) -> float:
    u = rng.random()
    if u < 0.35:
        return float(rng.uniform(-12, 12))
    if u < 0.8:
        return float(rng.uniform(-50, 50))
    return float(rng.uniform(-roll_max, roll_max))


def _similarity(center_src, center_dst, scale: float, rot_deg: float) -> np.ndarray:
    """2x3: rotate by rot_deg (clockwise on screen) and scale about center_src, move it to center_dst."""
    t = math.radians(rot_deg)
    c, s = math.cos(t) * scale, math.sin(t) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0]])
    m[:, 2] = np.asarray(center_dst) - m[:, :2] @ np.asarray(center_src)
    return m


def _move_face(f: Face, m: np.ndarray, rot_deg: float) -> Face:
    c = m[:, :2] @ np.array([f.cx, f.cy]) + m[:, 2]
    k = math.hypot(m[0, 0], m[1, 0])
    return Face(float(c[0]), float(c[1]), f.side * k, (f.roll + rot_deg + 180.0) % 360.0 - 180.0)


class FaceSampler:
    """Draws augmented (image HxWx3 uint8, faces) training samples from the loaded photos."""

    def __init__(self, photos: list[tuple[np.ndarray, list[Face]]], cfg: DetectorTrainConfig) -> None:
        self.photos, self.cfg = photos, cfg

    def _backdrop(self, rng) -> np.ndarray:
        w, h = self.cfg.input_w, self.cfg.input_h
        img = None
        if rng.random() < 0.35:
            photo, faces = self.photos[int(rng.integers(len(self.photos)))]
            img = _region_away_from_faces(rng, photo, faces, w, h)
        if img is None:
            img = clutter(rng, w, h)
        if rng.random() < 0.4:  # pasted face-free rectangles: a photo's edge alone is no face
            for _ in range(int(rng.integers(1, 3))):
                photo, faces = self.photos[int(rng.integers(len(self.photos)))]
                pw, phh = int(rng.uniform(0.15, 0.6) * w), int(rng.uniform(0.15, 0.6) * h)
                patch = _region_away_from_faces(rng, photo, faces, pw, phh)
                if patch is None:
                    patch = clutter(rng, pw, phh)
                m = _similarity((pw / 2, phh / 2), (rng.uniform(0, w), rng.uniform(0, h)), 1.0, rng.uniform(-90, 90))
                cv2.warpAffine(patch, m, (w, h), dst=img, borderMode=cv2.BORDER_TRANSPARENT)
        return img

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, list[Face]]:
        cfg = self.cfg
        w, h = cfg.input_w, cfg.input_h
        img = self._backdrop(rng)
        faces: list[Face] = []
        if rng.random() >= cfg.neg_frac:
            photo, pfaces = self.photos[int(rng.integers(len(self.photos)))]
            main = pfaces[0]
            side = math.exp(rng.uniform(math.log(cfg.scale_min), math.log(cfg.scale_max))) * h
            roll = _roll_sample(rng, cfg.roll_max)
            rot = roll - main.roll
            if rng.random() < 0.25:  # near / across the border
                dst = (rng.uniform(-0.15, 1.15) * w, rng.uniform(-0.15, 1.15) * h)
            else:
                dst = (rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h)
            m = _similarity((main.cx, main.cy), dst, side / main.side, rot)
            border = cv2.BORDER_REPLICATE if rng.random() < 0.15 else cv2.BORDER_TRANSPARENT
            cv2.warpAffine(photo, m, (w, h), dst=img, flags=cv2.INTER_LINEAR, borderMode=border)
            faces += [_move_face(f, m, rot) for f in pfaces]
        if rng.random() < cfg.extra_face_frac:
            for _ in range(int(rng.integers(1, 4))):
                self._paste(rng, img, faces)
        img, faces = self._photometric(rng, img, faces)
        return img, [f for f in faces if 0 <= f.cx < w and 0 <= f.cy < h and f.side >= 4]

    def _paste(self, rng, img: np.ndarray, faces: list[Face]) -> None:
        """Paste one face (a rotated crop around it, soft-edged) from another photo."""
        cfg = self.cfg
        w, h = cfg.input_w, cfg.input_h
        photo, pfaces = self.photos[int(rng.integers(len(self.photos)))]
        f = pfaces[0]
        side = math.exp(rng.uniform(math.log(cfg.scale_min), math.log(0.5))) * h
        dst = (rng.uniform(0, w), rng.uniform(0, h))
        if any(math.hypot(dst[0] - g.cx, dst[1] - g.cy) < 0.75 * (side + g.side) for g in faces):
            return
        roll = _roll_sample(rng, cfg.roll_max)
        rot = roll - f.roll
        m = _similarity((f.cx, f.cy), dst, side / f.side, rot)
        patch = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        mask = np.zeros((h, w), np.float32)
        grow = rng.uniform(1.2, 2.2)
        if rng.random() < 0.5:
            cv2.ellipse(mask, (int(dst[0]), int(dst[1])), (int(0.5 * grow * side), int(0.65 * grow * side)), roll, 0, 360,
                        1.0, -1)
        else:
            box = cv2.boxPoints(((dst[0], dst[1]), (grow * side, grow * side * 1.2), roll)).astype(np.int32)
            cv2.fillPoly(mask, [box], 1.0)
        valid = cv2.warpAffine(np.ones(photo.shape[:2], np.float32), m, (w, h), flags=cv2.INTER_NEAREST)
        mask = cv2.GaussianBlur(mask * valid, (0, 0), max(0.5, 0.05 * side))[..., None]
        img[:] = (img * (1 - mask) + patch * mask).astype(np.uint8)
        faces += [_move_face(g, m, rot) for g in pfaces if math.hypot(*(m[:, :2] @ [g.cx, g.cy] + m[:, 2] - dst)) < 0.5 * side]

    def _photometric(self, rng, img: np.ndarray, faces: list[Face]) -> tuple[np.ndarray, list[Face]]:
        w = img.shape[1]
        if rng.random() < 0.5:
            img = img[:, ::-1]
            faces = [Face(w - 1 - f.cx, f.cy, f.side, -f.roll) for f in faces]
        x = img.astype(np.float32)
        if rng.random() < 0.15:
            x = np.repeat(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)[..., None], 3, -1)
        if rng.random() < 0.2:  # dark
            x = 255.0 * (x / 255.0) ** rng.uniform(1.0, 2.0) * rng.uniform(0.15, 0.5)
        else:
            x = (x - 128.0) * rng.uniform(0.6, 1.4) + 128.0 + rng.uniform(-40, 40)
            x *= rng.uniform(0.85, 1.15, 3)
        if rng.random() < 0.3:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 3.0))
        if rng.random() < 0.5:
            x += rng.normal(0, rng.uniform(1, 8), x.shape).astype(np.float32)
        if rng.random() < 0.1:  # pillarbox / letterbox bars
            b = int(rng.uniform(0.05, 0.3) * w)
            x[:, :b] = 0
            x[:, w - b:] = 0
        return np.clip(x, 0, 255).astype(np.uint8), faces


def targets(faces: list[Face], w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (Hc, Wc), regression targets (5, Hc, Wc) and their mask (Hc, Wc) at STRIDE."""
    hc, wc = h // STRIDE, w // STRIDE
    heat = np.zeros((hc, wc), np.float32)
    reg = np.zeros((5, hc, wc), np.float32)
    mask = np.zeros((hc, wc), np.float32)
    yy, xx = np.mgrid[0:hc, 0:wc].astype(np.float32)
    for f in sorted(faces, key=lambda f: f.side):  # a larger face wins a shared cell's regression
        cx, cy = f.cx / STRIDE, f.cy / STRIDE
        ix, iy = min(wc - 1, int(cx)), min(hc - 1, int(cy))
        sigma = max(0.6, 0.08 * f.side / STRIDE)
        g = np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma * sigma))
        np.maximum(heat, g, out=heat)
        t = math.radians(f.roll)
        reg[:, iy, ix] = (math.log(f.side / STRIDE), cx - ix, cy - iy, math.sin(t), math.cos(t))
        mask[iy, ix] = 1.0
    return heat, reg, mask


def to_input(img_bgr: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 BGR -> (3, H, W) float32 in 0..1 (the graph's input layout)."""
    return np.ascontiguousarray(img_bgr.transpose(2, 0, 1), dtype=np.float32) / 255.0


def batch(sampler: FaceSampler, rng, n: int):
    torch = _torch()
    cfg = sampler.cfg
    xs, hs, rs, ms = [], [], [], []
    for _ in range(n):
        img, faces = sampler.sample(rng)
        heat, reg, mask = targets(faces, cfg.input_w, cfg.input_h)
        xs.append(to_input(img))
        hs.append(heat)
        rs.append(reg)
        ms.append(mask)
    return (torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(hs))[:, None],
            torch.from_numpy(np.stack(rs)), torch.from_numpy(np.stack(ms))[:, None])


def loss_fn(out, heat, reg, mask) -> tuple[Any, dict[str, float]]:
    """CenterNet focal loss on the heatmap + L1 on side / offset / roll at the face centres."""
    torch = _torch()
    p = torch.sigmoid(out[:, :1]).clamp(1e-4, 1 - 1e-4)
    pos = (heat >= 0.999).float()
    npos = pos.sum().clamp(min=1.0)
    lp = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    ln = -(torch.log(1 - p) * p ** 2 * (1 - heat) ** 4 * (1 - pos)).sum()
    l_heat = (lp + ln) / npos
    nm = mask.sum().clamp(min=1.0)
    d = (out[:, 1:] - reg).abs() * mask
    l_size = d[:, 0:1].sum() / nm
    l_off = d[:, 1:3].sum() / nm
    l_roll = d[:, 3:5].sum() / nm
    total = l_heat + l_size + l_off + 0.5 * l_roll
    return total, {"heat": float(l_heat.detach()), "size": float(l_size.detach()), "off": float(l_off.detach()),
                   "roll": float(l_roll.detach())}


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

class _StopFlag:
    """First Ctrl-C / SIGTERM: finish this step, write ``last.pt``, stop; a second one acts at once."""

    def __init__(self) -> None:
        self.stop = False
        self._prev: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._prev[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        log.warning("%s received: stopping after this step and writing %s", signal.Signals(signum).name, LAST)
        self.stop = True
        for sig in self._prev:
            signal.signal(sig, signal.default_int_handler)

    def __exit__(self, *exc):
        for sig, prev in self._prev.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)
        return False


def _save(path: Path, state: dict[str, Any]) -> None:
    torch = _torch()
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _lr(cfg: DetectorTrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def train_detector(cfg: DetectorTrainConfig, out_dir: str | Path, resume: bool = False, progress: bool = True,
                   photos: list[tuple[np.ndarray, list[Face]]] | None = None) -> Path:
    """Train per ``cfg`` into ``out_dir`` (``last.pt``, ``log.csv``, ``config.json``, then
    ``face_detector.onnx``); returns the ONNX path. Ctrl-C / SIGTERM writes ``last.pt`` and
    stops (resume with ``resume=True``).

    Raises:
        FileNotFoundError: data missing, or ``resume`` without ``last.pt``.
    """
    torch = _torch()
    torch.set_num_threads(cfg.threads)
    cv2.setNumThreads(1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = build_net(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, rows = 0, []
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    if resume:
        last = out / LAST
        if not last.is_file():
            raise FileNotFoundError(f"--resume: {last} not found")
        st = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        step, rows = st["step"], st.get("log", [])
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        log.info("resumed %s at step %d", last, step)
    atomic_write_bytes(out / "config.json", json.dumps(cfg.to_dict(), indent=1).encode())
    sampler = FaceSampler(photos if photos is not None else load_train_photos(cfg, progress), cfg)

    def save() -> None:
        _save(out / LAST, {"model": net.state_dict(), "optim": opt.state_dict(), "step": step, "log": rows,
                           "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                           "config": cfg.to_dict()})
        lines = ["step,loss,heat,size,off,roll,lr,samples_per_s"] + [
            ",".join(f"{r[k]:.5g}" for k in ("step", "loss", "heat", "size", "off", "roll", "lr", "sps")) for r in rows]
        atomic_write_bytes(out / "log.csv", ("\n".join(lines) + "\n").encode())

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train detector", unit="step", dynamic_ncols=True)
    net.train()
    acc: dict[str, float] = {}
    t0 = time.perf_counter()
    with _StopFlag() as flag:
        while step < cfg.steps and not flag.stop:
            for g in opt.param_groups:
                g["lr"] = _lr(cfg, step)
            x, heat, reg, mask = batch(sampler, rng, cfg.batch_size)
            loss, parts = loss_fn(net(x), heat, reg, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            step += 1
            for k, v in {"loss": float(loss), **parts}.items():
                acc[k] = acc.get(k, 0.0) + v
            acc["n"] = acc.get("n", 0) + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.3f}", heat=f"{parts['heat']:.3f}")
            if step % cfg.ckpt_every == 0 or step == cfg.steps or flag.stop:
                n = acc.pop("n")
                dt = time.perf_counter() - t0
                rows.append({"step": step, **{k: v / n for k, v in acc.items()}, "lr": _lr(cfg, step - 1),
                             "sps": n * cfg.batch_size / max(dt, 1e-9)})
                acc, t0 = {}, time.perf_counter()
                save()
    if bar is not None:
        bar.close()
    if flag.stop:
        raise KeyboardInterrupt(f"stopped at step {step}; resume with --resume")
    return export_onnx(net, cfg, out / ONNX_NAME)


def load_trained(path: str | Path):
    """(net in eval mode, config) from a run folder's ``last.pt`` or a shipped ``.pt``.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the file is not a face-detector checkpoint.
    """
    torch = _torch()
    path = Path(path)
    path = path / LAST if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"face-detector checkpoint not found: {path}")
    st = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(st, dict) or "model" not in st or "config" not in st:
        raise ValueError(f"{path}: not a face-detector checkpoint (needs 'model' and 'config')")
    cfg = _config_from_dict(st["config"])
    net = build_net(cfg)
    net.load_state_dict(st["model"])
    return net.eval(), cfg


def ship_detector(run_dir: str | Path, weights_dir: str | Path, name: str = "tryon_face") -> list[Path]:
    """Write ``NAME.onnx`` (the exported graph) and ``NAME.pt`` (fp32 weights + config, no
    optimiser state: what the ONNX-vs-torch check loads) from ``run_dir/last.pt``."""
    torch = _torch()
    net, cfg = load_trained(run_dir)
    weights_dir = Path(weights_dir)
    onnx_path = export_onnx(net, cfg, weights_dir / f"{name}.onnx")
    buf = io.BytesIO()
    torch.save({"kind": "face_detector", "model": net.state_dict(), "config": cfg.to_dict()}, buf)
    pt_path = weights_dir / f"{name}.pt"
    atomic_write_bytes(pt_path, buf.getvalue())
    return [onnx_path, pt_path]


def _config_from_dict(d: dict[str, Any]) -> DetectorTrainConfig:
    d = dict(d)
    d["channels"] = tuple(d["channels"])
    return DetectorTrainConfig(**d)


def main(argv: list[str] | None = None) -> int:
    """``tryon train-detector``."""
    from realtime.cli import command_parser

    ap = command_parser("tryon train-detector", "Train the project's own face detector (tryon-face) on the TRAIN "
                        "photos and the MediaPipe teacher's face boxes; export it to ONNX.",
                        ["tryon train-detector --out runs/face_detector --set steps=2000",
                         "tryon train-detector --out runs/face_detector --resume",
                         "tryon train-detector --out runs/face_detector --export-only"],
                        epilog="Config precedence: DetectorTrainConfig defaults < --config YAML < --set overrides\n"
                               "(a resumed run starts from OUT/config.json). Ctrl-C / SIGTERM writes OUT/last.pt.")
    ap.add_argument("--out", required=True, help="run folder (last.pt, log.csv, config.json, face_detector.onnx)")
    ap.add_argument("--config", help="YAML overriding DetectorTrainConfig")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config value, e.g. --set steps=6000 (repeatable)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (its config unless overridden)")
    ap.add_argument("--export-only", action="store_true", help="export OUT/last.pt to OUT/face_detector.onnx")
    ap.add_argument("--ship", metavar="WEIGHTS_DIR", help="write OUT/last.pt as WEIGHTS_DIR/tryon_face.{onnx,pt} "
                    "(the shipped detector: realtime/weights)")
    args = ap.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.ship:
        for p in ship_detector(args.out, args.ship):
            print(f"wrote {p}")
        return 0
    if args.export_only:
        net, cfg = load_trained(args.out)
        print(f"wrote {export_onnx(net, cfg, Path(args.out) / ONNX_NAME)}")
        return 0
    base = None
    saved = Path(args.out) / "config.json"
    if args.resume and saved.is_file():
        base = json.loads(saved.read_text())
    cfg = load_config(DetectorTrainConfig, args.config, args.overrides, base=base)
    try:
        path = train_detector(cfg, args.out, resume=args.resume)
    except KeyboardInterrupt as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 130
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
