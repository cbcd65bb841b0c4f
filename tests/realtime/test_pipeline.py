"""The frame pipeline: ROI mapping, tracking, stages, hold / skip rules, sync and async loops, camera loss."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from doubles import FlakyCaptureFactory

from realtime.backends.base import Backend, ModelInfo
from realtime.codec import HeatmapCodec
from realtime.config import ModelConfig
from realtime.framing import ROI_CONFIGS, FaceBox, roi_config, roi_from_face
from realtime.geometry import warp_points
from realtime.live.capture import STATUS_LOST, CameraSource, Frame, PortraitMotionSource, RealtimePacer
from realtime.live.pipeline import STAGES, STATUS_NO_FACE, STATUS_NON_FINITE, FrameLoop, StageStats, TryOnPipeline
from realtime.live.render import Compositor
from realtime.live.tracking import RoiTracker
from realtime.procedural import accessory_by_name, bundled_accessories

#: The astronaut's face box in skimage's 512x512 portrait (LBP cascade, centre and side, px).
ASTRONAUT_FACE = (219.5, 115.5, 104.0)
SIZE = 128  # the tiny preset's input size


def _astronaut_source(seconds: float = 1.0, fps: float = 10.0, size_wh=(480, 270)) -> PortraitMotionSource:
    from skimage.data import astronaut

    return PortraitMotionSource(astronaut(), size_wh=size_wh, fps=fps, seconds=seconds)


def _true_face(src: PortraitMotionSource, index: int) -> tuple[np.ndarray, float]:
    mat = src.frame_from_image(index)
    centre = warp_points(mat, np.array(ASTRONAUT_FACE[:2]))
    return centre, ASTRONAUT_FACE[2] * float(np.hypot(mat[0, 0], mat[1, 0]))


class AnchoredBackend(Backend):
    """Fake network: Gaussian heatmaps at a fixed quad in crop coordinates (a 'perfect' crop-relative model).

    ``nan_after``: return NaNs from that many calls on. Counts ``set_foreground`` calls.
    """

    def __init__(self, category: str = "glasses", quad_frac=(0.5, 0.47, 0.46, 0.17), delay_s: float = 0.0) -> None:
        self.info = ModelInfo(config=ModelConfig(category=category, input_size=SIZE), backend="fake")
        cx, cy, w, h = (v * (SIZE - 1) for v in quad_frac)
        self.quad_crop = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                                   [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]])
        self._hm = HeatmapCodec(self.info.config.codec).encode(self.quad_crop, (SIZE, SIZE))[None]
        self.fg_calls, self.calls, self.nan_after, self.delay_s = 0, 0, None, delay_s

    def set_foreground(self, fg_input: np.ndarray) -> None:
        self._check_input(fg_input, 4, "foreground input")
        self.fg_calls += 1

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        self._check_input(bg_input, 3, "background input")
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.nan_after is not None and self.calls > self.nan_after:
            return np.full_like(self._hm, np.nan)
        return self._hm.copy()


def _pipeline(backends: dict | None = None, **kwargs) -> tuple[TryOnPipeline, dict]:
    backends = backends or {}

    def backend_for(category: str) -> Backend:
        return backends.setdefault(category, AnchoredBackend(category))

    catalogue = {c: bundled_accessories(c)[:2] for c in ("glasses", "hat", "tie")}
    return TryOnPipeline(backend_for, catalogue, **kwargs), backends


# --------------------------------------------------------------------------------------
# ROI
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("category", ["glasses", "hat", "tie"])
def test_roi_round_trip_crop_to_frame(rng, category):
    face = FaceBox(612.3, 301.7, 143.0)
    roi = roi_from_face(face, roi_config(category), 224)
    pts_crop = rng.uniform(0, 223, (10, 2))
    np.testing.assert_allclose(roi.to_crop(roi.to_frame(pts_crop)), pts_crop, atol=1e-9)
    # A bright pixel in the frame lands in the crop where to_crop says (within the resampling blur).
    frame = np.zeros((720, 1280, 3), np.uint8)
    p = np.array([face.cx + 10, face.cy + 20])
    cv2.circle(frame, tuple(int(v) for v in np.round(p)), 6, (255, 255, 255), -1)
    crop = roi.crop(frame)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], roi.to_crop(np.round(p)), atol=1.0)


def test_roi_framing_per_category():
    face = FaceBox(500.0, 300.0, 100.0)
    rois = {c: roi_from_face(face, ROI_CONFIGS[c], 224) for c in ROI_CONFIGS}
    tops = {c: r.center_xy[1] - r.side / 2 for c, r in rois.items()}
    assert tops["hat"] < tops["glasses"], "the hat crop must extend further up than the glasses crop"
    assert rois["tie"].center_xy[1] > face.cy + 0.5 * face.side, "the tie crop is centred below the face"
    assert rois["tie"].side > rois["hat"].side > rois["glasses"].side
    for r in rois.values():  # the face is always inside its crop
        corners = np.array([[face.cx - 50, face.cy - 50], [face.cx + 50, face.cy + 50]])
        assert np.all((r.to_crop(corners) >= 0) & (r.to_crop(corners) <= 223))


def test_tracker_finds_and_follows_the_moving_astronaut():
    src = _astronaut_source(seconds=2.0, fps=30.0)
    tracker = RoiTracker(roi_config("glasses"), SIZE)  # detection only: no keypoints fed back
    errors = []
    for i in range(src.frame_count):
        roi = tracker.update(src._get(i), i / src.fps)
        assert roi is not None, f"face not found at frame {i}"
        centre, side = _true_face(src, i)
        errors.append(np.hypot(roi.face.cx - centre[0], roi.face.cy - centre[1]) / side)
        assert 0.7 < roi.face.side / side < 1.4
    assert max(errors) < 0.25 and np.median(errors) < 0.1


def test_tracker_loses_the_face_when_the_person_leaves():
    src = _astronaut_source(seconds=0.5)
    tracker = RoiTracker(roi_config("glasses"), SIZE)
    for i in range(src.frame_count):
        assert tracker.update(src._get(i), i / 10) is not None
    blank = np.full((270, 480, 3), 90, np.uint8)
    cfg = tracker.cfg
    n = cfg.detect_every + cfg.max_missed * cfg.lost_detect_every + 1
    results = [tracker.update(blank, 1 + i / 10) for i in range(n)]
    assert results[-1] is None and tracker.lost


class ScriptedDetector:
    """Face detector returning the box it is told to (``box``); counts its calls."""

    def __init__(self, box: tuple[float, float, float]) -> None:
        self.box, self.calls = box, 0

    def detect(self, frame_bgr, near=None):
        self.calls += 1
        return [FaceBox(*self.box)]


def _followed_tracker(deadband: float, frame: np.ndarray, confirmed_every: int = 5
                      ) -> tuple[RoiTracker, ScriptedDetector, np.ndarray]:
    """A tracker that has settled on a still face at (200, 150), side 80, with keypoints following it
    (re-detecting every 5 frames, unless ``confirmed_every`` says otherwise)."""
    detector = ScriptedDetector((200.0, 150.0, 80.0))
    tracker = RoiTracker(roi_config("glasses", redetect_deadband=deadband, confirmed_detect_every=confirmed_every),
                         SIZE, detector=detector)
    quad = np.array([[170.0, 130.0], [230.0, 130.0], [230.0, 150.0], [170.0, 150.0]])  # glasses on the face
    for i in range(3 * tracker.cfg.detect_every):
        tracker.update(frame, i / 30)
        tracker.observe(quad, confident=True)
    assert tracker._anchor is not None and tracker._followed, "the keypoints follow the face"
    return tracker, detector, quad


@pytest.mark.parametrize("shift, applied", [(0.1, False), (0.35, True)])
def test_redetection_inside_the_deadband_only_confirms_the_followed_face(shift, applied):
    frame = np.zeros((300, 400, 3), np.uint8)
    tracker, detector, quad = _followed_tracker(0.2, frame)
    face_before = tracker._face.copy()
    detector.box = (200.0 + shift * 80.0, 150.0, 80.0 * (1 + shift / 4))
    calls = detector.calls
    for i in range(tracker.cfg.detect_every):  # exactly one re-detection
        tracker.update(frame, 1 + i / 30)
    assert detector.calls == calls + 1
    if applied:  # a real move: the face jumps to the detection and the quad relation is re-learned
        np.testing.assert_allclose(tracker._face, np.array(detector.box))
        assert tracker._anchor is None
    else:  # detector wobble: nothing moves, the relation is kept
        np.testing.assert_array_equal(tracker._face, face_before)
        assert tracker._anchor is not None and tracker._missed == 0


def test_redetection_is_applied_without_deadband_or_without_following():
    frame = np.zeros((300, 400, 3), np.uint8)
    tracker, detector, _ = _followed_tracker(0.0, frame)  # dead-band off
    detector.box = (208.0, 150.0, 80.0)
    for i in range(tracker.cfg.detect_every):
        tracker.update(frame, 1 + i / 30)
    np.testing.assert_allclose(tracker._face, np.array(detector.box))
    # dead-band on, but no keypoints fed back since the last detection: the detection is all we have
    tracker, detector, _ = _followed_tracker(0.2, frame)
    for i in range(tracker.cfg.detect_every):  # one detection, no observe(): nothing follows
        tracker.update(frame, 1 + i / 30)
    detector.box = (208.0, 150.0, 80.0)
    for i in range(tracker.cfg.detect_every):
        tracker.update(frame, 2 + i / 30)
    np.testing.assert_allclose(tracker._face, np.array(detector.box))


def test_a_face_the_network_confirms_is_redetected_less_often():
    frame = np.zeros((300, 400, 3), np.uint8)
    tracker, detector, quad = _followed_tracker(0.3, frame, confirmed_every=30)
    calls = detector.calls
    for i in range(60):  # the network keeps confirming the face: 2 drift checks in 60 frames
        tracker.update(frame, 2 + i / 30)
        tracker.observe(quad, confident=True)
    assert detector.calls - calls == 2
    calls = detector.calls
    for i in range(30):  # the network is unsure (not absent): re-detect every detect_every frames
        tracker.update(frame, 4 + i / 30)
        tracker.observe(quad, confident=False, absent=False)
    assert detector.calls - calls == 30 // tracker.cfg.detect_every


def test_roi_config_rejects_a_negative_deadband():
    with pytest.raises(ValueError, match="redetect_deadband"):
        roi_config("glasses", redetect_deadband=-0.1)
    with pytest.raises(ValueError, match="roll_deadband_deg"):
        roi_config("glasses", roll_deadband_deg=-1.0)
    with pytest.raises(ValueError, match="confirmed_detect_every"):
        roi_config("glasses", confirmed_detect_every=0)


# --------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------

def test_accessory_encoded_once_and_again_only_on_change():
    pipe, backends = _pipeline()
    src = _astronaut_source(seconds=0.5)
    for _ in range(3):
        pipe.estimate(src.read())
    assert backends["glasses"].fg_calls == 1
    pipe.next_accessory()
    est = pipe.estimate(src.read())
    assert backends["glasses"].fg_calls == 2 and "encode_fg" in est.times_ms
    est = pipe.estimate(src.read())
    assert backends["glasses"].fg_calls == 2 and "encode_fg" not in est.times_ms


def test_estimate_maps_keypoints_to_full_resolution_frame():
    pipe, backends = _pipeline()
    src = _astronaut_source(seconds=0.3)
    for _ in range(3):
        est = pipe.estimate(src.read())
    assert est.status == "ok" and est.roi is not None
    expected = est.roi.to_frame(backends["glasses"].quad_crop)
    np.testing.assert_allclose(est.raw_pts_xy, expected, atol=0.05)  # decode is exact on clean Gaussians
    assert est.confidence > 0.9 and est.visible
    assert set(est.times_ms) <= set(STAGES) and {"roi", "preprocess", "infer", "decode", "smooth"} <= set(est.times_ms)


def test_non_finite_output_holds_the_last_good_pose():
    pipe, backends = _pipeline()
    src = _astronaut_source(seconds=1.0)
    for _ in range(4):
        good = pipe.estimate(src.read())
    backends["glasses"].nan_after = backends["glasses"].calls
    held = pipe.estimate(src.read())
    assert held.status == STATUS_NON_FINITE and held.raw_pts_xy is None
    np.testing.assert_array_equal(held.smooth_pts_xy, good.smooth_pts_xy)
    assert held.visible
    backends["glasses"].nan_after = None
    assert pipe.estimate(src.read()).status == "ok"


def test_no_face_hides_the_accessory():
    pipe, _ = _pipeline()
    est = pipe.estimate(Frame(np.full((270, 480, 3), 90, np.uint8), 0, 0.0))
    assert est.status == STATUS_NO_FACE and not est.visible and est.roi is None
    out = pipe.render(np.full((270, 480, 3), 90, np.uint8), est)
    assert np.all(out == 90)


def test_reset_replays_identically():
    def run(pipe):
        src = _astronaut_source(seconds=1.0)
        return [pipe.estimate(f).smooth_pts_xy for f in iter(src.read, None)]

    pipe, _ = _pipeline()
    first = run(pipe)
    pipe.reset()
    second = run(pipe)
    assert len(first) == 10
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_composite_draws_the_accessory_inside_its_quad_only():
    pipe, _ = _pipeline()
    src = _astronaut_source(seconds=0.3)
    for _ in range(3):
        frame = src.read()
        est, out = pipe.process(frame)
    assert est.visible and "composite" in est.times_ms
    changed = np.any(out != frame.image, axis=2)
    assert changed.sum() > 200
    ys, xs = np.nonzero(changed)
    q = est.smooth_pts_xy
    assert xs.min() >= q[:, 0].min() - 2 and xs.max() <= q[:, 0].max() + 2
    assert ys.min() >= q[:, 1].min() - 2 and ys.max() <= q[:, 1].max() + 2


def test_degenerate_quad_skips_the_warp():
    frame = np.full((100, 100, 3), 50, np.uint8)
    comp = Compositor()
    acc = accessory_by_name("glasses/round")
    collinear = np.array([[10.0, 10.0], [50.0, 10.0], [90.0, 10.0], [30.0, 10.0]])
    assert comp.draw(frame, acc, collinear) is False
    assert np.all(frame == 50) and comp.skipped == 1
    assert comp.draw(frame, acc, np.array([[20.0, 30.0], [80.0, 30.0], [80.0, 60.0], [20.0, 60.0]])) is True


def test_category_switch_uses_that_category_backend_and_framing():
    pipe, backends = _pipeline()
    assert pipe.category == "glasses"
    assert pipe.cycle_category() == "hat"
    src = _astronaut_source(seconds=0.3)
    est = pipe.estimate(src.read())
    assert est.accessory.category == "hat" and backends["hat"].calls == 1
    assert pipe.tracker.cfg == ROI_CONFIGS["hat"]


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------

def test_sync_loop_frame_count_in_equals_out():
    pipe, backends = _pipeline()
    src = _astronaut_source(seconds=1.2)
    seen = []
    report = FrameLoop(src, pipe, [seen.append], mode="auto").run()
    assert report.mode == "sync" and report.frames_in == report.frames_out == len(seen) == 12
    assert [o.frame.index for o in seen] == list(range(12))
    assert all(o.estimate.frame_index == o.frame.index for o in seen)
    assert backends["glasses"].calls == 12
    summary = report.stats.summary()
    assert summary["infer"]["n"] == 12 and summary["composite"]["p50"] >= 0


def test_async_loop_keeps_the_camera_rate_when_inference_is_slow():
    backends = {"glasses": AnchoredBackend(delay_s=0.1)}
    pipe, _ = _pipeline(backends)
    src = RealtimePacer(_astronaut_source(seconds=1.5, fps=30.0))
    seen = []
    try:
        report = FrameLoop(src, pipe, [seen.append], mode="auto").run()
    finally:
        src.close()
    assert report.mode == "async"
    assert report.frames_out > 2 * report.inferences, "display must not wait for inference"
    assert report.stats.summary()["infer"]["n"] <= report.inferences, "an inference was counted twice"
    assert report.stats.summary()["composite"]["n"] == report.frames_out
    assert all(o.estimate is not None for o in seen)
    lags = [o.frame.index - o.estimate.frame_index for o in seen]
    assert min(lags) >= 0 and max(lags) > 0


def test_camera_loss_mid_run_recovers():
    frames = [_astronaut_source(seconds=0.5)._get(i) for i in range(5)]
    pipe, _ = _pipeline()  # first: building it (the detector's graph) can outlast the camera's whole outage
    pipe.estimate(Frame(frames[0], 0, 0.0))  # ... and so can its first frame (the detector opens lazily)
    pipe.reset()
    factory = FlakyCaptureFactory(frames, fail_after=6, reopen_failures=2, fps=60.0)
    cam = CameraSource(0, opener=factory, backoff_start_s=0.05, backoff_max_s=0.1)
    seen = []

    def sink(out):
        seen.append((out.stale, out.source_status))
        return sum(not s for s, _ in seen) < 14

    try:
        report = FrameLoop(cam, pipe, [sink], mode="sync", stall_timeout_s=0.02).run()
    finally:
        cam.close()
    stale = [i for i, (s, _) in enumerate(seen) if s]
    assert stale, "the loop never reported the lost camera"
    assert all(seen[i][1] == STATUS_LOST for i in stale)
    assert any(not s for s, _ in seen[stale[-1] + 1:]), "no frames after the camera came back"
    assert report.frames_out == 14 and cam.reconnects == 1


def test_stage_stats_table():
    stats = StageStats()
    for v in (1.0, 2.0, 3.0):
        stats.add({"infer": v, "roi": v / 10})
    s = stats.summary()
    assert list(s) == ["roi", "infer"] and s["infer"]["p50"] == pytest.approx(2.0)
    assert "infer" in stats.table()


def test_composite_in_place_equals_the_composite_on_a_copy():
    pipe, _ = _pipeline()
    src = _astronaut_source(seconds=0.3)
    for _ in range(3):
        frame = src.read()
        est = pipe.estimate(frame)
    assert est.visible
    reference = pipe.render(frame.image, est)  # onto a copy
    assert reference is not frame.image and not np.array_equal(reference, frame.image)
    owned = frame.image.copy()
    out = pipe.render(owned, est, in_place=True)
    assert out is owned  # no full-frame copy
    np.testing.assert_array_equal(out, reference)


def test_sync_loop_composites_fresh_frames_in_place_and_never_a_callers_frames():
    pipe, _ = _pipeline()
    src = _astronaut_source(seconds=0.5)
    assert src.fresh_frames
    seen = []
    FrameLoop(src, pipe, [seen.append], mode="sync").run()
    assert all(o.composite is o.frame.image for o in seen)  # in place on the frame the loop owns
    from realtime.live.capture import GeneratedSource

    frames = [_astronaut_source(seconds=0.1)._get(0) for _ in range(3)]
    originals = [f.copy() for f in frames]
    pipe.reset()
    seen = []
    FrameLoop(GeneratedSource(frames), pipe, [seen.append], mode="sync").run()
    assert any(o.estimate.visible for o in seen) and all(o.composite is not o.frame.image for o in seen)
    for f, orig in zip(frames, originals):
        np.testing.assert_array_equal(f, orig)  # a list the caller holds is never drawn on


# --------------------------------------------------------------------------------------
# Outfit mode
# --------------------------------------------------------------------------------------

def test_outfit_composites_every_category_tie_glasses_hat():
    pipe, backends = _pipeline()
    src = _astronaut_source(seconds=0.5)
    assert pipe.set_outfit(["hat", "glasses", "tie"]) == ("tie", "glasses", "hat")
    for i in range(src.frame_count):
        frame = Frame(src._get(i), i, i / src.fps)
        est, composite = pipe.process(frame)
    assert [layer.accessory.category for layer in est.layers] == ["tie", "glasses", "hat"]
    assert all(layer.visible and layer.frame_index == frame.index for layer in est.layers)
    assert all(b.calls == src.frame_count for b in backends.values())  # sync: every category every frame
    reference = frame.image.copy()  # drawn by hand in the stated order
    for layer in est.layers:
        assert pipe.compositor.draw(reference, layer.accessory, layer.smooth_pts_xy)
    np.testing.assert_array_equal(composite, reference)
    for layer in est.layers:  # every category adds its own pixels
        alone = pipe.render(frame.image, layer)
        others = frame.image.copy()
        for other in est.layers:
            if other is not layer:
                pipe.compositor.draw(others, other.accessory, other.smooth_pts_xy)
        assert (alone != frame.image).any() and (composite != others).any()
    assert est.record()["layers"][2]["category"] == "hat"
    # n / p act on the category being edited; the others keep their accessory
    assert pipe.category == "glasses"
    before = {c: pipe.selected_index(c) for c in pipe.outfit}
    pipe.next_accessory(+1)
    est, _ = pipe.process(frame)
    assert est.accessory is est.layers[1].accessory is pipe.catalogue["glasses"][(before["glasses"] + 1) % 2]
    assert [est.layers[i].accessory for i in (0, 2)] == [pipe.catalogue[c][before[c]] for c in ("tie", "hat")]
    assert pipe.cycle_category() == "hat" and pipe.cycle_category() == "tie"  # c goes round the outfit
    # the async worker infers one category per call, in turn; the others keep their newest estimate
    calls = {c: b.calls for c, b in backends.items()}
    for _ in range(3):
        est = pipe.estimate(frame, round_robin=True)
        assert len(est.layers) == 3
    assert all(b.calls == calls[c] + 1 for c, b in backends.items())
    assert pipe.set_outfit(None) == ()
    assert pipe.process(frame)[0].layers == ()
    with pytest.raises(ValueError, match="no accessories of shoes"):
        pipe.set_outfit(["shoes"])


def test_the_crop_roll_ignores_wobble_inside_its_deadband():
    frame = np.zeros((300, 400, 3), np.uint8)
    tracker, _, quad = _followed_tracker(0.3, frame)
    band = tracker.cfg.roll_deadband_deg
    start = tracker.roll_deg
    for i, wobble in enumerate([0.8, -0.9, 1.2, -1.4, 0.5] * 4):  # the network's roll wobbling
        tracker.update(frame, 2 + i / 30)
        tracker.observe(quad, confident=True, roll_deg=start + wobble)
        assert tracker.roll_deg == start, "a wobble inside the dead-band does not turn the crop"
    tracker.update(frame, 3.0)
    tracker.observe(quad, confident=True, roll_deg=start + 10.0)  # a real turn: follows, one band behind
    assert tracker.roll_deg == pytest.approx(start + 10.0 - band)
    tracker.update(frame, 3.1)
    tracker.observe(quad, confident=True, roll_deg=start - 10.0)
    assert tracker.roll_deg == pytest.approx(start - 10.0 + band)
