"""Tests for ``training.placement`` (and the split / parsing helpers it relies on).

No photo, no mediapipe, no shared data: records are fabricated from the synthetic face-mesh
template of ``training.parsing`` (a crude 3-D head rotated with the teacher's angle convention).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from realtime.accessories import Accessory
from realtime.config import IGNORE_INDEX
from realtime.procedural import generate_accessory
from training import placement as pl
from training.parsing import face_parsing, template_face_landmarks, template_pose_landmarks
from training.pseudo_strat import make_sample
from training.splits import (DEFAULT_SPLIT_FILE, FaceSplit, SplitError, assign_splits, group_photos, identity_key,
                             load_split)
from training.teacher.cache import (FACE_CHIN, FACE_FOREHEAD_TOP, FACE_IRIS_L_CENTER, FACE_IRIS_R_CENTER, TeacherFace,
                                    TeacherRecord)

SIZE_WH = (400, 400)


def make_record(face_xyz: np.ndarray, pose: np.ndarray | None = None, size_wh: tuple[int, int] = SIZE_WH,
                reject: str | None = None) -> TeacherRecord:
    """A TeacherRecord in memory (the segmentation preset: person inside a wide ellipse)."""
    w, h = size_wh
    bbox = np.array([*face_xyz[:, :2].min(0), *face_xyz[:, :2].max(0)], np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    c = face_xyz[:, :2].mean(0)
    seg = (((xs - c[0]) / (0.9 * (bbox[2] - bbox[0]))) ** 2 + ((ys - c[1]) / (1.2 * (bbox[3] - bbox[1]))) ** 2
           <= 1.0).astype(np.float32)
    rec = TeacherRecord(json_path=Path("fabricated.json"), image_path=Path("fabricated.jpg"), size_wh=size_wh,
                        faces=[TeacherFace(face_xyz.astype(np.float32), bbox, 0.0)],
                        landmarks=face_xyz.astype(np.float32), pose_landmarks=pose, head_pose=None, reject=reject,
                        reject_all=() if reject is None else (reject,), seg_path=Path("fabricated_seg.png"),
                        teacher={"name": "fabricated", "version": "0"})
    rec._seg = seg
    return rec


def _angle(v: np.ndarray) -> float:
    return math.degrees(math.atan2(float(v[1]), float(v[0])))


@pytest.fixture(scope="module")
def glasses() -> Accessory:
    return generate_accessory("glasses", "rectangular", 1)


@pytest.fixture(scope="module")
def hat() -> Accessory:
    return generate_accessory("hat", "fedora", 2)


@pytest.fixture(scope="module")
def necktie() -> Accessory:
    return generate_accessory("tie", "necktie_plain", 3)


@pytest.fixture(scope="module")
def bow_tie() -> Accessory:
    return generate_accessory("tie", "bow_tie", 4)


# ---------------------------------------------------------------------------------------
# Glasses
# ---------------------------------------------------------------------------------------

def test_lens_centres_of_procedural_glasses_are_near_quarter_points(glasses: Accessory) -> None:
    x0, y0, x1, y1 = glasses.bbox_xyxy()
    lenses = pl.lens_centres_xy(glasses.rgba)
    fx = (lenses[:, 0] - x0) / (x1 - x0)
    fy = (lenses[:, 1] - y0) / (y1 - y0)
    assert fx[0] == pytest.approx(0.25, abs=0.06) and fx[1] == pytest.approx(0.75, abs=0.06)
    assert np.all(np.abs(fy - 0.5) < 0.1)


def test_lens_centres_fall_back_to_default_fractions() -> None:
    rgba = np.zeros((20, 100, 4), np.uint8)
    rgba[9:11, :, 3] = 255  # a thin bar: no lens in the left half ...
    rgba[:, 99, 3] = 255  # ... one tall column in the right half
    lenses = pl.lens_centres_xy(rgba)
    assert lenses[0] == pytest.approx([pl.LENS_CENTRE_FRAC_X[0] * 99, pl.LENS_CENTRE_FRAC_Y * 19])
    assert lenses[1] == pytest.approx([99, 9.5])


@pytest.mark.parametrize("roll", [0.0, 20.0, -15.0])
def test_glasses_centred_on_irises_and_rolled_with_head(glasses: Accessory, roll: float) -> None:
    face = template_face_landmarks((200, 210), 120, roll_deg=roll)
    place = pl.place_accessory(make_record(face), glasses)
    irises = face[[FACE_IRIS_R_CENTER, FACE_IRIS_L_CENTER], :2]
    ipd = float(np.linalg.norm(irises[1] - irises[0]))
    lens_mid = 0.5 * (place.anchors_xy["lens_left"] + place.anchors_xy["lens_right"])
    # Frontal face: the lens plane's forward offset projects onto the iris midpoint itself.
    assert np.linalg.norm(lens_mid - irises.mean(0)) < 0.01 * ipd
    assert np.linalg.norm(place.final_vertex.mean(0) - irises.mean(0)) < 0.15 * ipd
    q = place.final_vertex
    assert _angle(q[1] - q[0]) == pytest.approx(roll, abs=0.5)
    assert _angle(place.anchors_xy["lens_right"] - place.anchors_xy["lens_left"]) == pytest.approx(roll, abs=0.5)
    width = float(np.linalg.norm(q[1] - q[0]))
    temple = float(np.linalg.norm(face[127] - face[356]))
    assert width == pytest.approx(pl.GLASSES_WIDTH_PER_TEMPLE_WIDTH * temple, rel=0.02)


@pytest.mark.parametrize("yaw", [30.0, -30.0])
def test_yaw_foreshortening_makes_the_far_side_shorter(glasses: Accessory, yaw: float) -> None:
    frontal = pl.place_accessory(make_record(template_face_landmarks((200, 200), 120)), glasses).final_vertex
    q = pl.place_accessory(make_record(template_face_landmarks((200, 200), 120, yaw_deg=yaw)), glasses).final_vertex
    left = float(np.linalg.norm(q[3] - q[0]))  # TL-BL, image left
    right = float(np.linalg.norm(q[2] - q[1]))  # TR-BR, image right
    # yaw > 0 turns the nose to image right: the image-right side of the face goes away.
    far, near = (right, left) if yaw > 0 else (left, right)
    assert far < 0.97 * near
    assert np.linalg.norm(q[1] - q[0]) < 0.95 * np.linalg.norm(frontal[1] - frontal[0])


def test_glasses_follow_the_iris_line_not_the_image_axes(glasses: Accessory) -> None:
    face = template_face_landmarks((200, 200), 120, yaw_deg=10, pitch_deg=-10, roll_deg=8)
    place = pl.place_accessory(make_record(face), glasses)
    iris_line = face[FACE_IRIS_L_CENTER, :2] - face[FACE_IRIS_R_CENTER, :2]
    lens_line = place.anchors_xy["lens_right"] - place.anchors_xy["lens_left"]
    assert _angle(lens_line) == pytest.approx(_angle(iris_line), abs=1.0)


# ---------------------------------------------------------------------------------------
# Hats
# ---------------------------------------------------------------------------------------

def test_hat_sits_above_the_forehead(hat: Accessory) -> None:
    face = template_face_landmarks((200, 260), 120)
    place = pl.place_accessory(make_record(face), hat)
    q = place.final_vertex
    fh = float(np.linalg.norm(face[FACE_FOREHEAD_TOP, :2] - face[FACE_CHIN, :2]))
    bottom_mid = 0.5 * (q[2] + q[3])
    fit = pl.HAT_FITS["fedora"]
    assert place.kind == "hat:fedora"
    assert bottom_mid[1] == pytest.approx(face[FACE_FOREHEAD_TOP, 1] - fit.bottom_up * fh, abs=1.0)
    assert q[:, 1].min() < face[FACE_FOREHEAD_TOP, 1] - 0.3 * fh  # the crown is above the head
    assert bottom_mid[0] == pytest.approx(face[FACE_FOREHEAD_TOP, 0], abs=1.0)
    assert float(np.linalg.norm(q[1] - q[0])) == pytest.approx(fit.width * 120, rel=0.02)


def test_hat_follows_roll_and_shifts_toward_the_skull_when_turned(hat: Accessory) -> None:
    rolled = pl.place_accessory(make_record(template_face_landmarks((200, 260), 120, roll_deg=15)), hat)
    q = rolled.final_vertex
    assert _angle(q[1] - q[0]) == pytest.approx(15.0, abs=0.5)
    face = template_face_landmarks((200, 260), 120, yaw_deg=30)
    turned = pl.place_accessory(make_record(face), hat)
    centre_x = 0.5 * (turned.final_vertex[2, 0] + turned.final_vertex[3, 0])
    # Nose to image right -> the skull centre lies to the image left of the forehead point.
    assert centre_x < face[FACE_FOREHEAD_TOP, 0] - 5.0


@pytest.mark.parametrize(("name", "kind"), [("hat_tophat_emoji", "top_hat"), ("hat_sunhat_emoji", "sun_hat"),
                                            ("hat_cap_emoji", "cap"), ("hat_sprite", pl.DEFAULT_HAT_TYPE),
                                            ("my_beanie", "beanie")])
def test_hat_type_from_name(name: str, kind: str) -> None:
    acc = Accessory(f"hat/{name}", "hat", np.full((4, 4, 4), 255, np.uint8), f"/some/dir/{name}.png")
    assert pl.hat_type(acc) == kind


# ---------------------------------------------------------------------------------------
# Ties
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("roll", [0.0, 12.0])
def test_necktie_knot_below_chin_and_rotated_with_shoulders(necktie: Accessory, roll: float) -> None:
    face = template_face_landmarks((200, 120), 80)
    pose = template_pose_landmarks(face, shoulder_ratio=2.0, body_roll_deg=roll)
    rec = make_record(face, pose, size_wh=(400, 600))
    place = pl.place_accessory(rec, necktie)
    assert place.kind == "necktie"
    body = pl.body_frame(rec)
    q = place.final_vertex
    top_mid, bottom_mid = 0.5 * (q[0] + q[1]), 0.5 * (q[2] + q[3])
    chin_b = body.to_body(face[FACE_CHIN, :2])[0]
    top_b = body.to_body(top_mid)[0]
    assert chin_b[1] < top_b[1] < 0.0  # below the chin, above the shoulder line
    assert _angle(bottom_mid - top_mid) == pytest.approx(90.0 + roll, abs=0.5)
    assert float(np.linalg.norm(bottom_mid - top_mid)) == pytest.approx(
        pl.NECKTIE_LENGTH_PER_SHOULDER_WIDTH * body.shoulder_width, rel=0.01)


def test_bow_tie_at_the_collar(bow_tie: Accessory) -> None:
    face = template_face_landmarks((200, 120), 80)
    rec = make_record(face, template_pose_landmarks(face), size_wh=(400, 400))
    place = pl.place_accessory(rec, bow_tie)
    assert place.kind == "bow_tie"
    body = pl.body_frame(rec)
    c = body.to_body(place.final_vertex.mean(0))[0]
    chin = body.to_body(face[FACE_CHIN, :2])[0]
    assert chin[1] < c[1] < 0.0
    assert float(np.linalg.norm(place.final_vertex[1] - place.final_vertex[0])) == pytest.approx(
        pl.BOWTIE_WIDTH_PER_FACE_WIDTH * 80, rel=0.02)


@pytest.mark.parametrize(("pose_kind", "reason"), [("none", "tie_shoulders_missing"),
                                                   ("invisible", "tie_shoulders_missing"),
                                                   ("narrow", "tie_shoulders_implausible")])
def test_tie_rejects_with_a_reason(necktie: Accessory, pose_kind: str, reason: str) -> None:
    face = template_face_landmarks((200, 120), 80)
    pose = None
    if pose_kind == "invisible":
        pose = template_pose_landmarks(face, visibility=0.2)
    elif pose_kind == "narrow":
        pose = template_pose_landmarks(face, shoulder_ratio=0.6)
    with pytest.raises(pl.PlacementRejected) as info:
        pl.place_accessory(make_record(face, pose), necktie)
    assert info.value.reason == reason


def test_tie_rejected_when_the_chest_is_far_outside(necktie: Accessory) -> None:
    face = template_face_landmarks((200, 60), 60)
    pose = template_pose_landmarks(face, shoulder_ratio=2.5)
    with pytest.raises(pl.PlacementRejected) as info:
        pl.place_accessory(make_record(face, pose, size_wh=(400, 120)), necktie)
    assert info.value.reason == "tie_chest_outside"


def test_no_face_is_rejected(glasses: Accessory) -> None:
    rec = make_record(template_face_landmarks())
    rec.landmarks = None
    with pytest.raises(pl.PlacementRejected) as info:
        pl.place_accessory(rec, glasses)
    assert info.value.reason == "no_face"


# ---------------------------------------------------------------------------------------
# Crops and padding
# ---------------------------------------------------------------------------------------

def test_fit_box_moves_then_grows_to_hold_the_quad() -> None:
    quad = np.array([[90.0, 0.0], [110.0, 0.0], [110.0, 10.0], [90.0, 10.0]])
    centre, side = pl.fit_box(np.array([100.0, 100.0]), 100.0, quad, margin=0.0)
    assert side == 100.0 and centre[1] == pytest.approx(50.0)
    centre, side = pl.fit_box(np.array([0.0, 0.0]), 10.0, quad * 10, margin=0.1)
    lo, hi = centre - side / 2, centre + side / 2
    assert np.all(quad * 10 >= lo + 0.1 * side - 1e-6) and np.all(quad * 10 <= hi - 0.1 * side + 1e-6)


@pytest.mark.parametrize("category", ["glasses", "hat"])
def test_padding_keeps_the_sample_when_the_head_top_leaves_the_frame(category: str, glasses: Accessory,
                                                                     hat: Accessory) -> None:
    face = template_face_landmarks((150, 60), 110)  # forehead top near y = 0: the skull is cut off
    rec = make_record(face, size_wh=(300, 260))
    photo = np.full((260, 300, 3), 120, np.uint8)
    acc = glasses if category == "glasses" else hat
    smp = make_sample(rec, photo, acc, 128, rng=None)
    assert smp.info["pad_fraction"] > 0.05
    assert not smp.valid[0].any()  # the top rows are padding
    assert np.all(smp.parsing[~smp.valid] == IGNORE_INDEX)
    assert np.all(smp.background[0] == 0)  # padded black
    assert smp.final_vertex.min() >= 0 and smp.final_vertex.max() <= 127
    assert smp.info["pad_fraction"] <= pl.MAX_PAD_FRACTION


def test_extreme_padding_is_rejected(hat: Accessory) -> None:
    face = template_face_landmarks((32, 34), 60)  # a tight face crop: the hat crop is ~85 % padding
    rec = make_record(face, size_wh=(64, 60))
    with pytest.raises(pl.PlacementRejected) as info:
        make_sample(rec, np.zeros((60, 64, 3), np.uint8), hat, 64, rng=None)
    assert info.value.reason == "extreme_padding"


def test_face_parsing_labels_mesh_parts_and_ignores_padding() -> None:
    face = template_face_landmarks((64, 64), 60)
    valid = np.ones((128, 128), bool)
    valid[:, :10] = False
    seg = np.zeros((128, 128), np.float32)
    seg[10:120, 20:108] = 1.0
    lab = face_parsing((128, 128), face[:, :2], seg, valid)
    from realtime.config import FACE_CLASSES
    ids = {n: i for i, n in enumerate(FACE_CLASSES)}
    iris = np.round(face[FACE_IRIS_R_CENTER, :2]).astype(int)
    assert lab[iris[1], iris[0]] == ids["eyes"]
    assert lab[int(face[1, 1]) - 3, int(face[1, 0])] == ids["nose"]
    assert lab[5, 64] == ids["background"]
    assert lab[12, 64] == ids["hair"]  # person above the head
    assert np.all(lab[:, :10] == IGNORE_INDEX)


# ---------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------

def test_identity_keys() -> None:
    assert identity_key("helen", "100040721_2.jpg") == "helen:100040721"
    assert identity_key("fmd", "1_0_aidai_0003.jpg") == "fmd:person:aidai"
    assert identity_key("fmd", "170.jpg") == "fmd:file:170"
    assert identity_key("fmd", "augmented_image_150.jpg") == "fmd:file:augmented_image_150"


def test_split_groups_identities_and_augmented_copies() -> None:
    files = [("helen", f"{i}_{k}.jpg") for i in range(20) for k in (1, 2)]
    files += [("fmd", f"0_0_person{c}_{k:04d}.jpg") for c in "abcdefghij" for k in range(4)]
    files += [("fmd", f"{i}.jpg") for i in range(30)]
    files += [("fmd", f"augmented_image_{i}.jpg") for i in range(30)]
    index = {fn: i for i, fn in enumerate(files)}
    links = [(index[("fmd", f"augmented_image_{i}.jpg")], index[("fmd", f"{i}.jpg")]) for i in range(30)]
    # A similarity link between two differently named persons must not merge them.
    links.append((index[("fmd", "0_0_persona_0000.jpg")], index[("fmd", "0_0_personb_0000.jpg")]))
    groups = group_photos(files, links)
    assert groups[("fmd", "augmented_image_7.jpg")] == groups[("fmd", "7.jpg")]
    assert groups[("fmd", "0_0_persona_0000.jpg")] != groups[("fmd", "0_0_personb_0000.jpg")]
    splits = assign_splits(groups, 0.2, seed=3)
    split = FaceSplit({fn: (splits[fn], groups[fn]) for fn in files})
    split.check()
    for i in range(30):
        assert splits[("fmd", f"augmented_image_{i}.jpg")] == splits[("fmd", f"{i}.jpg")]
    sides: dict[str, set[str]] = {}
    for fn, s in splits.items():
        sides.setdefault(identity_key(*fn), set()).add(s)
    assert all(len(v) == 1 for v in sides.values())
    counts = split.counts()
    assert 0.1 < counts["helen"]["test"] / 40 <= 0.2 and 0.1 < counts["fmd"]["test"] / 130 <= 0.2


def test_split_check_catches_identity_on_both_sides() -> None:
    split = FaceSplit({("fmd", "0_0_x_0001.jpg"): ("train", "fmd:person:x"),
                       ("fmd", "0_0_x_0002.jpg"): ("test", "fmd:person:x")})
    with pytest.raises(SplitError, match="both sides"):
        split.check()


def test_committed_split_file_has_no_identity_on_both_sides() -> None:
    split = load_split(DEFAULT_SPLIT_FILE)  # check() runs on load
    counts = split.counts()
    assert set(counts) == {"helen", "fmd"}
    for folder, c in counts.items():
        frac = c["test"] / (c["train"] + c["test"])
        assert 0.12 < frac < 0.18, (folder, c)
    augmented = [(fn, v) for fn, v in split.files.items() if "augmented_image" in fn[1]]
    assert augmented and all(v[0] == "excluded" or not v[1].startswith("fmd:file:augmented") for fn, v in augmented)
