"""Training: config resolution, schedule, overfitting, checkpoints, resume, Ctrl-C, DDP."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from realtime.backends.torch_backend import TorchBackend  # noqa: E402
from realtime.checkpoint import load_checkpoint, load_model  # noqa: E402
from realtime.codec import HeatmapCodec  # noqa: E402
from training import train as train_mod  # noqa: E402
from training.config import OptimConfig, TrainConfig, load_train_config, lr_factor, preset_path, resolve_train_config  # noqa: E402
from training.evaluate import evaluate_backend, predict_vertices  # noqa: E402
from training.strat import StratDataset  # noqa: E402
from training.synthetic import make_synthetic  # noqa: E402

SMALL = 64  # network size of the mechanics tests


@pytest.fixture(scope="module")
def data64(tmp_path_factory) -> Path:
    """8 training and 4 test synthetic glasses samples at 64 px."""
    root = tmp_path_factory.mktemp("synth64")
    make_synthetic("glasses", 8, SMALL, root, seed=0, split="train", progress=False)
    make_synthetic("glasses", 4, SMALL, root, seed=0, split="test", progress=False)
    return root


def _cfg(data: Path, out: Path, *overrides: str) -> TrainConfig:
    cfg = resolve_train_config("glasses", None, [
        f"model.input_size={SMALL}", "optim.batch_size=4", "optim.epochs=2", "num_workers=0", "precision=fp32",
        "progress=false", "threads=1", *overrides], "tiny")
    cfg.data = str(data)
    cfg.out_dir = str(out)
    return cfg


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- config

def test_lr_schedule_is_flat_then_linear_to_final():
    o = OptimConfig()  # paper: 2e-4 flat to epoch 10, linear to 5e-5 at epoch 40
    assert lr_factor(0.0, o) == 1.0 and lr_factor(10.0, o) == 1.0
    assert lr_factor(25.0, o) * o.lr == pytest.approx((2e-4 + 5e-5) / 2)
    assert lr_factor(40.0, o) * o.lr == pytest.approx(5e-5)


def test_config_precedence_preset_yaml_overrides(tmp_path):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model_preset: lite\noptim:\n  lr: 1.0e-3\n  epochs: 7\nmodel:\n  fusion: add\n")
    cfg = resolve_train_config("hat", yaml_file, ["optim.epochs=3", "loss.heatmap=mse"])
    assert cfg.model_preset == "lite" and cfg.model.width_mult == 0.5  # preset named in the YAML
    assert cfg.model.fusion == "add" and cfg.optim.lr == 1e-3  # YAML over preset
    assert cfg.optim.epochs == 3 and cfg.loss.heatmap == "mse"  # --set over YAML
    assert cfg.model.category == "hat" and cfg.model.input_size == 224
    cli = resolve_train_config("hat", yaml_file, [], "tiny")  # --model-preset over the YAML's
    assert cli.model_preset == "tiny" and cli.model.width_mult == 0.125
    with pytest.raises(ValueError, match="optim.lrr"):
        resolve_train_config("hat", None, ["optim.lrr=1"])


def test_shipped_presets_resolve():
    paper = resolve_train_config("tie", preset_path("paper"))
    assert (paper.model.input_size, paper.model.width_mult, paper.augment.enabled) == (448, 1.0, False)
    assert (paper.optim.lr, paper.optim.batch_size, paper.optim.epochs, paper.optim.final_lr) == (2e-4, 32, 40, 5e-5)
    lite = resolve_train_config("glasses", preset_path("lite"))
    assert lite.model.width_mult == 0.5 and lite.augment.enabled


# ----------------------------------------------------------------------------- the loop

@pytest.mark.slow
def test_tiny_model_overfits_eight_samples(tmp_path):
    """The tiny network memorises 8 samples at 128 px: Disp <= 0.01 (about 1.3 px)."""
    root = tmp_path / "d"
    make_synthetic("glasses", 8, 128, root, seed=0, split="train", progress=False)
    cfg = resolve_train_config("glasses", None, [
        "optim.epochs=120", "optim.lr=1e-3", "optim.batch_size=8", "optim.decay_start_epoch=1000",
        "num_workers=0", "precision=fp32", "progress=false", "save_every=1000", "log_every=50", "threads=1"], "tiny")
    cfg.data, cfg.out_dir = str(root / "train"), str(tmp_path / "run")
    path = train_mod.train(cfg)
    net, mcfg, _ = load_model(path)
    result = evaluate_backend(TorchBackend(net), StratDataset(root / "train", "glasses", mcfg.input_size),
                              progress=False)
    assert result.metrics.disp <= 0.01, result.metrics
    rows = _rows(Path(cfg.out_dir) / "log.csv")
    assert float(rows[-1]["loss"]) < 0.1 * float(rows[0]["loss"])


def test_cli_run_writes_config_logs_and_checkpoints(data64, tmp_path):
    out = tmp_path / "run"
    rc = train_mod.main(["--category", "glasses", "--data", str(data64), "--out", str(out), "--model-preset", "tiny",
                         "--set", f"model.input_size={SMALL}", "--set", "optim.batch_size=4", "--set",
                         "optim.epochs=2", "--set", "num_workers=1", "--set", "precision=bf16", "--set", "threads=1",
                         "--set", "progress=false"])
    assert rc == 0
    for name in ("config.yaml", "last.pt", "best.pt", "log.csv", "steps.csv", "loss.png"):
        assert (out / name).is_file(), name
    saved = load_train_config(out / "config.yaml")
    assert saved.model.input_size == SMALL and saved.precision == "bf16" and saved.data == str(data64)
    rows = _rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["val_iou"]) <= 1.0 and float(r["val_disp"]) >= 0 for r in rows)
    blob = load_checkpoint(out / "last.pt")
    assert blob["meta"]["train_config"]["optim"]["epochs"] == 2
    assert blob["train_state"]["step"] == 4 and blob["train_state"]["epoch"] == 2
    assert np.asarray(blob["meta"]["mean_quad_norm"]).shape == (4, 2)


def test_checkpoint_round_trip_gives_the_same_keypoints(data64, tmp_path):
    trainer = train_mod._Trainer(_cfg(data64, tmp_path / "run", "optim.epochs=1"))
    try:
        path = trainer.fit()
    finally:
        trainer.close()
    sample = StratDataset(data64, "glasses", SMALL, split="test")[0]
    codec = HeatmapCodec(trainer.cfg.model.codec)
    before, _ = predict_vertices(TorchBackend(trainer.net, channels_last=False), codec, sample)
    after, _ = predict_vertices(TorchBackend.from_path(path, channels_last=False), codec, sample)
    np.testing.assert_allclose(after, before, atol=1e-4)


def _final_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _final_weights(a), _final_weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].is_floating_point())
    assert worst < 1e-5, worst


def test_resume_continues_from_the_saved_step(data64, tmp_path):
    straight = train_mod.train(_cfg(data64, tmp_path / "a", "optim.epochs=3", "val_split=null"))
    first = _cfg(data64, tmp_path / "b", "optim.epochs=2", "val_split=null")
    train_mod.train(first)
    state = load_checkpoint(tmp_path / "b" / "last.pt")["train_state"]
    assert (state["step"], state["epoch"], state["batches_done"]) == (4, 2, 0)
    adam_steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {4.0}  # optimizer moments were saved, not just the weights
    resumed = train_mod.train(_cfg(data64, tmp_path / "b", "optim.epochs=3", "val_split=null", "resume=true"))
    assert load_checkpoint(resumed)["train_state"]["step"] == 6
    assert [int(r["epoch"]) for r in _rows(tmp_path / "b" / "log.csv")] == [1, 2, 3]
    _assert_same_weights(resumed, straight)  # same data order, optimizer moments and lr schedule


def test_ctrl_c_mid_epoch_writes_a_resumable_checkpoint(data64, tmp_path, monkeypatch):
    common = ("optim.epochs=2", "optim.batch_size=2", "val_split=null")
    straight = train_mod.train(_cfg(data64, tmp_path / "a", *common))
    calls = {"n": 0}
    real_loss = train_mod.total_loss

    def loss_then_sigint(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # epoch 2, second batch (4 batches per epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(train_mod, "total_loss", loss_then_sigint)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(_cfg(data64, tmp_path / "b", *common))
    monkeypatch.setattr(train_mod, "total_loss", real_loss)
    state = load_checkpoint(tmp_path / "b" / "last.pt")["train_state"]
    assert (state["epoch"], state["batches_done"], state["step"]) == (1, 2, 6)  # the step in flight finished
    resumed = train_mod.train(_cfg(data64, tmp_path / "b", *common, "resume=true"))
    _assert_same_weights(resumed, straight)


def test_resume_refuses_a_different_model(data64, tmp_path):
    train_mod.train(_cfg(data64, tmp_path / "r", "optim.epochs=1", "val_split=null"))
    with pytest.raises(ValueError, match="fusion"):
        train_mod.train(_cfg(data64, tmp_path / "r", "optim.epochs=2", "val_split=null", "resume=true",
                             "model.fusion=add"))


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        train_mod.train(_cfg(tmp_path / "nowhere", tmp_path / "run"))


# ----------------------------------------------------------------------------- DDP

def _torchrun_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(data64, tmp_path):
    """torchrun, gloo, 2 CPU processes: per-epoch mean loss within 5% of one process with
    the same global batch (4 = 2 x 2). Not bit-equal: BatchNorm statistics are per
    process (no SyncBatchNorm on CPU). Exactly one checkpoint is written, by rank 0."""
    args = ["--category", "glasses", "--data", str(data64 / "train"), "--model-preset", "tiny",
            "--set", f"model.input_size={SMALL}", "--set", "optim.batch_size=4", "--set", "optim.epochs=3",
            "--set", "num_workers=0", "--set", "precision=fp32", "--set", "progress=false",
            "--set", "optim.lr=1e-3", "--set", "save_every=100"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "training.train", *args, "--out", str(tmp_path / "ddp")],
                         env=_torchrun_env(), capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert train_mod.main([*args, "--out", str(tmp_path / "one")]) == 0
    files = sorted(p.name for p in (tmp_path / "ddp").iterdir())
    assert [f for f in files if f.endswith(".pt") or f.endswith(".tmp")] == ["last.pt"], files
    two = _rows(tmp_path / "ddp" / "log.csv")
    one = _rows(tmp_path / "one" / "log.csv")
    assert len(two) == len(one) == 3
    for r2, r1 in zip(two, one):
        assert r2["step"] == r1["step"]  # same number of optimizer steps: same global batch
        assert abs(float(r2["loss"]) / float(r1["loss"]) - 1.0) < 0.05, (r2["loss"], r1["loss"])
    meta = load_checkpoint(tmp_path / "ddp" / "last.pt")["meta"]
    assert meta["world_size"] == 2


def test_encoders_start_from_torchvision_resnet18_files(tmp_path):
    from realtime.model import ResNet18Encoder

    cfg = resolve_train_config("glasses", None, [f"model.input_size={SMALL}"], "paper")  # width 1.0
    torch.manual_seed(123)
    donor = ResNet18Encoder(3, cfg.model).state_dict()
    state = {**donor, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}  # torchvision layout
    torch.save(state, tmp_path / "resnet18.pth")
    cfg.init_bg_encoder = cfg.init_fg_encoder = str(tmp_path / "resnet18.pth")
    net = train_mod.build_model(cfg)
    assert torch.equal(net.bg_encoder.layer3[1].conv2.weight, donor["layer3.1.conv2.weight"])
    assert torch.equal(net.fg_encoder.conv1.weight[:, :3], donor["conv1.weight"])  # RGB filters; mask = their mean
    cfg.model.fusion = "none"
    with pytest.raises(ValueError, match="fg_encoder"):
        train_mod.build_model(cfg)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_autocast_with_grad_scaler(data64, tmp_path):
    cfg = _cfg(data64, tmp_path / "cuda", "device=cuda", "precision=auto", "optim.epochs=1")
    path = train_mod.train(cfg)
    blob = load_checkpoint(path)
    assert blob["meta"]["precision"] == "fp16" and blob["train_state"]["scaler"]["scale"] > 0


def test_warm_start_copies_matching_tensors_across_categories(tmp_path):
    """A tie net without D_sm starts from a glasses checkpoint: encoders, fusion and D_hm copied."""
    import dataclasses

    from realtime.checkpoint import save_checkpoint
    from realtime.config import model_preset
    from realtime.model import TryOnNet

    glasses_cfg = model_preset("tiny", "glasses")
    torch.manual_seed(1)
    source = TryOnNet(glasses_cfg)
    save_checkpoint(tmp_path / "glasses.pt", source.state_dict(), glasses_cfg)
    tie_cfg = dataclasses.replace(model_preset("tiny", "tie"), input_size=glasses_cfg.input_size, semantic=False)
    torch.manual_seed(2)
    target = TryOnNet(tie_cfg)
    loaded, skipped = train_mod.warm_start(target, tmp_path / "glasses.pt")
    src, dst = source.state_dict(), target.state_dict()
    assert loaded == len(dst) and skipped == []  # everything of the tie net exists in the glasses net
    for key in ("bg_encoder.conv1.weight", "fg_encoder.layer4.1.conv2.weight"):
        torch.testing.assert_close(dst[key], src[key])
    # the other way round, the glasses net's D_sm stays fresh and is reported
    fresh = TryOnNet(glasses_cfg)
    save_checkpoint(tmp_path / "tie.pt", target.state_dict(), tie_cfg)
    loaded, skipped = train_mod.warm_start(fresh, tmp_path / "tie.pt")
    assert skipped and all(k.startswith("sm_decoder") for k in skipped)
    # nothing in common: a clear error naming the file
    save_checkpoint(tmp_path / "other.pt", {"head.weight": torch.zeros(3, 3)}, glasses_cfg)
    with pytest.raises(ValueError, match="other.pt"):
        train_mod.warm_start(TryOnNet(glasses_cfg), tmp_path / "other.pt")


def test_freeze_bn_keeps_the_running_statistics_and_still_learns(data64, tmp_path):
    """``freeze_bn=true``: a warm-started run leaves every BatchNorm's running statistics as the
    starting checkpoint had them while the weights change; without it the statistics move."""
    start = train_mod.train(_cfg(data64, tmp_path / "start", "optim.epochs=1"))
    runs = {}
    for frozen in (True, False):
        cfg = _cfg(data64, tmp_path / f"ft_{frozen}", "optim.epochs=1", f"init_from={start}",
                   f"freeze_bn={str(frozen).lower()}", "eval_every=0", "val_split=null")
        runs[frozen] = load_checkpoint(train_mod.train(cfg))["model"]
    before = load_checkpoint(start)["model"]
    stats = [k for k in before if k.endswith("running_mean") or k.endswith("running_var")]
    assert stats
    assert all(torch.equal(runs[True][k], before[k]) for k in stats)
    assert any(not torch.equal(runs[False][k], before[k]) for k in stats)
    conv = "bg_encoder.conv1.weight"
    assert not torch.equal(runs[True][conv], before[conv])  # the frozen run still trains
