"""Smoothing: One Euro filter properties, the quad parameterisation, resolution independence, the gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from realtime.live.smoothing import (OneEuroFilter, QuadFilter, QuadSmoother, SmoothingConfig, params_to_quad,
                                     quad_size, quad_to_params)

FPS = 30.0
QUAD = np.array([[100.0, 80.0], [220.0, 84.0], [218.0, 140.0], [102.0, 136.0]])


def _times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


def test_one_euro_constant_input_gives_constant_output():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    outs = [f(np.array([3.25, -7.5]), t) for t in _times(50)]
    np.testing.assert_array_equal(np.array(outs), np.tile([3.25, -7.5], (50, 1)))


def test_one_euro_step_converges_and_lags():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    outs = np.array([float(f(0.0 if i < 10 else 1.0, t)) for i, t in enumerate(_times(200))])
    assert 0.0 < outs[10] < 0.5  # the first sample after the step is smoothed
    assert np.all(np.diff(outs[10:]) >= 0)  # monotone approach, no overshoot
    assert abs(outs[-1] - 1.0) < 1e-3


def test_one_euro_beta_reduces_lag_during_motion():
    ramp = _times(60) * 100.0  # 100 units/s
    lags = []
    for beta in (0.0, 1.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        outs = [float(f(x, t)) for x, t in zip(ramp, _times(60))]
        lags.append(ramp[-1] - outs[-1])
    assert lags[1] < 0.2 * lags[0]


def test_one_euro_lowers_jitter_on_noisy_static_input(rng):
    noisy = 50.0 + rng.normal(0.0, 2.0, 300)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)  # at rest: a 1 Hz low-pass, about 0.31x the noise at 30 fps
    outs = np.array([float(f(x, t)) for x, t in zip(noisy, _times(300))])
    assert np.std(outs[30:]) < 0.4 * np.std(noisy[30:])


def test_one_euro_reset_forgets_history():
    f = OneEuroFilter()
    for t in _times(10):
        f(5.0, t)
    f.reset()
    assert f.value is None
    assert float(f(-2.0, 1.0)) == -2.0


def test_quad_params_round_trip_and_meaning():
    centre, log_size, theta, shape = quad_to_params(QUAD)
    np.testing.assert_allclose(params_to_quad(centre, log_size, theta, shape), QUAD, atol=1e-9)
    np.testing.assert_allclose(centre, QUAD.mean(axis=0))
    assert math.exp(log_size) == pytest.approx(quad_size(QUAD))
    assert abs(theta) < 0.05  # nearly upright
    with pytest.raises(ValueError):
        quad_to_params(np.zeros((4, 2)))


@pytest.mark.parametrize("k, offset", [(2.5, (300.0, -40.0)), (0.4, (0.0, 0.0))])
def test_quad_filter_is_resolution_independent(rng, k, offset):
    """Scaled (and shifted) input gives exactly the scaled output: parameters are in quad units."""
    cfg = SmoothingConfig()
    base = [QUAD + rng.normal(0, 3, (4, 2)) + [i * 4.0, np.sin(i / 5) * 20] for i in range(40)]
    f1, f2 = QuadFilter(cfg), QuadFilter(cfg)
    for i, (q, t) in enumerate(zip(base, _times(40))):
        out1 = f1(q, t)
        out2 = f2(q * k + offset, t)
        np.testing.assert_allclose(out2, out1 * k + offset, rtol=1e-9, atol=1e-7 * k * 300, err_msg=f"frame {i}")


def test_quad_filter_handles_angle_wrap():
    f = QuadFilter(SmoothingConfig())
    for i, t in enumerate(_times(20)):
        ang = math.pi - 0.01 + (0.02 if i % 2 else 0.0)  # upside-down quad crossing +-pi
        c, s = math.cos(ang), math.sin(ang)
        q = (QUAD - QUAD.mean(0)) @ np.array([[c, s], [-s, c]]) + 500.0
        out = f(q, t)
        assert np.max(np.abs(out - q)) < 2.0, "the filter spun around instead of taking the short way"


def test_quad_filter_keeps_shape_steadier_than_corners(rng):
    """Independent corner noise: the smoothed quad's aspect ratio varies less than the input's."""
    cfg = SmoothingConfig()
    f = QuadFilter(cfg)
    aspect_in, aspect_out = [], []
    for t in _times(200):
        q = QUAD + rng.normal(0, 2.0, (4, 2))
        out = f(q, t)
        aspect_in.append(np.linalg.norm(q[1] - q[0]) / np.linalg.norm(q[3] - q[0]))
        aspect_out.append(np.linalg.norm(out[1] - out[0]) / np.linalg.norm(out[3] - out[0]))
    assert np.std(aspect_out[30:]) < 0.3 * np.std(aspect_in[30:])


def test_gate_hysteresis_shows_holds_and_hides():
    cfg = SmoothingConfig(show_confidence=0.5, hide_confidence=0.2, show_frames=2, hide_frames=3)
    sm = QuadSmoother(cfg)
    confs = [0.6, 0.6, 0.35, 0.35, 0.1, 0.1, 0.1, 0.3, 0.6, 0.6]
    visible = [sm.update(QUAD, c, t).visible for c, t in zip(confs, _times(len(confs)))]
    assert visible == [False, True, True, True, True, True, False, False, False, True]


def test_gate_hide_resets_filter_so_it_reacquires_without_gliding():
    cfg = SmoothingConfig(show_frames=1, hide_frames=1)
    sm = QuadSmoother(cfg)
    t = iter(_times(100))
    for _ in range(20):
        sm.update(QUAD, 0.9, next(t))
    sm.update(QUAD, 0.0, next(t))  # person left: hidden, filter reset
    moved = QUAD + 200.0
    out = sm.update(moved, 0.9, next(t))
    assert out.visible
    np.testing.assert_allclose(out.pts_xy, moved, atol=1e-9)


def test_reset_hides_and_smoothing_off_passes_raw(rng):
    sm = QuadSmoother(SmoothingConfig(show_frames=1))
    assert sm.update(QUAD, 0.9, 0.0).visible
    sm.reset()
    assert not sm.visible and sm.last is None
    sm.enabled = False
    for t in _times(5):
        q = QUAD + rng.normal(0, 3, (4, 2))
        np.testing.assert_array_equal(sm.update(q, 0.9, t).pts_xy, q)


def test_degenerate_measurement_keeps_last_good_quad():
    sm = QuadSmoother(SmoothingConfig(show_frames=1))
    good = sm.update(QUAD, 0.9, 0.0).pts_xy
    out = sm.update(np.zeros((4, 2)), 0.9, 0.033)
    np.testing.assert_array_equal(out.pts_xy, good)


def test_config_validation():
    with pytest.raises(ValueError, match="hide_confidence"):
        SmoothingConfig(show_confidence=0.2, hide_confidence=0.5)
    with pytest.raises(ValueError, match="min_cutoff"):
        SmoothingConfig(min_cutoff=0.0)
