"""``tryon ship``: fp16 weights the resolver finds, measured card, grid, pupil check, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realtime.backends.resolver import shipped_artifacts  # noqa: E402
from realtime.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from realtime.config import model_preset  # noqa: E402
from realtime.model import TryOnNet  # noqa: E402
from training import ship as sh  # noqa: E402
from training.synthetic import make_synthetic  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root with train/ and test/, random-init tiny checkpoint at 64 px with a run log)."""
    root = tmp_path_factory.mktemp("shipdata")
    make_synthetic("glasses", 6, SIZE, root, seed=1, split="train", progress=False)
    make_synthetic("glasses", 5, SIZE, root, seed=1, split="test", progress=False)
    cfg = model_preset("tiny", "glasses")
    cfg.input_size = SIZE
    torch.manual_seed(0)
    run = root / "run"
    run.mkdir()
    meta = {"epoch": 2, "precision": "bf16", "train_size": 6,
            "train_config": {"optim": {"lr": 2e-4, "final_lr": 5e-5, "decay_start_epoch": 1, "epochs": 2,
                                       "batch_size": 4}, "augment": {"enabled": True}, "seed": 0,
                             "init_from": "runs/glasses/best.pt"}}
    save_checkpoint(run / "best.pt", TryOnNet(cfg).state_dict(), cfg, meta=meta,
                    train_state={"optimizer": {"big": torch.zeros(1000)}})
    (run / "log.csv").write_text("epoch,epoch_time_s,val_lssim,val_iou,val_disp\n1,1800,,,\n2,1800,0.5,0.4,0.03\n")
    return root, run / "best.pt"


def test_ship_writes_fp16_weights_card_grid_and_json_the_resolver_finds(setup, tmp_path):
    root, ckpt = setup
    report = sh.ship(ckpt, root, name="glasses_test", out_dir=tmp_path, progress=False)
    weights = tmp_path / "glasses_test.pt"
    stored = torch.load(weights, map_location="cpu", weights_only=False)
    assert "train_state" not in stored, "no optimiser state in shipped weights"
    floats = [v for v in stored["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    blob = load_checkpoint(weights)
    assert blob["meta"]["shipped"]["source"] == str(ckpt)
    assert shipped_artifacts("glasses", tmp_path)["torch"] == [weights]
    # the card holds the numbers measured on the shipped file, the terms and the training facts
    card = (tmp_path / "glasses_test.md").read_text()
    ev = report["eval"]
    assert f"| **glasses_test** | {ev['lssim']:.4f} | {ev['iou']:.4f} | {ev['disp']:.4f} | 5 |" in card
    assert "| mean quad |" in card and "research and demonstration use" in card
    assert "Warm start" in card and "runs/glasses/best.pt" in card and "1.0 h" in card
    assert "| 2 | 0.5000 | 0.4000 | 0.0300 |" in card  # validation history from log.csv
    assert "IoU ≥ 0.8: not met" in card or "IoU ≥ 0.8: met" in card
    # the grid: all 5 test samples (fewer than 16), 4 tiles wide
    grid = cv2.imread(str(tmp_path / "glasses_test_grid.png"))
    assert grid.shape == (2 * sh.GRID_TILE_PX, 4 * sh.GRID_TILE_PX, 3)
    assert json.loads((tmp_path / "glasses_test.json").read_text())["grid_n"] == 5


def test_grid_indices_spread_over_the_split():
    assert sh.grid_indices(5) == [0, 1, 2, 3, 4]
    idx = sh.grid_indices(574)
    assert len(idx) == 16 and idx[0] == 0 and idx[-1] == 573 and idx == sorted(set(idx))


def test_pupil_errors_geometry():
    pupils = np.array([[100.0, 100.0], [140.0, 100.0]])  # IPD 40
    quad = np.array([[90.0, 90.0], [150.0, 90.0], [150.0, 114.0], [90.0, 114.0]])  # centre (120, 102)
    e = sh.pupil_errors(quad, pupils)
    assert e["quad_centre"] == pytest.approx(2.0 / 40.0) and e["roll_deg"] == pytest.approx(0.0, abs=1e-9)
    theta = np.radians(5.0)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    assert sh.pupil_errors(quad @ rot.T, pupils)["roll_deg"] == pytest.approx(5.0)
    with pytest.raises(ValueError, match="coincide"):
        sh.pupil_errors(quad, np.array([[1.0, 1.0], [1.0, 1.0]]))


def test_pipeline_pupil_check_runs_on_held_out_photos_only(setup, tmp_path):
    from skimage.data import astronaut

    from realtime.backends.torch_backend import TorchBackend

    _, ckpt = setup
    helen = tmp_path / "helen"
    helen.mkdir()
    img = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    for name in ("a_1.jpg", "b_1.jpg"):
        cv2.imwrite(str(helen / name), img)
    pts = np.zeros((29, 2))
    pts[16], pts[17] = (195.0, 105.0), (245.0, 105.0)  # the astronaut's pupils, roughly
    (helen / "landmarks_lfpw29.json").write_text(json.dumps({"a_1.jpg": pts.tolist(), "b_1.jpg": pts.tolist()}))
    split = {"meta": {"version": "test"}, "files": {"helen": {"a_1.jpg": ["test", "helen:a"],
                                                              "b_1.jpg": ["train", "helen:b"]}}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    backend = TorchBackend.from_path(ckpt, device="cpu", precision="fp32")
    try:
        out = sh.pipeline_pupil_check(backend, helen, tmp_path / "split.json")
    finally:
        backend.close()
    assert out["n"] == 1 and out["photos"] == ["a_1.jpg"] and out["skipped"]["not_held_out"] == 1
    assert np.isfinite(out["quad_centre"]["mean"]) and 0 <= out["roll_deg"]["mean"] <= 180


def test_bad_input_names_the_file_or_key(setup, tmp_path):
    root, ckpt = setup
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        sh.ship(tmp_path / "missing.pt", root, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="must start with the category"):
        sh.ship(ckpt, root, name="hat_x", out_dir=tmp_path, progress=False)
