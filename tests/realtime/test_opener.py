"""The one artifact opener: suffix table, refusals with the rebuild hint, options forwarded."""

from __future__ import annotations

import pytest

from realtime.backends.base import OpenOptions
from realtime.backends.opener import BACKEND_BY_SUFFIX, BACKENDS, backend_class, backend_of, open_artifact
from realtime.errors import BackendError


def test_every_suffix_names_a_backend_whose_class_loads_without_its_runtime():
    assert BACKEND_BY_SUFFIX == {".engine": "tensorrt", ".onnx": "onnxruntime", ".pt": "torch", ".pth": "torch"}
    for name, kind in BACKENDS.items():
        cls = backend_class(name)
        for sfx in kind.suffixes:  # OpenVINO owns no suffix: it is reached by name only
            assert cls is backend_class(f"model{sfx}")
        assert callable(cls.open)
    assert not BACKENDS["openvino"].suffixes and ".onnx" in BACKENDS["openvino"].also_reads


def test_unknown_suffix_and_missing_file_are_refused_by_name(tmp_path):
    with pytest.raises(BackendError, match=r"model\.bin: unknown artifact type; expected one of"):
        backend_of(tmp_path / "model.bin")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        open_artifact(tmp_path / "nothing.pt")
    with pytest.raises(BackendError, match="unknown backend 'tflite'"):
        open_artifact(tmp_path, backend="tflite")


def test_an_artifact_of_another_kind_is_refused_with_what_to_make(peaked_checkpoint):
    with pytest.raises(BackendError) as err:
        open_artifact(peaked_checkpoint, backend="onnxruntime")
    text = str(err.value)
    assert "--backend onnxruntime cannot run" in text and "(a torch artifact)" in text
    assert "tryon export --checkpoint" in text  # the rebuild hint of the one table
    with pytest.raises(BackendError, match="tryon build-engine"):
        open_artifact(peaked_checkpoint, backend="tensorrt")


def test_folders_are_opened_by_the_one_kind_they_hold(tmp_path, peaked_checkpoint):
    with pytest.raises(BackendError, match="folder holds no model artifacts; pass --backend"):
        open_artifact(tmp_path)
    (tmp_path / "a.pt").write_bytes(b"")
    (tmp_path / "a.onnx").write_bytes(b"")
    with pytest.raises(BackendError, match=r"folder holds \['onnxruntime', 'torch'\]; pass --backend"):
        open_artifact(tmp_path)


def test_options_reach_the_runtime(peaked_checkpoint):
    backend = open_artifact(peaked_checkpoint, OpenOptions(device="cpu", precision="bf16"))
    try:
        assert backend.info.backend == "torch" and backend.info.precision == "bf16"
        assert backend.info.source == str(peaked_checkpoint)
    finally:
        backend.close()
    with pytest.raises(BackendError, match="needed 'hat'"):
        open_artifact(peaked_checkpoint, OpenOptions(category="hat"))


def test_a_broken_checkpoint_is_a_backend_error_naming_the_file(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BackendError, match="broken.pt"):
        open_artifact(bad)
