"""Evaluation: the --json contract, the Table-1 markdown, baselines, figures, bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realtime.checkpoint import save_checkpoint  # noqa: E402
from realtime.config import model_preset  # noqa: E402
from realtime.errors import BackendError  # noqa: E402
from realtime.model import TryOnNet  # noqa: E402
from training import evaluate as ev  # noqa: E402
from training.strat import DATASET_JSON, StratDataset  # noqa: E402
from training.synthetic import make_synthetic  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset root with train/ and test/, random-init tiny checkpoint at 64 px)."""
    root = tmp_path_factory.mktemp("evaldata")
    make_synthetic("glasses", 6, SIZE, root, seed=1, split="train", progress=False)
    make_synthetic("glasses", 5, SIZE, root, seed=1, split="test", progress=False)
    cfg = model_preset("tiny", "glasses")
    cfg.input_size = SIZE
    torch.manual_seed(0)
    ckpt = root / "model.pt"
    save_checkpoint(ckpt, TryOnNet(cfg).state_dict(), cfg, meta={"epoch": 0})
    return root, ckpt


def test_json_has_the_documented_keys_and_sane_values(setup, capsys):
    root, ckpt = setup
    assert ev.main(["--checkpoint", str(ckpt), "--data", str(root), "--json", "--limit", "3"]) == 0
    out = json.loads(capsys.readouterr().out)  # exactly one JSON object on stdout
    for key in ("lssim", "iou", "disp", "n", "category", "backend", "baselines"):
        assert key in out, key
    assert out["n"] == 3 and out["category"] == "glasses" and out["backend"] == "torch"
    assert -1.0 <= out["lssim"] <= 1.0 and 0.0 <= out["iou"] <= 1.0 and 0.0 <= out["disp"] <= np.sqrt(2)
    mean = out["baselines"]["mean quad"]
    assert mean["n"] == 3 and 0.0 <= mean["iou"] <= 1.0
    assert "teacher" not in out["baselines"]  # synthetic data: no teacher
    assert out["paper"]["Ours"] == {"lssim": 0.7038, "iou": 0.7814, "disp": 0.0122}


def test_mean_quad_baseline_is_the_training_mean(setup):
    root, _ = setup
    train = StratDataset(root, "glasses", SIZE, split="train")
    expected = np.mean([(train[i]["final_vertex"] + 0.5) / SIZE for i in range(len(train))], axis=0)
    np.testing.assert_allclose(ev.mean_quad_norm(train), expected, atol=1e-6)
    np.testing.assert_allclose(ev.mean_quad_pixels(expected, SIZE), expected * SIZE - 0.5)


def test_markdown_table_and_figures(setup, tmp_path, capsys):
    root, ckpt = setup
    figs = tmp_path / "figs"
    assert ev.main(["--checkpoint", str(ckpt), "--data", str(root), "--limit", "2", "--figures", str(figs),
                    "--set", "box=gt"]) == 0
    text = capsys.readouterr().out  # the terminal gets aligned columns, not Markdown pipes
    assert re.search(r"^paper: Ours +STRAT-glasses +1000 +0\.7038 +0\.7814 +0\.0122$", text, re.M), text
    assert "**this model** (torch, fp32)" in text and re.search(r"^mean quad ", text, re.M)
    assert "|---" not in text
    names = sorted(p.name for p in figs.iterdir())
    assert names[0] == "fig3_composites.png" and len(names) == 3  # grid + 2 heatmap panels
    import cv2

    grid = cv2.imread(str(figs / "fig3_composites.png"))
    assert grid is not None and grid.shape[1] == 4 * SIZE


def test_teacher_row_when_dataset_json_names_a_teacher(setup, tmp_path):
    root, ckpt = setup
    pseudo = tmp_path / "pseudo"
    shutil.copytree(root / "test", pseudo / "test")
    meta_path = pseudo / "test" / DATASET_JSON
    meta = json.loads(meta_path.read_text())
    meta["generator"] = {"name": "training.pseudo_strat", "jitter": {"crop_shift": 0.06},  # framing, not noise
                         "teacher": {"name": "mediapipe", "version": "0.10.21", "landmark_jitter_px": 1.5}}
    meta_path.write_text(json.dumps(meta))
    report = ev.evaluate(ckpt, pseudo, limit=2, progress=False)
    assert report.baselines["teacher"]["lssim"] == 1.0 and report.baselines["teacher"]["disp"] == 0.0
    assert "mean quad" not in report.baselines  # no train split and none stored in the checkpoint
    assert any("landmark_jitter_px = 1.5" in n for n in report.notes)
    assert not any("crop_shift" in n for n in report.notes)
    assert "| teacher |" in report.to_markdown() and "mediapipe 0.10.21" in report.to_markdown()


def test_bad_metric_option_names_the_key(setup):
    root, ckpt = setup
    with pytest.raises(ValueError, match="alpha_treshold"):
        ev.main(["--checkpoint", str(ckpt), "--data", str(root), "--set", "alpha_treshold=0.3"])


def test_backend_that_cannot_read_the_artifact_is_refused(setup):
    root, ckpt = setup
    with pytest.raises(BackendError, match="tryon export"):
        ev.evaluate(ckpt, root, backend="onnxruntime", limit=1, progress=False)


def test_model_and_data_of_different_categories_are_refused(setup, tmp_path):
    _, ckpt = setup
    make_synthetic("hat", 2, SIZE, tmp_path, seed=0, split="test", progress=False)
    with pytest.raises(ValueError, match="hat"):
        ev.evaluate(ckpt, tmp_path, limit=1, progress=False)


def test_onnxruntime_backend_scores_like_torch(setup, tmp_path):
    """The evaluator only uses the Backend contract: an exported graph scores the same."""
    pytest.importorskip("onnxruntime")
    export = pytest.importorskip("engine_build.export")
    from realtime.checkpoint import load_model

    root, ckpt = setup
    net, _, _ = load_model(ckpt)
    _, frame_path, _ = export.export_graphs(net, tmp_path, fp16=False)
    via_torch = ev.evaluate(ckpt, root, limit=3, progress=False)
    via_ort = ev.evaluate(frame_path, root, backend="onnxruntime", limit=3, progress=False)
    assert via_ort.backend == "onnxruntime" and via_ort.metrics.n == 3
    assert via_ort.metrics.disp == pytest.approx(via_torch.metrics.disp, abs=1e-3)
    assert via_ort.metrics.iou == pytest.approx(via_torch.metrics.iou, abs=0.02)
