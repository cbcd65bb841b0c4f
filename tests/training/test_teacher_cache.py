"""Tests for ``training.teacher.cache`` (no mediapipe, no shared data, no GPU).

Records are fabricated in ``tmp_path`` with the schema that
``training/teacher/mediapipe_teacher.py`` writes.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from training.teacher import cache as tc

SIZE_WH = (40, 30)


def _face(rng: np.random.Generator, x0: float, width: float) -> dict[str, Any]:
    pts = np.column_stack(
        [
            rng.uniform(x0, x0 + width, tc.NUM_FACE_LANDMARKS),
            rng.uniform(5.0, 5.0 + width, tc.NUM_FACE_LANDMARKS),
            rng.uniform(-3.0, 3.0, tc.NUM_FACE_LANDMARKS),
        ]
    )
    bbox = [float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())]
    return {"landmarks_xyz": np.round(pts, 2).tolist(), "bbox_xyxy": bbox, "bbox_outside_frac": 0.0}


def _record(rng: np.random.Generator, seg_name: str, reject: str | None = None) -> dict[str, Any]:
    pose = np.column_stack([rng.uniform(0, 40, 33), rng.uniform(0, 30, 33), rng.uniform(-5, 5, 33), rng.uniform(0, 1, 33)])
    return {
        "schema_version": 1,
        "image": "/photos/helen/a.jpg",
        "size_wh": list(SIZE_WH),
        "faces": [_face(rng, 2.0, 20.0), _face(rng, 25.0, 8.0)],
        "head_pose": {
            "method": "landmark_frame",
            "yaw_deg": 10.0,
            "pitch_deg": -5.0,
            "roll_deg": 2.5,
            "R": np.eye(3).tolist(),
            "translation_xyz": [12.0, 10.0, 0.5],
            "scale_px": 9.0,
        },
        "pose_convention": "test",
        "pose": {"landmarks_xyzv": np.round(pose, 3).tolist()},
        "seg": seg_name,
        "face_detect_pad_px": 0,
        "reject": reject,
        "reject_all": [] if reject is None else [reject],
        "teacher": {"name": "mediapipe", "version": "0.10.21", "models": {}},
        "timing_ms": {"face_mesh": 1.0, "pose": 2.0, "seg": 0.5},
    }


def _write(folder: Path, stem: str, rec: dict[str, Any], seg_u8: np.ndarray | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    js = folder / f"{stem}.json"
    js.write_text(json.dumps(rec), encoding="utf-8")
    if seg_u8 is not None:
        assert cv2.imwrite(str(folder / rec["seg"]), seg_u8)
    return js


@pytest.fixture
def seg_u8() -> np.ndarray:
    w, h = SIZE_WH
    return np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1))


@pytest.fixture
def record_path(tmp_path: Path, rng: np.random.Generator, seg_u8: np.ndarray) -> Path:
    return _write(tmp_path / "cache" / "helen", "a", _record(rng, "a_seg.png"), seg_u8)


def test_load_record_types_and_shapes(record_path: Path, seg_u8: np.ndarray) -> None:
    rec = tc.load_teacher_record(record_path)
    assert rec.size_wh == SIZE_WH
    assert rec.image_path == Path("/photos/helen/a.jpg")
    assert len(rec.faces) == 2
    assert rec.landmarks is not None
    assert rec.landmarks.shape == (478, 3) and rec.landmarks.dtype == np.float32
    np.testing.assert_array_equal(rec.landmarks, rec.faces[0].landmarks_xyz)
    assert rec.faces[1].bbox_xyxy.shape == (4,)
    assert rec.pose_landmarks is not None
    assert rec.pose_landmarks.shape == (33, 4) and rec.pose_landmarks.dtype == np.float32
    assert rec.head_pose is not None
    assert rec.head_pose.R.shape == (3, 3) and rec.head_pose.R.dtype == np.float32
    assert (rec.head_pose.yaw_deg, rec.head_pose.pitch_deg, rec.head_pose.roll_deg) == (10.0, -5.0, 2.5)
    assert rec.reject is None and rec.accepted and rec.reject_all == ()
    assert rec.teacher["name"] == "mediapipe"


def test_seg_mask_is_lazy_float_in_unit_range(record_path: Path, seg_u8: np.ndarray) -> None:
    rec = tc.load_teacher_record(record_path)
    assert rec._seg is None  # not read by load_teacher_record
    mask = rec.seg_mask
    assert mask.shape == (SIZE_WH[1], SIZE_WH[0]) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    np.testing.assert_allclose(mask, seg_u8 / 255.0, atol=1e-6)
    assert rec.seg_mask is mask  # cached


def test_seg_mask_wrong_size_names_file_and_key(tmp_path: Path, rng: np.random.Generator) -> None:
    js = _write(tmp_path / "c" / "fmd", "b", _record(rng, "b_seg.png"), np.zeros((7, 9), np.uint8))
    rec = tc.load_teacher_record(js)
    with pytest.raises(tc.TeacherCacheError, match="'seg'") as exc:
        _ = rec.seg_mask
    assert str(js) in str(exc.value)


def test_missing_seg_png_raises(tmp_path: Path, rng: np.random.Generator) -> None:
    js = _write(tmp_path / "c" / "fmd", "b", _record(rng, "b_seg.png"))
    with pytest.raises(tc.TeacherCacheError, match="cannot read"):
        _ = tc.load_teacher_record(js).seg_mask


def test_no_face_record(tmp_path: Path, rng: np.random.Generator) -> None:
    rec = _record(rng, "n_seg.png", reject="no_face")
    rec.update(faces=[], head_pose=None, pose=None)
    loaded = tc.load_teacher_record(_write(tmp_path / "c" / "fmd", "n", rec))
    assert loaded.landmarks is None and loaded.head_pose is None and loaded.pose_landmarks is None
    assert loaded.reject == "no_face" and not loaded.accepted and loaded.reject_all == ("no_face",)


def test_malformed_json_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"size_wh": [1, 2', encoding="utf-8")
    with pytest.raises(tc.TeacherCacheError, match="invalid JSON") as exc:
        tc.load_teacher_record(bad)
    assert str(bad) in str(exc.value)


@pytest.mark.parametrize("key", ["faces", "size_wh", "head_pose", "pose", "reject", "seg", "image", "teacher"])
def test_missing_top_level_key_names_file_and_key(tmp_path: Path, rng: np.random.Generator, key: str) -> None:
    rec = _record(rng, "a_seg.png")
    del rec[key]
    js = _write(tmp_path / "c" / "helen", "a", rec)
    with pytest.raises(tc.TeacherCacheError, match=f"missing key '{key}'") as exc:
        tc.load_teacher_record(js)
    assert str(js) in str(exc.value)


def test_missing_nested_key_and_bad_shape(tmp_path: Path, rng: np.random.Generator) -> None:
    rec = _record(rng, "a_seg.png")
    del rec["head_pose"]["R"]
    js = _write(tmp_path / "c" / "helen", "a", rec)
    with pytest.raises(tc.TeacherCacheError, match=r"missing key 'head_pose\.R'"):
        tc.load_teacher_record(js)

    rec = _record(rng, "a_seg.png")
    rec["faces"][1]["landmarks_xyz"] = rec["faces"][1]["landmarks_xyz"][:468]
    js = _write(tmp_path / "c" / "helen", "a", rec)
    with pytest.raises(tc.TeacherCacheError, match=r"faces\[1\]\.landmarks_xyz' has shape \(468, 3\)"):
        tc.load_teacher_record(js)

    rec = _record(rng, "a_seg.png")
    rec["pose"]["landmarks_xyzv"] = [row[:3] for row in rec["pose"]["landmarks_xyzv"]]
    js = _write(tmp_path / "c" / "helen", "a", rec)
    with pytest.raises(tc.TeacherCacheError, match=r"pose\.landmarks_xyzv"):
        tc.load_teacher_record(js)

    rec = _record(rng, "a_seg.png", reject="blurry")
    js = _write(tmp_path / "c" / "helen", "a", rec)
    with pytest.raises(tc.TeacherCacheError, match="'reject'"):
        tc.load_teacher_record(js)


def test_iter_teacher_cache_filters(tmp_path: Path, rng: np.random.Generator, seg_u8: np.ndarray) -> None:
    root = tmp_path / "cache"
    _write(root / "helen", "a", _record(rng, "a_seg.png"), seg_u8)
    _write(root / "helen", "b", _record(rng, "b_seg.png", reject="extreme_crop"), seg_u8)
    _write(root / "fmd", "c", _record(rng, "c_seg.png"), seg_u8)
    (root / "summary.json").write_text("{}", encoding="utf-8")  # top level: not a record

    names = [r.json_path.name for r in tc.iter_teacher_cache(root)]
    assert names == ["c.json", "a.json", "b.json"]  # folders sorted, then files
    assert [r.json_path.stem for r in tc.iter_teacher_cache(root, accepted_only=True)] == ["c", "a"]
    assert [r.json_path.stem for r in tc.iter_teacher_cache(root, folders=["helen"])] == ["a", "b"]
    with pytest.raises(FileNotFoundError, match="nope"):
        list(tc.iter_teacher_cache(root, folders=["nope"]))
    with pytest.raises(FileNotFoundError):
        list(tc.iter_teacher_cache(tmp_path / "missing"))


def test_landmark_index_constants() -> None:
    # Subject's right = image left in MediaPipe's naming; refine_landmarks iris centres.
    assert (tc.FACE_EYE_R_OUTER, tc.FACE_EYE_L_OUTER, tc.FACE_IRIS_R_CENTER, tc.FACE_IRIS_L_CENTER) == (33, 263, 468, 473)
    assert (tc.FACE_FOREHEAD_TOP, tc.FACE_CHIN, tc.FACE_NOSE_TIP) == (10, 152, 1)
    assert (tc.POSE_NOSE, tc.POSE_SHOULDER_L, tc.POSE_SHOULDER_R, tc.POSE_HIP_L, tc.POSE_HIP_R) == (0, 11, 12, 23, 24)
    face_idx = [v for k, v in vars(tc).items() if k.startswith("FACE_") and isinstance(v, int)]
    assert all(0 <= i < tc.NUM_FACE_LANDMARKS for i in face_idx)


def test_missing_venv_error_mentions_setup_command(tmp_path: Path) -> None:
    venv = tmp_path / "no-such-venv"
    with pytest.raises(tc.TeacherEnvMissingError) as exc:
        tc.run_teacher([tmp_path], tmp_path / "out", venv=venv)
    msg = str(exc.value)
    assert str(venv) in msg
    assert "bash training/teacher/setup_env.sh" in msg
    assert isinstance(exc.value, FileNotFoundError)


def test_missing_default_venv_uses_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tc.TEACHER_VENV_ENV, str(tmp_path / "env-venv"))
    with pytest.raises(tc.TeacherEnvMissingError, match="env-venv"):
        tc.teacher_python()


def _fake_venv(root: Path, body: str) -> Path:
    """Makes ``root/bin/python``: a shell script (stands in for the teacher venv)."""
    py = root / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return root


@pytest.mark.skipif(os.name != "posix", reason="fake venv is a POSIX shell script")
def test_run_teacher_on_empty_folder_returns_summary(tmp_path: Path) -> None:
    # The teacher script only imports mediapipe once it has a photo to process,
    # so with an empty folder the main interpreter can stand in for the venv.
    venv = _fake_venv(tmp_path / "venv", f'exec "{sys.executable}" "$@"')
    photos = tmp_path / "photos" / "helen"
    photos.mkdir(parents=True)
    summary = tc.run_teacher([photos], tmp_path / "cache", venv=venv, workers=2, limit=3)
    assert summary["folders"] == {}
    assert summary["last_run"]["photos_processed"] == 0
    assert (tmp_path / "cache" / "helen").is_dir()


@pytest.mark.skipif(os.name != "posix", reason="fake venv is a POSIX shell script")
def test_run_teacher_failure_raises(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path / "venv", "exit 3")
    with pytest.raises(tc.TeacherRunError, match="code 3"):
        tc.run_teacher([tmp_path], tmp_path / "cache", venv=venv)
