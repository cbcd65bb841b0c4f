"""Codec: Gaussian targets <-> soft-argmax decoding, numpy/torch agreement, corner order."""

from __future__ import annotations

import numpy as np
import pytest

from realtime.codec import HeatmapCodec, canonical_corner_order, flip_corners_horizontally
from realtime.config import CodecConfig


@pytest.mark.parametrize("size", [224, 448])
def test_gaussian_round_trip_subpixel_and_borders(rng, size):
    codec = HeatmapCodec()
    interior = rng.uniform(0, size - 1, size=(40, 2))
    border = np.array([[0.0, 0.0], [0.3, size - 1.2], [size - 1.0, 5.7], [size - 1.4, size - 1.0],
                       [0.45, 100.25], [size - 0.6, size / 2]])
    for pts in np.concatenate([interior, border]).reshape(-1, 2, 2):
        hm = codec.encode(pts, (size, size))
        dec = codec.decode(hm)
        assert np.abs(dec.pts_xy - pts).max() <= 0.05, (pts, dec.pts_xy)
        assert np.allclose(dec.peak, 1.0, atol=0.02)


def test_target_peak_sigma_and_radius():
    codec = HeatmapCodec(CodecConfig(radius=20))
    assert codec.sigma == pytest.approx(41 / 6)
    hm = codec.encode(np.array([[50.0, 60.0]]), (128, 128))[0]
    assert hm[60, 50] == pytest.approx(1.0)
    assert hm[60, 50 + 7] == pytest.approx(np.exp(-49 / (2 * codec.sigma ** 2)), rel=1e-5)
    assert hm[60, 50 + 21] == 0.0  # beyond the radius g
    assert hm.dtype == np.float32


def test_paper_softargmax_integer_points():
    codec = HeatmapCodec(CodecConfig(refine="none"))
    pts = np.array([[10.0, 20.0], [100.0, 3.0], [0.0, 223.0], [223.0, 0.0]])
    dec = codec.decode(codec.encode(pts, (224, 224)))
    assert np.abs(dec.pts_xy - pts).max() <= 0.05


def test_numpy_and_torch_decoders_agree(rng):
    torch = pytest.importorskip("torch")
    codec = HeatmapCodec()
    hm = np.stack([codec.encode(rng.uniform(0, 111, (4, 2)), (112, 112)) for _ in range(3)])
    hm = np.clip(hm + rng.normal(0, 0.02, hm.shape).astype(np.float32), 0, 1)  # not a perfect Gaussian
    a = codec.decode(hm).pts_xy
    b = codec.decode_torch(torch.from_numpy(hm)).numpy()
    assert np.abs(a - b).max() < 1e-3


def test_decode_hand_made_peak():
    hm = np.zeros((1, 4, 32, 32), np.float32)
    for k, (x, y) in enumerate([(3, 4), (28, 4), (28, 29), (3, 29)]):
        hm[0, k, y, x] = 0.9
    dec = HeatmapCodec().decode(hm)
    assert dec.pts_xy.shape == (1, 4, 2)
    assert np.allclose(dec.pts_xy[0], [(3, 4), (28, 4), (28, 29), (3, 29)], atol=1e-3)
    assert np.allclose(dec.confidence, 0.9)


@pytest.mark.parametrize("perm", [(0, 1, 2, 3), (2, 0, 3, 1), (3, 2, 1, 0), (1, 3, 0, 2)])
def test_canonical_corner_order(perm):
    quad = np.array([[10, 12], [90, 8], [95, 60], [5, 55]], float)
    assert np.allclose(canonical_corner_order(quad[list(perm)]), quad)


def test_flip_relabels_corners():
    quad = np.array([[10, 12], [90, 8], [95, 60], [5, 55]], float)
    flipped = flip_corners_horizontally(quad, 100)
    assert np.allclose(flipped, canonical_corner_order(flipped))
    assert np.allclose(flip_corners_horizontally(flipped, 100), quad)


def test_windowed_softargmax_equals_full_softmax(rng):
    """The decoder exps only pixels near the peak; it must equal the plain Eq. 4 sum."""
    codec = HeatmapCodec(CodecConfig(refine="none"))
    hm = np.stack([codec.encode(rng.uniform(0, 95, (4, 2)), (96, 96)) for _ in range(2)])
    hm = np.clip(0.9 * hm + rng.uniform(0, 0.3, hm.shape), 0, 1).astype(np.float32)  # noisy, several near-peaks
    flat = hm.reshape(-1, 96 * 96) * np.float32(1000.0)
    p = np.exp(flat - flat.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    xs, ys = np.meshgrid(np.arange(96, dtype=np.float32), np.arange(96, dtype=np.float32))
    full = np.stack([p @ xs.ravel(), p @ ys.ravel()], axis=1).reshape(2, 4, 2)
    assert np.abs(codec.decode(hm).pts_xy - full).max() < 1e-3


def test_decode_quad_completes_flat_corners_and_reports_the_confident_ones():
    codec = HeatmapCodec(CodecConfig(complete_below=0.1))
    init = np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 120.0], [0.0, 120.0]])
    truth = init * 0.25 + [20.0, 10.0]  # bottom corners at y = 40: inside a 64 px map
    hm = codec.encode(truth, (64, 64))
    hm[2:] = 0.001  # the lower corners' heatmaps are flat: the network cannot see them
    out = codec.decode_quad(hm, init)
    assert out.completed.tolist() == [False, False, True, True]
    np.testing.assert_allclose(out.pts_xy, truth, atol=0.05)
    assert out.confidence == pytest.approx(1.0, abs=1e-3)  # the weak corners do not count
    off = HeatmapCodec(CodecConfig(complete_below=0.0)).decode_quad(hm, init)
    assert not off.completed.any() and off.confidence == pytest.approx(0.001)
