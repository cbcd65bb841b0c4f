"""Shared fixtures. Tests never need ../shared, a GPU or a webcam."""

from __future__ import annotations

import signal

import numpy as np
import pytest

# A suite started in the background by a non-interactive shell (``nohup python -m pytest &``)
# inherits SIGINT ignored, and so does every ``tryon`` child a test spawns: the Ctrl-C tests
# (a recording finalised on SIGINT) would then see the signal ignored. They stand for a user
# at a terminal, so the suite gives SIGINT its default meaning back (children start with it).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _private_export_cache(tmp_path_factory, monkeypatch):
    """First-use exports (OpenVINO backend) go to a per-session folder, never to ~/.cache/tryon."""
    monkeypatch.setenv("TRYON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tryon-cache"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------------------
# A tiny network trained for a few seconds (export / FP16 / backend-parity tests)
# --------------------------------------------------------------------------------------
# A randomly initialised network outputs flat, ambiguous heatmaps: a perturbation of 1e-4
# (FP16 rounding) moves their soft-argmax by pixels, so precision tests on random weights
# measure nothing. ``peaked_checkpoint`` trains the ``tiny`` preset at 64 px for ~100 Adam
# steps (a few seconds on 2 cores) towards fixed Gaussian corners, on the same kind of
# synthetic inputs the export verifies on, which gives peaked heatmaps like a trained model's.

#: Corners the tiny model learns to output (pixels at 64 px): an off-centre, non-square
#: quad with sub-pixel positions.
PEAKED_TARGET_PTS_XY = np.array([[14.3, 20.6], [47.8, 18.2], [49.1, 40.4], [12.7, 43.9]], np.float32)
PEAKED_SIZE = 64


def tiny_peaked_config(category: str = "glasses"):
    """The ``tiny`` preset at 64 px with a Gaussian radius that suits 64 px (sigma = 1.5 px)."""
    import dataclasses

    from realtime.config import CodecConfig, model_preset

    cfg = model_preset("tiny", category)
    return dataclasses.replace(cfg, input_size=PEAKED_SIZE, codec=CodecConfig(radius=4.0))


def train_peaked(cfg, steps: int = 100, seed: int = 0):
    """Train ``cfg``'s network towards :data:`PEAKED_TARGET_PTS_XY` on the export's synthetic inputs
    (face-like backgrounds, bundled accessories); returns it in eval mode."""
    import torch

    from engine_build.export import verification_pairs
    from realtime.codec import HeatmapCodec
    from realtime.model import TryOnNet
    from realtime.preprocess import background_input, foreground_input
    from training.losses import LossConfig, heatmap_loss

    torch.manual_seed(seed)
    net = TryOnNet(cfg).train()
    s = cfg.input_size
    pairs, _ = verification_pairs(cfg, samples=48, seed=seed + 100)  # not the seeds the tests verify on
    bgs = torch.from_numpy(np.concatenate([background_input(bg) for _, bg in pairs]))
    fgs = torch.from_numpy(np.concatenate([foreground_input(fg, s)[0] for fg, _ in pairs]))
    target = torch.from_numpy(HeatmapCodec(cfg.codec).encode(PEAKED_TARGET_PTS_XY, (s, s)))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_cfg = LossConfig(heatmap="wmse")
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(pairs), (4,), generator=gen)
        hm, _ = net(bgs[idx], fgs[idx])
        loss = heatmap_loss(hm, target.expand_as(hm), loss_cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="session")
def peaked_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """Checkpoint (path) of the tiny 64 px glasses network trained to output peaked heatmaps."""
    torch = pytest.importorskip("torch")
    from realtime.checkpoint import save_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores in CI
    try:
        cfg = tiny_peaked_config()
        net = train_peaked(cfg)
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("peaked") / "tiny_glasses.pt"
    save_checkpoint(path, net.state_dict(), cfg, meta={"note": "test fixture: trained a few seconds"})
    return path


@pytest.fixture(scope="session")
def export_dir(peaked_checkpoint, tmp_path_factory):
    """The fg, frame and frame-fp16 ONNX graphs of :func:`peaked_checkpoint` (no verification)."""
    pytest.importorskip("onnxruntime")
    from engine_build.export import export_graphs
    from realtime.checkpoint import load_model

    net, _, _ = load_model(peaked_checkpoint)
    out = tmp_path_factory.mktemp("backends")
    export_graphs(net, out, fp16=True)
    return out
