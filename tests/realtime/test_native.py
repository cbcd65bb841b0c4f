"""Native kernels (realtime.live.native) vs the NumPy/OpenCV reference, and the fallback.

Parity tests need libtryon_native (``cmake -S . -B build && cmake --build build``) and
skip with the loader's reason otherwise; the fallback and input checks always run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.config import IMAGENET_STD_RGB
from realtime.geometry import (PreparedAccessory, composite_reference, composite_roi, crop_from_box,
                               homography_from_quads, letterbox, warp_crop)
from realtime.live import native
from realtime.preprocess import background_input

needs_native = pytest.mark.skipif(not native.available(), reason=f"native library not built: {native.reason()}")
needs_area = pytest.mark.skipif(not native.uses_native("area", prefer_native=True),
                                reason="native library not built, or built before tryon_resize_area_u8c3: rebuild it")

#: One grey level expressed in normalised units, per RGB channel (|diff| * std * 255 <= 1).
GREY = (np.array(IMAGENET_STD_RGB, dtype=np.float32) * 255.0)[None, :, None, None]
HEADER = Path(__file__).resolve().parents[2] / "engine_build" / "native" / "include" / "tryon_native.h"


def _reference_input(frame: np.ndarray, crop_from_frame: np.ndarray, size: int) -> np.ndarray:
    return background_input(cv2.cvtColor(warp_crop(frame, crop_from_frame, size), cv2.COLOR_BGR2RGB))


def _accessory(w: int, h: int, rng: np.random.Generator) -> PreparedAccessory:
    """Glasses-like outline with soft edges and translucent lenses, plus a noisy band."""
    acc = np.zeros((h, w, 4), np.uint8)
    cv2.ellipse(acc, (w // 4, h // 2), (w // 4 - 4, h // 2 - 4), 0, 0, 360, (30, 30, 30, 255), 6, cv2.LINE_AA)
    cv2.ellipse(acc, (3 * w // 4, h // 2), (w // 4 - 4, h // 2 - 4), 0, 0, 360, (30, 30, 30, 255), 6, cv2.LINE_AA)
    cv2.ellipse(acc, (w // 4, h // 2), (w // 4 - 9, h // 2 - 9), 0, 0, 360, (40, 90, 160, 110), -1, cv2.LINE_AA)
    band = slice(h // 2 - 3, h // 2 + 3)
    acc[band, :, :3] = rng.integers(0, 256, (6, w, 3), dtype=np.uint8)  # sharp random texture
    acc[band, :, 3] = rng.integers(0, 256, (6, w), dtype=np.uint8)
    return PreparedAccessory.from_rgba(acc)


def _quad_homography(acc: PreparedAccessory, centre_xy: tuple[float, float], scale: float,
                     rng: np.random.Generator) -> np.ndarray:
    src = acc.corners_xy
    dst = (src - src.mean(0)) * scale + np.asarray(centre_xy) + rng.normal(0, 6, (4, 2))
    return homography_from_quads(src, dst)


@pytest.fixture
def reload_native(monkeypatch):
    """A monkeypatch for $TRYON_NATIVE_LIB; undone, and the library reloaded, afterwards."""
    yield monkeypatch
    monkeypatch.undo()
    native.load(force=True)


def test_library_loads_where_required():
    """CI builds the library first and sets TRYON_REQUIRE_NATIVE=1, so parity tests cannot silently skip."""
    if os.environ.get("TRYON_REQUIRE_NATIVE") != "1":
        pytest.skip("TRYON_REQUIRE_NATIVE is not set (the native library is optional here)")
    assert native.available(), native.reason()


def test_default_choice_per_kernel(monkeypatch):
    monkeypatch.setitem(native.PREFER_NATIVE, "composite", None)
    monkeypatch.setitem(native.PREFER_NATIVE, "preprocess", None)
    assert native.uses_native("preprocess") == native.available()
    assert native.uses_native("composite") == (native.cpu_path() == "avx2")
    monkeypatch.setitem(native.PREFER_NATIVE, "area", None)
    assert native.uses_native("area") == (native.available() and hasattr(native.load(), "tryon_resize_area_u8c3"))
    assert not native.uses_native("preprocess", prefer_native=False)
    native.set_prefer_native("composite", True)
    assert native.uses_native("composite") == native.available()


def test_abi_version_matches_header():
    text = HEADER.read_text()
    match = re.search(r"#define TRYON_NATIVE_ABI_VERSION (\d+)", text)
    assert match and int(match.group(1)) == native.ABI_VERSION


@needs_native
@pytest.mark.parametrize("size", [64, 224, 257])
@pytest.mark.parametrize("centre,side,angle", [
    ((640, 360), 400, 0.0),      # inside
    ((20, 30), 300, 15.0),       # top-left corner, partly outside
    ((1270, 700), 500, -40.0),   # bottom-right corner, mostly outside
    ((640, -100), 250, 90.0),    # above the frame: mostly border
    ((300, 500), 90, 5.0),       # magnified (side < size)
])
def test_preprocess_matches_reference(rng, size, centre, side, angle):
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    frame[:, :640] = cv2.GaussianBlur(frame[:, :640], (0, 0), 3)  # half smooth, half noise
    m = crop_from_box(centre, side, size, angle)
    ref = _reference_input(frame, m, size)
    out = native.preprocess_crop(frame, m, size, prefer_native=True)
    assert out.shape == (1, 3, size, size) and out.dtype == np.float32
    assert (np.abs(out - ref) * GREY).max() <= 1.0 + 1e-3
    # Most values are identical: the kernel rounds to grey levels as warpAffine does.
    assert np.mean(out == ref) > 0.99
    buf = np.full((1, 3, size, size), np.nan, np.float32)
    assert native.preprocess_crop(frame, m[:2], size, out=buf, prefer_native=True) is buf
    assert np.array_equal(buf, out)


@needs_native
@pytest.mark.parametrize("frame_hw,acc_wh,centre,scale", [
    ((720, 1280), (200, 80), (640, 360), 1.7),
    ((720, 1280), (200, 80), (-20, 100), 1.7),     # left edge
    ((720, 1280), (300, 120), (1250, 700), 1.0),   # bottom-right corner
    ((720, 1280), (300, 120), (600, -30), 1.3),    # top edge
    ((1080, 1920), (800, 320), (960, 540), 1.0),   # large footprint
    ((1080, 1920), (300, 120), (30, 1060), 0.6),   # shrunk, bottom-left corner
])
def test_composite_matches_roi_and_reference(rng, frame_hw, acc_wh, centre, scale):
    acc = _accessory(*acc_wh, rng)
    frame = rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    h = _quad_homography(acc, centre, scale, rng)
    ref_roi = frame.copy()
    box_roi = composite_roi(ref_roi, acc, h)
    ref_full = composite_reference(frame, acc, h)
    out = frame.copy()
    box = native.composite(out, acc, h, prefer_native=True)
    assert box == box_roi and box is not None
    assert np.abs(out.astype(int) - ref_roi.astype(int)).max() <= 1
    assert np.abs(out.astype(int) - ref_full.astype(int)).max() <= 1
    x0, y0, x1, y1 = box
    outside = np.ones(frame_hw, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], frame[outside])
    assert (out != frame).any()


@needs_native
def test_composite_fully_outside_is_noop(rng):
    acc = _accessory(200, 80, rng)
    frame = rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)
    out = frame.copy()
    assert native.composite(out, acc, homography_from_quads(acc.corners_xy, acc.corners_xy + 1000),
                            prefer_native=True) is None
    assert np.array_equal(out, frame)


@needs_native
def test_simd_threads_and_scalar_agree_bit_for_bit(rng):
    acc = _accessory(300, 120, rng)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    h = _quad_homography(acc, (20, 400), 1.4, rng)
    m = crop_from_box((30, 690), 350, 224, 20.0)
    results = []
    prev_simd, prev_threads = native.set_simd(True), native.num_threads()
    try:
        for simd, threads in ((True, 1), (False, 1), (True, 2)):
            native.set_simd(simd)
            native.set_num_threads(threads)
            out = frame.copy()
            native.composite(out, acc, h, prefer_native=True)
            results.append((out, native.preprocess_crop(frame, m, 224, prefer_native=True)))
    finally:
        native.set_simd(prev_simd)
        native.set_num_threads(prev_threads)
    for out, inp in results[1:]:
        assert np.array_equal(out, results[0][0])
        assert np.array_equal(inp, results[0][1])


@needs_native
def test_strided_frame_rows_and_non_packed_fallback(rng):
    big = rng.integers(0, 256, (400, 700, 3), dtype=np.uint8)
    view = big[50:350, 100:600]  # strided rows, packed pixels: native handles it
    m = crop_from_box((250, 150), 200, 64, 0.0)
    assert np.abs(native.preprocess_crop(view, m, 64, prefer_native=True) - _reference_input(view, m, 64)).max() \
        * GREY.max() <= 1.0 + 1e-3
    every_other = big[:, ::2]  # pixels not packed: falls back to the reference, same numbers
    assert np.array_equal(native.preprocess_crop(every_other, m, 64, prefer_native=True),
                          _reference_input(every_other, m, 64))


def test_fallback_without_library(rng, reload_native):
    reload_native.setenv(native.ENV_LIB, "off")
    native.load(force=True)
    assert not native.available()
    assert native.ENV_LIB in native.reason()
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    m = crop_from_box((80, 60), 100, 32, 10.0)
    assert np.array_equal(native.preprocess_crop(frame, m, 32, prefer_native=True), _reference_input(frame, m, 32))
    acc = _accessory(60, 24, rng)
    h = _quad_homography(acc, (80, 60), 1.0, rng)
    out, ref = frame.copy(), frame.copy()
    assert native.composite(out, acc, h, prefer_native=True) == composite_roi(ref, acc, h)
    assert np.array_equal(out, ref)


def test_missing_library_reason_says_how_to_build(tmp_path, reload_native):
    missing = tmp_path / "libtryon_native.so"
    reload_native.setenv(native.ENV_LIB, str(missing))
    native.load(force=True)
    assert not native.available() and native.library_path() is None
    assert str(missing) in native.reason() and "not found" in native.reason() and "cmake" in native.reason()
    (tmp_path / "bogus.so").write_bytes(b"not a shared library")
    reload_native.setenv(native.ENV_LIB, str(tmp_path / "bogus.so"))
    native.load(force=True)
    assert not native.available() and "cannot load" in native.reason()


def test_bad_inputs_raise(rng):
    frame = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    m = crop_from_box((30, 25), 40, 16)
    with pytest.raises(ValueError, match="uint8"):
        native.preprocess_crop(frame.astype(np.float32), m, 16)
    with pytest.raises(ValueError, match="out must be"):
        native.preprocess_crop(frame, m, 16, out=np.empty((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="crop_from_frame"):
        native.preprocess_crop(frame, np.eye(4), 16)
    with pytest.raises(ValueError, match="unknown native kernel"):
        native.set_prefer_native("warp", True)
    with pytest.raises(ValueError, match=">= 1"):
        native.set_num_threads(0)


@needs_native
def test_native_refuses_singular_matrix(rng):
    frame = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    with pytest.raises(native.NativeError, match="singular"):
        native.preprocess_crop(frame, np.zeros((2, 3)), 16, prefer_native=True)


@pytest.mark.gpu
def test_cuda_kernels_match_cpu(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    if not native.cuda_available():
        pytest.skip(f"native CUDA kernels unavailable: {native.reason()}")
    acc = _accessory(300, 120, rng)
    frame = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    h = _quad_homography(acc, (1250, 60), 1.2, rng)
    m = crop_from_box((1200, 100), 400, 224, 12.0)
    frame_d = torch.from_numpy(frame).cuda()
    out_d = torch.empty((1, 3, 224, 224), device="cuda")
    native.preprocess_crop_cuda(frame_d, m, 224, out_d)
    cpu_in = native.preprocess_crop(frame, m, 224, prefer_native=True)
    cpu = frame.copy()
    box = native.composite(cpu, acc, h, prefer_native=True)
    assert native.composite_cuda(frame_d, torch.from_numpy(acc.premul).cuda(), acc, h) == box
    torch.cuda.synchronize()
    assert (np.abs(out_d.cpu().numpy() - cpu_in) * GREY).max() <= 1.0 + 1e-3
    assert np.abs(frame_d.cpu().numpy().astype(int) - cpu.astype(int)).max() <= 1


# ----------------------------------------------------------------------------- area downscale

@needs_area
@pytest.mark.parametrize("src_hw,out_wh", [
    ((1158, 1158), (128, 128)),   # the 4K face window into BlazeFace's input
    ((480, 640), (128, 96)),      # a 640x480 frame letterboxed whole
    ((512, 512), (128, 128)),     # integer factor (OpenCV's fast path)
    ((97, 131), (61, 40)),        # odd sizes
    ((33, 9), (4, 33)),           # one axis unchanged
    ((7, 5), (1, 1)),             # everything into one pixel
    ((1, 50), (10, 1)),           # a 1-row image
    ((50, 1), (1, 7)),            # a 1-column image
    ((1, 1), (1, 1)),             # one pixel, unchanged
])
def test_resize_area_matches_opencv(rng, src_hw, out_wh):
    noise = rng.integers(0, 256, (*src_hw, 3), dtype=np.uint8)
    smooth = cv2.GaussianBlur(noise, (0, 0), 3)
    for img in (noise, smooth):
        out = native.resize_area(img, out_wh, prefer_native=True)
        ref = cv2.resize(img, out_wh, interpolation=cv2.INTER_AREA)
        assert out.shape == ref.shape
        assert np.abs(out.astype(int) - ref).max() <= 1


@needs_area
def test_resize_area_strided_rows_out_buffer_and_fallback(rng):
    frame = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    view = frame[20:260, 30:350]  # rows strided
    ref = cv2.resize(view, (100, 75), interpolation=cv2.INTER_AREA)
    out = np.full((75, 100, 3), 7, np.uint8)
    assert native.resize_area(view, (100, 75), out=out, prefer_native=True) is out
    assert np.abs(out.astype(int) - ref).max() <= 1
    # pixels not packed (every other column): the OpenCV reference, exactly
    assert np.array_equal(native.resize_area(frame[:, ::2], (50, 60), prefer_native=True),
                          cv2.resize(frame[:, ::2], (50, 60), interpolation=cv2.INTER_AREA))
    assert np.array_equal(native.resize_area(view, (100, 75), prefer_native=False), ref)
    with pytest.raises(ValueError, match="shrinks only"):
        native.resize_area(view, (321, 10))
    with pytest.raises(ValueError, match="out must be"):
        native.resize_area(view, (100, 75), out=np.zeros((75, 99, 3), np.uint8))


def test_resize_area_without_library_is_opencv(rng, reload_native):
    reload_native.setenv(native.ENV_LIB, "off")
    native.load(force=True)
    img = rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)
    assert np.array_equal(native.resize_area(img, (30, 40), prefer_native=True),
                          cv2.resize(img, (30, 40), interpolation=cv2.INTER_AREA))


@needs_area
def test_letterbox_with_the_native_shrink_is_the_opencv_letterbox(rng):
    """The detectors' input (realtime.geometry.letterbox with native.resize_area) equals the
    cv2 letterbox within one grey level, with the same frame_from_input mapping; enlarged
    regions keep cv2's bilinear path."""
    frame = cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 2)
    for region in ((0.0, 0.0, 1280.0, 720.0), (500.3, 100.7, 400.0, 400.0), (-80.0, 600.0, 300.0, 300.0),
                   (600.0, 300.0, 60.0, 60.0)):
        ref, ref_back = letterbox(frame, region, (128, 128))
        out, back = letterbox(frame, region, (128, 128), native.resize_area)
        np.testing.assert_array_equal(back, ref_back)
        assert np.abs(out.astype(int) - ref).max() <= 1, region


@pytest.mark.parametrize("height, out_height, step", [
    (2160, 72, 5),    # a whole 4K frame into BlazeFace's 128 px input: 30 rows per output row
    (2160, 128, 2),   # the same frame, portrait (16.9 rows)
    (1080, 72, 2),    # a whole 1080p frame (15 rows)
    (1080, 96, 1),    # 11 rows per output row: under 2 x 6, every row
    (480, 96, 1),
    (4001, 10, 66),   # odd height
    (5, 1, 1),
])
def test_sampled_rows_keep_enough_rows_evenly_and_centred(height, out_height, step):
    rows = native.sampled_rows(height, out_height)
    kept = np.arange(height)[rows]
    assert (rows.step or 1) == step
    assert len(kept) >= native.SAMPLED_ROWS_PER_OUTPUT * out_height or step == 1
    assert kept[0] >= 0 and kept[-1] < height
    assert abs(kept.mean() - (height - 1) / 2) <= 0.5  # centred: the letterbox's mapping holds
    if step > 1:  # no more rows than k allows: kept rows cover all but under k rows of the image
        assert height - (kept[-1] - kept[0] + 1) < 2 * step


def test_shrink_rows_sampled_is_resize_area_on_small_shrinks_and_close_on_large(rng):
    """Up to 12 rows per output row it is resize_area exactly; on a whole 4K frame it reads
    every 5th row, giving the area result within a grey level on smooth content, and a
    horizontal edge lands on the same output row (nothing shifts vertically)."""
    small = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for prefer in (True, False):
        assert np.array_equal(native.shrink_rows_sampled(small, (128, 96), prefer_native=prefer),
                              native.resize_area(small, (128, 96), prefer_native=prefer))
    smooth = cv2.resize(rng.integers(0, 256, (9, 16, 3), dtype=np.uint8), (3840, 2160), interpolation=cv2.INTER_CUBIC)
    for prefer in (True, False):
        out = native.shrink_rows_sampled(smooth, (128, 72), prefer_native=prefer)
        ref = cv2.resize(smooth, (128, 72), interpolation=cv2.INTER_AREA)
        assert out.shape == ref.shape and np.abs(out.astype(int) - ref).max() <= 1
    edge = np.zeros((2160, 3840, 3), np.uint8)
    edge[1215:] = 200  # boundary at output row 40.5 -> row 40 half grey
    out = native.shrink_rows_sampled(edge, (128, 72))
    ref = cv2.resize(edge, (128, 72), interpolation=cv2.INTER_AREA)
    assert np.abs(out[:, 64].astype(int) - ref[:, 64]).max() <= 200 / 6 + 1  # one kept row of six off at most
    assert np.array_equal(out[:40], ref[:40]) and np.array_equal(out[41:], ref[41:])
    with pytest.raises(ValueError, match="src must be"):
        native.shrink_rows_sampled(np.zeros((100, 100), np.uint8), (10, 10))
