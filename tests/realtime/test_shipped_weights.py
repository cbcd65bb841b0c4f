"""The models shipped in realtime/weights/: one per category, fp16, within the size budget,
each with its model card and result grid, and what the default resolver serves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime.backends.resolver import WEIGHTS_DIR, shipped_artifacts
from realtime.config import CATEGORIES

torch = pytest.importorskip("torch")

#: Issue 8: all shipped weights together.
BUDGET_BYTES = 60_000_000


def _shipped() -> dict[str, list]:
    return {c: shipped_artifacts(c)["torch"] for c in CATEGORIES}


def test_one_checkpoint_per_category_within_the_budget():
    shipped = _shipped()
    for cat, paths in shipped.items():
        assert len(paths) == 1, f"{cat}: expected one shipped checkpoint in {WEIGHTS_DIR}, found {paths}"
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir() if p.suffix in (".pt", ".pth", ".onnx", ".engine"))
    assert total <= BUDGET_BYTES, f"shipped weights {total / 1e6:.1f} MB > {BUDGET_BYTES / 1e6:.0f} MB"


@pytest.mark.parametrize("category", CATEGORIES)
def test_shipped_checkpoint_is_fp16_with_its_card_and_grid(category):
    (path,) = _shipped()[category]
    stored = torch.load(path, map_location="cpu", weights_only=False)
    assert stored["model_config"]["category"] == category and "train_state" not in stored
    assert all(v.dtype == torch.float16 for v in stored["model"].values() if v.is_floating_point())
    card = path.with_suffix(".md").read_text()
    assert "research and demonstration use" in card and "| mean quad |" in card
    assert path.with_name(path.stem + "_grid.png").is_file()
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["sha256"] in card
    ev = report["eval"]
    assert f"| **{path.stem}** | {ev['lssim']:.4f} | {ev['iou']:.4f} | {ev['disp']:.4f} |" in card
    # better than the mean-quad baseline on every metric (issue 8)
    base = report["baselines"]["mean quad"]
    assert ev["iou"] > base["iou"] and ev["disp"] < base["disp"]


@pytest.mark.parametrize("category", CATEGORIES)
def test_default_resolver_serves_the_shipped_model(category):
    from realtime.backends.resolver import ModelResolver
    from realtime.preprocess import foreground_input

    resolver = ModelResolver("torch", threads=1)
    try:
        backend = resolver(category)
        assert not resolver.untrained(category)
        size = backend.info.input_size
        fg, _ = foreground_input(np.zeros((64, 64, 4), np.uint8), size)
        backend.set_foreground(fg)
        heatmaps = backend.infer(np.zeros((1, 3, size, size), np.float32))
        assert heatmaps.shape == (1, 4, size, size) and np.all(np.isfinite(heatmaps))
    finally:
        resolver.close()
