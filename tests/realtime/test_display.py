"""Per-frame work that follows the accessory or the search window, not the frame (issue 14): the
one-pass preview and the windowed face detection give what the full-frame versions gave."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.live.display import PreviewBuffer
from realtime.live.render import draw_hud, draw_quad, mirror
from realtime.live.detectors import CascadeDetector


def _frame(h: int = 270, w: int = 480) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_preview_equals_the_old_mirror_overlay_passes_and_reuses_its_buffer():
    comp = _frame()
    before = comp.copy()
    quad = np.array([[100.0, 80.0], [220.0, 85.0], [215.0, 130.0], [98.0, 125.0]])
    hud = (["display 30.0 fps | inference 15.0 Hz", "glasses/round (1/3)"], "no face found")
    for mirrored in (True, False):
        old = mirror(comp) if mirrored else comp.copy()  # the live window before: new arrays every frame
        old = (old.astype(np.uint16) // 2).astype(np.uint8)
        pts = quad.copy()
        if mirrored:
            pts[:, 0] = old.shape[1] - 1 - pts[:, 0]
        draw_quad(old, pts)
        draw_hud(old, *hud)
        preview = PreviewBuffer()
        view = preview.compose(comp, mirror=mirrored, hud=hud, quad_xy=quad, dim=True)
        np.testing.assert_array_equal(view, old)
        assert preview.compose(comp, mirror=mirrored) is view  # one buffer, reused
        np.testing.assert_array_equal(view, comp[:, ::-1] if mirrored else comp)
    np.testing.assert_array_equal(comp, before)  # the composite (the recorder's) is never drawn on


def test_window_detection_reads_only_its_window(monkeypatch):
    from skimage.data import astronaut

    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[100:612, 300:812] = astronaut()[..., ::-1]
    det = CascadeDetector()
    faces = det.detect(frame)
    assert faces, "the astronaut's face was not found"
    near = faces[0]
    expected = det.detect(frame, near)
    assert expected
    converted = []
    real = cv2.cvtColor

    def spy(src, code, *a, **k):
        converted.append(src.shape[:2])
        return real(src, code, *a, **k)

    monkeypatch.setattr(cv2, "cvtColor", spy)
    scrambled = frame.copy()
    half = 1.5 * near.side
    x0, y0 = max(0, int(near.cx - half)), max(0, int(near.cy - half))
    x1, y1 = int(near.cx + half) + 1, int(near.cy + half) + 1
    outside = np.ones(frame.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    scrambled[outside] = 255 - scrambled[outside]  # pixels outside the window must not matter
    got = det.detect(scrambled, near)
    assert [(f.cx, f.cy, f.side) for f in got] == [(f.cx, f.cy, f.side) for f in expected]
    # Only the window was converted to grey (after its downscale to the detector's window size).
    assert len(converted) == 1 and converted[0][0] <= y1 - y0 and converted[0][1] <= x1 - x0


def test_reduction_factor_keeps_the_preview_at_least_as_large_as_the_window():
    from realtime.live.display import reduction_factor
    from realtime.live.window import fit_size

    assert reduction_factor((3840, 2160), fit_size((3840, 2160), (1920, 1080))) == 2  # 1632x918 on screen
    assert reduction_factor((1920, 1080), fit_size((1920, 1080), (1920, 1080))) == 1
    assert reduction_factor((3840, 2160), (1280, 720)) == 3
    assert reduction_factor((3840, 2160), (1281, 720)) == 2  # 3840 / 3 = 1280 < 1281: never below the screen
    assert reduction_factor((640, 480), (1920, 1080)) == 1  # never enlarged
    assert reduction_factor((640, 480), None) == 1


def test_reduced_preview_is_the_window_size_nearest_mirror_and_its_overlays_land_on_the_same_pixels():
    from realtime.live import native

    comp = _frame(270, 481)
    before = comp.copy()
    preview = PreviewBuffer()
    for mirrored in (True, False):
        view = preview.compose(comp, mirror=mirrored, shown_wh=(200, 120))
        assert view.shape == (120, 200, 3) and preview.factor == 481 / 200  # exactly the on-screen size
        # the reference: the frame pixel under each preview pixel's centre, then the mirror
        cols = np.minimum(((np.arange(200) + 0.5) * 481 / 200).astype(int), 480)
        rows = np.minimum(((np.arange(120) + 0.5) * 270 / 120).astype(int), 269)
        ref = comp[rows[:, None], cols[None, :]]
        np.testing.assert_array_equal(view, ref[:, ::-1] if mirrored else ref)
        # the OpenCV fallback (no native library) gives the same pixels
        xs, ys = preview._nearest_tables((481, 270), (200, 120), mirrored)
        np.testing.assert_array_equal(native.resample_nearest(comp, xs, ys, prefer_native=False), view)
        # composite pixel (x, y) lands on the preview pixel that shows it, mirrored with the picture
        pts = preview.view_points(np.array([[10.0, 20.0], [240.0, 135.0], [480.0, 269.0]]), 200, mirrored)
        for (px, py), (cx, cy) in zip(np.round(pts).astype(int), [(10, 20), (240, 135), (480, 269)]):
            shown_col = 199 - px if mirrored else px
            assert abs(cols[shown_col] - cx) <= 3 and abs(rows[py] - cy) <= 3  # within one preview pixel
    # the HUD is drawn at the same on-screen size as on the full preview
    hud = (["display 30.0 fps"], None)
    full = PreviewBuffer().compose(comp, hud=hud, screen_scale=200 / 481)
    rows_full = np.flatnonzero((full != comp[:, ::-1]).any(axis=(1, 2))).max()
    plain = preview.compose(comp, shown_wh=(200, 120)).copy()
    small = preview.compose(comp, hud=hud, shown_wh=(200, 120), screen_scale=200 / 481)
    rows_small = np.flatnonzero((small != plain).any(axis=(1, 2))).max()
    assert abs(rows_full * 200 / 481 - rows_small) <= 2
    np.testing.assert_array_equal(comp, before)


def test_preview_below_twice_the_window_stays_full_size():
    comp = _frame(270, 480)
    preview = PreviewBuffer()
    view = preview.compose(comp, shown_wh=(300, 169))  # 1.6x: nearest would drop whole rows, the window scales
    assert view.shape == comp.shape and preview.factor == 1.0
    np.testing.assert_array_equal(view, comp[:, ::-1])


def test_resample_nearest_refuses_indices_outside_the_frame():
    import pytest

    from realtime.live import native

    comp = _frame(10, 12)
    for prefer in (None, False):
        with pytest.raises(ValueError, match="src_x holds 12, outside"):
            native.resample_nearest(comp, np.array([0, 12]), np.array([0, 1]), prefer_native=prefer)
        with pytest.raises(ValueError, match="src_y holds -1"):
            native.resample_nearest(comp, np.array([0, 1]), np.array([-1]), prefer_native=prefer)


def test_a_library_built_before_the_resample_kernel_falls_back_to_the_same_pixels(monkeypatch):
    from realtime.live import native

    comp = _frame(270, 481)
    want = PreviewBuffer().compose(comp, shown_wh=(200, 120)).copy()
    monkeypatch.setitem(native._KERNEL_SYMBOL, "preview", "tryon_symbol_of_a_newer_build")
    assert not native.uses_native("preview")
    np.testing.assert_array_equal(PreviewBuffer().compose(comp, shown_wh=(200, 120)), want)


def test_an_overlong_hud_line_wraps_at_its_separators_and_stays_in_the_frame():
    from realtime.live.render import wrap_hud_lines

    width = len  # one pixel per character
    line = "outfit: necktie + rectangular + cap | n/p change the glasses (1/6) | mirror on | smoothing on"
    wrapped = wrap_hud_lines([line, "short"], 45, width)
    assert wrapped == ["outfit: necktie + rectangular + cap", "n/p change the glasses (1/6) | mirror on",
                       "smoothing on", "short"]
    assert " | ".join(wrapped[:3]) == line  # nothing is lost
    assert wrap_hud_lines([line], 1000, width) == [line]
    assert wrap_hud_lines(["a-field-wider-than-the-frame | b"], 5, width) == ["a-field-wider-than-the-frame", "b"]
    frame = np.zeros((480, 640, 3), np.uint8)
    draw_hud(frame, [line, "display 30.0 fps | inference 4.0 Hz"])
    one = np.zeros_like(frame)
    draw_hud(one, ["short"])
    bottom = np.flatnonzero(frame.max(axis=(1, 2)) > 0).max()
    one_line = np.flatnonzero(one.max(axis=(1, 2)) > 0).max()
    assert frame[:, -3:].max() == 0  # the text stops before the right edge
    assert bottom > 2.5 * one_line  # ... because the first line became two or more, plus the second


def test_resample_nearest_equals_the_gather_for_any_table_view_and_row_tail():
    """The native kernel's 4-pixel steps (each load reads a byte past its pixel; the last row
    of the image moves 3 bytes a pixel) and the fallback give ``src[ys][:, xs]`` for tables in
    any order, on a source and an output that are views with padded rows, widths that are not
    a multiple of 4, and the last pixel of the image read; nothing outside the output is written."""
    from realtime.live import native

    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
    src = big[3:, 5:]  # rows strided (57 pixels apart), ends at the array's last byte
    h, w = src.shape[:2]
    for ow, oh in ((1, 1), (2, 3), (3, 2), (5, 4), (7, 9), (16, 5), (33, 12)):
        xs = rng.integers(0, w, ow).astype(np.int32)
        ys = rng.integers(0, h, oh).astype(np.int32)
        xs[-1], ys[-1] = w - 1, h - 1  # the image's last pixel, at the end of the output
        if ow > 2:
            xs[ow // 2] = w - 1
        ys[0] = h - 1
        want = src[ys][:, xs]
        for prefer in (None, False):
            pad = np.full((oh, ow + 3, 3), 77, np.uint8)
            out = pad[:, 1:ow + 1]  # an output view with padded rows
            got = native.resample_nearest(src, xs, ys, out=out, prefer_native=prefer)
            assert got is out
            np.testing.assert_array_equal(out, want, err_msg=f"{ow}x{oh} prefer_native={prefer}")
            assert (pad[:, 0] == 77).all() and (pad[:, ow + 1:] == 77).all(), "wrote outside the output"
            np.testing.assert_array_equal(native.resample_nearest(src, xs, ys, prefer_native=prefer), want)
