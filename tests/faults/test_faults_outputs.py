"""Fault battery: reports and datasets written into folders that refuse them, and over
earlier files (``tryon bench``, ``tryon make-dataset``)."""

from __future__ import annotations

import pytest
from faultkit import run_tryon

pytest.importorskip("torch")


def test_bench_checks_its_output_folder_before_benchmarking(read_only_dir, tiny_glasses):
    """Before: the whole benchmark ran, then a raw error named a temporary file, not the report."""
    out = read_only_dir / "bench.json"
    res = run_tryon(["bench", "--checkpoint", tiny_glasses, "--frames", "2", "--warmup", "0", "--no-naive",
                     "--async-seconds", "0", "--resolution", "320x240", "--json", out], no_write_override=True)
    assert res.rc != 0
    assert f"folder {read_only_dir} is not writable" in res.err, res.err
    assert ".tmp" not in res.err and "p50" not in res.out  # refused before measuring anything


def test_bench_report_over_an_earlier_one_warns(tmp_path, tiny_glasses, caplog):
    from realtime.bench.cli import main as bench_main

    out = tmp_path / "bench.json"
    out.write_text("{}")
    assert bench_main(["--checkpoint", str(tiny_glasses), "--frames", "1", "--warmup", "0", "--no-naive",
                       "--async-seconds", "0", "--resolution", "320x240", "--json", str(out), "--threads", "1"]) == 0
    assert f"{out} exists: it is replaced" in caplog.text


def test_make_dataset_refuses_to_mix_settings_into_an_earlier_dataset(tmp_path, capsys):
    """Before: a rerun with another --size or --seed kept the earlier samples ("already present")
    and added new ones: 64 px and 32 px images mixed in one dataset, without a word."""
    from training.make_dataset import main as make_main

    out = tmp_path / "ds"
    base = ["synthetic", "--category", "glasses", "--out", str(out), "--no-progress"]
    assert make_main([*base, "--n", "2", "--size", "48"]) == 0
    with pytest.raises(ValueError, match=r"made with size=48; this run asks size=32"):
        make_main([*base, "--n", "4", "--size", "32"])
    with pytest.raises(ValueError, match=r"seed=0; this run asks seed=5"):
        make_main([*base, "--n", "4", "--size", "48", "--seed", "5"])
    assert make_main([*base, "--n", "3", "--size", "48"]) == 0  # same settings: resumed / extended
