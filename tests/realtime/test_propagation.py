"""Keypoint propagation in async mode: a textured picture moved by known amounts, a fake slow
estimator that infers every PERIOD-th frame, deterministic (no timing)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_pipeline import _astronaut_source, _pipeline

import realtime.live.pipeline as pipeline_mod
from realtime.framing import FaceBox, roi_config, roi_from_face
from realtime.geometry import warp_points
from realtime.live.capture import Frame, GeneratedSource
from realtime.live.pipeline import Estimate, FrameLoop, RateMeter, carry_estimate
from realtime.live.propagation import MotionPropagator, PropagationConfig
from realtime.procedural import bundled_accessories

SIZE_WH = (640, 480)
PERIOD = 10  # the fake estimator finishes one inference every PERIOD frames
#: The accessory's quad in the texture's coordinates (an eye-band of a 200 px face).
QUAD = np.array([[250.0, 200.0], [390.0, 200.0], [390.0, 250.0], [250.0, 250.0]])


def _texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (SIZE_WH[1] // 4, SIZE_WH[0] // 4, 3)).astype(np.float32)
    big = cv2.resize(noise, SIZE_WH, interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.GaussianBlur(big, (0, 0), 1.5), 0, 255).astype(np.uint8)


def _motion(index: int) -> np.ndarray:
    """3x3 frame_from_texture at ``index``: 3 px/frame right, 1 down, 0.3 deg/frame, 0.2 %/frame zoom."""
    s, a = 1.002 ** index, np.deg2rad(0.3 * index)
    c, si = s * np.cos(a), s * np.sin(a)
    cx, cy = 320.0, 225.0
    return np.array([[c, -si, cx - c * cx + si * cy + 3.0 * index],
                     [si, c, cy - si * cx - c * cy + 1.0 * index], [0, 0, 1]])


class _Scene:
    """Frames of the texture under :func:`_motion`; ``blank``: frame indices shown uniform grey."""

    def __init__(self, frames: int = 40, blank: tuple[int, ...] = ()) -> None:
        self.tex, self.blank, self.frames = _texture(), set(blank), frames

    def image(self, index: int) -> np.ndarray:
        if index in self.blank:
            return np.full((SIZE_WH[1], SIZE_WH[0], 3), 128, np.uint8)
        return cv2.warpAffine(self.tex, _motion(index)[:2], SIZE_WH, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)

    def quad(self, index: int) -> np.ndarray:
        return warp_points(_motion(index), QUAD).astype(np.float32)

    def source(self) -> GeneratedSource:
        return GeneratedSource(self.image, fps=30.0, count=self.frames, name="textured motion")


def _estimate(scene: _Scene, frame: Frame, category: str = "glasses", visible: bool = True) -> Estimate:
    """What a perfect network infers on ``frame``: the true quad there."""
    acc = bundled_accessories(category)[0]
    roi = roi_from_face(FaceBox(320.0, 225.0, 200.0), roi_config(category), 128)
    q = scene.quad(frame.index)
    return Estimate(frame.index, frame.timestamp, acc, roi, q, q.copy(), 0.9, visible,
                    "ok" if visible else "checking the detection")


class _SlowEstimator:
    """Stands in for :class:`AsyncEstimator`: the newest estimate is that of the last frame
    whose index is a multiple of PERIOD (an inference PERIOD frames long, no threads)."""

    scene: _Scene | None = None
    hidden: range = range(0)

    def __init__(self, pipeline) -> None:
        self.rate, self.completed, self._latest = RateMeter(), 0, None

    def submit(self, frame: Frame) -> None:
        if frame.index % PERIOD == 0:
            self._latest = _estimate(self.scene, frame, visible=frame.index not in self.hidden)
            self.completed += 1

    def latest(self, wait_first_s: float = 0.0) -> Estimate | None:
        return self._latest

    def close(self) -> None:
        pass


def _run(monkeypatch, scene: _Scene, propagate=True, hidden: range = range(0)):
    monkeypatch.setattr(_SlowEstimator, "scene", scene)
    monkeypatch.setattr(_SlowEstimator, "hidden", hidden)
    monkeypatch.setattr(pipeline_mod, "AsyncEstimator", _SlowEstimator)
    pipe, _ = _pipeline()
    seen = []
    report = FrameLoop(scene.source(), pipe, [seen.append], mode="async", propagate=propagate).run()
    assert report.mode == "async" and len(seen) == scene.frames
    return report, seen, pipe


def _err(out, scene: _Scene) -> float:
    return float(np.abs(out.estimate.smooth_pts_xy - scene.quad(out.frame.index)).max())


def test_the_propagated_quad_follows_the_known_motion_and_the_unpropagated_one_trails(monkeypatch):
    scene = _Scene()
    report, seen, _ = _run(monkeypatch, scene)
    _, plain, _ = _run(monkeypatch, scene, propagate=False)
    lagging = [i for i, o in enumerate(seen) if o.frame.index - o.estimate.frame_index >= 3]
    assert len(lagging) >= 20
    assert all(seen[i].estimate.propagated for i in lagging)
    assert report.propagated == scene.frames
    assert max(_err(seen[i], scene) for i in lagging) < 1.0  # px, on motions of 9-27 px
    assert min(_err(plain[i], scene) for i in lagging) > 8.0
    assert all(o.estimate.propagated is None for o in plain)
    rec = seen[lagging[0]].estimate.record(seen[lagging[0]].frame)
    assert rec["propagated"] is True and rec["inferred_frame"] < rec["frame"]
    assert "propagate" in seen[1].times_ms
    # the composite is drawn at the carried quad
    pipe = _pipeline()[0]
    o = seen[lagging[-1]]
    np.testing.assert_array_equal(o.composite, pipe.render(o.frame.image, o.estimate))


def test_a_blank_frame_breaks_the_motion_and_the_quad_falls_back_to_the_inferred_one(monkeypatch):
    scene = _Scene(blank=(15, 16, 17))
    report, seen, _ = _run(monkeypatch, scene)
    for o in seen[15:20]:  # the estimate of frame 10 cannot be carried across the blank frames
        assert o.estimate.frame_index == 10 and o.estimate.propagated is False
        np.testing.assert_array_equal(o.estimate.smooth_pts_xy, scene.quad(10))
    assert all(o.estimate.propagated for o in seen[1:15])
    assert all(o.estimate.propagated and _err(o, scene) < 1.0 for o in seen[21:])  # tracking resumed
    assert report.propagated == scene.frames - 5


def test_a_hidden_accessory_stays_hidden(monkeypatch):
    scene = _Scene(frames=30)
    _, seen, _ = _run(monkeypatch, scene, hidden=range(10, 20))
    for o in seen[10:20]:
        assert o.estimate.visible is False and o.estimate.propagated
        np.testing.assert_array_equal(o.composite, o.frame.image)  # nothing drawn
    assert all(o.estimate.visible and (o.composite != o.frame.image).any() for o in seen[20:])


def test_outfit_layers_are_each_carried_from_their_own_frame_and_keep_their_visibility():
    scene = _Scene(frames=25)
    motion = MotionPropagator()
    frames = [Frame(scene.image(i), i, i / 30.0) for i in range(scene.frames)]
    for f in frames:
        motion.observe(f.image, f.index)
        motion.retarget(f.image, [scene.quad(f.index)])
    tie = _estimate(scene, frames[8], "tie", visible=False)
    glasses = _estimate(scene, frames[15], "glasses")
    est = carry_estimate(Estimate(**{**glasses.__dict__, "layers": (tie, glasses)}), 24, motion)
    assert [layer.frame_index for layer in est.layers] == [8, 15]
    assert all(layer.propagated for layer in est.layers) and est.propagated
    assert [layer.visible for layer in est.layers] == [False, True]
    for layer in est.layers:
        assert np.abs(layer.smooth_pts_xy - scene.quad(24)).max() < 1.0
        assert np.abs(layer.raw_pts_xy - scene.quad(24)).max() < 1.0
    assert motion.carry(8, 24) is not None and motion.carry(3, 99) is None


def test_sync_mode_is_unchanged_by_propagation():
    outs = {}
    for flag in (True, False):
        pipe, _ = _pipeline()
        seen = []
        loop = FrameLoop(_astronaut_source(seconds=0.6), pipe, [seen.append], mode="sync", propagate=flag)
        report = loop.run()
        assert report.mode == "sync" and report.propagated == 0 and loop.motion is None
        outs[flag] = seen
    ref_pipe, _ = _pipeline()
    src = _astronaut_source(seconds=0.6)
    assert any(o.estimate.visible for o in outs[True])
    for a, b in zip(outs[True], outs[False], strict=True):
        np.testing.assert_array_equal(a.composite, b.composite)
        assert a.estimate.propagated is None and "propagated" not in a.estimate.record()
        _, ref = ref_pipe.process(Frame(src._get(a.frame.index), a.frame.index, a.frame.timestamp))
        np.testing.assert_array_equal(a.composite, ref)


def test_motion_chains_history_and_options():
    scene = _Scene(frames=8)
    motion = MotionPropagator(PropagationConfig(history=4))
    for i in range(scene.frames):
        img = scene.image(i)
        assert motion.observe(img, i) == (i > 0)
        motion.retarget(img, [scene.quad(i)])
    assert motion.carry(2, 7) is None, "older than the history"
    np.testing.assert_allclose(warp_points(motion.carry(4, 7), scene.quad(4)), scene.quad(7), atol=0.5)
    motion.observe(scene.image(0), 8)
    motion.retarget(scene.image(0), [])  # nothing to follow: the next frame starts a new chain
    assert not motion.observe(scene.image(1), 9) and motion.carry(8, 9) is None
    assert motion.box_for([np.full((4, 2), np.nan)], SIZE_WH) is None
    with pytest.raises(ValueError, match="bad propagation options"):
        PropagationConfig(min_features=50, max_features=10)
