"""Fault battery: recording (``tryon record`` / ``live --record`` / ``--keypoints-out``) under a
full disk, a second writer of the same path, an existing output, a folder without write rights.

Rule: every output is complete and reported, or reported failed (non-zero exit, a message naming
it) with whatever part was written kept readable; nothing is replaced without a word."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
from faultkit import REPO, child_env, count_frames, run_tryon

pytest.importorskip("torch")


def _record_args(clip, ckpt, out, *extra):
    return ["record", "--video", clip, "--accessory", "glasses/round", "--checkpoint", ckpt, "--out", out, *extra]


def test_full_disk_record_is_a_failure_not_success(tmp_path, clip, tiny_glasses):
    """Before: 'wrote ... 12 frames', exit 0, a file with 0 decodable frames."""
    out = tmp_path / "full.mp4"
    res = run_tryon(_record_args(clip, tiny_glasses, out), fsize=16_000)
    assert res.rc != 0, res.text
    assert "wrote" not in res.out
    assert str(out) in res.err and "Traceback" not in res.err
    assert not out.exists() or count_frames(out) == 12  # never a final file that does not play
    for kept in tmp_path.glob("full.partial*"):  # a partial file left behind is named and readable
        assert str(kept) in res.err and count_frames(kept) > 0


def test_full_disk_keypoint_log_is_an_error_and_keeps_complete_lines(tmp_path, clip, tiny_glasses):
    """Before: a raw OSError traceback and a torn last line."""
    kp = tmp_path / "kp.jsonl"
    res = run_tryon(["live", "--video", clip, "--no-display", "--no-pace", "--accessory", "glasses/round",
                     "--checkpoint", tiny_glasses, "--keypoints-out", kp], fsize=3000)
    assert res.rc != 0, res.text
    assert str(kp) in res.err and "Traceback" not in res.err
    lines = kp.read_text().splitlines()
    assert 0 < len(lines) < 12
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))  # every kept line whole


def test_second_recorder_of_the_same_path_is_refused(tmp_path, clip, tiny_glasses):
    """Before: both runs reported success; one recording was gone, the keypoint logs interleaved."""
    out, kp = tmp_path / "same.mp4", tmp_path / "same.jsonl"
    first = subprocess.Popen([sys.executable, "-m", "realtime.cli", "live", "--video", str(clip), "--loop",
                              "--no-display", "--accessory", "glasses/round", "--checkpoint", str(tiny_glasses),
                              "--record", str(out), "--keypoints-out", str(kp)], cwd=REPO, env=child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None and not (kp.exists() and kp.read_text()):
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        second = run_tryon(_record_args(clip, tiny_glasses, out, "--keypoints-out", kp))
        assert second.rc != 0, second.text
        assert str(out) in second.err or str(kp) in second.err
        assert "another process" in second.err
        first.send_signal(signal.SIGINT)
        stdout, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    records = [json.loads(line) for line in kp.read_text().splitlines()]
    frames = count_frames(out)
    assert frames == len(records) > 0  # the first run's video and log, whole and not interleaved
    assert f"{frames} frames" in stdout


def test_existing_output_is_not_replaced_without_a_word(tmp_path, clip, tiny_glasses, caplog):
    """Before: overwritten silently (``tryon train`` warns in the same situation)."""
    from realtime.live.app import record_main

    out, kp = tmp_path / "old.avi", tmp_path / "old.jsonl"
    out.write_bytes(b"an earlier recording")
    kp.write_text("{}\n")
    assert record_main([str(a) for a in _record_args(clip, tiny_glasses, out, "--keypoints-out", kp,
                                                     "--duration", "0.2")][1:]) == 0
    assert f"{out} exists" in caplog.text and f"{kp} exists" in caplog.text
    assert count_frames(out) == 3


def test_unwritable_output_folder_is_named(clip, tiny_glasses, read_only_dir):
    """Before: a raw PermissionError, or 'none of the codecs ... is available'."""
    locked = read_only_dir
    for args, folder in (
            (_record_args(clip, tiny_glasses, locked / "a.mp4"), locked),
            (_record_args(clip, tiny_glasses, locked / "sub" / "a.mp4"), locked / "sub"),
            (["live", "--video", clip, "--no-display", "--no-pace", "--accessory", "glasses/round",
              "--checkpoint", tiny_glasses, "--keypoints-out", locked / "kp.jsonl"], locked)):
        res = run_tryon(args, no_write_override=True)
        assert res.rc == 2, res.text
        assert f"folder {folder}" in res.err, res.err
        assert "codec" not in res.err and "Traceback" not in res.err
