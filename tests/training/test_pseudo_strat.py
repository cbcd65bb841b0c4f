"""End-to-end tests of ``training.pseudo_strat`` on fabricated teacher records.

Each test writes a tiny photo folder, a teacher cache in the schema of
``training/teacher/mediapipe_teacher.py`` (landmarks from the synthetic face template of
``training.parsing``) and builds a dataset in ``tmp_path``; no mediapipe, no shared data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from realtime.config import BODY_CLASSES, FACE_CLASSES, IGNORE_INDEX
from training import pseudo_strat as ps
from training.make_dataset import main as make_dataset_main
from training.parsing import template_face_landmarks, template_pose_landmarks
from training.splits import FaceSplit, save_split
from training.strat import StratDataset
from training.teacher.cache import FACE_IRIS_L_CENTER, FACE_IRIS_R_CENTER

SIZE_WH = (320, 360)
# (name, face centre, face width, yaw, roll, with pose, teacher reject)
PHOTOS = (
    ("0_0_alice_0001.jpg", (160, 150), 100, 0.0, 0.0, True, None),
    ("0_0_bob_0001.jpg", (150, 160), 90, 20.0, 8.0, True, None),
    ("0_0_carol_0001.jpg", (170, 140), 95, -15.0, -5.0, False, None),
    ("0_0_dave_0001.jpg", (160, 150), 100, 0.0, 0.0, True, "multiple_faces_similar_size"),
)


def _record_json(name: str, face: np.ndarray, pose: np.ndarray | None, reject: str | None) -> dict[str, Any]:
    bbox = [float(face[:, 0].min()), float(face[:, 1].min()), float(face[:, 0].max()), float(face[:, 1].max())]
    return {
        "schema_version": 1, "image": f"/nowhere/{name}", "size_wh": list(SIZE_WH),
        "faces": [{"landmarks_xyz": np.round(face, 3).tolist(), "bbox_xyxy": bbox, "bbox_outside_frac": 0.0}],
        "head_pose": None, "pose_convention": "test",
        "pose": None if pose is None else {"landmarks_xyzv": np.round(pose, 3).tolist()},
        "seg": f"{Path(name).stem}_seg.png", "face_detect_pad_px": 0, "reject": reject,
        "reject_all": [] if reject is None else [reject],
        "teacher": {"name": "mediapipe", "version": "fabricated", "models": {}},
    }


@pytest.fixture
def photo_setup(tmp_path: Path) -> dict[str, Any]:
    """``photos/fmd/*.jpg``, ``cache/fmd/*.json`` + seg PNGs, the faces, and an accessories folder."""
    photos, cache, accs = tmp_path / "photos" / "fmd", tmp_path / "cache" / "fmd", tmp_path / "accessories"
    for d in (photos, cache, accs):
        d.mkdir(parents=True)
    faces = {}
    w, h = SIZE_WH
    for name, centre, fw, yaw, roll, with_pose, reject in PHOTOS:
        face = template_face_landmarks(centre, fw, yaw_deg=yaw, roll_deg=roll)
        pose = template_pose_landmarks(face, shoulder_ratio=2.0) if with_pose else None
        img = np.full((h, w, 3), (90, 120, 150), np.uint8)
        cv2.ellipse(img, (int(centre[0]), int(centre[1])), (int(fw * 0.5), int(fw * 0.6)), 0, 0, 360,
                    (150, 170, 210), -1)
        assert cv2.imwrite(str(photos / name), img)
        seg = np.zeros((h, w), np.uint8)
        cv2.ellipse(seg, (int(centre[0]), int(centre[1] + fw * 0.3)), (int(fw * 0.8), int(fw * 1.3)), 0, 0, 360,
                    255, -1)
        assert cv2.imwrite(str(cache / f"{Path(name).stem}_seg.png"), seg)
        (cache / f"{Path(name).stem}.json").write_text(json.dumps(_record_json(name, face, pose, reject)))
        faces[name] = face
    # A real-looking accessory file: glasses drawn on a transparent canvas.
    rgba = np.zeros((40, 120, 4), np.uint8)
    for cx in (30, 90):
        cv2.ellipse(rgba, (cx, 20), (25, 16), 0, 0, 360, (20, 20, 20, 255), 4)
    cv2.line(rgba, (55, 18), (65, 18), (20, 20, 20, 255), 3)
    assert cv2.imwrite(str(accs / "glasses_test.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    return {"photos": photos, "cache": tmp_path / "cache", "accessories": accs, "faces": faces, "root": tmp_path}


def _small_split(path: Path) -> Path:
    files = {("fmd", n): ("train", f"fmd:person:{n.split('_')[2]}") for n, *_ in PHOTOS}
    files[("fmd", "0_0_bob_0001.jpg")] = ("test", "fmd:person:bob")
    files[("fmd", "0_0_carol_0001.jpg")] = ("excluded", "fmd:person:carol")
    return save_split(FaceSplit(files, {"version": "test"}), path)


def test_end_to_end_glasses_build_reads_back(photo_setup: dict[str, Any]) -> None:
    out = photo_setup["root"] / "out"
    split_file = _small_split(photo_setup["root"] / "split.json")
    report = ps.build_pseudo_strat([photo_setup["photos"]], photo_setup["accessories"], "glasses", out,
                                   cache_dir=photo_setup["cache"], per_photo=2, seed=1, split_file=split_file,
                                   size=96, progress=False)
    assert report["photos"]["rejected"] == {"split_excluded": 1, "teacher_multiple_faces_similar_size": 1}
    assert report["samples"]["train"] == 2 and report["samples"]["test"] == 2
    assert json.loads((out / "report.json").read_text())["samples"]["train"] == 2
    assert (out / "contact_sheet.png").is_file()
    samples = json.loads((out / "samples.json").read_text())
    assert {v["photo"] for v in samples.values()} == {"fmd/0_0_alice_0001.jpg", "fmd/0_0_bob_0001.jpg"}
    for split, photo in (("train", "0_0_alice_0001.jpg"), ("test", "0_0_bob_0001.jpg")):
        ds = StratDataset(out / split)
        assert ds.category == "glasses" and len(ds) == 2
        gen = ds.meta["generator"]
        assert gen["placement_rules"]["version"] == "v1" and gen["teacher"]["name"] == "mediapipe"
        assert gen["split_file"]["version"] == "test"
        smp = ds[0]
        assert smp["background"].shape == (224, 224, 3) and smp["bg_size_wh"] == (96, 96)
        assert np.all((smp["final_vertex"] >= 0) & (smp["final_vertex"] <= 223))
        labels = set(np.unique(smp["parsing"]).tolist())
        assert labels <= set(range(len(FACE_CLASSES))) | {IGNORE_INDEX}
        assert {FACE_CLASSES.index("skin"), FACE_CLASSES.index("eyes")} <= labels
        # The lens centres lie on the fabricated irises: the quad is centred near their midpoint.
        meta = samples[ds.records[0].id]
        face = photo_setup["faces"][photo]
        side, (cx, cy) = meta["crop_side"], meta["crop_center_xy"]
        iris_mid = (face[[FACE_IRIS_R_CENTER, FACE_IRIS_L_CENTER], :2].mean(0) - (cx - side / 2, cy - side / 2))
        iris_mid = iris_mid * (96 / side) * (224 / 96)
        assert np.linalg.norm(smp["final_vertex"].mean(0) - iris_mid) < 0.1 * np.ptp(smp["final_vertex"][:, 0])
    # Resume: a second run keeps the samples and writes nothing new.
    again = ps.build_pseudo_strat([photo_setup["photos"]], photo_setup["accessories"], "glasses", out,
                                  cache_dir=photo_setup["cache"], per_photo=2, seed=1, split_file=split_file,
                                  size=96, progress=False, contact_sheet=False)
    assert again["samples"]["new"] == 0 and again["samples"]["train"] == 2


def test_tie_build_counts_missing_shoulders_and_writes_body_parsing(photo_setup: dict[str, Any]) -> None:
    out = photo_setup["root"] / "tie"
    report = ps.build_pseudo_strat([photo_setup["photos"]], None, "tie", out, cache_dir=photo_setup["cache"],
                                   per_photo=1, split_file=None, test_fraction=0.0, size=128, progress=False,
                                   contact_sheet=False)
    assert report["photos"]["split_source"] == {"hash": 4}
    assert report["photos"]["rejected"]["all_samples_tie_shoulders_missing"] == 1  # carol has no pose
    assert report["samples"]["rejected"]["tie_shoulders_missing"] == 1
    assert report["samples"]["train"] == 2 and report["samples"]["test"] == 0
    ds = StratDataset(out / "train")
    labels = set(np.unique(ds[0]["parsing"]).tolist())
    assert BODY_CLASSES.index("head") in labels and labels <= set(range(len(BODY_CLASSES))) | {IGNORE_INDEX}


def test_make_dataset_cli_runs_pseudo_strat(photo_setup: dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    out = photo_setup["root"] / "cli"
    rc = make_dataset_main(["pseudo-strat", "--photos", str(photo_setup["photos"]), "--accessories",
                            str(photo_setup["accessories"]), "--category", "glasses", "--out", str(out),
                            "--teacher-cache", str(photo_setup["cache"]), "--limit", "1", "--no-split-file",
                            "--no-procedural", "--size", "64", "--no-progress"])
    assert rc == 0
    assert "samples train" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["photos"]["listed"] == 1
    assert report["generator"]["real_accessories"] == ["glasses/glasses_test"]
    assert report["samples"]["train"] + report["samples"]["test"] == 1


def test_missing_teacher_cache_names_the_fix(photo_setup: dict[str, Any]) -> None:
    with pytest.raises(FileNotFoundError, match="run_teacher"):
        ps.build_pseudo_strat([photo_setup["photos"]], None, "glasses", photo_setup["root"] / "x",
                              cache_dir=photo_setup["root"] / "nocache", split_file=None, progress=False)


def test_check_glasses_against_fabricated_pupils(photo_setup: dict[str, Any]) -> None:
    annotations = {}
    for name, face in photo_setup["faces"].items():
        pts = np.zeros((29, 2))
        pts[ps.LFPW_PUPIL_LEFT] = face[FACE_IRIS_R_CENTER, :2]
        pts[ps.LFPW_PUPIL_RIGHT] = face[FACE_IRIS_L_CENTER, :2]
        annotations[name] = pts.tolist()
    (photo_setup["photos"] / ps.LFPW_FILE).write_text(json.dumps(annotations))
    res = ps.check_glasses(photo_setup["photos"], photo_setup["cache"])
    assert res["n"] == 3 and res["skipped"] == {"teacher_multiple_faces_similar_size": 1}
    assert res["iris_mid"]["p90"] < 1e-3  # the teacher's irises are the annotation here
    assert res["roll_deg"]["p90"] < 0.5
    # Yawed faces: the lens plane in front of the eyes shifts sideways (parallax), a little.
    assert 0.0 <= res["lens_mid"]["median"] < 0.1


def test_sample_ids_are_file_name_safe() -> None:
    sid = ps.sample_id("fmd", "2020-06-23-120048 (another copy).jpg", 2)
    assert sid == "fmd_2020-06-23-120048_another_copy_2"


def test_accessory_pool_mixes_real_and_procedural(photo_setup: dict[str, Any]) -> None:
    pool = ps.accessory_pool("glasses", photo_setup["accessories"], procedural=True, seeds_per_style=2)
    rng = np.random.default_rng(0)
    names = [a.name for _ in range(20) for a in pool.choose(rng, 3)]
    assert "glasses/glasses_test" in names and any(n.startswith("glasses/") and "-" in n for n in names)
    picks = pool.choose(np.random.default_rng(1), 3)
    assert len({a.name for a in picks}) == 3
    with pytest.raises(ValueError, match="no tie accessories"):
        ps.accessory_pool("tie", photo_setup["accessories"], procedural=False)


def test_main_build_accepts_make_dataset_namespace(photo_setup: dict[str, Any]) -> None:
    args = argparse.Namespace(photos=[photo_setup["photos"]], accessories=photo_setup["accessories"],
                              category="hat", out=photo_setup["root"] / "hat", teacher_cache=photo_setup["cache"],
                              per_photo=1, seed=0, test_fraction=0.5, limit=2, split_file=None, no_split_file=True,
                              size=64, no_procedural=False, no_progress=True)
    assert ps.main_build(args) == 0
    assert (photo_setup["root"] / "hat" / "report.json").is_file()


def test_rules_figure_draws_four_panels_on_the_template() -> None:
    img = ps.rules_figure(panel=300)
    assert img.shape == (300 + 62, 4 * 300 + 3 * 4, 3) and img.dtype == np.uint8
    # The accessories and the green quads are drawn: plenty of non-background pixels per panel.
    for k in range(4):
        tile = img[:300, k * 304:k * 304 + 300]
        assert np.mean(np.any(tile != 250, axis=2)) > 0.1


def _tie_record(photo_setup: dict[str, Any]):
    from training.teacher.cache import load_teacher_record

    rec = load_teacher_record(photo_setup["cache"] / "fmd" / "0_0_alice_0001.json")
    photo = cv2.cvtColor(cv2.imread(str(photo_setup["photos"] / "0_0_alice_0001.jpg")), cv2.COLOR_BGR2RGB)
    return rec, photo


def test_tie_padding_is_painted_with_a_torso_or_left_black(photo_setup: dict[str, Any]) -> None:
    from realtime.procedural import generate_accessory

    rec, photo = _tie_record(photo_setup)
    tie = generate_accessory("tie", "necktie_stripes", 5)
    black = ps.make_sample(rec, photo, tie, 128, np.random.default_rng(0), torso_fill=0.0)
    filled = ps.make_sample(rec, photo, tie, 128, np.random.default_rng(0), torso_fill=1.0)
    assert black.info["torso_fill"] is False and filled.info["torso_fill"] is True
    pad = cv2.erode((~black.valid).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # off the seam
    assert pad.any() and np.all(black.background[pad] == 0)
    # Same framing and labels (the fill draws after the jitter); the padding is no longer black.
    np.testing.assert_allclose(filled.final_vertex, black.final_vertex)
    assert np.array_equal(filled.valid, black.valid)
    assert np.mean(filled.background[pad].max(axis=1) < 10) < 0.05
    inner = cv2.erode(black.valid.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    assert np.array_equal(filled.background[inner], black.background[inner])
    # Without an rng (no jitter) nothing is painted: the builder always passes one.
    assert ps.make_sample(rec, photo, tie, 128, None, torso_fill=1.0).info["torso_fill"] is False


def test_fill_torso_continues_the_clothing_below_the_shoulders() -> None:
    s = 96
    img = np.zeros((s, s, 3), np.uint8)
    valid = np.zeros((s, s), bool)
    valid[:50] = True  # the photo ends at row 50, below it padding
    img[:50] = (200, 200, 200)  # background
    seg = np.zeros((s, s), np.float32)
    seg[20:50, 28:68] = 1.0
    img[36:50, 28:68] = (30, 60, 150)  # clothing under the shoulders
    face = np.zeros((478, 2))
    face[:, :] = (48, 20)
    pose = np.zeros((33, 2))
    pose[ps.pl.POSE_SHOULDER_L], pose[ps.pl.POSE_SHOULDER_R] = (66, 34), (30, 34)
    counts = 0
    for seed in range(6):
        out = ps.fill_torso(img, valid, seg, face, pose, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out[:45], img[:45])
        side = out[80, 5].astype(float)  # beside the torso: the photo's background colour
        assert np.all(np.abs(side - 200) < 30)
        body = out[85, 34].astype(float)  # torso edge (the shirt front is at the centre)
        counts += bool(np.all(np.abs(body - (30, 60, 150)) < 40))
    assert counts >= 3  # mostly the photo's clothing colour (a random one 30 % of the time)


def test_torso_fill_share_is_checked(photo_setup: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="torso_fill"):
        ps.build_pseudo_strat([photo_setup["photos"]], None, "tie", photo_setup["root"] / "x",
                              cache_dir=photo_setup["cache"], split_file=None, torso_fill=1.5, progress=False)


def test_make_dataset_cli_torso_fill_reaches_the_build(photo_setup: dict[str, Any]) -> None:
    for share, painted in (("0", False), ("1", True)):
        out = photo_setup["root"] / f"cli_tie_{share}"
        assert make_dataset_main(["pseudo-strat", "--photos", str(photo_setup["photos"]), "--accessories",
                                  str(photo_setup["accessories"]), "--category", "tie", "--out", str(out),
                                  "--teacher-cache", str(photo_setup["cache"]), "--limit", "1", "--no-split-file",
                                  "--test-fraction", "0", "--size", "96", "--no-progress",
                                  "--torso-fill", share]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["generator"]["torso_fill"]["share"] == float(share)
        samples = json.loads((out / "samples.json").read_text())
        assert samples and all(v["torso_fill"] is painted for v in samples.values())
