"""Fault battery: ``tryon train`` and ``tryon eval`` under signals, full disks, unreadable
images and non-finite outputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import REPO, child_env, preexec

torch = pytest.importorskip("torch")

from realtime.checkpoint import load_checkpoint  # noqa: E402
from training.make_dataset import build_synthetic  # noqa: E402
from training.train import main as train_main  # noqa: E402

SMALL = 64


@pytest.fixture(scope="module")
def data64(tmp_path_factory) -> Path:
    """8 training and 4 test synthetic glasses samples at 64 px (as ``tryon make-dataset`` makes them)."""
    root = tmp_path_factory.mktemp("synth64")
    build_synthetic("glasses", 12, root, size=SMALL, test_fraction=1 / 3, progress=False)
    return root


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", "--category", "glasses", "--data", str(data), "--out", str(out), "--model-preset", "tiny"]
    for kv in (f"model.input_size={SMALL}", "optim.batch_size=4", "num_workers=0", "precision=fp32",
               "progress=false", "threads=1", "val_split=null", *extra):
        args += ["--set", kv]
    return args


def test_sigterm_writes_a_resumable_checkpoint(data64, tmp_path):
    """Before: SIGTERM killed ``tryon train`` at once, no ``last.pt``, ``--resume`` impossible."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", *_train_args(data64, out, "optim.epochs=1000",
                                                                               "save_every=1000")],
                            cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not (out / "log.csv").exists():
            time.sleep(0.05)  # log.csv appears after the first epoch
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and proc.returncode != -signal.SIGTERM, output
    assert "resume with --resume" in output
    state = load_checkpoint(out / "last.pt")["train_state"]
    assert state["step"] >= 2
    assert train_main(["--out", str(out), "--resume", "--set", f"optim.epochs={state['epoch'] + 1}"]) == 0
    assert load_checkpoint(out / "last.pt")["train_state"]["step"] > state["step"]


def test_full_disk_while_saving_a_checkpoint_names_it_and_keeps_the_last_one(data64, tmp_path):
    """Before: a raw OSError traceback (the atomic write itself kept the earlier file intact)."""
    out = tmp_path / "run"
    assert train_main(_train_args(data64, out, "optim.epochs=1")[1:]) == 0
    before = (out / "last.pt").read_bytes()
    size = len(before)
    res = subprocess.run([sys.executable, "-m", "realtime.cli", *_train_args(data64, out, "optim.epochs=2"),
                          "--resume"], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120,
                         preexec_fn=preexec(fsize=size // 2))
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and str(out / "last.pt") in res.stderr, res.stderr
    assert (out / "last.pt").read_bytes() == before  # the earlier checkpoint is intact
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left


@pytest.fixture
def bad_image_data(data64, tmp_path) -> Path:
    """``data64`` with one training background that is not an image."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data64, root)
    bad = sorted((root / "train" / "background").iterdir())[3]
    bad.write_bytes(b"this is not a JPEG")
    return root


def _tryon(argv, capsys) -> tuple[int, str]:
    from realtime.cli import main

    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out + cap.err


def test_unreadable_training_image_is_named_by_train(bad_image_data, tmp_path, capsys):
    """Before: a raw PIL traceback from the mean-quad baseline (``tryon eval``: see the skip_bad test)."""
    bad = sorted((bad_image_data / "train" / "background").iterdir())[3]
    rc, text = _tryon(_train_args(bad_image_data, tmp_path / "run", "optim.epochs=1"), capsys)
    assert rc != 0 and str(bad) in text and "skip_bad" in text, text
    assert "Traceback" not in text


def test_skip_bad_covers_unreadable_images(bad_image_data, tmp_path, capsys, caplog):
    """Before: ``skip_bad=true`` still died on the unreadable image."""
    out = tmp_path / "run"
    rc, text = _tryon(_train_args(bad_image_data, out, "optim.epochs=1", "skip_bad=true"), capsys)
    assert rc == 0, text
    assert "skipped 1 of 8" in caplog.text
    assert load_checkpoint(out / "last.pt")["meta"]["train_size"] == 7
    # tryon eval's mean-quad baseline over the same training split: skipped and said, not fatal
    rc, text = _tryon(["eval", "--checkpoint", str(out / "last.pt"), "--data", str(bad_image_data), "--json"],
                      capsys)
    assert rc == 0, text
    report = json.loads(text[text.index("{"):])
    assert "1 bad training sample(s) skipped" in report["baselines"]["mean quad"]["note"]


@pytest.fixture
def nan_checkpoint(tmp_path) -> Path:
    from realtime.checkpoint import save_checkpoint
    from realtime.config import model_preset
    from realtime.model import TryOnNet

    cfg = model_preset("tiny", "glasses")
    cfg.input_size = SMALL
    state = TryOnNet(cfg).state_dict()
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "nan.pt"
    save_checkpoint(path, state, cfg, meta={"note": "fault battery: NaN weights"})
    return path


def test_nan_outputs_are_failures_not_scores(nan_checkpoint, data64, capsys):
    """Before: a checkpoint with NaN weights scored LSSIM 0.639, better than the real model."""
    rc, text = _tryon(["eval", "--checkpoint", str(nan_checkpoint), "--data", str(data64), "--json"], capsys)
    assert rc != 0
    assert "not finite" in text and '"lssim"' not in text


def test_some_nan_outputs_are_counted_and_left_out(tiny64_backend, data64):
    """A model whose output is NaN on some samples: those are counted and not scored."""
    from training.evaluate import evaluate_backend
    from training.strat import StratDataset

    dataset = StratDataset(data64, "glasses", SMALL, split="test")
    clean = evaluate_backend(tiny64_backend(set()), dataset, progress=False).metrics
    broken = evaluate_backend(tiny64_backend({1, 3}), dataset, progress=False).metrics
    assert (clean.n, clean.non_finite) == (4, 0)
    assert (broken.n, broken.non_finite) == (2, 2)
    kept = [clean.per_sample[0], clean.per_sample[2]]
    assert broken.lssim == pytest.approx(sum(s.lssim for s in kept) / 2)


@pytest.fixture
def tiny64_backend():
    from realtime.backends.torch_backend import TorchBackend
    from realtime.config import model_preset
    from realtime.model import TryOnNet

    torch.manual_seed(0)
    cfg = model_preset("tiny", "glasses")
    cfg.input_size = SMALL
    net = TryOnNet(cfg).eval()

    def make(nan_calls: set[int]):
        backend = TorchBackend(net, channels_last=False)
        real, calls = backend.infer, [0]

        def infer(bg):
            out = real(bg)
            calls[0] += 1
            return out * float("nan") if calls[0] - 1 in nan_calls else out

        backend.infer = infer
        return backend

    return make


def test_a_diverged_run_is_an_error_not_a_traceback(data64, tmp_path, capsys):
    """Before: a raw FloatingPointError traceback."""
    rc, text = _tryon(_train_args(data64, tmp_path / "run", "optim.epochs=3", "optim.lr=1e12"), capsys)
    assert rc != 0
    assert "non-finite loss" in text and "lower optim.lr" in text and "Traceback" not in text
