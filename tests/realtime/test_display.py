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
