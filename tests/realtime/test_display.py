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


def test_reduced_preview_is_the_box_average_mirrored_and_its_overlays_land_on_the_same_pixels():
    comp = _frame(270, 481)  # an odd width: the last column is left out of the 2 x 2 blocks
    before = comp.copy()
    preview = PreviewBuffer()
    for mirrored in (True, False):
        view = preview.compose(comp, mirror=mirrored, shown_wh=(200, 120))
        assert preview.factor == 2 and view.shape == (135, 240, 3)
        blocks = comp[:270, :480].reshape(135, 2, 240, 2, 3).astype(np.int32).sum(axis=(1, 3))
        ref = ((blocks + 2) // 4).astype(np.uint8)  # the rounded mean of each 2 x 2 block
        if mirrored:
            ref = ref[:, ::-1]
        assert np.abs(view.astype(np.int32) - ref).max() <= 1
        # composite pixel (x, y) is in preview pixel (x // 2, y // 2), mirrored with the picture
        pts = preview.view_points(np.array([[10.0, 20.0], [11.0, 21.0], [479.0, 269.0]]), view.shape[1], mirrored)
        cols = [239 - c if mirrored else c for c in (5, 5, 239)]
        np.testing.assert_allclose(np.round(pts), np.array([[cols[0], 10], [cols[1], 10], [cols[2], 134]]), atol=0.5)
    # the HUD is drawn at the same on-screen size as on the full preview (its panel: half as many pixels)
    hud = (["display 30.0 fps"], None)
    full = PreviewBuffer().compose(comp, hud=hud, screen_scale=0.5)
    rows_full = np.flatnonzero((full != comp[:, ::-1]).any(axis=(1, 2))).max()
    mirrored_small = preview.compose(comp, shown_wh=(240, 135)).copy()
    small = preview.compose(comp, hud=hud, shown_wh=(240, 135), screen_scale=0.5)
    rows_small = np.flatnonzero((small != mirrored_small).any(axis=(1, 2))).max()
    assert abs(rows_full / 2 - rows_small) <= 2
    np.testing.assert_array_equal(comp, before)


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
