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


def _ssim_from_the_formula(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 SSIM written out independently: Gaussian window sigma 1.5 (11 taps),
    population (co)variances, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255, per channel, the mean
    over the map without the 5-pixel border a full window cannot cover."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = []
    for c in range(a.shape[2]):
        x, y = a[..., c].astype(np.float64), b[..., c].astype(np.float64)

        def blur(z):
            return gaussian_filter(z, 1.5, truncate=3.5, mode="reflect")

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out.append(s[5:-5, 5:-5].mean())
    return float(np.mean(out))


def test_lssim_is_spec_ssim_inside_the_union_box_of_the_two_masks(rng):
    """SPEC section 5: SSIM (Gaussian window 11, sigma 1.5) between the two composites, inside
    the bounding box of the union of the two warped masks, checked against the formula."""
    from realtime.geometry import PreparedAccessory
    from training.metrics import render, warp_homography

    bg, fg, init = _scene(rng)
    gt, pred = _rect(10, 12, 40, 30), _rect(16, 15, 47, 36)
    cfg = MetricConfig()
    acc = PreparedAccessory.from_rgba(fg, to_bgr=False)
    gt_comp, gt_mask = render(bg, acc, fg[..., 3], warp_homography(init, gt), cfg)
    pred_comp, pred_mask = render(bg, acc, fg[..., 3], warp_homography(init, pred), cfg)
    assert _box_of(gt_mask | pred_mask, cfg) == (10, 12, 48, 37)  # x 10..47, y 12..36 inclusive
    expected = _ssim_from_the_formula(pred_comp[12:37, 10:48], gt_comp[12:37, 10:48])
    assert sample_metrics(bg, fg, init, gt, pred).lssim == pytest.approx(expected, abs=1e-9)


def test_lssim_scores_a_far_miss_above_a_near_miss_of_a_textured_accessory(rng):
    """Why a mean quad can beat a closer model on LSSIM (issue 17): a near miss compares two
    misaligned textures over a tight box (SSIM near 0 there), a far miss grows the union box
    over background that is identical in both composites. IoU and Disp do not reward it."""
    big = 128
    bg = np.full((big, big, 3), 90, np.uint8)
    fg = np.empty((big, big, 4), np.uint8)
    fg[..., :3] = rng.integers(0, 256, size=(big, big, 3), dtype=np.uint8)  # a fine pattern
    fg[..., 3] = 255
    init = np.array([[0, 0], [big - 1, 0], [big - 1, big - 1], [0, big - 1]], np.float64)
    gt = _rect(20, 20, 50, 50)
    near = sample_metrics(bg, fg, init, gt, gt + [7.5, 0.0])  # a quarter of the side
    far = sample_metrics(bg, fg, init, gt, gt + [60.0, 0.0])  # twice the side: disjoint
    assert near.iou > 0.5 > far.iou == 0.0 and near.disp < far.disp
    assert far.lssim > near.lssim + 0.2
