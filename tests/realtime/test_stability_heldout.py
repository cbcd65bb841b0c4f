"""benchmarks/stability_heldout.py: the held-out photo choice and the summary of per-photo reports."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.bench import stability as st

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def heldout():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports its sibling steadiness.py
    try:
        spec = importlib.util.spec_from_file_location("stability_heldout", ROOT / "benchmarks" / "stability_heldout.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_held_out_photos_alternate_between_folders_and_skip_training_photos(heldout, tmp_path):
    from skimage.data import astronaut

    photo = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    for folder, name in (("helen", "a.png"), ("helen", "b.png"), ("helen", "c.png"), ("fmd", "d.png")):
        (tmp_path / "faces" / folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "faces" / folder / name), photo)
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"meta": {}, "files": {
        "helen": {"a.png": ["train", "helen:a"], "b.png": ["test", "helen:b"], "c.png": ["test", "helen:c"]},
        "fmd": {"d.png": ["test", "fmd:d"]}}}))
    photos = heldout.pick_photos(tmp_path / "faces", 3, split, st.Trajectory(), 0.0)
    assert [n for n, _ in photos] == ["fmd-d", "helen-b", "helen-c"]
    with pytest.raises(FileNotFoundError, match="no photo folders"):
        heldout.pick_photos(tmp_path / "faces" / "fmd", 1, split, st.Trajectory(), 0.0)


def test_summary_tabulates_each_photo_and_the_mean(heldout, tmp_path):
    from skimage.data import astronaut

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from test_stability import NoisyAnchoredBackend
    finally:
        sys.path.pop(0)
    from realtime.framing import roi_config
    from realtime.live.pipeline import TryOnPipeline
    from realtime.procedural import bundled_accessories

    script = (st.Segment("static hold", "hold", 1.0), st.Segment("slow pan", "pan", 0.5, dx=0.05),
              st.Segment("hold", "hold", 0.5), st.Segment("face away", "away", 0.3))
    reports = []
    for name in ("p1", "p2"):
        backend = NoisyAnchoredBackend()
        report = st.run_stability(lambda: TryOnPipeline(lambda _c: backend, {"glasses": bundled_accessories("glasses")[:1]},
                                                        roi_configs={"glasses": roi_config("glasses", crop_lead=0.0)}),
                                  [(name, astronaut())], size_wh=(320, 240), script=script)
        report.update({"date": "2026-01-01", "hardware": {"cpu": "test cpu", "cores": 2, "gpu": None}, "threads": 1,
                       "load_avg": [1.5, 1.0, 1.0], "model": {"description": "fake"}, "detector": "cascade"})
        reports.append(report)
    text = heldout.summary(reports, tmp_path)
    rows = [line for line in text.splitlines() if line.startswith(("| p1 ", "| p2 ", "| **mean**"))]
    assert [r.split(" | ")[0] for r in rows] == ["| p1", "| p2", "| **mean**"]
    lag = np.mean([r["smoothed"]["lag_frames"]["slow pan"] for r in reports])
    assert f"{lag:.2f}" in rows[-1] and "1.5" in rows[0], "the mean lag and each photo's load"
    assert "accessory on <= 1 %" in text
