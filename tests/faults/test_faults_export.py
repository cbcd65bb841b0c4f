"""Fault battery: ``tryon export`` into a folder that holds an earlier export."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch")

from engine_build.export import main as export_main  # noqa: E402


@pytest.fixture(scope="module")
def tiny64(tmp_path_factory):
    """The smallest exportable model (tiny preset at 64 px): an export takes seconds."""
    import torch

    from realtime.checkpoint import save_checkpoint
    from realtime.config import model_preset
    from realtime.model import TryOnNet

    torch.manual_seed(0)
    cfg = model_preset("tiny", "glasses")
    cfg.input_size = 64
    path = tmp_path_factory.mktemp("tiny64") / "glasses_tiny64.pt"
    save_checkpoint(path, TryOnNet(cfg).state_dict(), cfg)
    return path


def test_export_over_an_earlier_one_warns_and_leaves_no_stale_graph(tiny64, tmp_path, caplog):
    """Before: files replaced without a word, and ``--no-fp16`` left the earlier FP16 graph beside
    the new fp32 one (a model that no longer matches, picked up by whoever opens the folder)."""
    from realtime.artifacts import artifact_name

    out = tmp_path / "exp"
    out.mkdir()
    earlier = [out / artifact_name("glasses", 64, graph, prec) for graph, prec in
               (("fg", "fp32"), ("frame", "fp32"), ("frame", "fp16"))] + [out / "export.json"]
    for path in earlier:
        path.write_bytes(b"an earlier export")
    assert export_main(["--checkpoint", str(tiny64), "--out", str(out), "--samples", "1", "--threads", "1",
                        "--no-fp16"]) == 0
    for path in earlier[:2] + earlier[3:]:
        assert f"{path} exists: replaced by this export" in caplog.text
        assert path.read_bytes() != b"an earlier export"
    assert not earlier[2].exists() and "an earlier export's FP16 graph" in caplog.text


@pytest.mark.parametrize("argv, message", [(["--threads", "0"], "--threads: must be >= 1"),
                                           (["--fp16-tolerance", "nan"], "--fp16-tolerance: must be a finite")])
def test_export_refuses_bad_numbers(argv, message, tiny64, tmp_path, capsys):
    with pytest.raises(SystemExit):
        export_main(["--checkpoint", str(tiny64), "--out", str(tmp_path / "e"), *argv])
    assert message in capsys.readouterr().err
