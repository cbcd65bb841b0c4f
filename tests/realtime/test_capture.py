"""Frame sources: files, generated frames, real-time pacing, camera reconnection, the demo's moving portrait."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from doubles import FlakyCaptureFactory

from realtime.geometry import warp_points
from realtime.live.capture import (STATUS_LOST, STATUS_OK, CameraError, CameraSource, GeneratedSource,
                                   PortraitMotionSource, RealtimePacer, VideoFileSource, list_cameras)


def _numbered_frames(n: int, size_wh: tuple[int, int] = (96, 64)) -> list[np.ndarray]:
    """Frames whose mean grey level encodes their index (survives lossy coding)."""
    return [np.full((size_wh[1], size_wh[0], 3), 10 + 12 * i, np.uint8) for i in range(n)]


def _index_of(img: np.ndarray) -> int:
    return int(round((float(img.mean()) - 10) / 12))


def _read_all(src, limit: int = 1000) -> list:
    out = []
    while len(out) < limit:
        f = src.read(timeout=2.0)
        if f is None:
            if src.ended:
                break
            continue
        out.append(f)
    return out


def test_generated_source_in_order_then_ends():
    src = GeneratedSource(_numbered_frames(5), fps=25)
    frames = _read_all(src)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.timestamp for f in frames] == pytest.approx([0, 0.04, 0.08, 0.12, 0.16])
    assert src.ended and src.read() is None
    assert src.size_wh == (96, 64) and src.frame_count == 5


def test_video_file_source_reads_every_frame(tmp_path):
    path = tmp_path / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 20.0, (96, 64))
    for img in _numbered_frames(15):
        w.write(img)
    w.release()
    with VideoFileSource(path) as src:
        assert src.fps == pytest.approx(20.0) and src.size_wh == (96, 64)
        frames = _read_all(src)
    assert [_index_of(f.image) for f in frames] == list(range(15))
    assert frames[3].timestamp == pytest.approx(0.15)


def test_video_file_source_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        VideoFileSource(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(ValueError, match="bad.mp4"):
        VideoFileSource(bad)


def test_realtime_pacer_gives_newest_frames_to_a_slow_consumer():
    src = RealtimePacer(GeneratedSource([np.zeros((64, 96, 3), np.uint8)] * 30, fps=100.0))  # 0.3 s of frames
    got = []
    try:
        while True:
            f = src.read(timeout=1.0)
            if f is None:
                break
            got.append(f.index)
            time.sleep(0.04)  # 4 frame periods per read
    finally:
        src.close()
    assert src.ended
    assert got == sorted(set(got)), "frames must come newest-first, never repeated or out of order"
    assert len(got) < 20, "a slow consumer must skip frames, not receive a stale backlog"
    assert got[-1] >= 25


def test_camera_requests_mjpg_size_and_fps():
    factory = FlakyCaptureFactory(_numbered_frames(3), fail_after=10**6)
    cam = CameraSource(0, size_wh=(1280, 720), fps=30, opener=factory)
    try:
        cap = cam._cap
        assert cap.props[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
        assert cap.props[cv2.CAP_PROP_FRAME_WIDTH] == 1280 and cap.props[cv2.CAP_PROP_FRAME_HEIGHT] == 720
        assert cap.props[cv2.CAP_PROP_FPS] == 30
        assert cam.size_wh == (96, 64)  # what the device actually delivers is what we report
        assert cam.read(timeout=2.0) is not None
    finally:
        cam.close()


def test_camera_reopens_after_drop_with_backoff():
    factory = FlakyCaptureFactory(_numbered_frames(8), fail_after=5, reopen_failures=2, fps=200.0)
    cam = CameraSource(0, opener=factory, backoff_start_s=0.01, backoff_max_s=0.05)
    statuses, indices = set(), []
    try:
        deadline = time.monotonic() + 10.0
        while len(indices) < 15 and time.monotonic() < deadline:
            f = cam.read(timeout=0.05)
            statuses.add(cam.status)
            if f is not None:
                indices.append(f.index)
    finally:
        cam.close()
    assert len(indices) >= 15, "the camera did not come back"
    assert cam.reconnects == 1 and factory.failed_opens == 2
    assert indices == sorted(indices)
    assert STATUS_OK in statuses
    assert factory.opens == 4  # first open, two refused, one successful


def test_camera_reports_lost_while_down():
    factory = FlakyCaptureFactory(_numbered_frames(4), fail_after=3, reopen_failures=10**6, fps=200.0)
    cam = CameraSource(0, opener=factory, backoff_start_s=0.01, backoff_max_s=0.02)
    try:
        deadline = time.monotonic() + 5.0
        while cam.status != STATUS_LOST and time.monotonic() < deadline:
            cam.read(timeout=0.05)
        assert cam.status == STATUS_LOST == "camera lost, retrying"
        assert cam.read(timeout=0.1) is None
    finally:
        cam.close()


def test_missing_camera_lists_available_ones():
    def opener(index):
        factory = FlakyCaptureFactory(_numbered_frames(1), fail_after=10**6)
        cap = factory(index)
        cap.opened = index == 2
        return cap

    assert list_cameras(range(4), opener=opener) == [(2, "96x64")]
    with pytest.raises(CameraError, match=r"camera 5 is not available; cameras found: 2 \(96x64\)"):
        CameraSource(5, opener=opener)


def test_portrait_motion_is_deterministic_and_moves():
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[20:40, 20:40] = (255, 0, 0)  # a red square, becomes BGR (0, 0, 255)
    src = PortraitMotionSource(rgb, size_wh=(160, 90), fps=10, seconds=3)
    assert src.frame_count == 30
    a, b = src._get(7), src._get(7)
    np.testing.assert_array_equal(a, b)
    centre = warp_points(src.frame_from_image(0), np.array([31.5, 31.5]))
    np.testing.assert_allclose(centre, (80, 45), atol=1.0)
    f0 = src._get(0)
    assert f0[45, 80, 2] > 200 and f0[45, 80, 0] < 50  # the red square sits at the frame centre (BGR)
    moved = [warp_points(src.frame_from_image(i), np.array([31.5, 31.5])) for i in range(30)]
    assert np.ptp(np.array(moved)[:, 0]) > 5  # pans
