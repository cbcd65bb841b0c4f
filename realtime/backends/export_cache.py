"""First-use export of a checkpoint into the user cache, so the OpenVINO backend runs the shipped models
on a fresh install without the user exporting anything.

``cached_export(checkpoint)`` returns the fp32 per-frame graph of ``checkpoint``, exported
once into ``<cache>/<checkpoint stem>-<sha256 prefix>/``:

* ``<cache>`` is ``$TRYON_CACHE_DIR``, else ``$XDG_CACHE_HOME/tryon``, else ``~/.cache/tryon``;
* the folder is keyed by the checkpoint's content hash
  (:func:`realtime.checkpoint.file_sha256`), so a changed checkpoint is exported again and
  two checkpoints never share graphs;
* the export goes to a temporary folder beside it and is renamed into place only after the
  runtime's ``finish`` step passed (the OpenVINO backend's: its fp32 vs PyTorch on decoded
  keypoints, <= ``FP32_TOLERANCE_PX``, and the bf16 keypoint check stored in the frame
  graph's metadata, :func:`realtime.backends.openvino_backend.finish_export`): an
  interrupted or failed export leaves nothing a later run could pick up, and two processes
  exporting at once both end with one complete folder.

A progress message (log WARNING, once per export, plus a progress bar) says what is
happening: the export takes about a minute on a laptop CPU.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from realtime.errors import BackendError
from realtime.io import atomic_write_bytes, file_sha256

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "TRYON_CACHE_DIR"
#: Verification samples of a first-use export (bundled accessories on synthetic backgrounds).
FIRST_USE_SAMPLES = 8
#: File written last into a complete export folder.
REPORT_NAME = "export.json"


def cache_root() -> Path:
    """``$TRYON_CACHE_DIR``, else ``$XDG_CACHE_HOME/tryon``, else ``~/.cache/tryon``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tryon"


def cache_folder(checkpoint: str | Path, root: Path | None = None) -> Path:
    """Where the export of ``checkpoint`` lives (whether or not it exists yet)."""
    checkpoint = Path(checkpoint)
    return (root or cache_root()) / f"{checkpoint.stem}-{file_sha256(checkpoint)}"


#: ``finish(graphs, net, pairs, described) -> report fields``: verifies the freshly exported
#: :class:`realtime.backends.graph_export.Fp32Graphs` and may complete their metadata; raises
#: :class:`BackendError` to reject them.
Finish = Callable[[Any, Any, list, str], dict]


def cached_export(checkpoint: str | Path, finish: Finish, root: Path | None = None,
                  samples: int = FIRST_USE_SAMPLES) -> Path:
    """The fp32 per-frame graph of ``checkpoint`` in the cache, exporting it first if needed.

    Args:
        finish: the runtime's verification (see :data:`Finish`), run before the folder is kept.
        samples: verification inputs handed to ``finish``.

    Raises:
        FileNotFoundError: no such checkpoint.
        BackendError: the export could not be written or did not verify (message names the
            checkpoint and the cache folder).
    """
    from realtime.backends.onnx_backend import find_frame_graph

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    dest = cache_folder(checkpoint, root)
    if (dest / REPORT_NAME).is_file():
        return find_frame_graph(dest, precision="fp32")
    log.warning("first use of %s with OpenVINO: exporting it once into %s (about a minute on a laptop CPU; "
                "later runs start at once; set $%s to move the cache)", checkpoint.name, dest, ENV_CACHE_DIR)
    t0 = time.monotonic()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    except OSError as exc:
        raise BackendError(f"cannot create the export cache {dest.parent} for {checkpoint}: {exc}; "
                           f"set ${ENV_CACHE_DIR} to a writable folder") from exc
    try:
        report = _export_verified(checkpoint, tmp, finish, samples)
        atomic_write_bytes(tmp / REPORT_NAME, (json.dumps(report, indent=2) + "\n").encode())
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / REPORT_NAME).is_file():  # not a concurrent export that finished first
                raise
    except OSError as exc:
        raise BackendError(f"cannot write the export of {checkpoint} into {dest}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.warning("exported %s in %.0f s: %s", checkpoint.name, time.monotonic() - t0, dest)
    return find_frame_graph(dest, precision="fp32")


def _export_verified(checkpoint: Path, out: Path, finish: Finish, samples: int) -> dict:
    """Export into ``out`` and run ``finish`` on it; the report."""
    from realtime.backends.graph_export import export_fp32_graphs, synthetic_pairs
    from realtime.checkpoint import load_model

    net, cfg, _ = load_model(checkpoint)
    sha = file_sha256(checkpoint)
    graphs = export_fp32_graphs(net, out, source_checkpoint=str(checkpoint.resolve()), checkpoint_sha256=sha)
    pairs, described = synthetic_pairs(cfg, samples)
    extra = finish(graphs, net, pairs, described)
    return {"source_checkpoint": str(checkpoint.resolve()), "source_checkpoint_sha256": sha, "inputs": described,
            "fg": graphs.fg_path.name, "frame": graphs.frame_path.name, "model_config": cfg.to_dict(), **extra}
