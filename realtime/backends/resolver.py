"""Which model serves each accessory category, and on which backend.

Resolution order per category (first hit wins):

1. an artifact the user passed (``--engine``, ``--onnx``, ``--checkpoint``; each may be
   given once per category, the category is read from the artifact itself);
2. shipped weights in ``realtime/weights/`` (``<category>*.pt`` checkpoints, and ONNX /
   engine files named by :func:`realtime.artifacts.artifact_name`, per-frame graph);
3. a randomly initialised ``lite`` torch network, with a loud warning: its placements are
   meaningless until weights are installed.

``--backend auto`` picks TensorRT when an engine is available and ``tensorrt`` imports;
else, for a user's artifact, ONNX Runtime for ``--onnx`` and torch for ``--checkpoint``;
for the shipped models on a CPU, OpenVINO when ``openvino`` is installed (the shipped
checkpoints are exported once into the user cache, :mod:`realtime.backends.export_cache`;
if that fails the next runtime serves, with a warning), then ONNX Runtime, then torch. An
explicit backend uses only artifacts of its kind and says what to pass when there is none;
``--backend openvino`` runs ``--onnx`` graphs and ``--checkpoint`` files (exported on first use).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Sequence

from realtime.artifacts import parse_artifact_name
from realtime.backends.base import Backend, OpenOptions
from realtime.backends.opener import BACKENDS, backend_of, open_artifact
from realtime.config import CATEGORIES, check_category, model_preset
from realtime.errors import BackendError

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"  # realtime/weights
BACKEND_CHOICES = ("auto", *BACKENDS)
#: ``--precision``: ``auto`` = fp32 for torch, bf16-where-verified for OpenVINO
#: (:func:`realtime.backends.openvino_backend.choose_precision`).
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
PRECISION_HELP = ("auto: torch fp32, OpenVINO bf16 where the CPU has it and the model passed its bf16 keypoint "
                  "check, else fp32; bf16 = torch CPU autocast / OpenVINO bf16; fp16 = torch on CUDA")


def default_threads() -> int:
    """CPU threads for inference by default: half the logical cores (at least 1).

    The capture, display and recorder threads need CPU too, and OpenMP's spin-waiting
    threads collapse when cores are oversubscribed: on a 2-core machine shared with other
    jobs (load ~8), the lite network took 620 ms (glasses) / 1070 ms (tie) per frame with 2
    torch threads against 70-90 ms / 250-290 ms with 1 (measured, median of 5). OpenVINO
    likewise (benchmarks/results/cpu_runtimes_2026-12-01_amd-epyc-2c.md, same run): 2 threads
    took 1.50x (glasses) / 1.33x (tie) the time of 1 thread, so 1 is its default here too.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def openvino_available() -> bool:
    """Whether the ``openvino`` Python package can be imported (without importing it)."""
    return importlib.util.find_spec("openvino") is not None


def tensorrt_available() -> bool:
    """Whether the ``tensorrt`` Python package can be imported (without importing it)."""
    return importlib.util.find_spec("tensorrt") is not None


def shipped_artifacts(category: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, list[Path]]:
    """Shipped artifacts of ``category`` by backend name, preferred first.

    ONNX / engine files must be per-frame graphs named by
    :func:`realtime.artifacts.artifact_name` (fp32 first for ONNX Runtime on CPU, fp16
    first for TensorRT); checkpoints are ``<category>*.pt`` / ``.pth``.
    """
    check_category(category)
    out: dict[str, list[Path]] = {"tensorrt": [], "openvino": [], "onnxruntime": [], "torch": []}
    if not weights_dir.is_dir():
        return out
    for path in sorted(weights_dir.iterdir()):
        if path.suffix in (".pt", ".pth") and path.name.startswith(category):
            out["torch"].append(path)
            continue
        parsed = parse_artifact_name(path.name)
        if parsed and parsed["category"] == category and parsed["graph"] == "frame":
            out["tensorrt" if path.suffix == ".engine" else "onnxruntime"].append(path)
    out["onnxruntime"].sort(key=lambda p: "fp16" in p.name)
    out["tensorrt"].sort(key=lambda p: "fp32" in p.name)
    # OpenVINO: shipped fp32 graphs, then the checkpoints (exported into the cache on first use)
    out["openvino"] = [p for p in out["onnxruntime"] if "fp32" in p.name] + out["torch"]
    return out


class ModelResolver:
    """Opens (once) and caches one backend per category. Call it with a category.

    Args:
        backend: ``auto``, ``tensorrt``, ``onnxruntime`` or ``torch``.
        checkpoints, onnx, engines: user artifacts (any number, one per category).
        device: torch device for checkpoints and random-init networks.
        precision: ``auto`` (torch fp32; OpenVINO bf16 where verified), fp32, bf16 (torch CPU
            autocast / OpenVINO), fp16 (torch on CUDA).
        preset: network preset of the random-init fallback.
        weights_dir: where shipped weights live.
        threads: CPU threads for torch (process-wide), ONNX Runtime (per operator) and
            OpenVINO (per compiled model); None = :func:`default_threads`.

    Raises:
        BackendError: bad backend name, an artifact that does not fit the chosen backend,
            or two artifacts of the same kind for one category.
    """

    def __init__(self, backend: str = "auto", checkpoints: Sequence[str | Path] = (),
                 onnx: Sequence[str | Path] = (), engines: Sequence[str | Path] = (), device: str = "cpu",
                 precision: str = "auto", preset: str = "lite", weights_dir: Path = WEIGHTS_DIR,
                 threads: int | None = None) -> None:
        if backend not in BACKEND_CHOICES:
            raise BackendError(f"unknown backend {backend!r}; expected one of {', '.join(BACKEND_CHOICES)}")
        self.backend, self.device, self.precision, self.preset = backend, device, precision, preset
        self.threads = threads or default_threads()
        self.weights_dir = weights_dir
        self._cache: dict[str, Backend] = {}
        self._untrained: set[str] = set()
        self._user: dict[str, dict[str, Backend]] = {name: {} for name in BACKENDS}
        given = [(Path(p), "torch") for p in checkpoints] + [(Path(p), "onnxruntime") for p in onnx] + \
            [(Path(p), "tensorrt") for p in engines]
        for path, kind in given:
            if not (kind == "onnxruntime" and path.is_dir()) and backend_of(path) != kind:
                raise BackendError(f"{path}: a {kind} artifact must end in {' or '.join(BACKENDS[kind].suffixes)}")
            if backend == "openvino" and kind in ("onnxruntime", "torch"):
                kind = "openvino"  # OpenVINO runs the graphs, and checkpoints through the export cache
            if backend not in ("auto", kind):
                raise BackendError(f"--backend {backend} cannot run {path} (a {kind} artifact); "
                                   f"use --backend {kind} or auto")
            if kind == "tensorrt" and backend == "auto" and not tensorrt_available():
                log.warning("TensorRT is not importable here: ignoring %s (install the 'trt' extra on an "
                            "NVIDIA machine)", path)
                continue
            opened = self._open(path, kind)
            cat = opened.info.category
            if cat in self._user[kind]:
                raise BackendError(f"two {kind} artifacts for category {cat!r}: "
                                   f"{self._user[kind][cat].info.source} and {path}")
            self._user[kind][cat] = opened

    @property
    def user_categories(self) -> list[str]:
        """Categories for which the user passed an artifact, in CATEGORIES order."""
        have = {c for by_cat in self._user.values() for c in by_cat}
        return [c for c in CATEGORIES if c in have]

    def _torch_threads(self) -> None:
        import torch

        if self.device == "cpu" and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
            log.info("torch: %d CPU thread(s)", self.threads)

    def _open(self, path: Path, kind: str, category: str | None = None) -> Backend:
        if kind == "torch" or (kind == "openvino" and path.suffix in (".pt", ".pth")):
            self._torch_threads()  # (the first-use OpenVINO export runs the checkpoint in torch)
        options = OpenOptions(category=category, device=self.device, precision=self.precision, threads=self.threads)
        return open_artifact(path, options, backend=kind)

    def _order(self) -> list[str]:
        if self.backend != "auto":
            return [self.backend]
        cpu_ov = self.device == "cpu" and self.precision in ("auto", "fp32", "bf16") and openvino_available()
        return (["tensorrt"] if tensorrt_available() else []) + (["openvino"] if cpu_ov else []) + \
            ["onnxruntime", "torch"]

    def __call__(self, category: str) -> Backend:
        """The backend serving ``category`` (opened on first use, then cached)."""
        check_category(category)
        if category not in self._cache:
            self._cache[category] = self._resolve(category)
        return self._cache[category]

    def _resolve(self, category: str) -> Backend:
        order = self._order()
        for kind in order:
            if category in self._user[kind]:
                return self._check(self._user[kind][category], category)
        shipped = shipped_artifacts(category, self.weights_dir)
        for kind in order:
            for path in shipped[kind]:
                log.info("%s: using shipped weights %s (%s)", category, path.name, kind)
                try:
                    return self._check(self._open(path, kind, category), category)
                except (BackendError, OSError) as exc:
                    if self.backend != "auto" or kind != "openvino":
                        raise
                    log.warning("%s: OpenVINO cannot serve %s (%s); trying the next runtime", category, path.name,
                                exc)
        if "torch" not in order:
            flag = "--engine" if self.backend == "tensorrt" else "--onnx"
            raise BackendError(f"no {self.backend} model for category {category!r}: pass {flag} PATH "
                               f"(see 'tryon export' / 'tryon build-engine'), or use --backend torch")
        return self._random_init(category)

    def _check(self, backend: Backend, category: str) -> Backend:
        if backend.info.category != category:
            raise BackendError(f"{backend.info.source}: model for category {backend.info.category!r}, "
                               f"needed {category!r}")
        return backend

    def _random_init(self, category: str) -> Backend:
        from realtime.backends.torch_backend import TorchBackend

        log.warning(
            "\n%s\nNO TRAINED WEIGHTS for %r (none in %s, none passed with --checkpoint/--onnx/--engine).\n"
            "Using a RANDOMLY INITIALISED %r network: accessory placements are MEANINGLESS until weights\n"
            "are installed (train with 'tryon train', or pass --checkpoint PATH).\n%s",
            "!" * 78, category, self.weights_dir, self.preset, "!" * 78)
        self._untrained.add(category)
        self._torch_threads()
        return TorchBackend.from_config(model_preset(self.preset, category), seed=0, device=self.device,
                                        precision=self.precision)

    def untrained(self, category: str) -> bool:
        """Whether ``category`` is served by a random-init network."""
        return category in self._untrained

    def describe(self, category: str) -> str:
        """Short description for logs and the HUD, e.g. ``torch fp32 lite (UNTRAINED)``."""
        b = self(category)
        if self.untrained(category):
            return f"{b.info.backend} {b.info.precision} {self.preset} (UNTRAINED)"
        return f"{b.info.backend} {b.info.precision} {Path(b.info.source).name}"

    def close(self) -> None:
        """Release every opened backend."""
        opened = {id(b): b for b in self._cache.values()}
        opened.update({id(b): b for by_cat in self._user.values() for b in by_cat.values()})
        for b in opened.values():
            b.close()
        self._cache.clear()
