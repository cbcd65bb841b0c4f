"""Metrics: IoU, Disp and LSSIM on hand-made quads with known answers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from training.metrics import MetricConfig, _box_of, disp_error, mask_iou, sample_metrics, summarize  # noqa: E402

S = 64


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured background, a fully opaque textured accessory and its corner quad."""
    bg = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
    fg = np.empty((S, S, 4), np.uint8)
    fg[..., :3] = rng.integers(0, 256, size=(S, S, 3), dtype=np.uint8)
    fg[..., 3] = 255
    init = np.array([[0, 0], [S - 1, 0], [S - 1, S - 1], [0, S - 1]], np.float64)
    return bg, fg, init


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def test_identical_prediction_is_perfect(rng):
    bg, fg, init = _scene(rng)
    gt = _rect(10, 12, 40, 30)
    m = sample_metrics(bg, fg, init, gt, gt.copy())
    assert m.iou == 1.0 and m.disp == 0.0 and not m.degenerate
    assert m.lssim == pytest.approx(1.0, abs=1e-12)


def test_shifted_quad_has_the_known_iou(rng):
    bg, fg, init = _scene(rng)
    gt = _rect(10, 10, 40, 30)  # pixel centres 10..40 x 10..30: 31 x 21 mask pixels
    pred = gt + [10.0, 0.0]  # 20..50: overlap 21 columns, union 41 columns
    m = sample_metrics(bg, fg, init, gt, pred)
    assert m.iou == pytest.approx(21 / 41, abs=1e-9)
    assert m.disp == pytest.approx(10 / S)
    assert -1.0 <= m.lssim < 0.9  # noise textures: SSIM near 0 once misplaced


def test_disp_normalises_x_by_width_and_y_by_height():
    gt = _rect(10, 10, 40, 30)
    assert disp_error(gt + [3.0, 4.0], gt, (100, 100)) == pytest.approx(0.05)
    # Non-square image: x over W, y over H.
    assert disp_error(gt + [6.0, 0.0], gt, (200, 100)) == pytest.approx(0.03)
    assert disp_error(gt + [0.0, 6.0], gt, (200, 100)) == pytest.approx(0.06)


def test_mask_iou_edge_cases():
    a = np.zeros((4, 4), bool)
    assert mask_iou(a, a) == 1.0  # both empty: agree on nothing
    b = a.copy()
    b[0, 0] = True
    assert mask_iou(a, b) == 0.0


@pytest.mark.parametrize("pred", [
    _rect(10, 10, 40, 30)[[1, 0, 3, 2]],  # mirrored: opposite orientation
    np.array([[10, 10], [20, 10], [30, 10], [40, 10]], np.float64),  # collinear
    np.full((4, 2), np.nan),  # non-finite
])
def test_degenerate_prediction_counts_as_iou_zero(rng, pred):
    bg, fg, init = _scene(rng)
    gt = _rect(10, 10, 40, 30)
    m = sample_metrics(bg, fg, init, gt, pred)
    assert m.degenerate and m.iou == 0.0
    assert np.isfinite(m.lssim) and m.lssim < 1.0  # composite without the accessory
    if np.all(np.isfinite(pred)):
        assert m.disp == pytest.approx(disp_error(pred, gt, (S, S)))


def test_lssim_box_is_grown_to_one_window_inside_the_image():
    mask = np.zeros((S, S), bool)
    mask[0:2, S - 3:S] = True
    x0, y0, x1, y1 = _box_of(mask, MetricConfig())
    assert (x1 - x0, y1 - y0) == (11, 11)
    assert x1 == S and y0 == 0


def test_lssim_region_option_changes_the_box(rng):
    bg, fg, init = _scene(rng)
    gt = _rect(10, 10, 30, 30)
    pred = gt + [20.0, 20.0]
    union = sample_metrics(bg, fg, init, gt, pred, MetricConfig(box="union")).lssim
    only_gt = sample_metrics(bg, fg, init, gt, pred, MetricConfig(box="gt")).lssim
    assert union != pytest.approx(only_gt)
    with pytest.raises(ValueError, match="box"):
        MetricConfig(box="everything")


def test_summarize_averages_and_counts(rng):
    bg, fg, init = _scene(rng)
    gt = _rect(10, 10, 40, 30)
    good = sample_metrics(bg, fg, init, gt, gt)
    bad = sample_metrics(bg, fg, init, gt, gt[[1, 0, 3, 2]])
    s = summarize([good, bad])
    assert s.n == 2 and s.degenerate == 1
    assert s.iou == pytest.approx(0.5)
    with pytest.raises(ValueError):
        summarize([])
