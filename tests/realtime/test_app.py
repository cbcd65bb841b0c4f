"""The commands end to end, headless: record, live --no-display, demo, errors, keys, mirror, Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from doubles import write_video

torch = pytest.importorskip("torch")

from realtime.backends.resolver import ModelResolver  # noqa: E402
from realtime.config import CATEGORIES  # noqa: E402
from realtime.live.app import LiveView, Session, ViewState, demo_main, live_main, record_main  # noqa: E402
from realtime.live.capture import GeneratedSource, PortraitMotionSource  # noqa: E402
from realtime.live.pipeline import FrameLoop, TryOnPipeline  # noqa: E402
from realtime.live.record import RecorderError, VideoRecorder, open_writer  # noqa: E402
from realtime.live.smoothing import SmoothingConfig  # noqa: E402

RECORD_KEYS = {"frame", "timestamp", "inferred_frame", "accessory", "category", "raw", "smoothed", "confidence",
               "visible", "status", "latency_ms"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A 24-frame 480x270 video of the moving astronaut."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.avi", 24)


def _count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _check_jsonl(path: Path, n: int) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == n
    for r in records:
        assert set(r) == RECORD_KEYS
        for key in ("raw", "smoothed"):
            if r[key] is not None:
                assert np.asarray(r[key]).shape == (4, 2) and np.all(np.isfinite(r[key]))
        assert r["confidence"] is None or math.isfinite(r["confidence"])
        assert all(math.isfinite(v) and v >= 0 for v in r["latency_ms"].values())
    assert [r["frame"] for r in records] == sorted(r["frame"] for r in records)
    return records


def test_record_writes_every_frame_and_keypoints(tmp_path, clip, tiny_checkpoints, capsys):
    out, kp = tmp_path / "out.mp4", tmp_path / "kp.jsonl"
    rc = record_main(["--video", str(clip), "--accessory", "glasses/round", "--out", str(out),
                      "--checkpoint", str(tiny_checkpoints["glasses"]), "--keypoints-out", str(kp), "--hud"])
    assert rc == 0
    assert _count_frames(out) == 24  # frame count in = frame count out
    assert not list(tmp_path.glob("*.partial*"))
    records = _check_jsonl(kp, 24)
    assert [r["frame"] for r in records] == list(range(24))
    assert all(r["inferred_frame"] == r["frame"] for r in records)
    assert sum(r["raw"] is not None for r in records) >= 20, "the face was not found in most frames"
    assert {"roi", "infer", "decode", "composite"} <= set(records[5]["latency_ms"])
    assert "24 frames" in capsys.readouterr().out


def test_record_duration_limits_the_frames(tmp_path, clip, tiny_checkpoints):
    out = tmp_path / "short.avi"
    assert record_main(["--video", str(clip), "--accessory", "glasses/round", "--out", str(out), "--duration", "0.5",
                        "--checkpoint", str(tiny_checkpoints["glasses"])]) == 0
    assert _count_frames(out) == 8  # 0.5 s at 15 fps, frames 0..7


def test_live_headless_on_a_video(tmp_path, clip, tiny_checkpoints):
    kp, rec = tmp_path / "live.jsonl", tmp_path / "live.mp4"
    rc = live_main(["--video", str(clip), "--no-display", "--no-pace", "--keypoints-out", str(kp),
                    "--record", str(rec), "--accessory", "hat/fedora", "--checkpoint", str(tiny_checkpoints["hat"])])
    assert rc == 0
    records = _check_jsonl(kp, 24)
    assert {r["category"] for r in records} == {"hat"}
    assert _count_frames(rec) == 24


def test_bad_accessory_path_is_a_clear_error(tmp_path, clip, tiny_checkpoints, capsys):
    missing = tmp_path / "no_such_glasses.png"
    rc = record_main(["--video", str(clip), "--accessory", str(missing), "--out", str(tmp_path / "x.mp4"),
                      "--checkpoint", str(tiny_checkpoints["glasses"])])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"accessory image not found: {missing}" in err


def test_unreadable_accessory_is_skipped_when_others_remain(tmp_path, clip, tiny_checkpoints, caplog):
    broken = tmp_path / "glasses_broken.png"
    broken.write_bytes(b"not a png")
    out = tmp_path / "y.avi"
    rc = record_main(["--video", str(clip), "--accessory", str(broken), "--accessory", "glasses/aviator",
                      "--out", str(out), "--duration", "0.2", "--checkpoint", str(tiny_checkpoints["glasses"])])
    assert rc == 0 and _count_frames(out) == 3
    assert "glasses_broken.png" in caplog.text


def test_missing_camera_exits_2_with_the_list(tmp_path, tiny_checkpoints, capsys):
    rc = live_main(["--camera", "9", "--no-display", "--checkpoint", str(tiny_checkpoints["glasses"])])
    assert rc == 2
    assert "camera 9 is not available" in capsys.readouterr().err


def test_live_window_without_a_display_is_explained(monkeypatch, tiny_checkpoints, capsys):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert live_main(["--checkpoint", str(tiny_checkpoints["glasses"])]) == 2
    assert "no display found" in capsys.readouterr().err


def test_missing_model_for_the_backend_is_a_backend_error(tmp_path, clip, capsys):
    rc = record_main(["--video", str(clip), "--accessory", "glasses/round", "--out", str(tmp_path / "z.mp4"),
                      "--backend", "onnxruntime"])
    assert rc == 2
    assert "no onnxruntime model for category 'glasses'" in capsys.readouterr().err


def test_mismatched_artifact_for_the_backend(tmp_path, clip, tiny_checkpoints, capsys):
    rc = record_main(["--video", str(clip), "--out", str(tmp_path / "z.mp4"), "--backend", "onnxruntime",
                      "--checkpoint", str(tiny_checkpoints["glasses"])])
    assert rc == 2
    assert "--backend onnxruntime cannot run" in capsys.readouterr().err


def test_virtual_cam_without_pyvirtualcam_is_explained(tmp_path, clip, tiny_checkpoints, capsys):
    try:
        import pyvirtualcam  # noqa: F401
        pytest.skip("pyvirtualcam is installed")
    except ImportError:
        pass
    rc = live_main(["--video", str(clip), "--no-display", "--virtual-cam", "--checkpoint",
                    str(tiny_checkpoints["glasses"])])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install 'tryon-realtime[virtualcam]'" in err
    if sys.platform.startswith("linux"):
        assert "v4l2loopback" in err and "exclusive_caps=1" in err


def test_demo_renders_all_categories(tmp_path, tiny_checkpoints):
    out, kp = tmp_path / "demo.mp4", tmp_path / "demo.jsonl"
    args = ["--out", str(out), "--seconds", "1.2", "--fps", "10", "--resolution", "320x180", "--switch-every", "0.4",
            "--keypoints-out", str(kp)]
    for path in tiny_checkpoints.values():
        args += ["--checkpoint", str(path)]
    assert demo_main(args) == 0
    assert _count_frames(out) == 12
    cats = [r["category"] for r in _check_jsonl(kp, 12)]
    assert cats == ["glasses"] * 4 + ["hat"] * 4 + ["tie"] * 4



def test_demo_category_shows_that_category_only(tmp_path, tiny_checkpoints):
    """``tryon demo --category tie`` cycles the ties (it used to start the glasses whatever it was told)."""
    out, kp = tmp_path / "demo.mp4", tmp_path / "demo.jsonl"
    args = ["--out", str(out), "--seconds", "0.8", "--fps", "10", "--resolution", "320x180", "--switch-every", "0.2",
            "--category", "tie", "--outfit-at", "-1", "--keypoints-out", str(kp)]
    for path in tiny_checkpoints.values():
        args += ["--checkpoint", str(path)]
    assert demo_main(args) == 0
    recs = _check_jsonl(kp, 8)
    assert {r["category"] for r in recs} == {"tie"}
    assert len({r["accessory"] for r in recs}) > 1, "it still cycles the category's accessories"

def _session(tiny_checkpoints) -> Session:
    resolver = ModelResolver("torch", checkpoints=list(tiny_checkpoints.values()))
    from realtime.procedural import bundled_accessories

    catalogue = {c: bundled_accessories(c)[:3] for c in CATEGORIES}
    return Session(resolver, TryOnPipeline(resolver, catalogue), SmoothingConfig())


def test_mirror_changes_the_preview_only(tiny_checkpoints):
    from skimage.data import astronaut

    frames = [PortraitMotionSource(astronaut(), size_wh=(320, 180), fps=10, seconds=0.6)._get(i) for i in range(6)]
    results = {}
    for mirrored in (False, True):
        session = _session(tiny_checkpoints)
        view = LiveView(session, ViewState(mirror=mirrored, hud=False), record_path=None, fps=10, show_window=False)
        outs = []

        def sink(out, view=view, outs=outs):
            view(out)
            outs.append((out.estimate.raw_pts_xy, out.composite.copy(), view.last_view.copy()))  # reused buffers

        FrameLoop(GeneratedSource(frames, fps=10), session.pipeline, [sink], mode="sync").run()
        results[mirrored] = outs
    assert sum(raw is not None for raw, _, _ in results[False]) >= 4, "the face was not found"
    for (raw0, comp0, view0), (raw1, comp1, view1) in zip(results[False], results[True]):
        np.testing.assert_array_equal(raw0, raw1)  # geometry identical
        np.testing.assert_array_equal(comp0, comp1)  # composite identical
        np.testing.assert_array_equal(view0, comp0)
        np.testing.assert_array_equal(view1, comp1[:, ::-1])  # the preview is the flipped composite


def test_keys_switch_toggle_and_quit(tmp_path, tiny_checkpoints):
    session = _session(tiny_checkpoints)
    view = LiveView(session, ViewState(), record_path=tmp_path / "rec.mp4", fps=10, show_window=False)
    pipe = session.pipeline
    first = pipe.accessory
    assert view.handle_key(ord("n")) and pipe.accessory is not first
    view.handle_key(ord("p"))
    assert pipe.accessory is first
    view.handle_key(65363)  # right arrow
    assert pipe.accessory is not first
    view.handle_key(ord("c"))
    assert pipe.category == "hat"
    view.handle_key(ord("m"))
    view.handle_key(ord("h"))
    assert not view.state.mirror and not view.state.hud
    view.handle_key(ord("s"))
    assert not pipe.smoother.enabled
    view.handle_key(ord("r"))
    assert view.recorder is not None
    view.handle_key(ord("r"))
    assert view.recorder is None
    assert view.handle_key(-1)  # no key
    assert view.handle_key(ord("q")) is False and view.state.quit
    assert view.handle_key(27) is False  # Esc
    view.close()
    session.close()


def test_recorder_codec_choice_and_atomic_finalise(tmp_path):
    w, final, fourcc = open_writer(tmp_path / "a.avi", 10, (64, 48))
    w.release()
    assert fourcc == "MJPG" and final == tmp_path / "a.avi"
    with pytest.raises(RecorderError, match="unsupported video suffix"):
        open_writer(tmp_path / "a.gif", 10, (64, 48))
    rec = VideoRecorder(tmp_path / "b.mp4", 10, (64, 48), encoder="opencv")  # the fallback chain
    for i in range(5):
        rec.write(np.full((48, 64, 3), 40 * i, np.uint8))
        assert not rec.path.exists()  # only the .partial file exists while recording
    report = rec.close()
    assert report.frames == 5 and rec.path.exists() and _count_frames(rec.path) == 5
    assert report.codec in ("avc1", "mp4v", "MJPG")
    with pytest.raises(RecorderError, match="closed"):
        rec.write(np.zeros((48, 64, 3), np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_finalises_the_recording(tmp_path, tiny_checkpoints, sig):
    """Ctrl-C / kill while ``tryon record`` runs: exit cleanly with a playable file."""
    video = write_video(tmp_path / "long.avi", 400, size_wh=(320, 180), fps=30)
    out, kp = tmp_path / "rec.mp4", tmp_path / "rec.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "record", "--video", str(video), "--accessory",
                             "glasses/round", "--out", str(out), "--keypoints-out", str(kp), "--checkpoint",
                             str(tiny_checkpoints["glasses"])], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if kp.exists() and len(kp.read_text().splitlines()) >= 10:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"finished before the signal: {proc.communicate()}"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "interrupted" in stdout
    n = _count_frames(out)
    assert 10 <= n < 400
    assert not list(tmp_path.glob("*.partial*"))


def test_the_window_gets_a_preview_no_larger_than_it_shows(tiny_checkpoints):
    from skimage.data import astronaut

    from realtime.live.window import Window

    class HalfSizeWindow:  # a window fitted to a screen half the frame's size (no display needed)
        closed = False
        display_scale = 0.5
        shown: list = []

        def update_scale(self, frame_wh):
            return self.display_scale

        shown_size = Window.shown_size

        def show(self, image):
            self.shown.append(image.copy())
            return -1

        def close(self):
            pass

    frames = [PortraitMotionSource(astronaut(), size_wh=(320, 180), fps=10, seconds=0.3)._get(i) for i in range(3)]
    session = _session(tiny_checkpoints)
    view = LiveView(session, ViewState(mirror=True, hud=False), record_path=None, fps=10, show_window=False)
    view.window = HalfSizeWindow()
    recorded = []

    class Recorder:  # what RecordSink is handed: the Output, whose full-resolution composite it writes
        reports: list = []

        def __call__(self, out):
            recorded.append(out.composite.copy())

        def close(self):
            pass

    view.recorder = Recorder()
    comps = []
    FrameLoop(GeneratedSource(frames, fps=10), session.pipeline,
              [view, lambda out: comps.append(out.composite.copy())], mode="sync").run()
    assert len(view.window.shown) == 3 and len(recorded) == 3
    for rec, comp in zip(recorded, comps):  # the recording keeps the full-resolution, unmirrored composite
        assert rec.shape == (180, 320, 3)
        np.testing.assert_array_equal(rec, comp)
    for shown, comp in zip(view.window.shown, comps):
        assert shown.shape == (90, 160, 3)  # exactly the on-screen size
        # each preview pixel shows the composite pixel under its centre (2 x 2 blocks: the lower right one), mirrored;
        # the recording indicator is drawn on the preview only (at the top)
        ref = comp[1::2, 1::2][:, ::-1]
        np.testing.assert_array_equal(shown[45:], ref[45:])
        assert (shown[:45] != ref[:45]).any()
