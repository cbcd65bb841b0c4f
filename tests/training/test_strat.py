"""STRAT format: original-layout reading, writer -> reader round trip, vertex scaling,
corner canonicalisation, label remapping, and one failure test per malformed case."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.codec import canonical_corner_order
from realtime.config import FACE_CLASSES, IGNORE_INDEX
from realtime.geometry import homography_from_quads, resize_matrix, warp_mask, warp_points
from training.strat import (LABEL_TABLES, StratDataset, StratFormatError, StratWriter, composite_sample, label_lut,
                            read_split, resolve_split_dir, scan_split)

FACE = {n: i for i, n in enumerate(FACE_CLASSES)}
INIT = np.array([[10.0, 8.0], [49.0, 8.0], [49.0, 21.0], [10.0, 21.0]])  # in a 60x30 foreground


def _imwrite(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def _imwrite_rgb(path: Path, rgb: np.ndarray) -> None:
    _imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _final(k: int) -> np.ndarray:
    return np.array([[30.0, 40.0], [90.0, 36.0], [92.0, 60.0], [31.0, 64.0]]) + k


def _write_original_strat(root: Path, n: int = 3) -> Path:
    """Mimic an original STRAT split: RGB fg + foreground_mask, flat vertices, raw parsing ids."""
    split = root / "face_glasses" / "train"
    rng = np.random.default_rng(0)
    params = {}
    for k in range(n):
        sid = f"{k:04d}"
        _imwrite_rgb(split / "background" / f"{sid}.jpg", rng.integers(0, 255, (100, 120, 3), dtype=np.uint8))
        _imwrite_rgb(split / "foreground" / f"{sid}.png", np.full((30, 60, 3), 40 * k, np.uint8))
        mask = np.zeros((30, 60), np.uint8)
        mask[8:22, 10:50] = 255
        _imwrite(split / "foreground_mask" / f"{sid}.png", mask)
        params[sid] = {"init_vertex": INIT.reshape(-1).tolist(), "final_vertex": _final(k).reshape(-1).tolist(),
                       "trans_matrix": homography_from_quads(INIT, _final(k)).tolist()}
    # A raw CelebAMask-HQ-style parsing map for sample 0 only: skin (1), hair (17), an unknown id (99).
    raw = np.zeros((100, 120), np.uint8)
    raw[20:80, 30:90] = 1
    raw[:20, 30:90] = 17
    raw[90:, :] = 99
    _imwrite(split / "background_mask" / "0000.png", raw)
    (split / "trans_params.json").write_text(json.dumps(params))
    return split


def test_reads_original_strat_layout(tmp_path):
    split = _write_original_strat(tmp_path)
    assert resolve_split_dir(tmp_path, "train", "glasses") == split
    records = read_split(tmp_path, "glasses", split="train")
    assert [r.id for r in records] == ["0000", "0001", "0002"]
    np.testing.assert_allclose(records[1].final_vertex, _final(1))
    assert records[0].parsing_path is not None and records[1].parsing_path is None

    ds = StratDataset(split)  # category from the folder name, label table defaults to strat-guess
    assert ds.category == "glasses" and ds.size == 224 and ds.label_table == "strat-guess" and len(ds) == 3
    smp = ds[0]
    assert smp["background"].shape == (224, 224, 3) and smp["foreground"].shape == (224, 224, 4)
    assert smp["bg_size_wh"] == (120, 100) and smp["fg_size_wh"] == (60, 30)
    alpha = smp["foreground"][..., 3]
    assert alpha[0, 0] == 0 and alpha[112, 112] == 255  # alpha from foreground_mask/
    parsing = smp["parsing"]
    assert parsing[112, 112] == FACE["skin"] and parsing[10, 112] == FACE["hair"]
    assert parsing[220, 5] == IGNORE_INDEX  # unknown raw id 99
    assert parsing[112, 5] == FACE["background"]
    # Nearest-neighbour resize: no in-between ids at class borders.
    assert set(np.unique(parsing).tolist()) == {FACE["background"], FACE["skin"], FACE["hair"], IGNORE_INDEX}
    assert np.all(ds[1]["parsing"] == IGNORE_INDEX)  # no background_mask file


def test_writer_reader_round_trip(tmp_path, rng):
    bg = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    bg = cv2.GaussianBlur(bg, (0, 0), 2)  # smooth: JPEG keeps it within a few levels
    fg = np.zeros((30, 60, 4), np.uint8)
    fg[8:22, 10:50] = (200, 30, 60, 255)
    parsing = np.zeros((96, 96), np.uint8)
    parsing[30:70, 20:80] = FACE["skin"]
    parsing[40:45, 30:40] = FACE["eyes"]
    with StratWriter(tmp_path / "train", "glasses", generator_info={"name": "test"}) as w:
        for k in range(2):
            w.add(f"s{k}", bg, fg, INIT, _final(k), parsing=parsing, composite_rgb=bg)
    meta = json.loads((tmp_path / "train" / "dataset.json").read_text())
    assert meta["format"] == "strat" and meta["category"] == "glasses" and meta["label_table"] == "tryon-v1"
    assert meta["classes"] == list(FACE_CLASSES) and meta["ignore_index"] == IGNORE_INDEX
    assert meta["generator"] == {"name": "test"} and meta["count"] == 2
    params = json.loads((tmp_path / "train" / "trans_params.json").read_text())
    np.testing.assert_allclose(params["s1"]["trans_matrix"], homography_from_quads(INIT, _final(1)), atol=1e-9)

    ds = StratDataset(tmp_path, split="train", size=96)
    assert ds.label_table == "tryon-v1" and ds.ids == ["s0", "s1"]
    smp = ds[1]
    np.testing.assert_allclose(smp["final_vertex"], _final(1), atol=1e-5)  # bg already 96 px: identity
    np.testing.assert_allclose(smp["init_vertex"], warp_points(resize_matrix((60, 30), (96, 96)), INIT), atol=1e-5)
    assert smp["init_vertex"].dtype == np.float32
    assert np.abs(smp["background"].astype(int) - bg).max() <= 12  # JPEG quality 95
    np.testing.assert_array_equal(smp["parsing"], parsing)
    np.testing.assert_array_equal(StratDataset(tmp_path / "train", size=96).load(ds.records[0])["foreground"],
                                  cv2.resize(fg, (96, 96), interpolation=cv2.INTER_LINEAR))
    assert (tmp_path / "train" / "composite" / "s0.jpg").is_file()


def test_writer_resumes_and_refuses_other_category(tmp_path):
    bg = np.zeros((80, 100, 3), np.uint8)
    fg = np.full((30, 60, 4), 255, np.uint8)
    with StratWriter(tmp_path, "hat") as w:
        w.add("a", bg, fg, INIT, _final(0))
    with StratWriter(tmp_path, "hat") as w:
        assert "a" in w and len(w) == 1
        w.add("b", bg, fg, INIT, _final(1))
    assert [r.id for r in read_split(tmp_path)] == ["a", "b"]
    with pytest.raises(ValueError, match="hat"):
        StratWriter(tmp_path, "tie")
    with pytest.raises(ValueError, match="sample id"):
        StratWriter(tmp_path / "x", "hat").add("../evil", bg, fg, INIT, _final(0))


def test_vertex_scaling_matches_resized_pixels(tmp_path):
    """A disc drawn at a vertex in the original image lands on the scaled vertex after resizing."""
    bg = np.zeros((320, 400, 3), np.uint8)  # resized to 80: exact 5x / 4x box averages
    final = np.array([[250.0, 100.0], [350.0, 110.0], [340.0, 300.0], [240.0, 290.0]])
    cv2.circle(bg, (250, 100), 10, (255, 255, 255), -1)
    fg = np.zeros((160, 240, 4), np.uint8)
    fg[..., 3] = 255
    init = np.array([[40.0, 30.0], [200.0, 30.0], [200.0, 130.0], [40.0, 130.0]])
    cv2.circle(fg, (200, 130), 8, (255, 255, 255, 255), -1)  # at the BR corner
    with StratWriter(tmp_path, "glasses") as w:
        w.add("dot", bg, fg, init, final)
    smp = StratDataset(tmp_path, size=80)[0]

    def centroid(gray: np.ndarray) -> np.ndarray:
        g = gray.astype(np.float64)
        yy, xx = np.mgrid[0:g.shape[0], 0:g.shape[1]]
        return np.array([(g * xx).sum(), (g * yy).sum()]) / g.sum()

    bg_dot = centroid(np.where(smp["background"][..., 0] > 20, smp["background"][..., 0], 0))
    np.testing.assert_allclose(bg_dot, smp["final_vertex"][0], atol=0.1)  # TL after canonical order
    np.testing.assert_allclose(smp["final_vertex"][0], [(250 + 0.5) / 5 - 0.5, (100 + 0.5) / 4 - 0.5], atol=1e-5)
    fg_dot = centroid(smp["foreground"][..., 0])
    np.testing.assert_allclose(fg_dot, smp["init_vertex"][2], atol=0.1)


def test_shuffled_corners_are_canonicalised_in_pairs(tmp_path):
    fg = np.full((30, 60, 4), 255, np.uint8)
    _imwrite_rgb(tmp_path / "background" / "r.jpg", np.zeros((200, 200, 3), np.uint8))
    _imwrite(tmp_path / "foreground" / "r.png", fg)
    # Final = init rotated by 50 degrees: ordering the final quad on its own would start at another corner.
    th = np.deg2rad(50)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    final = (INIT - INIT.mean(0)) @ rot.T * 2 + [100, 100]
    assert not np.allclose(canonical_corner_order(final), final)  # the test would be vacuous otherwise
    perm = [2, 0, 3, 1]
    (tmp_path / "trans_params.json").write_text(json.dumps({"r": {
        "init_vertex": INIT[perm].reshape(-1).tolist(), "final_vertex": final[perm].tolist()}}))
    rec = read_split(tmp_path)[0]
    np.testing.assert_allclose(rec.init_vertex, INIT)
    np.testing.assert_allclose(rec.final_vertex, final)  # paired with init, not re-sorted
    assert rec.trans_matrix is None


def _good_split(tmp_path: Path, n: int = 4) -> Path:
    bg = np.zeros((64, 64, 3), np.uint8)
    fg = np.full((30, 60, 4), 255, np.uint8)
    with StratWriter(tmp_path, "glasses") as w:
        for k in range(n):
            w.add(f"s{k}", bg, fg, INIT, _final(0) * 0.5)
    return tmp_path


def _edit_params(split: Path, fn) -> None:
    path = split / "trans_params.json"
    params = json.loads(path.read_text())
    fn(params)
    path.write_text(json.dumps(params))


@pytest.mark.parametrize("case, pattern", [
    ("missing_file", r"background: no image file for sample 's1'"),
    ("missing_key", r"trans_params\.json: sample 's1': missing key 'final_vertex'"),
    ("three_vertices", r"trans_params\.json: sample 's1': key 'init_vertex' must hold 4 points"),
    ("nan", r"trans_params\.json: sample 's1': key 'final_vertex' has non-finite"),
    ("bad_matrix", r"trans_params\.json: sample 's1': key 'trans_matrix' must be a 3x3"),
])
def test_malformed_split_raises_naming_file_and_key(tmp_path, case, pattern):
    split = _good_split(tmp_path)
    if case == "missing_file":
        (split / "background" / "s1.jpg").unlink()
    elif case == "missing_key":
        _edit_params(split, lambda p: p["s1"].pop("final_vertex"))
    elif case == "three_vertices":
        _edit_params(split, lambda p: p["s1"].update(init_vertex=p["s1"]["init_vertex"][:3]))
    elif case == "nan":
        _edit_params(split, lambda p: p["s1"]["final_vertex"][2].__setitem__(0, float("nan")))
    elif case == "bad_matrix":
        _edit_params(split, lambda p: p["s1"].update(trans_matrix=[1, 0, 0]))
    with pytest.raises(StratFormatError, match=pattern):
        StratDataset(split)


def test_unreadable_image_names_the_file(tmp_path):
    split = _good_split(tmp_path)
    (split / "background" / "s2.jpg").write_bytes(b"not a jpeg")
    ds = StratDataset(split)
    with pytest.raises(StratFormatError, match=r"s2\.jpg: cannot read image"):
        ds[2]


def test_rgb_foreground_without_mask_is_an_error(tmp_path):
    split = _good_split(tmp_path, 1)
    _imwrite_rgb(split / "foreground" / "s0.png", np.zeros((30, 60, 3), np.uint8))
    with pytest.raises(StratFormatError, match=r"s0\.png: foreground has no alpha channel"):
        StratDataset(split)[0]


def test_skip_bad_skips_and_counts(tmp_path, caplog):
    split = _good_split(tmp_path)
    _edit_params(split, lambda p: p["s0"].pop("init_vertex"))
    (split / "foreground" / "s3.png").unlink()
    with caplog.at_level(logging.WARNING, logger="training.strat"):
        ds = StratDataset(split, skip_bad=True)
    assert ds.ids == ["s1", "s2"]
    assert [sid for sid, _ in ds.skipped] == ["s0", "s3"]
    assert "skipped 2 of 4" in caplog.text
    with pytest.raises(StratFormatError):
        scan_split(split)


def test_layout_resolution_and_errors(tmp_path):
    split = _good_split(tmp_path / "glasses" / "test", 1)
    assert resolve_split_dir(split) == split
    assert resolve_split_dir(tmp_path / "glasses", "test") == split
    assert resolve_split_dir(tmp_path, "test", "glasses") == split
    with pytest.raises(StratFormatError, match="no trans_params.json found"):
        resolve_split_dir(tmp_path, "train", "glasses")
    with pytest.raises(FileNotFoundError):
        resolve_split_dir(tmp_path / "nope")
    with pytest.raises(StratFormatError, match="'glasses', but 'hat' was requested"):
        StratDataset(split, category="hat")


def test_label_tables():
    assert set(LABEL_TABLES) >= {"tryon-v1", "strat-guess"}
    ident = label_lut("tryon-v1", "glasses")
    assert ident[:12].tolist() == list(range(12)) and ident[12] == IGNORE_INDEX and ident[255] == IGNORE_INDEX
    body = label_lut("strat-guess", "tie")
    assert body[16] == 7 and body[11] == 1 and body[200] == IGNORE_INDEX  # ATR bag -> bags, face -> head
    with pytest.raises(ValueError, match="unknown label table"):
        label_lut("nope", "hat")
    with pytest.raises(ValueError, match="no body classes"):
        label_lut("celebamask19", "tie")


def test_composite_sample_changes_only_the_warped_footprint(rng):
    bg = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    fg = np.zeros((30, 60, 4), np.uint8)
    fg[8:22, 10:50] = (255, 0, 0, 255)
    out = composite_sample(bg, fg, INIT, _final(0))
    mask = warp_mask(homography_from_quads(INIT, _final(0)), fg[..., 3], (120, 100))
    assert np.abs(out[mask > 0.99].astype(int) - (255, 0, 0)).max() <= 3
    np.testing.assert_array_equal(out[mask == 0], bg[mask == 0])
