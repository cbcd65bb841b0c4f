"""Fault battery: ``tryon live`` / ``record`` / ``demo`` inputs — camera indices, displays, frame
sources without a face, videos that are not videos, options that do not apply."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from faultkit import count_frames, run_tryon

pytest.importorskip("torch")


def _tryon(argv, capsys) -> tuple[int, str]:
    from realtime.cli import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse refusals
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


@pytest.mark.parametrize("command", ["live", "record"])
def test_negative_camera_index_is_refused_before_opencv(command, tiny_glasses, tmp_path):
    """Before: ``--camera -1`` segfaulted inside OpenCV."""
    res = run_tryon([command, "--camera", "-1", "--checkpoint", tiny_glasses, "--no-display" if command == "live"
                     else "--out", *([] if command == "live" else [tmp_path / "x.mp4"])])
    assert res.rc == 2, res.text
    assert "--camera: must be >= 0, got -1" in res.err


def _free_display() -> str:
    taken = {p.name[1:] for p in Path("/tmp/.X11-unix").glob("X*")} if Path("/tmp/.X11-unix").is_dir() else set()
    return ":" + next(str(n) for n in range(87, 200) if str(n) not in taken)


def test_display_set_but_no_x_server_is_explained(tiny_glasses, clip):
    """Before: Qt aborted the process (SIGABRT) when $DISPLAY named no reachable X server."""
    display = _free_display()
    res = run_tryon(["live", "--video", clip, "--checkpoint", tiny_glasses], env={"DISPLAY": display,
                                                                                 "WAYLAND_DISPLAY": ""})
    assert res.rc == 2, res.text
    assert f"no display found ($DISPLAY={display}" in res.err and "--no-display" in res.err


@pytest.mark.parametrize("kind", ["blank", "noise", "tiny"])
def test_a_run_without_a_face_says_so(kind, tmp_path, tiny_glasses, capsys, caplog):
    """Before: exit 0 and no hint that no frame had a face and no accessory was ever drawn."""
    size = (16, 16) if kind == "tiny" else (160, 120)
    rng = np.random.default_rng(0)
    video = tmp_path / f"{kind}.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for _ in range(6):
        w.write(rng.integers(0, 256, (size[1], size[0], 3), np.uint8) if kind == "noise"
                else np.full((size[1], size[0], 3), 128, np.uint8))
    w.release()
    out = tmp_path / "out.avi"
    rc, text = _tryon(["record", "--video", video, "--out", out, "--checkpoint", tiny_glasses], capsys)
    assert rc == 0, text
    assert count_frames(out) == 6
    assert "no face in 6 of 6 frames" in caplog.text
    assert "the accessory never appeared" in caplog.text
    assert "faces: found in 0 of 6 frames" in text


def test_an_empty_video_is_a_failure_not_a_silent_success(tmp_path, tiny_glasses, capsys):
    """Before: exit 0, '0 frames out of 0', and no output file (the one asked for with --out)."""
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120)).release()  # opens, no frames
    out = tmp_path / "o.mp4"
    rc, text = _tryon(["record", "--video", empty, "--out", out, "--checkpoint", tiny_glasses], capsys)
    assert rc != 0, text
    assert "empty.avi" in text and "nothing was written" in text
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "--threads: must be >= 1, got 0"),
    (["--threads", "-2"], "--threads: must be >= 1, got -2"),
    (["--fps", "25"], "--fps sets a camera's mode"),
    (["--resolution", "640x480"], "--resolution sets a camera's mode"),
    (["--duration", "nan"], "--duration: must be a finite number > 0"),
])
def test_options_that_would_be_ignored_or_coerced_are_refused(argv, message, tmp_path, clip, tiny_glasses, capsys):
    """Before: ``--threads 0`` ran with the default, ``--threads -2`` died in torch without naming the
    option, ``--fps`` / ``--resolution`` with ``--video`` were ignored, ``--duration nan`` ran the whole file."""
    out = tmp_path / "o.mp4"
    rc, text = _tryon(["record", "--video", clip, "--out", out, "--checkpoint", tiny_glasses, *argv], capsys)
    assert rc == 2, text
    assert message in text
    assert not out.exists()


def test_an_unsupported_video_suffix_is_refused_before_the_model_loads(tmp_path, clip, capsys):
    """Before: refused only at the first frame, after the models had loaded (seconds to minutes)."""
    rc, text = _tryon(["record", "--video", clip, "--out", tmp_path / "o.gif", "--checkpoint",
                       tmp_path / "never_opened.pt"], capsys)
    assert rc == 2 and "unsupported video suffix '.gif'" in text
