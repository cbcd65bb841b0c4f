"""Geometry: homography round trips, degenerate quads, ROI composite vs full-frame reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.geometry import (DegenerateQuadError, PreparedAccessory, composite_reference, composite_roi,
                               crop_from_box, homography_from_quads, resize_matrix, validate_quad, warp_crop,
                               warp_points)

SRC = np.array([[0, 0], [199, 0], [199, 79], [0, 79]], float)


def _accessory() -> np.ndarray:
    acc = np.zeros((80, 200, 4), np.uint8)
    cv2.ellipse(acc, (50, 40), (45, 35), 0, 0, 360, (30, 30, 30, 255), 6, cv2.LINE_AA)
    cv2.ellipse(acc, (150, 40), (45, 35), 0, 0, 360, (30, 30, 30, 255), 6, cv2.LINE_AA)
    cv2.ellipse(acc, (50, 40), (40, 30), 0, 0, 360, (40, 90, 160, 110), -1, cv2.LINE_AA)
    return acc


def test_homography_matches_opencv_and_round_trips(rng):
    for _ in range(20):
        dst = SRC * rng.uniform(0.3, 3) + rng.uniform(-50, 500, 2) + rng.normal(0, 5, (4, 2))
        h = homography_from_quads(SRC, dst)
        ref = cv2.getPerspectiveTransform(SRC.astype(np.float32), dst.astype(np.float32))
        assert np.allclose(h / h[2, 2], ref / ref[2, 2], atol=1e-6 * np.abs(ref).max())
        assert np.allclose(warp_points(h, SRC), dst, atol=1e-6)
        pts = rng.uniform(0, 199, (10, 2))
        assert np.allclose(warp_points(np.linalg.inv(h), warp_points(h, pts)), pts, atol=1e-6)


@pytest.mark.parametrize("quad,match", [
    ([[0, 0], [10, 0], [20, 0], [0, 10]], "collinear"),
    ([[0, 0], [20, 10], [20, 0], [0, 14]], "self-intersecting"),
    ([[0, 0], [1, 0], [1, 1], [0, 1]], "area"),
    ([[0, 0], [10, 0], [np.nan, 10], [0, 10]], "non-finite"),
    ([[0, 0], [10, 0], [10, 10]], "4 points"),
])
def test_degenerate_quads_raise(quad, match):
    with pytest.raises(DegenerateQuadError, match=match):
        homography_from_quads(SRC, np.array(quad, float))


def test_valid_quad_passes():
    assert validate_quad(SRC).shape == (4, 2)


@pytest.mark.parametrize("offset", [(300, 200), (-60, 100), (1220, 650), (600, -30), (-100, -40)])
def test_roi_composite_matches_full_frame_reference(rng, offset):
    acc = PreparedAccessory.from_rgba(_accessory())
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    dst = SRC * 1.7 + np.array(offset) + rng.normal(0, 8, (4, 2))
    h = homography_from_quads(SRC, dst)
    ref = composite_reference(frame, acc, h)
    out = frame.copy()
    box = composite_roi(out, acc, h)
    assert box is not None
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    x0, y0, x1, y1 = box
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside])  # nothing outside the footprint changed
    assert (out != frame).any()


def test_roi_composite_fully_outside_is_noop(rng):
    acc = PreparedAccessory.from_rgba(_accessory())
    frame = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    h = homography_from_quads(SRC, SRC + 1000)
    out = frame.copy()
    assert composite_roi(out, acc, h) is None
    assert np.array_equal(out, frame)


def test_premultiplied_opaque_pixels_keep_colour():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = 255
    acc = PreparedAccessory.from_rgba(rgba)
    assert tuple(acc.premul[5, 5]) == (50, 100, 200, 255)  # RGB -> BGR


def test_crop_transform_round_trip(rng):
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    crop_from_frame = crop_from_box((320.0, 200.0), 150.0, 224, angle_deg=12.0)
    crop = warp_crop(frame, crop_from_frame, 224)
    pts_frame = np.array([[300.0, 190.0], [330.0, 230.0]])
    pts_crop = warp_points(crop_from_frame, pts_frame)
    back = warp_points(np.linalg.inv(crop_from_frame), pts_crop)
    assert np.allclose(back, pts_frame)
    # The centre of the box lands at the centre of the crop.
    assert np.allclose(warp_points(crop_from_frame, np.array([320.0, 200.0])), [111.5, 111.5])
    assert crop.shape == (224, 224, 3)


def test_resize_matrix_matches_cv2_resize():
    yy, xx = np.mgrid[0:100, 0:200]
    img = np.exp(-((xx - 60.0) ** 2 + (yy - 40.0) ** 2) / (2 * 5.0 ** 2)).astype(np.float32)
    out = cv2.resize(img, (100, 50), interpolation=cv2.INTER_LINEAR)
    ys, xs = np.mgrid[0:50, 0:100]
    w = out
    centroid = np.array([np.sum(xs * w), np.sum(ys * w)]) / w.sum()
    assert np.allclose(warp_points(resize_matrix((200, 100), (100, 50)), np.array([60.0, 40.0])), centroid, atol=0.05)


def _similar_quad(init: np.ndarray, scale: float, angle_deg: float, shift) -> np.ndarray:
    t = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return init @ rot.T + np.asarray(shift)


@pytest.mark.parametrize("weak", [(2, 3), (0,), (1, 3)])
def test_complete_quad_restores_weak_corners_from_the_accessory_shape(weak):
    from realtime.geometry import complete_quad

    init = np.array([[10.0, 5.0], [90.0, 5.0], [90.0, 245.0], [10.0, 245.0]])  # a long tie box
    truth = _similar_quad(init, 0.4, 7.0, (100.0, 60.0))
    pred = truth.copy()
    peak = np.full(4, 0.8)
    for i in weak:
        pred[i] = (0.0, 0.0)  # what a flat heatmap decodes to
        peak[i] = 0.02
    out, completed = complete_quad(pred, peak, init, min_peak=0.1)
    assert completed.tolist() == [i in weak for i in range(4)]
    np.testing.assert_allclose(out, truth, atol=1e-3)


def test_complete_quad_leaves_confident_or_hopeless_quads_alone():
    from realtime.geometry import complete_quad

    init = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    pred = np.array([[1.0, 1.0], [9.0, 2.0], [8.0, 9.0], [2.0, 8.0]])
    for peak, min_peak in (([0.9, 0.9, 0.9, 0.9], 0.1), ([0.05, 0.05, 0.05, 0.9], 0.1), ([0.0] * 4, 0.0)):
        out, completed = complete_quad(pred, np.array(peak), init, min_peak)
        np.testing.assert_array_equal(out, pred.astype(np.float32))
        assert not completed.any()


def test_similarity_helpers_compose_and_conjugate(rng):
    from realtime.geometry import (carry_matrix, conjugate_by_scaling, similarity_scale_angle, to3x3,
                                   translation_matrix)

    a, b = np.deg2rad(12.0), 1.3
    sim = np.array([[b * np.cos(a), -b * np.sin(a), 5.0], [b * np.sin(a), b * np.cos(a), -7.0], [0, 0, 1]])
    scale, angle = similarity_scale_angle(sim[:2])
    assert scale == pytest.approx(1.3) and angle == pytest.approx(12.0)
    small_from_frame = resize_matrix((300, 201), (100, 67)) @ translation_matrix(-40, -25)  # a whole factor 3
    np.testing.assert_allclose(conjugate_by_scaling(sim[:2], small_from_frame),
                               np.linalg.inv(small_from_frame) @ sim @ small_from_frame, atol=1e-9)
    c0 = to3x3(cv2.getRotationMatrix2D((10.0, 20.0), 5.0, 1.1))
    pts = rng.uniform(0, 100, (5, 2))
    np.testing.assert_allclose(warp_points(carry_matrix(sim @ c0, c0), warp_points(c0, pts)),
                               warp_points(sim @ c0, pts), atol=1e-9)
