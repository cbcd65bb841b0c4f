"""Synthetic STRAT data: determinism, shapes and counts, accessory actually composited inside
the final quad, parsing classes, resumability, and the ``make-dataset`` CLI."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest

from realtime.config import BODY_CLASSES, FACE_CLASSES
from realtime.geometry import homography_from_quads, warp_mask
from training.make_dataset import main as make_dataset_main
from training.strat import StratDataset
from training.synthetic import make_synthetic, render_sample, sample_rng

FACE = {n: i for i, n in enumerate(FACE_CLASSES)}
BODY = {n: i for i, n in enumerate(BODY_CLASSES)}
SIZES = {"glasses": 96, "hat": 96, "tie": 160}  # small for speed; geometry is size-relative


def test_render_is_deterministic_by_seed():
    a = render_sample("glasses", 96, sample_rng(3, "glasses", "train", 5))
    b = render_sample("glasses", 96, sample_rng(3, "glasses", "train", 5))
    c = render_sample("glasses", 96, sample_rng(4, "glasses", "train", 5))
    for key in ("background", "foreground", "init_vertex", "final_vertex", "parsing", "composite"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert a.background.shape != c.background.shape or np.any(a.background != c.background)
    assert not np.allclose(a.final_vertex, c.final_vertex)


@pytest.mark.parametrize("category", ["glasses", "hat", "tie"])
def test_sample_geometry_and_composite(category):
    size = SIZES[category]
    for i in range(4):
        smp = render_sample(category, size, sample_rng(0, category, "train", i))
        assert smp.background.shape == (size, size, 3) and smp.background.dtype == np.uint8
        assert smp.parsing.shape == (size, size) and smp.composite.shape == (size, size, 3)
        assert smp.foreground.ndim == 3 and smp.foreground.shape[2] == 4
        assert np.all(smp.final_vertex >= 0) and np.all(smp.final_vertex <= size - 1)
        # init = the tight alpha box of the foreground (TL, TR, BR, BL)
        ys, xs = np.nonzero(smp.foreground[..., 3] > 8)
        np.testing.assert_allclose(smp.init_vertex[[0, 2]], [[xs.min(), ys.min()], [xs.max(), ys.max()]])
        # The accessory really is composited inside the final quad, and nowhere else.
        alpha = warp_mask(homography_from_quads(smp.init_vertex, smp.final_vertex), smp.foreground[..., 3],
                          (size, size))
        diff = np.abs(smp.composite.astype(int) - smp.background).sum(axis=2)
        inside = alpha > 0.5
        assert inside.sum() > 20, "accessory footprint too small to see"
        assert diff[inside].mean() > 30
        assert diff[alpha == 0].max() == 0


@pytest.mark.parametrize("category", ["glasses", "hat"])
def test_face_parsing_classes(category):
    always = {FACE[c] for c in ("background", "skin", "eyes", "eyebrows", "nose", "mouth")}
    union: set[int] = set()
    for i in range(6):
        smp = render_sample(category, 128, sample_rng(1, category, "train", i))
        found = set(np.unique(smp.parsing).tolist())
        union |= found
        assert always <= found, f"missing {sorted(always - found)}"
        assert found <= set(range(len(FACE_CLASSES)))
        assert FACE["hat"] not in found  # the background is the person WITHOUT the accessory
        if category == "glasses":
            assert FACE["glasses"] not in found
    # Neck and clothing may be cropped off a close-up, hair absent on a bald head, but not always.
    assert {FACE["hair"], FACE["neck"], FACE["clothing"], FACE["ears"]} <= union


def test_body_parsing_classes():
    for i in range(3):
        found = set(np.unique(render_sample("tie", 160, sample_rng(1, "tie", "train", i)).parsing).tolist())
        assert {BODY["background"], BODY["head"], BODY["upper"]} <= found
        assert found <= set(range(len(BODY_CLASSES)))


def test_make_synthetic_writes_a_readable_resumable_split(tmp_path):
    split = make_synthetic("hat", 3, 64, tmp_path / "a", seed=2, progress=False)
    assert split == tmp_path / "a" / "train"
    make_synthetic("hat", 5, 64, tmp_path / "a", seed=2, progress=False)  # resumes: 2 more
    make_synthetic("hat", 5, 64, tmp_path / "b", seed=2, progress=False)  # in one go
    params_a = json.loads((tmp_path / "a" / "train" / "trans_params.json").read_text())
    params_b = json.loads((tmp_path / "b" / "train" / "trans_params.json").read_text())
    assert params_a == params_b and len(params_a) == 5
    ds = StratDataset(split)
    assert ds.category == "hat" and ds.size == 224 and ds.label_table == "tryon-v1" and len(ds) == 5
    assert ds.meta["generator"]["name"] == "training.synthetic"
    smp = ds[4]
    assert smp["background"].shape == (224, 224, 3) and smp["foreground"].shape == (224, 224, 4)
    assert smp["parsing"].max() < len(FACE_CLASSES)  # supervised everywhere
    assert (split / "composite" / "train_000004.jpg").is_file()


def test_cli_synthetic_writes_train_and_test(tmp_path, capsys):
    rc = make_dataset_main(["synthetic", "--category", "glasses", "--n", "5", "--size", "64", "--seed", "1",
                            "--test-fraction", "0.4", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    assert "3 train + 2 test" in capsys.readouterr().out
    train = StratDataset(tmp_path, split="train", size=64)
    test = StratDataset(tmp_path, split="test", size=64)
    assert (len(train), len(test)) == (3, 2)
    assert train[0]["final_vertex"].shape == (4, 2)
    with pytest.raises(ValueError, match="test-fraction"):
        make_dataset_main(["synthetic", "--category", "tie", "--n", "2", "--test-fraction", "1.5",
                           "--out", str(tmp_path / "x")])


def test_cli_pseudo_strat_delegates_or_explains(tmp_path, monkeypatch):
    photos, accs = tmp_path / "photos", tmp_path / "accs"
    photos.mkdir()
    accs.mkdir()
    argv = ["pseudo-strat", "--photos", str(photos), "--accessories", str(accs), "--category", "hat",
            "--out", str(tmp_path / "out"), "--per-photo", "2", "--limit", "7"]
    monkeypatch.setitem(sys.modules, "training.pseudo_strat", None)  # as if the module did not exist
    with pytest.raises(RuntimeError, match="pseudo_strat.py is not part of this installation"):
        make_dataset_main(argv)
    seen = {}
    fake = types.ModuleType("training.pseudo_strat")
    fake.main_build = lambda args: seen.update(vars(args)) or 0
    monkeypatch.setitem(sys.modules, "training.pseudo_strat", fake)
    assert make_dataset_main(argv) == 0
    assert seen["per_photo"] == 2 and seen["limit"] == 7 and seen["category"] == "hat"
    assert seen["photos"] == [photos] and seen["teacher_cache"] is None
    with pytest.raises(FileNotFoundError, match="nope"):
        make_dataset_main([*argv[:2], str(tmp_path / "nope"), *argv[3:]])
