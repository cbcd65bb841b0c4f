"""Evaluation metrics LSSIM, IoU and Disp (paper Sec. 4.1, following CorrelNet; SPEC section 5).

All metrics are computed at NETWORK resolution (S x S background, S x S foreground,
vertices in network pixels) and averaged over the test set. The paper defers the
definitions to CorrelNet (Zhang et al. 2022); what follows is our reading [I], every
choice a field of :class:`MetricConfig`:

* Warp: the homography ``bg_from_fg`` maps ``init_vertex`` onto the (predicted or
  ground-truth) ``final_vertex`` (:func:`realtime.geometry.homography_from_quads`). The
  warped mask is the accessory alpha warped by it (bilinear), thresholded at
  ``alpha_threshold`` = 0.5. The composite is paper Eq. 5 (premultiplied alpha,
  :func:`realtime.geometry.composite_reference`).
* **IoU**: |M_pred AND M_gt| / |M_pred OR M_gt| of the warped masks. If both masks are
  empty (the accessory lies wholly outside the image) the IoU is 1.
* **LSSIM**: SSIM (Wang et al. 2004) between the predicted and the ground-truth
  composites, RGB, restricted to the bounding box of the union of the two warped
  masks (``box="union"``; ``"gt"`` uses the ground-truth mask only). SSIM is
  ``skimage.metrics.structural_similarity`` with a Gaussian window of sigma 1.5
  (11 x 11 taps, skimage truncates at 3.5 sigma), ``data_range=255``, population
  statistics (``use_sample_covariance=False``, as Wang et al. and pytorch-ssim), per
  channel then averaged. A box narrower than ``min_box`` = 11 px (one SSIM window) is
  grown about its centre, within the image.
  LSSIM is not monotonic in the placement error: background outside both masks is the same
  in both composites (SSIM 1 there), so a far miss, whose union box spans background, can
  score above a near miss that compares two misaligned textures over a tight box, and a quad
  scaled up by 1.5 above one scaled down to 0.7 that overlaps the label more. Read it beside IoU and Disp
  (measured for the tie: ``benchmarks/results/tie_diagnosis_2026-12-02_amd-epyc-2c.md``).
* **Disp**: mean over the 4 vertices of the L2 distance between predicted and
  ground-truth final vertices with x divided by W and y by H:
  mean_k sqrt(((x_k - x'_k) / W)^2 + ((y_k - y'_k) / H)^2).

Degenerate predictions: a predicted quad that cannot define a homography (non-finite,
collinear, self-intersecting, tiny, or of the opposite orientation to ``init_vertex``,
i.e. a mirrored warp) draws no accessory: its mask is empty, so IoU = 0 (or 1 if the
ground truth is empty too), the predicted composite is the bare background and LSSIM is
computed over the ground-truth box against it; Disp is measured on the predicted points
as they are. Such samples are counted (``degenerate``). A ground-truth quad that is
degenerate is a dataset error and raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from realtime.geometry import (DegenerateQuadError, PreparedAccessory, composite_reference, homography_from_quads,
                               warp_mask)

METRIC_NAMES = ("lssim", "iou", "disp")


@dataclass
class MetricConfig:
    """Metric definitions [I] (see the module docstring).

    Attributes:
        alpha_threshold: warped alpha above this is the accessory mask.
        ssim_sigma: Gaussian window sigma of SSIM (Wang et al.: 1.5 -> 11 taps).
        use_sample_covariance: skimage's N-1 normalisation (False = Wang et al.).
        box: ``"union"`` of the two masks (CorrelNet's "local" region [I]) or ``"gt"``.
        min_box: smallest box side in pixels (one SSIM window).
        box_margin: pixels added around the box on every side.
    """

    alpha_threshold: float = 0.5
    ssim_sigma: float = 1.5
    use_sample_covariance: bool = False
    box: str = "union"
    min_box: int = 11
    box_margin: int = 0

    def __post_init__(self) -> None:
        if self.box not in ("union", "gt"):
            raise ValueError(f"metrics.box must be 'union' or 'gt', got {self.box!r}")


@dataclass
class SampleMetrics:
    """Metrics of one test sample."""

    lssim: float
    iou: float
    disp: float
    degenerate: bool = False


@dataclass
class MetricSummary:
    """Test-set means over the ``n`` scored samples, the count of degenerate predictions among
    them, and the count of samples whose model output was not finite (NaN / inf: failures,
    never scored, so not in ``n`` or the means)."""

    lssim: float
    iou: float
    disp: float
    n: int
    degenerate: int = 0
    per_sample: list[SampleMetrics] = field(default_factory=list, repr=False)
    non_finite: int = 0

    def as_dict(self) -> dict[str, float | int]:
        return {"lssim": self.lssim, "iou": self.iou, "disp": self.disp, "n": self.n, "degenerate": self.degenerate,
                "non_finite": self.non_finite}


def _orientation(quad_xy: np.ndarray) -> float:
    """Sign of the shoelace area: +1 clockwise on screen (y down), -1 counter-clockwise."""
    x, y = quad_xy[:, 0], quad_xy[:, 1]
    return float(np.sign(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def warp_homography(init_vertex: np.ndarray, final_vertex: np.ndarray) -> np.ndarray:
    """``bg_from_fg`` for a quad pair; raises DegenerateQuadError, also for a mirrored warp."""
    mat = homography_from_quads(init_vertex, final_vertex)
    if _orientation(np.asarray(init_vertex, np.float64)) != _orientation(np.asarray(final_vertex, np.float64)):
        raise DegenerateQuadError("target quad has the opposite orientation to the source quad (mirrored warp)")
    return mat


def disp_error(pred_xy: np.ndarray, gt_xy: np.ndarray, size_wh: tuple[int, int]) -> float:
    """Disp: mean over vertices of the L2 error with x / W and y / H."""
    d = (np.asarray(pred_xy, np.float64) - np.asarray(gt_xy, np.float64)) / np.asarray(size_wh, np.float64)
    return float(np.mean(np.sqrt((d ** 2).sum(axis=-1))))


def mask_iou(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """IoU of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(mask_a, mask_b).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(mask_a, mask_b).sum() / union)


def _box_of(mask: np.ndarray, cfg: MetricConfig) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) exclusive box of a mask, grown to ``min_box`` within the image."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    h, w = mask.shape
    box = [int(xs.min()) - cfg.box_margin, int(ys.min()) - cfg.box_margin,
           int(xs.max()) + 1 + cfg.box_margin, int(ys.max()) + 1 + cfg.box_margin]
    for lo, hi, limit in ((0, 2, w), (1, 3, h)):
        need = min(cfg.min_box, limit) - (box[hi] - box[lo])
        if need > 0:
            box[lo] -= need // 2
            box[hi] += need - need // 2
        shift = max(0, -box[lo]) - max(0, box[hi] - limit)  # slide back inside the image
        box[lo] += shift
        box[hi] += shift
        box[lo], box[hi] = max(box[lo], 0), min(box[hi], limit)
    return box[0], box[1], box[2], box[3]


def local_ssim(img_a: np.ndarray, img_b: np.ndarray, box: tuple[int, int, int, int] | None,
               cfg: MetricConfig) -> float:
    """SSIM of two RGB uint8 images inside ``box`` (the whole image when None)."""
    from skimage.metrics import structural_similarity

    if box is not None:
        x0, y0, x1, y1 = box
        img_a, img_b = img_a[y0:y1, x0:x1], img_b[y0:y1, x0:x1]
    return float(structural_similarity(img_a, img_b, gaussian_weights=True, sigma=cfg.ssim_sigma,
                                       use_sample_covariance=cfg.use_sample_covariance, data_range=255,
                                       channel_axis=-1))


def render(background_rgb: np.ndarray, accessory: PreparedAccessory, alpha: np.ndarray,
           bg_from_fg: np.ndarray | None, cfg: MetricConfig) -> tuple[np.ndarray, np.ndarray]:
    """Composite and warped mask for one placement (``None`` = no accessory drawn)."""
    h, w = background_rgb.shape[:2]
    if bg_from_fg is None:
        return background_rgb, np.zeros((h, w), dtype=bool)
    comp = composite_reference(background_rgb, accessory, bg_from_fg)
    mask = warp_mask(bg_from_fg, alpha, (w, h)) > cfg.alpha_threshold
    return comp, mask


def sample_metrics(background_rgb: np.ndarray, foreground_rgba: np.ndarray, init_vertex: np.ndarray,
                   gt_final_vertex: np.ndarray, pred_final_vertex: np.ndarray,
                   cfg: MetricConfig | None = None) -> SampleMetrics:
    """LSSIM, IoU and Disp of one prediction at network resolution.

    Args:
        background_rgb: (S, S, 3) uint8 person image.
        foreground_rgba: (S, S, 4) uint8 accessory at network size.
        init_vertex: (4, 2) accessory corners in the foreground (network px).
        gt_final_vertex: (4, 2) ground-truth targets in the background (network px).
        pred_final_vertex: (4, 2) predicted targets.
        cfg: metric options.

    Raises:
        DegenerateQuadError: the ground-truth quads cannot define a homography.
    """
    cfg = cfg or MetricConfig()
    h, w = background_rgb.shape[:2]
    acc = PreparedAccessory.from_rgba(foreground_rgba, to_bgr=False)
    alpha = foreground_rgba[..., 3]
    gt_mat = warp_homography(init_vertex, gt_final_vertex)
    try:
        pred_mat = warp_homography(init_vertex, pred_final_vertex)
    except DegenerateQuadError:
        pred_mat = None
    gt_comp, gt_mask = render(background_rgb, acc, alpha, gt_mat, cfg)
    pred_comp, pred_mask = render(background_rgb, acc, alpha, pred_mat, cfg)
    region = gt_mask if cfg.box == "gt" else (gt_mask | pred_mask)
    lssim = local_ssim(pred_comp, gt_comp, _box_of(region, cfg), cfg)
    return SampleMetrics(lssim=lssim, iou=mask_iou(pred_mask, gt_mask),
                         disp=disp_error(pred_final_vertex, gt_final_vertex, (w, h)),
                         degenerate=pred_mat is None)


def summarize(samples: list[SampleMetrics]) -> MetricSummary:
    """Test-set means of per-sample metrics."""
    if not samples:
        raise ValueError("no samples to summarise (empty test set?)")
    return MetricSummary(lssim=float(np.mean([s.lssim for s in samples])),
                         iou=float(np.mean([s.iou for s in samples])),
                         disp=float(np.mean([s.disp for s in samples])),
                         n=len(samples), degenerate=sum(s.degenerate for s in samples), per_sample=samples)
