"""MediaPipe's BlazeFace, converted (``blazeface``): the shipped graph finds the astronaut and her
roll, finds nothing where there is no face, decodes anchors like MediaPipe, refuses a missing or
foreign file by name; a full-frame candidate whose keypoints lie nowhere a face's would, or that
is lost when turned upright, is dropped; the converter's torch module agrees with the shipped
ONNX graph (where the mediapipe wheel's .tflite is at hand)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from realtime.backends.graph_runner import onnx_metadata
from realtime.errors import BackendError
from realtime.geometry import letterbox, roll_from_eyes, warp_points
from realtime.live.blazeface import (LAYOUT_FEATURES, BlazeFaceDecoder, KeypointLayout, box_iou, keypoint_layout,
                                     ssd_anchors, weighted_nms)
from realtime.live.detectors import ACQUIRE_VIEWS, DETECTORS, BlazeFaceDetector, TryonFaceDetector, detect_acquire_view

#: The astronaut's face in skimage's 512x512 portrait: centre and side (px) of the cascade's box.
ASTRONAUT_FACE = (219.5, 115.5, 104.0)

shipped = pytest.mark.skipif(not BlazeFaceDetector.WEIGHTS.is_file(),
                             reason=f"{BlazeFaceDetector.WEIGHTS.name} is not shipped in this tree")


def _astronaut_bgr() -> np.ndarray:
    from skimage.data import astronaut

    return np.ascontiguousarray(astronaut()[..., ::-1])


@pytest.fixture(scope="module")
def detector():
    if not BlazeFaceDetector.WEIGHTS.is_file():
        pytest.skip(f"{BlazeFaceDetector.WEIGHTS.name} is not shipped in this tree")
    return BlazeFaceDetector(threads=1)


@pytest.fixture(scope="module")
def options():
    if not BlazeFaceDetector.WEIGHTS.is_file():
        pytest.skip(f"{BlazeFaceDetector.WEIGHTS.name} is not shipped in this tree")
    return json.loads(onnx_metadata(BlazeFaceDetector.WEIGHTS)["options"])


# --------------------------------------------------------------------------------------
# The shipped graph
# --------------------------------------------------------------------------------------

@shipped
def test_registered_small_and_says_where_it_comes_from():
    assert "blazeface" in DETECTORS
    assert BlazeFaceDetector.WEIGHTS.stat().st_size <= 1_000_000
    meta = onnx_metadata(BlazeFaceDetector.WEIGHTS)
    assert meta["kind"] == "face_detector" and meta["format"] == "blazeface"
    assert "Apache-2.0" in meta["license"] and "face_detection_short_range.tflite" in meta["source"]
    assert BlazeFaceDetector.WEIGHTS.with_suffix(".md").is_file(), "the model card ships beside the graph"
    assert "Apache License" in BlazeFaceDetector.WEIGHTS.with_suffix(".LICENSE").read_text(), "and its licence"


@shipped
@pytest.mark.parametrize("roll", [0.0, -40.0, 30.0])
def test_finds_the_astronaut_and_her_roll(detector, roll):
    img = _astronaut_bgr()
    mat = np.vstack([cv2.getRotationMatrix2D((255.5, 255.5), -roll, 1.0), [0, 0, 1]])  # clockwise on screen
    upright = detector.detect(img)
    assert upright
    tilted = detector.detect(cv2.warpAffine(img, mat[:2], (512, 512)))
    cx, cy = warp_points(mat, np.array(ASTRONAUT_FACE[:2]))
    near = [f for f in tilted if math.hypot(f.cx - cx, f.cy - cy) < 0.2 * ASTRONAUT_FACE[2]]
    assert near, f"no face at a {roll} degree roll: {tilted}"
    assert 0.75 < near[0].side / ASTRONAUT_FACE[2] < 1.33
    assert 0.5 <= near[0].score <= 1.0
    # her head is tilted a little of itself: the turn adds to it (the eye keypoints lag a turn by a few
    # degrees: median 3-4 at 30-45 over TRAIN photos, benchmarks/results/blazeface_parity_*; 10 here)
    assert abs(near[0].roll_deg - upright[0].roll_deg - roll) < 12.0, (near[0].roll_deg, upright[0].roll_deg)


@shipped
def test_no_face_images_give_no_detection(detector):
    from skimage import data

    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    stripes = np.zeros((480, 640, 3), np.uint8)
    stripes[:, ::16] = 255
    pictures = [cv2.resize(np.ascontiguousarray(getattr(data, n)()[..., :3][..., ::-1]), (640, 480))
                for n in ("coffee", "rocket", "chelsea")]  # chelsea: a cat is not a person
    for img in [np.full((480, 640, 3), 128, np.uint8), noise, stripes, *pictures]:
        assert detector.detect(img) == []


@shipped
def test_a_candidate_that_fails_the_window_check_is_dropped(detector):
    img = _astronaut_bgr()
    assert detector.detect(img)
    strict = BlazeFaceDetector(verify_threshold=1.01, threads=1)  # no window score reaches it
    assert strict.detect(img) == [] and strict.detections(img), "the full-frame run still sees her"


@shipped
def test_wide_frames_are_also_searched_in_square_tiles(detector):
    for hw, n in (((480, 640), 2), ((720, 1280), 3), ((1280, 720), 3), ((512, 512), 0)):
        tiles = detector.tiles(hw)
        assert len(tiles) == n
        short, long_ = min(hw), max(hw)
        if n:
            along = [t[0] if hw[1] >= hw[0] else t[1] for t in tiles]
            assert along[0] == 0 and along[-1] + short == long_, "the tiles cover the frame"
            assert all(t[2] == t[3] == short for t in tiles)
            assert min(b - a for a, b in zip(along, along[1:])) <= short * 2 / 3, "they overlap by a third"
    # the astronaut in a 480x270 frame (face 18 % of the height): 13 px letterboxed whole, 23 px in a tile
    from realtime.live.capture import PortraitMotionSource
    from skimage.data import astronaut

    frame = PortraitMotionSource(astronaut(), size_wh=(480, 270), fps=10.0, seconds=0.2)._get(0)
    whole = BlazeFaceDetector(tile=False, threads=1)
    assert whole.detect(frame) == []
    found = detector.detect(frame)
    assert len(found) == 1 and 0.15 < found[0].side / 270 < 0.22


@shipped
def test_openvino_and_onnxruntime_agree(detector):
    pytest.importorskip("onnxruntime")
    other = BlazeFaceDetector(backend="onnxruntime", threads=1)
    a, b = detector.detect(_astronaut_bgr()), other.detect(_astronaut_bgr())
    assert len(a) == len(b) == 1
    assert abs(a[0].cx - b[0].cx) < 0.5 and abs(a[0].side - b[0].side) < 0.5 and abs(a[0].score - b[0].score) < 1e-3


def test_missing_corrupt_or_foreign_weights_are_named(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(FileNotFoundError, match="nope.onnx"):
        BlazeFaceDetector(weights=missing)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(BackendError, match="corrupt.onnx"):
        BlazeFaceDetector(weights=corrupt)
    if TryonFaceDetector.WEIGHTS.is_file():  # another detector's graph: not a BlazeFace graph
        with pytest.raises(BackendError, match="tryon_face.onnx.*not a BlazeFace graph"):
            BlazeFaceDetector(weights=TryonFaceDetector.WEIGHTS)


# --------------------------------------------------------------------------------------
# Keypoint layout and the upright re-check
# --------------------------------------------------------------------------------------

#: A frontal face's keypoints in a 100-px box: eyes, nose tip, mouth, ears (subject's right first).
FACE_KPS = np.array([[32.0, 38.0], [68.0, 38.0], [50.0, 58.0], [50.0, 76.0], [12.0, 48.0], [88.0, 48.0]])
FACE_BOX = np.array([0.0, 0.0, 100.0, 100.0])


def test_keypoint_layout_is_the_same_turned_scaled_and_moved():
    ref = keypoint_layout(FACE_BOX, FACE_KPS)
    assert ref.shape == (len(LAYOUT_FEATURES),)
    assert ref[0] == pytest.approx(0.36) and ref[LAYOUT_FEATURES.index("nose_y")] == pytest.approx(20 / 36)
    t = math.radians(50.0)
    rot = 2.5 * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    kps = FACE_KPS @ rot.T + (300.0, -40.0)
    c = np.array([50.0, 50.0]) @ rot.T + (300.0, -40.0)
    box = np.array([c[0] - 125.0, c[1] - 125.0, c[0] + 125.0, c[1] + 125.0])  # same side, its centre turned along
    assert np.allclose(keypoint_layout(box, kps), ref)


def test_layout_model_fit_and_file_errors(tmp_path):
    rng = np.random.default_rng(5)
    ref = keypoint_layout(FACE_BOX, FACE_KPS)
    model = KeypointLayout.fit(ref + rng.normal(0, 0.03, (400, len(ref))), 0.99, {"fitted_on": "test"})
    assert model.distance(FACE_BOX, FACE_KPS) < 1.0 < model.limit
    assert model.plausible(FACE_BOX, FACE_KPS)
    assert not model.plausible(FACE_BOX, FACE_KPS[[2, 3, 0, 1, 4, 5]]), "nose and mouth where the eyes are"
    path = tmp_path / "layout.json"
    path.write_text(json.dumps(model.to_dict()))
    again = KeypointLayout.load(path)
    assert again.limit == model.limit and np.allclose(again.inv_cov, model.inv_cov)
    with pytest.raises(ValueError, match="more than"):
        KeypointLayout.fit(np.zeros((5, len(ref))), 0.99)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**model.to_dict(), "limit": -1}))
    with pytest.raises(ValueError, match="bad.json.*limit"):
        KeypointLayout.load(bad)
    if BlazeFaceDetector.WEIGHTS.is_file():  # the detector names a broken layout file
        with pytest.raises(BackendError, match="bad.json"):
            BlazeFaceDetector(layout=bad, threads=1)


def _face_from_layout(layout: np.ndarray, side: float = 100.0, roll_deg: float = 0.0):
    """(box, keypoints) whose :func:`keypoint_layout` is ``layout``: the eyes level around (0, 0),
    then everything turned by ``roll_deg`` (the box stays axis-aligned, the same side)."""
    iod = layout[0] * side
    pts = iod * np.vstack([[-0.5, 0.0], [0.5, 0.0], np.asarray(layout[1:], np.float64).reshape(-1, 2)])
    t = math.radians(roll_deg)
    pts = pts @ np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]]).T + 200.0
    c = pts[-1]
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2]), pts[:6]


@shipped
def test_shipped_layout_keeps_a_face_layout_and_drops_implausible_ones(detector):
    model = detector.layout
    assert model is not None and model.info.get("fitted_on"), "the shipped model says what it was fitted on"
    for roll in (0.0, 40.0, -60.0):  # the mean face, at any roll
        box, kps = _face_from_layout(model.mean, roll_deg=roll)
        assert np.allclose(keypoint_layout(box, kps), model.mean)
        assert model.plausible(box, kps), roll
    box, kps = _face_from_layout(model.mean)
    nose, mouth = LAYOUT_FEATURES.index("nose_y"), LAYOUT_FEATURES.index("mouth_y")
    wrong = {"eyes swapped": kps[[1, 0, 2, 3, 4, 5]], "nose and mouth where the eyes are": kps[[2, 3, 0, 1, 4, 5]],
             "nose at an ear": kps[[0, 1, 4, 3, 2, 5]]}
    for what, bad in wrong.items():
        assert not model.plausible(box, bad), what
    for feature, value in ((nose, -0.5), (mouth, 0.3), (0, 0.15)):  # nose above the eyes, mouth at the nose, eyes close
        f = model.mean.copy()
        f[feature] = value
        assert not model.plausible(*_face_from_layout(f)), (LAYOUT_FEATURES[feature], value)


@shipped
def test_a_candidate_with_implausible_keypoints_is_dropped_and_the_real_one_kept(detector):
    img = _astronaut_bgr()
    (score, box, kps), = detector.full_frame(img)
    assert detector.layout.plausible(box, kps)
    assert len(detector.verified(img, [(score, box, kps)])) == 1
    scrambled = kps[[2, 3, 0, 1, 5, 4]]  # the same points, nose and mouth where the eyes should be
    assert detector.verified(img, [(score, box, scrambled)]) == []
    no_layout = BlazeFaceDetector(layout=None, upright_check=False, threads=1)
    assert len(no_layout.verified(img, [(score, box, scrambled)])) == 1, "only the layout check dropped it"


@shipped
def test_the_upright_recheck_keeps_a_rolled_face_and_drops_a_blank(detector):
    img = _astronaut_bgr()
    mat = cv2.getRotationMatrix2D((255.5, 255.5), -50.0, 1.0)
    (score, box, kps), = detector.full_frame(cv2.warpAffine(img, mat, (512, 512)))
    assert detector.upright_score(cv2.warpAffine(img, mat, (512, 512)), box, kps) >= detector.verify_threshold
    grey = np.full((512, 512, 3), 128, np.uint8)
    assert detector.upright_score(grey, box, kps) == 0.0
    assert detector.verified(grey, [(score, box, kps)]) == []


@shipped
@pytest.mark.parametrize("roll", [45.0, 60.0, -60.0])
def test_the_acquire_views_still_find_a_strongly_tilted_astronaut(detector, roll):
    img = _astronaut_bgr()
    mat = np.vstack([cv2.getRotationMatrix2D((255.5, 255.5), -roll, 1.0), [0, 0, 1]])
    tilted = cv2.warpAffine(img, mat[:2], (512, 512))
    cx, cy = warp_points(mat, np.array(ASTRONAUT_FACE[:2]))
    found = [f for r, pad in dict.fromkeys(ACQUIRE_VIEWS) for f in detect_acquire_view(detector, tilted, r, pad)
             if math.hypot(f.cx - cx, f.cy - cy) < 0.25 * ASTRONAUT_FACE[2]]
    assert found, f"no view finds the astronaut turned by {roll} degrees"
    assert min(abs((f.roll_deg - roll + 180) % 360 - 180) for f in found) < 15.0


# --------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------

def test_anchors_follow_mediapipe_short_range_layout(options):
    a = ssd_anchors(options)
    assert a.shape == (896, 4) and np.all(a[:, 2:] == 1.0)  # fixed anchor size
    # 16x16 map, 2 anchors a cell, then the 8x8 map, 6 a cell; row-major, anchors innermost
    assert np.allclose(a[0, :2], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1, :2], a[0, :2])
    assert np.allclose(a[2, :2], [1.5 / 16, 0.5 / 16]) and np.allclose(a[32, :2], [0.5 / 16, 1.5 / 16])
    assert np.allclose(a[512, :2], [0.5 / 8, 0.5 / 8]) and np.allclose(a[517, :2], a[512, :2])
    assert np.allclose(a[518, :2], [1.5 / 8, 0.5 / 8]) and np.allclose(a[-1, :2], [7.5 / 8, 7.5 / 8])
    with pytest.raises(ValueError, match="strides"):
        ssd_anchors({**options, "num_layers": 3})
    with pytest.raises(ValueError, match="min_scale"):
        ssd_anchors({k: v for k, v in options.items() if k != "min_scale"})


def test_decoding_a_synthetic_output(options):
    dec = BlazeFaceDecoder(options)
    n, size = len(dec.anchors), dec.size
    reg = np.zeros((1, n, 16), np.float32)
    logit = np.full((1, n, 1), -20.0, np.float32)
    i = 512 + 6 * (3 * 8 + 2)  # 8x8 map, row 3, column 2: anchor centre (2.5 / 8, 3.5 / 8)
    reg[0, i, :4] = [6.4, -3.2, 32.0, 40.0]  # dx, dy, w, h in input px (box_scale 128 = the input size)
    reg[0, i, 4:] = np.arange(12) - 6.0
    logit[0, i] = 2.0
    # a weaker duplicate, shifted 4 px: merged into the first by the weighted NMS
    j = i + 1
    reg[0, j, :4] = [6.4 + 4.0, -3.2, 32.0, 40.0]
    logit[0, j] = 0.0  # sigmoid 0.5: at the threshold, kept
    # a face elsewhere, alone; and one below the threshold
    k = 2 * (10 * 16 + 12)
    reg[0, k, :4] = [0.0, 0.0, 20.0, 20.0]
    logit[0, k] = 1.0
    reg[0, k + 1, :4] = [0.0, 20.0, 20.0, 20.0]
    logit[0, k + 1] = -0.1
    faces = dec.decode(reg, logit)
    assert len(faces) == 2
    top = faces[0]
    s_i, s_j = 1 / (1 + math.exp(-2.0)), 0.5
    cx = 2.5 / 8 * size + 6.4 + 4.0 * s_j / (s_i + s_j)
    cy = 3.5 / 8 * size - 3.2
    assert top.score == pytest.approx(s_i)
    assert np.allclose(top.box, [cx - 16, cy - 20, cx + 16, cy + 20], atol=1e-4)
    kp_i = np.array([2.5 / 8, 3.5 / 8]) * size + (np.arange(12) - 6.0).reshape(6, 2)
    kp_j = np.array([2.5 / 8, 3.5 / 8]) * size  # the duplicate's keypoints are all at its anchor
    assert np.allclose(top.keypoints, (s_i * kp_i + s_j * kp_j) / (s_i + s_j), atol=1e-4)
    other = faces[1]
    assert other.score == pytest.approx(1 / (1 + math.exp(-1.0)))
    assert np.allclose(other.box, [12.5 / 16 * size - 10, 10.5 / 16 * size - 10, 12.5 / 16 * size + 10,
                                   10.5 / 16 * size + 10], atol=1e-4)
    # logits are clipped before the sigmoid; nothing above the threshold: nothing
    assert dec.decode(reg, np.full((1, n, 1), -1e4, np.float32)) == []
    assert dec.decode(reg, logit, min_score=0.95) == []


def test_weighted_nms_keeps_separate_faces_apart():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], float)
    kps = np.zeros((3, 6, 2))
    out = weighted_nms(np.array([0.9, 0.6, 0.7]), boxes, kps, 0.3)
    assert [round(d.score, 2) for d in out] == [0.9, 0.7]
    assert out[0].box[0] == pytest.approx(0.6 / 1.5)
    assert box_iou(boxes[0], boxes[1:]) == pytest.approx([9 * 10 / (200 - 90), 0.0])


def test_letterbox_maps_input_pixels_back_to_the_frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    image, back = letterbox(frame, (0.0, 0.0, 640.0, 480.0), (128, 128))
    assert image.shape == (128, 128, 3) and back[0, 0] == pytest.approx(5.0) and back[1, 1] == pytest.approx(5.0)
    assert np.all(image[:12] == 0) and np.all(image[-12:] == 0)  # black bands above and below
    # a bright dot lands where the map says
    frame[:] = 0
    frame[237:243, 317:323] = 255
    image, back = letterbox(frame, (0.0, 0.0, 640.0, 480.0), (128, 128))
    ys, xs = np.nonzero(image[..., 0] > 20)
    centre = back @ np.array([xs.mean(), ys.mean(), 1.0])
    assert np.allclose(centre, [319.5, 239.5], atol=1.0)
    # a region out of the frame
    assert letterbox(frame, (700.0, 0.0, 50.0, 50.0), (128, 128))[1] is None
    # regions reaching past any border at fractional positions and sizes (window searches near the
    # edge): never a shape error, and the map still sends frame pixels where they were drawn
    for _ in range(300):
        side = float(rng.uniform(20, 900))
        x0, y0 = float(rng.uniform(-side, 640)), float(rng.uniform(-side, 480))
        image, back = letterbox(frame, (x0, y0, side, side * float(rng.uniform(0.5, 1.5))), (128, 128))
        assert image.shape == (128, 128, 3)


def test_roll_from_eyes_sign():
    assert roll_from_eyes((0.0, 0.0), (10.0, 0.0)) == pytest.approx(0.0)
    assert roll_from_eyes((0.0, 0.0), (10.0, 10.0)) == pytest.approx(45.0)  # the left eye lower: clockwise
    assert abs(roll_from_eyes((10.0, 0.0), (0.0, 0.0))) == pytest.approx(180.0)


# --------------------------------------------------------------------------------------
# The converter (dev tool)
# --------------------------------------------------------------------------------------

def test_converter_refuses_a_missing_or_foreign_file(tmp_path):
    from training.teacher.tflite_convert import read_tflite

    with pytest.raises(FileNotFoundError, match="absent.tflite"):
        read_tflite(tmp_path / "absent.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="bad.tflite.*TFL3"):
        read_tflite(bad)


@shipped
def test_converted_torch_module_agrees_with_the_shipped_graph(detector):
    pytest.importorskip("tflite", reason="the converter's tflite schema package is not installed (pip install -e .[convert])")
    torch = pytest.importorskip("torch")
    from training.teacher.tflite_convert import blazeface_module, find_mediapipe_tflite, read_tflite

    src = find_mediapipe_tflite()
    if src is None:
        pytest.skip("face_detection_short_range.tflite is absent: no mediapipe wheel in the teacher venv "
                    "($TEACHER_VENV or .venv-teacher)")
    graph = read_tflite(src)
    assert graph.sha256 == onnx_metadata(BlazeFaceDetector.WEIGHTS)["source_sha256"], "shipped from this file"
    module = blazeface_module(graph)
    image, _ = letterbox(_astronaut_bgr(), (0.0, 0.0, 512.0, 512.0), (128, 128))
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
    with torch.no_grad():
        reg, cls = (t.numpy() for t in module(torch.from_numpy(x)))
    out = detector.raw(image)
    assert np.abs(out["regressors"] - reg).max() < 1e-2 and np.abs(out["classificators"] - cls).max() < 1e-3
    ref, got = (detector.decoder.decode(r, c) for r, c in ((reg, cls), (out["regressors"], out["classificators"])))
    assert len(ref) == len(got) == 1 and np.allclose(ref[0].box, got[0].box, atol=0.05)


@shipped
def test_the_padded_pass_is_searched_and_a_failed_candidate_hides_a_tile_s_but_not_the_padded_pass_s(detector,
                                                                                                      monkeypatch):
    """A full-frame search also runs the frame inside a border of ``pad``: a face only that pass
    finds (a close-up) is returned, and not without the pass. A stronger whole-frame candidate
    at the same place that fails its checks (scrambled keypoints) does not hide the padded
    pass's, but does hide a tile's (letting those through raised the false detections)."""
    img = np.zeros((512, 683, 3), np.uint8)  # 4:3, so the search has tiles
    img[:, 85:597] = _astronaut_bgr()
    (score, box, kps), = detector.full_frame(img)
    h, w = img.shape[:2]
    scrambled = kps[[2, 3, 0, 1, 5, 4]]

    def fake(pad: float, whole: list, tile: list, padded: list):
        det = BlazeFaceDetector(pad=pad, upright_check=False, threads=1)
        pad_region = (-pad * w, -pad * h, (1 + 2 * pad) * w, (1 + 2 * pad) * h)
        tiles = det.tiles((h, w))
        assert tiles, "a 4:3 frame is searched in tiles"
        real = det.detections

        def detections(frame, region_xywh=None):
            if region_xywh is None:
                return list(whole)
            if pad and np.allclose(region_xywh, pad_region):
                return list(padded)
            if any(np.allclose(region_xywh, t) for t in tiles):
                return list(tile)
            return real(frame, region_xywh)  # the window re-check runs the real network
        monkeypatch.setattr(det, "detections", detections)
        return det

    good, bad = (0.7, box, kps), (0.95, box, scrambled)
    assert len(fake(0.25, [], [], [good]).detect(img)) == 1
    assert fake(0.0, [], [], [good]).detect(img) == []
    found = fake(0.25, [bad], [], [good]).detect(img)
    assert len(found) == 1 and found[0].score >= 0.6
    assert len(fake(0.25, [], [good], []).detect(img)) == 1
    assert fake(0.25, [bad], [good], []).detect(img) == []
    with pytest.raises(ValueError, match="pad"):
        BlazeFaceDetector(pad=-0.1, threads=1)
