"""``tryon bench``: report structure, the naive variants, the soak (no timed assertions)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from realtime.backends.base import Backend, ModelInfo
from realtime.bench import cli, latency, soak
from realtime.bench import report as bench_report
from realtime.codec import HeatmapCodec
from realtime.config import ModelConfig
from realtime.live.render import Compositor
from realtime.procedural import bundled_accessories

torch = pytest.importorskip("torch")


def _check_summary(s: dict) -> None:
    assert s["n"] > 0
    assert s["p50"] <= s["p95"] <= s["p99"]


def test_bench_report_structure(tiny_resolver, tmp_path):
    settings = latency.BenchSettings(frames=4, warmup=1, async_seconds=0.5)
    report = latency.run_bench(tiny_resolver, ["glasses"], [(320, 240)], settings, threads=1)
    for key in ("cpu", "cores", "gpu", "python", "torch"):
        assert key in report["hardware"]
    assert report["native"]["reason"]
    (run,) = report["runs"]
    assert run["resolution"] == "320x240" and run["model"]["untrained"]
    assert run["placement"].startswith("canonical")  # untrained weights: the canonical quad is drawn
    for variant in ("optimised", "naive"):
        stages = run[variant]["stages"]
        for stage in (*latency.BENCH_STAGES, "end_to_end", "encode"):
            _check_summary(stages[stage])
        assert run[variant]["drawn_frac"] > 0 and run[variant]["fps"] > 0
    for stage in (*latency.BENCH_STAGES, "end_to_end", "fps"):
        assert np.isfinite(run["ratios"][stage]) and run["ratios"][stage] > 0
    _check_summary(run["encode_fg"])
    a = run["async"]
    assert a["frames_shown"] > 0 and a["inferences"] > 0 and a["display_fps"] > 0 and a["inference_hz"] > 0
    markdown = latency.to_markdown(report)
    for stage in (*latency.BENCH_STAGES, "end_to_end"):
        assert f"| {stage} |" in markdown
    budget = run["optimised"]["inference"]
    assert 0 < budget["infer_share"] < 1 and 0 < budget["ran_frac"] <= 1 and "Inference alone (on " in markdown
    b = latency.inference_budget([0.0, 30.0, 10.0, 0.0], [5.0, 40.0, 20.0, 7.0])  # inference ran on 2 of 4 frames
    assert b == pytest.approx({"ran_frac": 0.5, "infer_ms": 20.0, "infer_share": 40 / 72, "infer_cap_fps": 50.0,
                               "rest_ms": 8.0})
    paths = bench_report.write_report(report, tmp_path / "bench.json", markdown)
    assert json.loads(paths[0].read_text())["runs"][0]["category"] == "glasses"
    assert paths[1].read_text() == markdown


def test_bench_cli_writes_named_files(one_thread, tmp_path, capsys):
    rc = cli.main(["--backend", "torch", "--preset", "tiny", "--threads", "1", "--category", "tie",
                     "--resolution", "320x240", "--frames", "2", "--warmup", "0", "--no-naive",
                     "--async-seconds", "0", "--out-dir", str(tmp_path)])
    assert rc == 0
    (json_path,) = tmp_path.glob("bench_*.json")
    report = json.loads(json_path.read_text())
    assert "naive" not in report["runs"][0] and "async" not in report["runs"][0]
    assert "| infer |" in json_path.with_suffix(".md").read_text()  # the saved report keeps its Markdown
    out = capsys.readouterr().out  # the terminal gets aligned columns
    assert re.search(r"^infer +\d", out, re.M) and "| infer |" not in out


@pytest.mark.parametrize("argv", [["--resolution", "10x10"], ["--category", "shoes"], ["--frames", "0"],
                                  ["--source", "/no/such/video.mp4"]])
def test_bench_cli_rejects_bad_arguments(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2


class CountingBackend(Backend):
    """Counts foreground encodes, per-frame calls and synchronisations."""

    def __init__(self) -> None:
        self.info = ModelInfo(config=ModelConfig(category="glasses", input_size=64), backend="fake")
        self.fg = self.frames = self.syncs = 0

    def set_foreground(self, fg_input: np.ndarray) -> None:
        self.fg += 1

    def infer(self, bg_input: np.ndarray) -> np.ndarray:
        self.frames += 1
        return np.zeros((1, 4, 64, 64), np.float32)

    def synchronize(self) -> None:
        self.syncs += 1


def test_bench_backend_naive_reencodes_and_synchronises():
    inner = CountingBackend()
    fixed = np.ones((1, 4, 64, 64), np.float32)
    naive = latency.BenchBackend(inner, full=True, heatmaps=fixed)
    naive.set_foreground(np.zeros((1, 4, 64, 64), np.float32))
    for _ in range(3):
        np.testing.assert_array_equal(naive.infer(np.zeros((1, 3, 64, 64), np.float32)), fixed)
    assert (inner.fg, inner.frames, inner.syncs) == (4, 3, 3)  # once up front + once per frame
    optimised = latency.BenchBackend(inner)
    optimised.set_foreground(np.zeros((1, 4, 64, 64), np.float32))
    out = optimised.infer(np.zeros((1, 3, 64, 64), np.float32))
    assert not out.any() and (inner.fg, inner.frames) == (5, 4)


def test_substituted_heatmaps_keep_the_network_output_layout():
    class ChannelsLast(CountingBackend):
        def infer(self, bg_input):
            super().infer(bg_input)
            return np.zeros((1, 64, 64, 4), np.float32).transpose(0, 3, 1, 2)  # NCHW view of NHWC memory

    fixed = np.random.default_rng(0).random((1, 4, 64, 64), np.float32)
    wrapped = latency.BenchBackend(ChannelsLast(), heatmaps=fixed)
    wrapped.set_foreground(np.zeros((1, 4, 64, 64), np.float32))
    out = wrapped.infer(np.zeros((1, 3, 64, 64), np.float32))
    np.testing.assert_array_equal(out, fixed)
    assert not out.flags.c_contiguous and out.strides == (65536, 4, 1024, 16)  # decoded as the network's would be


@pytest.mark.parametrize("category", ["glasses", "hat", "tie"])
def test_canonical_heatmaps_decode_to_the_canonical_quad(category):
    info = ModelInfo(config=ModelConfig(category=category, input_size=128), backend="fake")
    hm = latency.canonical_heatmaps(category, info)
    assert hm.shape == (1, 4, 128, 128) and hm.dtype == np.float32
    pts = HeatmapCodec(info.config.codec).decode(hm[0]).pts_xy  # (4, 2)
    cx, cy, w, h = (v * 127 for v in latency.CANONICAL_QUADS[category])
    np.testing.assert_allclose(pts.mean(axis=0), (cx, cy), atol=0.05)
    np.testing.assert_allclose(pts[1] - pts[0], (w, 0), atol=0.1)  # TL -> TR
    np.testing.assert_allclose(pts[3] - pts[0], (0, h), atol=0.1)  # TL -> BL


def test_reference_compositor_matches_the_optimised_one(rng):
    acc = bundled_accessories("glasses")[0]
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    quad = np.array([[90.0, 100.0], [230.0, 95.0], [232.0, 150.0], [88.0, 152.0]])
    fast, ref = frame.copy(), frame.copy()
    assert Compositor().draw(fast, acc, quad)
    assert latency.ReferenceCompositor().draw(ref, acc, quad)
    assert not np.array_equal(ref, frame)  # something was drawn
    assert np.abs(fast.astype(int) - ref.astype(int)).max() <= 2
    comp = latency.ReferenceCompositor()
    assert not comp.draw(frame, acc, np.zeros((4, 2))) and comp.skipped == 1  # degenerate quad: skipped


def test_jpeg_round_trip_and_synthetic_frames():
    frames = latency.synthetic_jpegs((160, 120), 3)
    assert len(frames) == 3 and all(isinstance(f, bytes) for f in frames)
    img = latency.decode_jpeg(frames[0])
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8


def test_linear_fit_and_rss():
    x = np.arange(10.0)
    slope, intercept, resid = soak.linear_fit(x, 3.0 * x + 2.0)
    assert slope == pytest.approx(3.0) and intercept == pytest.approx(2.0) and resid == pytest.approx(0.0, abs=1e-9)
    assert soak.rss_mib() > 1.0


def test_soak_returns_rss_samples_and_slopes(tiny_resolver):
    from skimage.data import astronaut

    from realtime.live.capture import PortraitMotionSource
    from realtime.live.pipeline import TryOnPipeline

    inner = tiny_resolver("glasses")
    backend = latency.BenchBackend(inner, heatmaps=latency.canonical_heatmaps("glasses", inner.info))
    pipe = TryOnPipeline(lambda _c: backend, {"glasses": bundled_accessories("glasses")[:1]})
    src = PortraitMotionSource(astronaut(), size_wh=(320, 240), seconds=1.0, fps=10.0)
    frames = [src.read().image for _ in range(src.frame_count)]
    result = soak.run_soak(pipe, frames, 200, every=20)
    assert result["frames"] == 200
    assert [s["frame"] for s in result["samples"]] == list(range(0, 201, 20))
    assert all(s["rss_mib"] > 0 for s in result["samples"])
    assert np.isfinite(result["rss_slope_mib_per_kframe"]) and np.isfinite(result["fps_slope_per_kframe"])
    assert isinstance(result["growth_beyond_noise"], bool)
    with pytest.raises(ValueError, match="every"):
        soak.run_soak(pipe, frames, 30, every=20)


def test_hardware_slug():
    report = {"hardware": {"cpu": "AMD EPYC 7B13 64-Core Processor", "cores": 2, "gpu": None}}
    assert bench_report.hardware_slug(report) == "amd-epyc-7b13-2c"
    report["hardware"]["gpu"] = {"name": "NVIDIA GeForce RTX 3090"}
    assert bench_report.hardware_slug(report) == "amd-epyc-7b13-2c_nvidia-geforce-rtx-3090"


def test_stage_stats_keep_a_bounded_window():
    """The soak found unbounded per-frame timing lists: the live loop's statistics keep a window."""
    from realtime.live.pipeline import StageStats

    stats = StageStats(window=5)
    for v in range(12):
        stats.add({"infer": float(v)})
    assert len(stats.samples["infer"]) == 5
    assert stats.summary()["infer"]["p50"] == pytest.approx(9.0)  # median of 7..11
