"""Accessories: procedural generator, keypoint box, image loaders, contact sheet.

Needs neither ../shared, a GPU nor a webcam: every image is generated or written into tmp_path.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.accessories import ALPHA_BBOX_THRESHOLD, GEN_MARGIN_PX, Accessory, load_accessories_dir, load_accessory
from realtime.config import CATEGORIES
from realtime.procedural import (GLASSES_STYLES, HAT_STYLES, STYLES, TIE_STYLES, accessory_by_name,
                                 bundled_accessories, contact_sheet, generate_accessory, main)

ALL_STYLES = [(c, s) for c in CATEGORIES for s in STYLES[c]]
REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def _gen(category: str, style: str, seed: int = 0) -> Accessory:
    """Cached render (read-only: tests must not modify it)."""
    return generate_accessory(category, style, seed)


def _write_rgba(path: Path, rgba: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))


def _box_mask(acc: Accessory) -> np.ndarray:
    x0, y0, x1, y1 = acc.bbox_xyxy()
    return acc.rgba[y0:y1 + 1, x0:x1 + 1, 3] > ALPHA_BBOX_THRESHOLD


# ------------------------------------------------------------------------------------------------ generator

def test_style_tuples() -> None:
    assert GLASSES_STYLES == ("round", "rectangular", "aviator", "cat_eye", "rimless")
    assert HAT_STYLES == ("cap", "fedora", "beanie", "top_hat", "sun_hat", "bucket")
    assert TIE_STYLES == ("necktie_plain", "necktie_stripes", "necktie_dots", "bow_tie")


@pytest.mark.parametrize("category,style", [("glasses", "aviator"), ("hat", "fedora"), ("tie", "bow_tie")])
def test_same_seed_same_pixels(category: str, style: str) -> None:
    a, b = generate_accessory(category, style, 3), generate_accessory(category, style, 3)
    assert np.array_equal(a.rgba, b.rgba)
    assert a.name == b.name == f"{category}/{style}-3"
    assert a.source == f"procedural:{style}:3"


@pytest.mark.parametrize("category,style", ALL_STYLES)
def test_different_seed_different_pixels(category: str, style: str) -> None:
    a, b = _gen(category, style, 0), _gen(category, style, 1)
    assert a.rgba.shape != b.rgba.shape or not np.array_equal(a.rgba, b.rgba)


def test_style_none_is_picked_from_seed() -> None:
    for category in CATEGORIES:
        picked = {generate_accessory(category, None, s, size=(64, 64)).source.split(":")[1] for s in range(12)}
        assert picked <= set(STYLES[category])
        assert len(picked) >= 2, f"{category}: style=None always gives {picked}"
    a, b = generate_accessory("hat", None, 7), generate_accessory("hat", None, 7)
    assert a.name == b.name and np.array_equal(a.rgba, b.rgba)


@pytest.mark.parametrize("category,style", ALL_STYLES)
def test_every_style_renders(category: str, style: str) -> None:
    acc = _gen(category, style)
    assert acc.category == category and acc.rgba.dtype == np.uint8 and acc.rgba.shape[2] == 4
    mask = _box_mask(acc)
    assert mask.mean() > 0.25, f"{acc.name}: alpha covers only {mask.mean():.0%} of its box"
    assert acc.rgba[..., :3][acc.rgba[..., 3] > 0].std() > 8, f"{acc.name}: flat colour, no shading"
    w, h = acc.size_wh
    if category == "glasses":
        assert 240 <= w <= 256 and 2 * h < w
    elif category == "hat":
        assert 240 <= w <= 256 and 60 < h < 300
    elif style == "bow_tie":
        assert 150 <= w <= 160 and 1.5 * h < w
    else:
        assert 80 <= w <= 90 and h > 2.5 * w


@pytest.mark.parametrize("category,style", ALL_STYLES)
def test_tight_box_small_margin(category: str, style: str) -> None:
    acc = _gen(category, style)
    x0, y0, x1, y1 = acc.bbox_xyxy()
    w, h = acc.size_wh
    assert (x0, y0, w - 1 - x1, h - 1 - y1) == (GEN_MARGIN_PX,) * 4


def test_explicit_size_fits_with_margin() -> None:
    acc = generate_accessory("glasses", "round", 0, size=(200, 120))
    assert acc.size_wh == (200, 120)
    x0, y0, x1, y1 = acc.bbox_xyxy()
    margins = (x0, y0, 199 - x1, 119 - y1)
    assert min(margins) >= GEN_MARGIN_PX - 1
    assert min(margins[0], margins[2]) <= GEN_MARGIN_PX + 1  # wide object: fills the width
    assert abs(margins[1] - margins[3]) <= 1  # centred vertically


def test_generator_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shoe"):
        generate_accessory("shoe")
    with pytest.raises(ValueError, match="aviator"):
        generate_accessory("hat", "aviator")
    with pytest.raises(ValueError, match="seed"):
        generate_accessory("hat", "cap", -1)


@pytest.mark.parametrize("style", GLASSES_STYLES)
def test_lenses_have_partial_alpha(style: str) -> None:
    acc = _gen("glasses", style)
    x0, y0, x1, y1 = acc.bbox_xyxy()
    box = acc.rgba[y0:y1 + 1, x0:x1 + 1, 3]
    partial = (box >= 25) & (box <= 215)
    assert partial.mean() > 0.3, f"{acc.name}: lenses not see-through ({partial.mean():.0%} partial alpha)"


def test_tinted_and_clear_lenses_both_occur() -> None:
    medians = []
    for seed in range(4):
        al = _gen("glasses", "aviator", seed).rgba[..., 3]
        medians.append(np.median(al[(al > 20) & (al < 230)]))
    assert any(100 <= m <= 200 for m in medians), f"no tinted lens among {medians}"
    al = _gen("glasses", "rectangular", 0).rgba[..., 3]
    assert 30 <= np.median(al[(al > 20) & (al < 230)]) <= 80


@pytest.mark.parametrize("category,style", [("glasses", s) for s in GLASSES_STYLES] + [("hat", s) for s in HAT_STYLES])
@pytest.mark.parametrize("seed", [0, 1])
def test_left_right_symmetric(category: str, style: str, seed: int) -> None:
    mask = _box_mask(_gen(category, style, seed))
    mirrored = mask[:, ::-1]
    iou = (mask & mirrored).sum() / (mask | mirrored).sum()
    assert iou > 0.9, f"{category}/{style}-{seed}: mirror IoU {iou:.3f}"


# ------------------------------------------------------------------------------------------------ Accessory

def _rect_accessory(name: str = "glasses/box") -> Accessory:
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[10:21, 5:31] = (200, 10, 10, 255)
    return Accessory(name, "glasses", rgba, "test")


def test_init_vertex_xy_order_shape_dtype() -> None:
    quad = _rect_accessory().init_vertex_xy
    assert quad.shape == (4, 2) and quad.dtype == np.float32
    np.testing.assert_array_equal(quad, [[5, 10], [30, 10], [30, 20], [5, 20]])  # TL, TR, BR, BL


def test_bbox_threshold_boundary() -> None:
    acc = _rect_accessory()
    acc.rgba[30, 45, 3] = ALPHA_BBOX_THRESHOLD  # faint speck: ignored
    assert acc.bbox_xyxy() == (5, 10, 30, 20)
    acc.rgba[30, 45, 3] = ALPHA_BBOX_THRESHOLD + 1
    assert acc.bbox_xyxy() == (5, 10, 45, 30)


def test_empty_alpha_error_names_accessory() -> None:
    acc = Accessory("hat/ghost", "hat", np.zeros((8, 8, 4), np.uint8), "test")
    with pytest.raises(ValueError, match="hat/ghost"):
        _ = acc.init_vertex_xy


def test_accessory_validates_inputs() -> None:
    with pytest.raises(ValueError, match="shoe"):
        Accessory("x", "shoe", np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Accessory("x", "hat", np.zeros((8, 8, 3), np.uint8))


def test_cropped_pads_and_keeps_pixels() -> None:
    acc = _rect_accessory()
    out = acc.cropped(pad=7)  # 7 px to the left of x0 = 5: needs transparent padding
    assert out.size_wh == (26 + 14, 11 + 14)
    np.testing.assert_array_equal(out.init_vertex_xy, [[7, 7], [32, 7], [32, 17], [7, 17]])
    np.testing.assert_array_equal(out.rgba[7:18, 7:33], acc.rgba[10:21, 5:31])
    assert out.rgba[:7].max() == 0 and acc.rgba.shape == (40, 50, 4)


# ------------------------------------------------------------------------------------------------ bundled

@pytest.mark.parametrize("category", CATEGORIES)
def test_bundled_cover_styles_and_resolve_by_name(category: str) -> None:
    accs = bundled_accessories(category)
    names = [a.name for a in accs]
    assert len(accs) >= 4 and len(set(names)) == len(names)
    assert {a.source.split(":")[1] for a in accs} == set(STYLES[category])
    for acc in accs:
        assert acc.category == category and acc.name.startswith(category + "/")
        assert np.array_equal(accessory_by_name(acc.name).rgba, acc.rgba)
    assert f"{category}/{STYLES[category][0]}" in names


def test_bundled_returns_copies() -> None:
    first = bundled_accessories("tie")[0]
    first.rgba[:] = 0
    assert bundled_accessories("tie")[0].rgba[..., 3].max() == 255


def test_accessory_by_name_generates_seeded_names() -> None:
    acc = accessory_by_name("hat/fedora-7")
    assert acc.name == "hat/fedora-7"
    assert np.array_equal(acc.rgba, generate_accessory("hat", "fedora", 7).rgba)
    for bad in ("hat/nope", "shoe/round", "glasses/round-x", "glasses"):
        with pytest.raises(ValueError, match="unknown accessory name"):
            accessory_by_name(bad)


# ------------------------------------------------------------------------------------------------ loader

def _glasses_drawing_bgr() -> np.ndarray:
    """Dark glasses-like drawing (two rings and a bridge) on white; the rings' insides stay white."""
    img = np.full((160, 240, 3), 255, np.uint8)
    for cx in (75, 165):
        cv2.circle(img, (cx, 80), 35, (40, 20, 120), 8, cv2.LINE_AA)
    cv2.line(img, (110, 75), (130, 75), (40, 20, 120), 6, cv2.LINE_AA)
    return img


def test_rgba_png_round_trip(tmp_path: Path) -> None:
    rgba = np.zeros((30, 60, 4), np.uint8)
    rgba[5:25, 10:50] = (10, 120, 240, 255)
    rgba[10:20, 20:40, 3] = 90  # partial alpha must survive untouched
    path = tmp_path / "lens.png"
    _write_rgba(path, rgba)
    acc = load_accessory(path, "glasses")
    assert acc.name == "glasses/lens" and acc.source == str(path) and acc.category == "glasses"
    np.testing.assert_array_equal(acc.rgba, rgba)  # RGBA order, not BGRA
    np.testing.assert_array_equal(acc.init_vertex_xy, [[10, 5], [49, 5], [49, 24], [10, 24]])


def test_16bit_png_scaled_to_8bit(tmp_path: Path) -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[4:16, 4:16] = (255, 128, 3, 200)
    path = tmp_path / "hat16.png"
    assert cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA).astype(np.uint16) * 257)
    np.testing.assert_array_equal(load_accessory(path).rgba, rgba)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_rgb_on_white_gets_matte(tmp_path: Path, suffix: str) -> None:
    bgr = _glasses_drawing_bgr()
    path = tmp_path / f"drawing{suffix}"
    assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 85] if suffix == ".jpg" else [])
    acc = load_accessory(path, category="glasses")
    ys, xs = np.nonzero(np.abs(bgr.astype(int) - 255).max(axis=2) > 40)  # where the object really is
    x0, y0, x1, y1 = acc.bbox_xyxy()
    assert max(abs(x0 - xs.min()), abs(y0 - ys.min()), abs(x1 - xs.max()), abs(y1 - ys.max())) <= 2
    al = acc.rgba[..., 3]
    assert al[80, 75] == 0 and al[80, 165] == 0, "lens holes must stay transparent (no hole filling)"
    assert al[80, 75 - 35] == 255 and al[0, 0] == 0 and al[-1, -1] == 0
    assert 0.05 < (al > 0).mean() < 0.4


def test_opaque_rgba_is_matted(tmp_path: Path) -> None:
    bgr = _glasses_drawing_bgr()
    path = tmp_path / "opaque.png"
    assert cv2.imwrite(str(path), np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)]))
    al = load_accessory(path, "glasses").rgba[..., 3]
    assert al[0, 0] == 0 and al[80, 75 - 35] == 255


def test_opaque_photo_without_plain_background_is_warned_about(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    busy = cv2.GaussianBlur(rng.integers(0, 256, (120, 240, 3), dtype=np.uint8), (0, 0), 3)  # a photo, no plain bg
    busy = cv2.normalize(busy, None, 0, 255, cv2.NORM_MINMAX)
    path = tmp_path / "photo.jpg"
    assert cv2.imwrite(str(path), busy)
    with caplog.at_level("WARNING", logger="realtime.accessories"):
        load_accessory(path, "glasses")
    assert any("pasted rectangle" in r.message and str(path) in r.message for r in caplog.records), caplog.text
    caplog.clear()
    drawing = tmp_path / "drawing.png"  # a drawing on white: cut out, no warning
    assert cv2.imwrite(str(drawing), _glasses_drawing_bgr())
    with caplog.at_level("WARNING", logger="realtime.accessories"):
        load_accessory(drawing, "glasses")
    assert not any("pasted rectangle" in r.message for r in caplog.records)


def test_sidecar_json_gives_category(tmp_path: Path) -> None:
    path = tmp_path / "thing.png"
    _write_rgba(path, _rect_accessory().rgba)
    (tmp_path / "thing.json").write_text(json.dumps({"category": "tie"}))
    acc = load_accessory(path)
    assert acc.category == "tie" and acc.name == "tie/thing"
    assert load_accessory(path, "hat").category == "hat"  # the argument wins
    (tmp_path / "thing.json").write_text("{not json")
    with pytest.raises(ValueError, match="thing.json"):
        load_accessory(path)
    (tmp_path / "thing.json").write_text(json.dumps({"category": "shoe"}))
    with pytest.raises(ValueError, match="shoe"):
        load_accessory(path)


@pytest.mark.parametrize("stem,category", [("sunglasses_big", "glasses"), ("Glasses", "glasses"),
                                           ("bowtie_red", "tie"), ("bow-1", "tie"), ("tie", "tie"),
                                           ("hat_cap_emoji", "hat"), ("cap", "hat"), ("hats_2", "hat")])
def test_category_from_file_name(tmp_path: Path, stem: str, category: str) -> None:
    path = tmp_path / f"{stem}.png"
    _write_rgba(path, _rect_accessory().rgba)
    assert load_accessory(path).category == category


def test_unknown_category_errors(tmp_path: Path) -> None:
    path = tmp_path / "capybara.png"  # "cap" prefix but not a word of its own
    _write_rgba(path, _rect_accessory().rgba)
    with pytest.raises(ValueError, match="capybara.png.*category"):
        load_accessory(path)
    with pytest.raises(ValueError, match="shoe"):
        load_accessory(path, category="shoe")


def test_missing_file_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "glasses.png"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_accessory(path)


def test_unreadable_file_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "glasses_broken.png"
    path.write_bytes(b"definitely not a PNG")
    with pytest.raises(ValueError, match="glasses_broken.png"):
        load_accessory(path)


def test_empty_alpha_file_error_names_path(tmp_path: Path) -> None:
    path = tmp_path / "hat_invisible.png"
    _write_rgba(path, np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match="hat_invisible.png"):
        load_accessory(path)
    blank = tmp_path / "hat_blank.jpg"  # nothing but background: empty matte
    assert cv2.imwrite(str(blank), np.full((32, 32, 3), 255, np.uint8))
    with pytest.raises(ValueError, match="hat_blank.jpg"):
        load_accessory(blank)


def test_load_dir_filters_by_category(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    for stem in ("glasses_a", "hat_b", "unlabelled"):
        _write_rgba(tmp_path / f"{stem}.png", _rect_accessory().rgba)
    (tmp_path / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        assert [a.name for a in load_accessories_dir(tmp_path)] == ["glasses/glasses_a", "hat/hat_b"]
    assert "unlabelled" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert [a.name for a in load_accessories_dir(tmp_path, "hat")] == ["hat/hat_b", "hat/unlabelled"]
    assert "glasses_a" in caplog.text
    with pytest.raises(FileNotFoundError):
        load_accessories_dir(tmp_path / "missing")


# ------------------------------------------------------------------------------------------------ sheet + CLI

def test_contact_sheet_layout() -> None:
    accs = [_rect_accessory("glasses/box"), _gen("tie", "bow_tie"), _gen("hat", "cap")]
    sheet = contact_sheet(accs, cols=2, cell=100)
    assert sheet.shape == (2 * 120, 200, 3) and sheet.dtype == np.uint8
    tile = sheet[:100, :100].reshape(-1, 3)
    assert {(235, 235, 235), (200, 200, 200)} <= set(map(tuple, tile))  # checkerboard behind the alpha
    t = tile.astype(int)
    assert ((t[:, 1] > t[:, 0] + 50) & (t[:, 1] > t[:, 2] + 50)).sum() > 50  # the green keypoint quad
    assert sheet[100:120, :100].min() < 100  # the name is written under the cell
    assert (sheet[120:220, 100:200] == 255).all()  # 4th cell left empty
    with pytest.raises(ValueError):
        contact_sheet([])


def test_cli_writes_sheet(tmp_path: Path) -> None:
    out = tmp_path / "sheets" / "ties.png"
    assert main(["--sheet", str(out), "--category", "tie", "--cell", "80"]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] == 80 * len(bundled_accessories("tie"))
    _write_rgba(tmp_path / "hat_x.png", _rect_accessory().rgba)
    assert main(["--sheet", str(tmp_path / "dir.png"), "--dir", str(tmp_path)]) == 0
    assert cv2.imread(str(tmp_path / "dir.png")).shape == (160 + 20, 160, 3)  # one cell + its label


def test_import_does_not_need_torch() -> None:
    code = "import sys; sys.modules['torch'] = None; import realtime.procedural as a; a.generate_accessory('hat')"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
