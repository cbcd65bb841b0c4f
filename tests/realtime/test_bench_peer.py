"""``tryon bench``'s MediaPipe peer, with a fake teacher environment (no mediapipe needed): the worker
protocol, the interleaved report and its ratio, and the message when the environment is absent."""

from __future__ import annotations

import stat
import sys
import textwrap

import numpy as np
import pytest

from realtime.bench import latency, peer
from realtime.procedural import bundled_accessories

#: The fake mediapipe: FaceMesh puts the outer eye corners at fixed places of the window it is
#: given; the full-range detector finds one face box in the middle of the frame.
FAKE_MEDIAPIPE = textwrap.dedent('''
    """A stand-in for mediapipe in the peer tests (the real one lives in the teacher venv)."""
    from types import SimpleNamespace as NS

    __version__ = "fake-0"
    CALLS = []

    class FaceMesh:
        def __init__(self, **kwargs):
            assert kwargs["static_image_mode"] is False and kwargs["max_num_faces"] == 1

        def process(self, rgb):
            lm = [NS(x=0.5, y=0.5, z=0.0) for _ in range(468)]
            lm[33], lm[263] = NS(x=0.4, y=0.45, z=0.0), NS(x=0.6, y=0.45, z=0.0)
            lm[10], lm[152], lm[234], lm[454] = (NS(x=0.5, y=0.2, z=0.0), NS(x=0.5, y=0.8, z=0.0),
                                                 NS(x=0.3, y=0.5, z=0.0), NS(x=0.7, y=0.5, z=0.0))
            return NS(multi_face_landmarks=[NS(landmark=lm)])

        def close(self):
            pass

    class FaceDetection:
        def __init__(self, **kwargs):
            pass

        def process(self, rgb):
            box = NS(xmin=0.35, ymin=0.3, width=0.3, height=0.4)
            return NS(detections=[NS(location_data=NS(relative_bounding_box=box))])

        def close(self):
            pass

    solutions = NS(face_mesh=NS(FaceMesh=FaceMesh), face_detection=NS(FaceDetection=FaceDetection))
''')


@pytest.fixture
def fake_teacher_env(tmp_path):
    """A 'venv' whose bin/python is this interpreter with the fake mediapipe on its path."""
    if sys.platform == "win32":
        pytest.skip("the fake venv is a POSIX shell script")
    site = tmp_path / "fake_site"
    site.mkdir()
    (site / "mediapipe.py").write_text(FAKE_MEDIAPIPE)
    venv = tmp_path / "teacher_venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nPYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    py.chmod(py.stat().st_mode | stat.S_IXUSR)
    return venv


def test_peer_worker_times_every_stage_and_draws_the_glasses_between_the_eyes(fake_teacher_env):
    jpegs = latency.synthetic_jpegs((320, 240), 3)
    acc = bundled_accessories("glasses")[0]
    with peer.FaceMeshPeer(jpegs, acc, venv=fake_teacher_env) as p:
        assert p.info["mediapipe"] == "fake-0" and p.info["frames"] == 3
        first = p.step(0)  # no window yet: the detector's box, 2.2 box sides wide, around (160, 120)
        second = p.step(4)  # index modulo the frame count; the window now follows the landmarks
    for reply in (first, second):
        assert set(reply["ms"]) == set(peer.PEER_STAGES) and all(v >= 0 for v in reply["ms"].values())
        assert reply["ms"]["end_to_end"] >= reply["ms"]["landmarks"]
        assert reply["found"] and reply["drawn_px"] > 0
    # window of the first frame: side 2.2 * max(0.3 * 320, 0.4 * 240) = 211 px centred on (160, 120)
    quad = np.array(first["quad"])
    side = 2.2 * 96
    x0, y0 = int(160 - side / 2), max(0, int(120 - side / 2))
    x1, y1 = int(160 + side / 2) + 1, min(240, int(120 + side / 2) + 1)
    eyes = np.array([x0 + 0.5 * (x1 - x0), y0 + 0.45 * (y1 - y0)])  # midpoint of the fake eye corners
    np.testing.assert_allclose(quad.mean(axis=0), eyes, atol=1e-3)
    span = 0.2 * (x1 - x0)  # eye corners 0.4 -> 0.6 of the window width
    np.testing.assert_allclose(quad[1, 0] - quad[0, 0], peer_worker_width(span), atol=1e-3)


def peer_worker_width(span: float) -> float:
    from realtime.bench.peer_worker import WIDTH_PER_EYE_SPAN

    return WIDTH_PER_EYE_SPAN * span


def test_bench_interleaves_the_peer_and_reports_the_ratio(tiny_resolver, fake_teacher_env):
    settings = latency.BenchSettings(frames=3, warmup=1, async_seconds=0, naive=False, peer="on",
                                     peer_venv=str(fake_teacher_env))
    report = latency.run_bench(tiny_resolver, ["glasses"], [(320, 240)], settings, threads=1)
    assert report["peer"]["measured"] and report["peer"]["mediapipe"] == "fake-0"
    (run,) = report["runs"]
    pr = run["peer"]
    assert pr["stages"]["end_to_end"]["n"] == 3 and pr["found_frac"] == 1.0
    expected = run["optimised"]["stages"]["end_to_end"]["p50"] / pr["stages"]["end_to_end"]["p50"]
    assert pr["ratio_e2e_p50"] == pytest.approx(expected)
    markdown = latency.to_markdown(report)
    assert "Per-frame path / peer (p50)" in markdown and "mediapipe fake-0" in markdown


def test_absent_teacher_env_is_reported_or_refused(tiny_resolver, tmp_path, monkeypatch):
    monkeypatch.setenv(peer.ENV_VENV, str(tmp_path / "nowhere"))
    with pytest.raises(peer.PeerUnavailable, match=r"TEACHER_VENV.*setup_env\.sh"):
        peer.peer_python()
    settings = latency.BenchSettings(frames=1, warmup=0, async_seconds=0, naive=False, peer="auto")
    report = latency.run_bench(tiny_resolver, ["glasses"], [(320, 240)], settings, threads=1)
    assert not report["peer"]["measured"] and "setup_env.sh" in report["peer"]["reason"]
    assert "peer" not in report["runs"][0]
    assert "**not measured**" in latency.to_markdown(report)
    with pytest.raises(peer.PeerUnavailable):
        latency.run_bench(tiny_resolver, ["glasses"], [(320, 240)],
                          latency.BenchSettings(frames=1, warmup=0, async_seconds=0, naive=False, peer="on"), 1)


def test_a_failing_worker_names_its_error(fake_teacher_env):
    site = fake_teacher_env.parent / "fake_site"
    (site / "mediapipe.py").write_text("raise ImportError('broken mediapipe for the test')\n")
    with pytest.raises(peer.PeerError, match="broken mediapipe for the test"):
        peer.FaceMeshPeer(latency.synthetic_jpegs((320, 240), 1), bundled_accessories("glasses")[0],
                          venv=fake_teacher_env)
