"""Training of the face detector (training/face_detector.py) on a tiny generated set: labels,
augmentation geometry, the loop with checkpoints / resume / export, Ctrl-C safety."""

from __future__ import annotations

import math
import os
import signal

import cv2
import numpy as np
import pytest

from realtime.config import load_config
from training.face_detector import (STRIDE, DetectorTrainConfig, Face, FaceSampler, _StopFlag, clutter,
                                    face_from_landmarks, targets, train_detector)

torch = pytest.importorskip("torch")


def _tiny_cfg(**over) -> DetectorTrainConfig:
    base = ["input_w=64", "input_h=64", "channels=[4,8,8,16,16]", "neck=8", "batch_size=2", "steps=4",
            "ckpt_every=2", "warmup=1", "threads=1"]
    return load_config(DetectorTrainConfig, None, base + [f"{k}={v}" for k, v in over.items()])


def _photos(n: int = 3) -> list[tuple[np.ndarray, list[Face]]]:
    """Generated 'photos': a skin-coloured ellipse with two dark eyes, rolled by a known angle."""
    out = []
    for i in range(n):
        img = np.full((96, 96, 3), 60 + 40 * i, np.uint8)
        roll = -20.0 + 20.0 * i
        cv2.ellipse(img, (48, 48), (22, 28), roll, 0, 360, (120, 150, 200), -1)
        t = math.radians(roll)
        for sx in (-9, 9):
            cv2.circle(img, (int(48 + sx * math.cos(t)), int(48 + sx * math.sin(t) - 6 * math.cos(t))), 3, (20, 20, 20), -1)
        out.append((img, [Face(48.0, 48.0, 50.0, roll)]))
    return out


def test_face_from_landmarks_recovers_roll_and_size():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (478, 2)) * [40, 50]
    pts[33], pts[263] = (-25, -10), (25, -10)  # eye corners on a level line
    for roll in (0.0, 35.0, -70.0):
        t = math.radians(roll)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        f = face_from_landmarks(pts @ rot.T + [200, 150])
        assert abs(f.roll - roll) < 1e-6
        up = face_from_landmarks(pts + [200, 150])
        assert abs(f.side - up.side) < 1e-6 and math.hypot(f.cx - 200 - (rot @ [up.cx - 200, up.cy - 150])[0],
                                                          f.cy - 150 - (rot @ [up.cx - 200, up.cy - 150])[1]) < 1e-6


def test_samples_keep_their_labels_on_the_face():
    cfg = _tiny_cfg(input_w=128, input_h=96, neg_frac=0.0, extra_face_frac=0.0)
    sampler = FaceSampler(_photos(), cfg)
    rng = np.random.default_rng(1)
    seen = 0
    for _ in range(20):
        img, faces = sampler.sample(rng)
        assert img.shape == (96, 128, 3) and img.dtype == np.uint8
        for f in faces:
            assert 0 <= f.cx < 128 and 0 <= f.cy < 96 and f.side > 0 and -180 <= f.roll < 180
            seen += 1
        heat, reg, mask = targets(faces, 128, 96)
        assert heat.shape == (24, 32) and reg.shape == (5, 24, 32) and mask.sum() == len({(int(f.cx / STRIDE),
                                                                                           int(f.cy / STRIDE)) for f in faces})
    assert seen >= 10


def test_negatives_are_faceless_procedural_clutter():
    cfg = _tiny_cfg(neg_frac=1.0, extra_face_frac=0.0)
    sampler = FaceSampler(_photos(), cfg)
    rng = np.random.default_rng(2)
    for _ in range(5):
        img, faces = sampler.sample(rng)
        assert faces == [] and img.shape == (64, 64, 3)
    assert clutter(rng, 40, 30).shape == (30, 40, 3)


def test_training_loop_checkpoints_resumes_and_exports(tmp_path):
    cfg = _tiny_cfg()
    onnx_path = train_detector(cfg, tmp_path, progress=False, photos=_photos())
    assert onnx_path.is_file() and (tmp_path / "last.pt").is_file()
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,loss") and [r.split(",")[0] for r in log[1:]] == ["2", "4"]
    cfg6 = _tiny_cfg(steps=6)
    train_detector(cfg6, tmp_path, resume=True, progress=False, photos=_photos())
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in log[1:]] == ["2", "4", "6"]
    pytest.importorskip("onnxruntime")
    from realtime.backends.graph_runner import open_graph

    runner = open_graph(onnx_path, "onnxruntime", threads=1)
    out = runner.run({"image": np.zeros((1, 3, 64, 64), np.float32)})
    assert out["peaks"].shape == (1, 1, 16, 16) and out["reg"].shape == (1, 5, 16, 16)


def test_resume_without_a_checkpoint_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train_detector(_tiny_cfg(), tmp_path, resume=True, progress=False, photos=_photos())


def test_bad_override_names_the_key():
    with pytest.raises(ValueError, match="no_such_key"):
        load_config(DetectorTrainConfig, None, ["no_such_key=1"])


def test_first_sigterm_only_asks_to_stop():
    with _StopFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.stop
