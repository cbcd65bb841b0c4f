"""The product as a user meets it: the real window under Xvfb, shareable H.264 recordings that
survive a crash and play at the lived speed, the HUD, help and ``tryon doctor``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from doubles import write_video

from realtime.live import record
from realtime.live.record import VideoRecorder

REPO = Path(__file__).resolve().parents[2]
HAVE_H264 = record.h264_encoder() is not None
needs_h264 = pytest.mark.skipif(not HAVE_H264, reason="PyAV with an H.264 encoder is not installed (pip install av)")


def _env(**extra: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO), **extra)


def _probe(path: Path) -> dict:
    """Codec, decodable frames, duration (s) and whether the index (moov) precedes the data."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = sum(1 for _ in c.decode(stream))
        duration = float(c.duration / 1e6) if c.duration else None
        codec = stream.codec_context.name
    data = path.read_bytes()
    return {"codec": codec, "frames": frames, "duration": duration,
            "moov_first": 0 <= data.find(b"moov") < data.find(b"mdat"), "fragmented": b"moof" in data}


def _frames(n: int, size=(96, 64)) -> list[np.ndarray]:
    return [np.full((size[1], size[0], 3), (i * 37) % 256, np.uint8) for i in range(n)]


# --------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------

@needs_h264
def test_h264_is_fragmented_while_recording_and_faststart_when_done(tmp_path):
    rec = VideoRecorder(tmp_path / "a.mp4", 30, (96, 64))
    for i, frame in enumerate(_frames(45)):
        rec.write(frame, 100.0 + i / 15)  # 15 frames/s of wall time into a nominal 30 fps camera
    report = rec.close()
    assert report.codec.startswith("H.264") and report.frames == 45
    info = _probe(tmp_path / "a.mp4")
    assert info["codec"] == "h264" and info["frames"] == 45
    assert info["moov_first"] and not info["fragmented"]  # shareable: index up front
    assert info["duration"] == pytest.approx(3.0, rel=0.05)  # timestamps, not the nominal rate
    assert report.duration_s == pytest.approx(3.0, rel=0.05)
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("*.finishing*"))


def test_opencv_fallback_without_pyav_follows_the_timestamps(tmp_path, monkeypatch):
    monkeypatch.setattr(record, "h264_encoder", lambda: None)
    rec = VideoRecorder(tmp_path / "b.mp4", 20, (96, 64))
    for i, frame in enumerate(_frames(10)):
        rec.write(frame, i / 10)  # half the file's frame rate: each frame is shown twice
    report = rec.close()
    assert report.codec in ("avc1", "mp4v", "MJPG")
    cap = cv2.VideoCapture(str(report.path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == report.frames == 19  # 0 .. 0.9 s at 20 fps


@needs_h264
def test_sigkilled_recording_plays_up_to_its_last_fragment(tmp_path):
    out = tmp_path / "killed.mp4"
    script = textwrap.dedent(f"""
        import sys, time, numpy as np
        from realtime.live.record import VideoRecorder
        rec = VideoRecorder({str(out)!r}, 30, (96, 64))
        for i in range(100):  # 3.3 s of video: keyframes (fragments) at 0, 1, 2 and 3 s
            rec.write(np.full((64, 96, 3), (i * 37) % 256, np.uint8), i / 30)
        while rec.frames < 100:
            time.sleep(0.01)
        print("written", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists()
    (partial,) = tmp_path.glob("killed.partial-*.mp4")
    info = _probe(partial)
    assert info["codec"] == "h264" and info["fragmented"]
    assert 90 <= info["frames"] <= 100  # every frame up to the last finished fragment


@needs_h264
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_live_recording_plays_in_wall_time_in_every_mode(tmp_path, mode):
    """Slow inference in sync mode skips camera frames; the video must still last as long as the session."""
    from realtime.live.app import RecordSink
    from realtime.live.capture import GeneratedSource, RealtimePacer
    from realtime.live.pipeline import FrameLoop

    class SlowPipeline:  # 100 ms per inference: a third of a 30 fps camera
        outfit = ()

        def estimate(self, frame, round_robin=False):
            time.sleep(0.1)
            return SimpleNamespace(times_ms={"infer": 100.0})

        def render(self, image, est, times=None, in_place=False):
            return image

        def reset(self):
            pass

    frames = _frames(60)
    source = RealtimePacer(GeneratedSource(frames, fps=30))
    sink = RecordSink(tmp_path / f"{mode}.mp4", 30)
    seen = []
    start = time.monotonic()
    report = FrameLoop(source, SlowPipeline(), [sink, lambda out: seen.append(out.frame.index)], mode=mode).run()
    wall = time.monotonic() - start
    sink.close()
    source.close()
    if mode == "sync":
        assert len(seen) < 40, "inference did not skip frames: nothing tested"
    info = _probe(tmp_path / f"{mode}.mp4")
    lived = (seen[-1] - seen[0] + 1) / 30  # the source's clock follows the wall clock (paced)
    assert info["duration"] == pytest.approx(lived, rel=0.05)
    assert info["duration"] == pytest.approx(wall, rel=0.15)  # and the session's length (start-up included)
    assert report.frames_out == info["frames"]


# --------------------------------------------------------------------------------------
# The window (a real X server)
# --------------------------------------------------------------------------------------

def _free_display() -> int:
    for n in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    pytest.skip("no free X display number")


@pytest.fixture
def xvfb():
    """A virtual X server (1600x1000); skipped where Xvfb or xdotool is not installed."""
    for tool in ("Xvfb", "xdotool"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install xvfb xdotool; .ci/run does)")
    n = _free_display()
    server = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield f":{n}"
    server.terminate()
    server.wait(timeout=10)


def _xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env=dict(os.environ, DISPLAY=display), capture_output=True,
                          text=True, timeout=10).stdout.strip()


def _wait_for(cond, timeout: float, what: str, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the app ended while waiting for {what}: {proc.communicate()}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.slow
def test_real_window_opens_at_frame_size_keys_work_and_closing_it_quits(tmp_path, xvfb, tiny_checkpoints):
    clip = write_video(tmp_path / "clip.avi", 30, size_wh=(480, 270), fps=15)
    out, kp = tmp_path / "rec.mp4", tmp_path / "kp.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "live", "--video", str(clip), "--loop", "--record",
                             str(out), "--keypoints-out", str(kp), "--checkpoint", str(tiny_checkpoints["glasses"]),
                             "--screenshot-dir", str(tmp_path)], cwd=REPO, env=_env(DISPLAY=xvfb),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        win = _wait_for(lambda: _xdotool(xvfb, "search", "--name", "^tryon live$").split(), 90, "the window",
                        proc)[0]
        _wait_for(lambda: kp.exists() and len(kp.read_text().splitlines()) > 5, 60, "frames", proc)
        geometry = _xdotool(xvfb, "getwindowgeometry", win)
        assert "Geometry: 480x270" in geometry, geometry  # the frame's size, no toolbar or status bar
        first = json.loads(kp.read_text().splitlines()[-1])["accessory"]
        _xdotool(xvfb, "key", "--window", win, "n")
        switched = _wait_for(lambda: {json.loads(line)["accessory"] for line in kp.read_text().splitlines()[-3:]}
                             - {first, None}, 30, "the accessory to change", proc)
        assert switched
        subprocess.run([sys.executable, str(Path(__file__).with_name("xclose.py")), win],
                       env=dict(os.environ, DISPLAY=xvfb), check=True, timeout=10)  # the title bar's X
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "window closed" in stderr, stderr
    assert "QFontDatabase" not in stderr and "[ WARN" not in stderr and "[ERROR" not in stderr, stderr
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and cap.read()[0], f"{out} does not play"
    assert f"wrote {out}" in stdout, stdout


# --------------------------------------------------------------------------------------
# The HUD
# --------------------------------------------------------------------------------------

def _view(tmp_path, tiny_checkpoints):
    from realtime.backends.resolver import ModelResolver
    from realtime.live.app import LiveView, Session, ViewState
    from realtime.live.capture import Frame
    from realtime.live.pipeline import Output, TryOnPipeline
    from realtime.live.smoothing import SmoothingConfig
    from realtime.procedural import bundled_accessories

    resolver = ModelResolver("torch", checkpoints=[tiny_checkpoints["glasses"]])
    pipe = TryOnPipeline(resolver, {"glasses": bundled_accessories("glasses")})
    pipe.next_accessory(-1)  # the last one: glasses/rectangular-6
    session = Session(resolver, pipe, SmoothingConfig())
    view = LiveView(session, ViewState(), record_path=tmp_path / "r.mp4", fps=10, show_window=False)
    image = np.full((360, 640, 3), 128, np.uint8)
    return view, Output(Frame(image, 0, 0.0), None, image)


def test_hud_says_whether_async_keypoints_were_carried_to_the_frame(tmp_path, tiny_checkpoints):
    import dataclasses

    from realtime.live.app import hud_text
    from realtime.live.capture import Frame
    from realtime.live.pipeline import Estimate, Output

    view, out = _view(tmp_path, tiny_checkpoints)
    acc = view.session.pipeline.accessory
    est = Estimate(3, 0.1, acc, None, None, None, None, False, "ok")
    frame = Frame(out.frame.image, 15, 0.5)
    assert "frames" not in hud_text(Output(frame, est, out.composite), view.session)[0][1]  # sync: as before
    for flag, words in ((True, "tracked +12 frames"), (False, "12 frames behind (motion lost)")):
        lines, _ = hud_text(Output(frame, dataclasses.replace(est, propagated=flag), out.composite), view.session)
        assert words in lines[1]


def test_hud_names_states_hides_debug_and_rec_stays_without_hud(tmp_path, tiny_checkpoints):
    from realtime.live.app import hud_text

    view, out = _view(tmp_path, tiny_checkpoints)
    lines, _ = hud_text(out, view.session, mirrored=True)
    text = " ".join(lines)
    assert "rectangular, tinted (6/6 glasses)" in text and "-6" not in text  # the display name, no seed
    assert "mirror on" in text and "glasses_tiny.pt" not in text and "torch" not in text
    assert "glasses_tiny.pt" in " ".join(hud_text(out, view.session, debug=True)[0])  # behind the d key
    view.handle_key(ord("d"))
    assert view.state.debug
    view.state.hud = False
    assert np.array_equal(view.render(out), out.composite)  # nothing drawn: not recording, HUD hidden
    view.toggle_recording()
    try:
        shown = view.render(out)
        top_right = shown[:40, -160:].astype(int)
        red = (top_right[..., 2] > 200) & (top_right[..., 1] < 60) & (top_right[..., 0] < 60)
        assert red.sum() > 30, "no red REC dot with the HUD hidden"
        assert np.array_equal(shown[60:, :], out.composite[60:, :])  # only the indicator is drawn
    finally:
        view.close()
        view.session.close()


def test_bundled_display_names_have_no_seed_suffix():
    from realtime.config import CATEGORIES
    from realtime.procedural import bundled_accessories

    titles = [a.title for c in CATEGORIES for a in bundled_accessories(c)]
    assert len(set(titles)) == len(titles)
    assert not any(ch.isdigit() or "_" in ch for t in titles for ch in t), titles


# --------------------------------------------------------------------------------------
# Help and doctor
# --------------------------------------------------------------------------------------

def _parsers(func) -> list:
    """The argparse parsers a ``tryon`` command builds (sub-command parsers included)."""
    import argparse

    seen = []

    class _Stop(Exception):
        pass

    def capture(self, *args, **kwargs):
        seen.append(self)
        raise _Stop

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        func([])
    except _Stop:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    out = []
    while seen:
        parser = seen.pop()
        out.append(parser)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                seen.extend(action.choices.values())
    return out


def test_every_command_shows_its_defaults_and_an_example():
    import argparse

    from realtime.cli import SUBCOMMANDS, resolve

    for name in SUBCOMMANDS:
        parsers = _parsers(resolve(name))
        assert parsers, f"tryon {name} built no parser"
        for parser in parsers:
            text = parser.format_help()
            assert "example" in text, f"{parser.prog}: no example in --help"
            for action in parser._actions:
                default = action.default
                if (not action.option_strings or default in (None, False, [], (), argparse.SUPPRESS)
                        or isinstance(action, argparse._HelpAction)):
                    continue
                formatter = parser._get_formatter()
                shown = formatter._format_action(action)
                assert "default" in shown.lower(), f"{parser.prog} {action.option_strings[0]}: default not shown"


def test_doctor_lines_say_what_to_fix(tmp_path, monkeypatch):
    from realtime.live import doctor

    cpu = doctor.check_cpu({"avx2", "amx_bf16", "amx_tile"})
    assert cpu.status == "ok" and "AMX" in cpu.found and "--precision bf16" in cpu.fix
    assert "fp32" in doctor.check_cpu({"avx2"}).found
    assert doctor.check_cameras(lambda: []).status == "warn"
    assert doctor.check_cameras(lambda: [(0, "1280x720")]).found == "0 (1280x720)"
    loop = tmp_path / "v4l2loopback"
    (loop / "parameters").mkdir(parents=True)
    (loop / "parameters" / "exclusive_caps").write_text("N\n")
    real_version = doctor._version
    monkeypatch.setattr(doctor, "_version", lambda d: "0.11" if d == "pyvirtualcam" else real_version(d))
    bad = doctor.check_virtual_camera("linux", loop)
    (loop / "parameters" / "exclusive_caps").write_text("Y\n")
    good = doctor.check_virtual_camera("linux", loop)
    absent = doctor.check_virtual_camera("linux", tmp_path / "nothing")
    windows = doctor.check_virtual_camera("win32", loop)
    assert bad.status == "warn" and "exclusive_caps=1" in bad.fix
    assert good.status == "ok"
    assert absent.status == "warn" and "modprobe v4l2loopback" in absent.fix
    assert "OBS" in windows.fix
    h264 = doctor.check_h264()
    assert h264.status == ("ok" if HAVE_H264 else "warn")
    text = doctor.format_checks(doctor.run_user_checks())
    for name in ("CPU runtime", "backends", "cameras", "display", "H.264 recording", "virtual camera", "GPU"):
        assert name in text


def test_doctor_names_the_cpu_runtime_auto_runs(monkeypatch):
    """OpenVINO is the CPU default: the backends line lists it with the CPU capabilities it
    sees and says auto runs it; without it the line warns and names the install."""
    import importlib.util

    from realtime.live import doctor

    if importlib.util.find_spec("openvino") is not None:
        line = doctor.check_backends(lambda: "FP32, INT8, BF16")
        assert line.status == "ok" and "openvino" in line.found and "(CPU: FP32, INT8, BF16)" in line.found
        assert line.found.endswith("--backend auto runs openvino")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    line = doctor.check_backends(lambda: pytest.fail("OpenVINO queried although absent"))
    assert line.status == "warn" and "openvino" not in line.found.split(";")[0]
    assert "auto runs onnxruntime" in line.found and "pip install 'openvino" in line.fix
    assert "bf16 keypoint check" in doctor.check_cpu({"avx2", "avx512_bf16"}).fix


def test_window_size_is_the_frame_fitted_to_the_screen():
    from realtime.live.window import fit_size

    assert fit_size((1280, 720), (1600, 1000)) == (1280, 720)  # fits: the frame's own size
    assert fit_size((1920, 1080), (1600, 1000)) == (1472, 828)  # scaled down, aspect kept
    assert fit_size((640, 360), (3840, 2160)) == (640, 360)  # never scaled up
    assert fit_size((1280, 720), None) == (1280, 720)  # screen unknown


def test_tryon_doctor_without_arguments_checks_this_machine(capsys, monkeypatch):
    from realtime.cli import main
    from realtime.live import doctor

    monkeypatch.setattr(doctor, "check_cameras", lambda: doctor.Check("cameras", "warn", "none found", "connect one"))
    assert main(["doctor"]) == 0  # nothing fails on a CPU machine without camera or GPU
    out = capsys.readouterr().out
    assert "H.264 recording" in out and "-> connect one" in out
    monkeypatch.setattr(doctor, "check_backends", lambda: doctor.Check("backends", "fail", "neither", "pip install"))
    assert main(["doctor"]) == 1


def test_hud_says_why_nothing_is_drawn(tmp_path, tiny_checkpoints):
    from realtime.live.app import hud_text
    from realtime.live.pipeline import Estimate, Output
    from realtime.live.tracking import REASON_CHECKING, REASON_LEFT, REASON_REJECTED

    view, out = _view(tmp_path, tiny_checkpoints)
    acc = view.session.pipeline.accessory
    for reason in (REASON_CHECKING, REASON_REJECTED, REASON_LEFT):
        est = Estimate(0, 0.0, acc, None, None, None, 0.3, False, reason, {})
        _, warning = hud_text(Output(out.frame, est, out.composite), view.session)
        assert warning == reason
        assert est.record()["status"] == reason and est.record()["visible"] is False  # the keypoint log
