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
from training.strat import DATASET_JSON, StratDataset, StratFormatError  # noqa: E402
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


class _TopCornersOnly:
    """A backend stand-in whose heatmaps see only the two top corners (a tie's lower corners in padding)."""

    def __init__(self, pts_xy: np.ndarray, size: int) -> None:
        from types import SimpleNamespace

        from realtime.codec import HeatmapCodec
        from realtime.config import CodecConfig

        codec = CodecConfig(radius=6.0, complete_below=0.3)
        self.info = SimpleNamespace(input_size=size, config=SimpleNamespace(codec=codec))
        hm = HeatmapCodec(codec).encode(pts_xy, (size, size))
        hm[2:] = 0.1  # flat: no position
        self.heatmaps = hm[None]

    def set_foreground(self, fg) -> None:
        pass

    def infer(self, bg) -> np.ndarray:
        return self.heatmaps


def test_weak_corners_are_completed_at_the_accessory_s_own_aspect():
    """A tall accessory (20 x 80 px) stretched to the 64 px square: completing its lower corners
    from the squashed box would give a quad as long as it is wide (the necktie "stub")."""
    from realtime.codec import HeatmapCodec

    fg_wh = (20, 80)
    init_own = np.array([[0, 0], [19, 0], [19, 79], [0, 79]], np.float64)
    from realtime.geometry import resize_matrix, warp_points

    init_net = warp_points(resize_matrix(fg_wh, (SIZE, SIZE)), init_own)
    truth = np.array([[28, 4], [33, 4], [33, 24], [28, 24]], np.float64)  # 4 : 1 like the accessory
    sample = {"foreground": np.zeros((SIZE, SIZE, 4), np.uint8), "background": np.zeros((SIZE, SIZE, 3), np.uint8),
              "init_vertex": init_net.astype(np.float32), "fg_size_wh": fg_wh}
    np.testing.assert_allclose(ev.accessory_shape_quad(sample), init_own, atol=1e-6)
    be = _TopCornersOnly(truth, SIZE)
    pred, _ = ev.predict_vertices(be, HeatmapCodec(be.info.config.codec), sample)
    length = np.linalg.norm(pred[2:].mean(0) - pred[:2].mean(0))
    width = np.linalg.norm(pred[1] - pred[0])
    assert length / width == pytest.approx(80 / 20, rel=0.1)
    np.testing.assert_allclose(pred, truth, atol=1.0)
    # Without the original size (old callers), the network-size box is the shape.
    del sample["fg_size_wh"]
    np.testing.assert_allclose(ev.accessory_shape_quad(sample), init_net, atol=1e-6)


def test_metrics_by_kind_from_the_builder_s_samples_json(setup, tmp_path, capsys):
    root, ckpt = setup
    data = tmp_path / "kinds"
    shutil.copytree(root, data)
    ids = StratDataset(data / "test").ids
    kinds = {sid: {"kind": "necktie" if i % 2 else "bow_tie", "split": "test"} for i, sid in enumerate(ids)}
    (data / "samples.json").write_text(json.dumps(kinds))
    assert ev.sample_kinds(data / "test") == {k: v["kind"] for k, v in kinds.items()}
    assert ev.main(["--checkpoint", str(ckpt), "--data", str(data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by_kind = out["by_kind"]
    assert set(by_kind) == {"bow_tie", "necktie"}
    assert sum(r["n"] for r in by_kind.values()) == out["n"]
    assert by_kind["necktie"]["mean_quad"]["n"] == by_kind["necktie"]["n"]
    assert by_kind["bow_tie"]["length_ratio_median"] > 0
    assert ev.main(["--checkpoint", str(ckpt), "--data", str(data)]) == 0
    assert "length pred / label" in capsys.readouterr().out
    # Without samples.json there is no breakdown.
    assert ev.sample_kinds(root / "test") == {}
    (data / "samples.json").write_text("[1]")
    with pytest.raises(StratFormatError, match="samples.json"):
        ev.sample_kinds(data / "test")


def test_length_ratio_is_knot_to_tip():
    gt = np.array([[0, 0], [10, 0], [10, 40], [0, 40]], np.float64)
    assert ev.length_ratio(gt, gt) == pytest.approx(1.0)
    assert ev.length_ratio(gt * [1, 0.25], gt) == pytest.approx(0.25)
