"""Augmentation keeps vertices on the pixels they belong to."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime.config import IGNORE_INDEX
from training.augment import AugmentConfig, augment_sample, color_jitter

S = 96
#: One colour per corner TL, TR, BR, BL, far apart so bilinear blur cannot confuse them.
MARKS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


def _marked_sample() -> dict:
    """Grey background and accessory with a coloured disc under every vertex (same colour
    for init_k in the foreground and final_k in the background)."""
    final = np.array([[30, 35], [62, 30], [66, 52], [28, 56]], np.float32)
    init = np.array([[12, 20], [83, 20], [83, 70], [12, 70]], np.float32)
    bg = np.full((S, S, 3), 128, np.uint8)
    fg = np.zeros((S, S, 4), np.uint8)
    fg[10:73, 10:86] = (90, 90, 90, 255)
    parsing = np.zeros((S, S), np.uint8)
    parsing[:, S // 2:] = 3
    for k in range(4):
        colour = tuple(int(c) for c in MARKS[k])
        cv2.circle(bg, tuple(int(v) for v in final[k]), 4, colour, -1)
        cv2.circle(fg, tuple(int(v) for v in init[k]), 4, colour + (255,), -1)
    return {"id": "m", "background": bg, "foreground": fg, "init_vertex": init, "final_vertex": final,
            "parsing": parsing, "category": "glasses"}


def _colour_at(img: np.ndarray, pt: np.ndarray) -> np.ndarray:
    x, y = np.rint(pt).astype(int)
    return img[y, x, :3].astype(int)


def _mark_index(colour: np.ndarray) -> int:
    dist = np.abs(MARKS.astype(int) - colour).sum(axis=1)
    k = int(np.argmin(dist))
    assert dist[k] < 60, f"pixel {colour} under the vertex is not a mark"
    return k


@pytest.mark.parametrize("seed", range(12))
def test_vertices_stay_on_their_marks(seed):
    cfg = AugmentConfig(enabled=True, color_prob=0.0, affine_prob=1.0, flip_prob=0.5, rotate_deg=15)
    sample = _marked_sample()
    out = augment_sample(sample, cfg, np.random.default_rng(seed))
    for k in range(4):
        in_bg = _mark_index(_colour_at(out["background"], out["final_vertex"][k]))
        in_fg = _mark_index(_colour_at(out["foreground"], out["init_vertex"][k]))
        assert in_bg == in_fg, f"corner {k}: background mark {in_bg} but foreground mark {in_fg}"
    assert np.all(out["final_vertex"] >= 0) and np.all(out["final_vertex"] <= S - 1)
    assert out["background"].shape == (S, S, 3) and out["foreground"].shape == (S, S, 4)
    # Nearest warp: parsing keeps its label set, plus "ignore" where the image moved in.
    assert set(np.unique(out["parsing"])) <= {0, 3, IGNORE_INDEX}
    assert sample["background"][35, 30].tolist() == list(MARKS[0])  # the input was not modified


def test_flip_relabels_corners_of_both_images():
    cfg = AugmentConfig(enabled=True, affine_prob=0.0, flip_prob=1.0, color_prob=0.0)
    out = augment_sample(_marked_sample(), cfg, np.random.default_rng(0))
    # After the mirror, the top-left vertex sits on what was the top-right mark, in both images.
    assert _mark_index(_colour_at(out["background"], out["final_vertex"][0])) == 1
    assert _mark_index(_colour_at(out["foreground"], out["init_vertex"][0])) == 1
    assert out["final_vertex"][0, 0] < out["final_vertex"][1, 0]  # still canonical: TL left of TR


def test_colour_jitter_touches_only_the_background():
    cfg = AugmentConfig(enabled=True, affine_prob=0.0, flip_prob=0.0, color_prob=1.0, brightness=0.5)
    sample = _marked_sample()
    out = augment_sample(sample, cfg, np.random.default_rng(3))
    assert not np.array_equal(out["background"], sample["background"])
    assert np.array_equal(out["foreground"], sample["foreground"])
    assert np.array_equal(out["final_vertex"], sample["final_vertex"])
    assert np.array_equal(out["parsing"], sample["parsing"])


def test_disabled_returns_the_sample_unchanged():
    sample = _marked_sample()
    out = augment_sample(sample, AugmentConfig(enabled=False), np.random.default_rng(0))
    for key in ("background", "foreground", "init_vertex", "final_vertex", "parsing"):
        assert np.array_equal(out[key], sample[key])


def test_color_jitter_identity_at_zero_strength(rng):
    img = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    cfg = AugmentConfig(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    assert np.abs(color_jitter(img, cfg, rng).astype(int) - img).max() <= 1


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(hue=0.7)
