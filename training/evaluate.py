"""Evaluation: ``tryon eval`` and the library functions behind it (paper Sec. 4.1, Table 1).

Every test sample goes through a :class:`realtime.backends.base.Backend` exactly as in
the live loop: ``set_foreground(foreground_input)`` then ``infer(background_input)``,
with inputs from :mod:`realtime.preprocess`; the heatmaps are decoded once by
:class:`realtime.codec.HeatmapCodec` and scored by :mod:`training.metrics` (LSSIM, IoU,
Disp at network resolution; definitions there). So a checkpoint (torch), an ONNX file
(onnxruntime) and a TensorRT engine are evaluated by the same code.

Reported beside the model:

* the paper's Table 1 numbers for the category (on STRAT, which we do not have: not
  comparable with numbers on other data, shown for scale);
* the **mean quad** baseline: the training split's mean normalised final quad, placed at
  the same relative position in every test image (what a model that ignores its inputs
  would score);
* the **teacher** row, when the split's ``dataset.json`` says its labels come from a
  teacher (pseudo-STRAT built from real photos by a landmark model). The labels ARE the
  teacher's output, so the teacher agrees with them perfectly: LSSIM 1, IoU 1, Disp 0
  by construction. That is a ceiling for this data, not a measurement of the teacher's
  accuracy; a jitter estimate recorded by the builder is quoted when present.

A sample whose model output (heatmaps or decoded quad) is not finite is a failure: it is
counted (``non_finite``), reported, and never scored; when every output is non-finite
``tryon eval`` fails (exit 1) instead of printing metrics.

``--json`` prints one JSON object on stdout: ``lssim``, ``iou``, ``disp``, ``n``,
``category``, ``backend`` (plus ``precision``, ``degenerate``, ``non_finite``, ``artifact``,
``data``, ``baselines`` {name: {lssim, iou, disp, n, note}}, ``paper``, ``notes`` and ``by_kind``).

``by_kind``: when the dataset root has the pseudo-STRAT builder's ``samples.json``, the metrics
per accessory kind (necktie vs bow tie, hat types) beside the mean quad's on the same samples,
with the median predicted / label length (``length_ratio_median``; knot to tip for a necktie).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.cli import command_parser, terminal_tables
from realtime.backends.base import Backend, OpenOptions
from realtime.backends.opener import open_artifact
from realtime.codec import HeatmapCodec
from realtime.config import load_config
from realtime.geometry import resize_matrix, warp_points
from realtime.preprocess import background_input, foreground_input
from training.metrics import MetricConfig, MetricSummary, SampleMetrics, sample_metrics, summarize
from training.strat import StratDataset, StratFormatError, resolve_split_dir

log = logging.getLogger(__name__)

#: Paper Table 1 (LSSIM, IoU, Disp) on STRAT, per category.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "glasses": {"Ours": (0.7038, 0.7814, 0.0122), "Ours (w/o sm)": (0.6971, 0.7753, 0.0125),
                "CorrelNet": (0.6886, 0.7573, 0.0145)},
    "hat": {"Ours": (0.5718, 0.8239, 0.0147), "Ours (w/o sm)": (0.5656, 0.8181, 0.0158),
            "CorrelNet": (0.5470, 0.7873, 0.0184)},
    "tie": {"Ours": (0.3229, 0.4832, 0.0093), "Ours (w/o sm)": (0.3146, 0.4744, 0.0094),
            "CorrelNet": (0.2883, 0.3948, 0.0131)},
}
#: Size of each STRAT test split (paper Sec. 4.1).
PAPER_TEST_SIZE = 1000


@dataclass
class BackendEval:
    """Result of :func:`evaluate_backend`.

    Attributes:
        metrics: the model's test-set metrics.
        mean_quad: the mean-quad baseline's metrics on the same samples (or None).
        figures: paths of the figures written.
        by_kind: per accessory kind (``necktie``, ``bow_tie``, ``hat:fedora``, ... from the
            builder's ``samples.json``): the model's and the mean quad's metrics and the median
            predicted / label length (:func:`length_ratio`); empty without kinds.
    """

    metrics: MetricSummary
    mean_quad: MetricSummary | None = None
    figures: list[Path] = field(default_factory=list)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class EvalReport:
    """Everything ``tryon eval`` reports."""

    metrics: MetricSummary
    category: str
    backend: str
    precision: str
    artifact: str
    data: str
    baselines: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object (documented keys first)."""
        out: dict[str, Any] = {k: getattr(self.metrics, k) for k in ("lssim", "iou", "disp", "n")}
        out.update(category=self.category, backend=self.backend, precision=self.precision,
                   degenerate=self.metrics.degenerate, non_finite=self.metrics.non_finite,
                   artifact=self.artifact, data=self.data,
                   baselines=self.baselines,
                   paper={name: dict(zip(("lssim", "iou", "disp"), v))
                          for name, v in PAPER_TABLE1[self.category].items()},
                   notes=self.notes, figures=self.figures, by_kind=self.by_kind)
        return out

    def to_markdown(self) -> str:
        """Table-1 style markdown: paper rows, this model, baselines, then notes."""
        lines = ["| method | data | n | LSSIM ↑ | IoU ↑ | Disp ↓ |", "|---|---|---:|---:|---:|---:|"]
        for name, (lssim, iou, disp) in PAPER_TABLE1[self.category].items():
            lines.append(f"| paper: {name} | STRAT-{self.category} | {PAPER_TEST_SIZE} | "
                         f"{lssim:.4f} | {iou:.4f} | {disp:.4f} |")
        m = self.metrics
        data = "/".join(Path(self.data).parts[-2:])
        lines.append(f"| **this model** ({self.backend}, {self.precision}) | {data} | {m.n} | "
                     f"**{m.lssim:.4f}** | **{m.iou:.4f}** | **{m.disp:.4f}** |")
        for name, row in self.baselines.items():
            lines.append(f"| {name} | {data} | {row['n']} | {row['lssim']:.4f} | "
                         f"{row['iou']:.4f} | {row['disp']:.4f} |")
        notes = list(self.notes)
        if m.non_finite:
            notes.insert(0, f"**{m.non_finite} of {m.n + m.non_finite} model outputs were not finite (NaN/inf): "
                            f"failures, not scored; the metrics are over the other {m.n}.**")
        if m.degenerate:
            notes.append(f"{m.degenerate} of {m.n} predicted quads were degenerate (IoU 0, no accessory drawn).")
        notes.append("Paper numbers are on STRAT; rows on other data are not comparable with them.")
        if self.by_kind:
            lines += ["", "| kind | n | LSSIM ↑ | IoU ↑ | Disp ↓ | mean quad LSSIM / IoU / Disp | length pred / label "
                      "(median) |", "|---|---:|---:|---:|---:|---:|---:|"]
            for kind, row in self.by_kind.items():
                mq = row.get("mean_quad")
                mq_text = f"{mq['lssim']:.4f} / {mq['iou']:.4f} / {mq['disp']:.4f}" if mq else "–"
                lines.append(f"| {kind} | {row['n']} | {row['lssim']:.4f} | {row['iou']:.4f} | {row['disp']:.4f} | "
                             f"{mq_text} | {row['length_ratio_median']:.3f} |")
        return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def predict_vertices(backend: Backend, codec: HeatmapCodec, sample: dict[str, Any]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Run one sample through a backend: returns (final_vertex (4, 2), heatmaps (4, S, S)).

    Weak corners are completed from the accessory's shape in its OWN pixels
    (:func:`accessory_shape_quad`), as the live pipeline does with ``Accessory.init_vertex_xy``:
    the network-size ``init_vertex`` of a foreground stretched to the square has lost the
    aspect (a tall necktie's box becomes a square, so completing its lower corners from it
    gives a stub as long as the tie is wide).
    """
    size = backend.info.input_size
    fg_in, _ = foreground_input(sample["foreground"], size)
    backend.set_foreground(fg_in)
    heatmaps = backend.infer(background_input(sample["background"]))  # (1, 4, S, S)
    return codec.decode_quad(heatmaps[0], accessory_shape_quad(sample)).pts_xy, heatmaps[0]


def accessory_shape_quad(sample: dict[str, Any]) -> np.ndarray:
    """A sample's ``init_vertex`` mapped back to its original foreground pixels (``fg_size_wh``):
    the accessory's true shape, which the network-size foreground (stretched to S x S) lacks."""
    init = np.asarray(sample["init_vertex"], np.float64)
    fg_wh = sample.get("fg_size_wh")
    if fg_wh is None:
        return init
    size = int(sample["foreground"].shape[1]), int(sample["foreground"].shape[0])
    return warp_points(resize_matrix(size, tuple(int(v) for v in fg_wh)), init)


def length_ratio(pred_xy: np.ndarray, gt_xy: np.ndarray) -> float:
    """Predicted / label length of a quad (TL TR BR BL): the distance from the top edge's
    midpoint to the bottom edge's (a necktie's knot-to-tip length)."""
    def length(q: np.ndarray) -> float:
        q = np.asarray(q, np.float64)
        return float(np.linalg.norm(0.5 * (q[2] + q[3]) - 0.5 * (q[0] + q[1])))

    return length(pred_xy) / max(length(gt_xy), 1e-9)


def sample_kinds(split_dir: str | Path) -> dict[str, str]:
    """Accessory kind of each sample (``necktie``, ``bow_tie``, ``glasses``, ``hat:<type>``) from the
    pseudo-STRAT builder's ``samples.json`` beside the split (``{}`` when there is none)."""
    path = Path(split_dir).parent / "samples.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StratFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise StratFormatError(f"{path}: top level must be an object of sample id -> info")
    return {sid: str(v["kind"]) for sid, v in meta.items() if isinstance(v, dict) and "kind" in v}


def mean_quad_norm(dataset: StratDataset) -> np.ndarray:
    """Mean normalised final quad of a split, (4, 2): the mean of (final_vertex + 0.5) / (W, H).

    Normalised in the pixel-edge convention of :func:`realtime.geometry.resize_matrix`,
    so it equals (v + 0.5) / S for the network-size vertex v; the "mean quad" baseline
    places it at ``m * S - 0.5`` in any test image. Reads only the image headers.
    """
    from training.strat import image_size_wh

    quads = []
    for rec in dataset.records:
        size_wh = np.asarray(image_size_wh(rec.background_path, f"split {dataset.split_dir}"), np.float64)
        quads.append((np.asarray(rec.final_vertex, np.float64) + 0.5) / size_wh)
    if not quads:
        raise ValueError(f"{dataset.split_dir}: empty split")
    return np.mean(quads, axis=0)


def mean_quad_pixels(mean_quad_norm: np.ndarray, size: int) -> np.ndarray:
    """Place a normalised quad (``(v + 0.5) / S`` convention) in an S x S image."""
    return np.asarray(mean_quad_norm, np.float64) * size - 0.5


def evaluate_backend(backend: Backend, dataset: StratDataset, limit: int = 0, metric_cfg: MetricConfig | None = None,
                     mean_quad_norm: np.ndarray | None = None, figures_dir: str | Path | None = None,
                     num_figures: int = 8, progress: bool = True, kinds: dict[str, str] | None = None
                     ) -> BackendEval:
    """Score a backend on a STRAT split.

    Args:
        backend: any backend; its ``info.config`` gives the codec and input size.
        dataset: the test split, loaded at the backend's input size.
        limit: evaluate the first ``limit`` samples only (0 = all).
        metric_cfg: metric options.
        mean_quad_norm: (4, 2) normalised mean quad for the baseline, or None to skip it.
        figures_dir: write the Fig. 3 / Fig. 4 style figures here (None = none).
        num_figures: samples shown in the figures.
        progress: show a tqdm bar.
        kinds: sample id -> accessory kind (:func:`sample_kinds`) for the per-kind breakdown.

    Returns:
        The model's metrics over the samples with finite outputs (``non_finite`` counts the
        others; with none finite, ``n`` is 0 and the means NaN), and the baseline's.

    Raises:
        ValueError: the dataset's network size differs from the backend's, or it is empty.
    """
    size = backend.info.input_size
    if dataset.size != size:
        raise ValueError(f"{dataset.split_dir}: loaded at {dataset.size} px but the model takes {size} px")
    codec = HeatmapCodec(backend.info.config.codec)
    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    if n == 0:
        raise ValueError(f"{dataset.split_dir}: no samples to evaluate")
    base_quad = mean_quad_pixels(mean_quad_norm, size) if mean_quad_norm is not None else None
    ours: list[SampleMetrics] = []
    base: list[SampleMetrics] = []
    non_finite: list[str] = []
    shown: list[dict[str, Any]] = []
    per_kind: dict[str, dict[str, list]] = {}
    indices = range(n)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=f"eval {backend.info.backend}", leave=False, dynamic_ncols=True)
    for i in indices:
        sample = dataset[i]
        pred, heatmaps = predict_vertices(backend, codec, sample)
        args = (sample["background"], sample["foreground"], sample["init_vertex"], sample["final_vertex"])
        finite = bool(np.all(np.isfinite(heatmaps)) and np.all(np.isfinite(pred)))
        kind = (kinds or {}).get(str(sample["id"]))
        group = per_kind.setdefault(kind, {"ours": [], "base": [], "ratio": []}) if kind is not None else None
        if finite:
            ours.append(sample_metrics(*args, pred, metric_cfg))
            if group is not None:
                group["ours"].append(ours[-1])
                group["ratio"].append(length_ratio(pred, sample["final_vertex"]))
        else:
            non_finite.append(str(sample["id"]))
        if base_quad is not None:
            base.append(sample_metrics(*args, base_quad, metric_cfg))
            if group is not None:
                group["base"].append(base[-1])
        if figures_dir is not None and finite and len(shown) < num_figures:
            shown.append({**sample, "pred_vertex": pred, "pred_heatmaps": heatmaps,
                          "gt_heatmaps": codec.encode(sample["final_vertex"], (size, size))})
    figures: list[Path] = []
    if figures_dir is not None:
        from training.figures import composite_grid, heatmap_figure

        out = Path(figures_dir)
        figures.append(composite_grid(shown, out / "fig3_composites.png"))
        for sample in shown[:4]:
            figures.append(heatmap_figure(sample, out / f"fig4_heatmaps_{sample['id']}.png"))
    if non_finite:
        log.warning("%d of %d model outputs were not finite (NaN/inf), not scored: samples %s%s", len(non_finite), n,
                    ", ".join(non_finite[:5]), " ..." if len(non_finite) > 5 else "")
    if ours:
        metrics = dataclasses.replace(summarize(ours), non_finite=len(non_finite))
    else:
        metrics = MetricSummary(lssim=math.nan, iou=math.nan, disp=math.nan, n=0, non_finite=len(non_finite))
    by_kind = {}
    for kind in sorted(per_kind):
        g = per_kind[kind]
        if not g["ours"]:
            continue
        m = summarize(g["ours"])
        b = summarize(g["base"]) if g["base"] else None
        by_kind[kind] = {"lssim": m.lssim, "iou": m.iou, "disp": m.disp, "n": m.n,
                         "length_ratio_median": float(np.median(g["ratio"])),
                         "mean_quad": None if b is None else {k: getattr(b, k) for k in ("lssim", "iou", "disp", "n")}}
    return BackendEval(metrics=metrics, mean_quad=summarize(base) if base else None, figures=figures,
                       by_kind=by_kind)


# --------------------------------------------------------------------------------------
# Opening artifacts and data
# --------------------------------------------------------------------------------------

def _teacher_info(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The teacher description of a split, or None if its labels are not from a teacher.

    The pseudo-STRAT builder (:mod:`training.pseudo_strat`) records
    ``generator.teacher = {"name": "mediapipe", "version": ..., "models": ...}``.
    """
    gen = meta.get("generator") if isinstance(meta.get("generator"), dict) else {}
    teacher = gen.get("teacher", meta.get("teacher"))
    if not teacher:
        return None
    return teacher if isinstance(teacher, dict) else {"name": str(teacher)}


def _noise_estimates(info: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric entries of the teacher description whose key mentions jitter or noise."""
    found: dict[str, float] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            found.update(_noise_estimates(value, f"{prefix}{key}."))
        elif (any(w in str(key).lower() for w in ("jitter", "noise")) and isinstance(value, (int, float))
              and not isinstance(value, bool)):
            found[prefix + str(key)] = float(value)
    return found


def teacher_row(meta: dict[str, Any], n: int) -> tuple[dict[str, Any] | None, list[str]]:
    """The teacher baseline row and its notes (None when the data is not from a teacher).

    Only a noise estimate recorded INSIDE the teacher description counts; the
    builder's ``generator.jitter`` is its framing augmentation, not teacher noise.
    """
    info = _teacher_info(meta)
    if info is None:
        return None, []
    name = " ".join(str(info[k]) for k in ("name", "version") if k in info) or "teacher"
    notes = [f"teacher row ({name}): the labels are the teacher's own output, so it agrees with them "
             f"perfectly (LSSIM 1, IoU 1, Disp 0) by construction; this is the ceiling on this data, "
             f"not a measurement of the teacher's accuracy."]
    noise = _noise_estimates(info)
    if noise:
        notes.append("the dataset builder records a teacher jitter estimate: "
                     + ", ".join(f"{k} = {v:g}" for k, v in noise.items()))
    else:
        notes.append("the dataset builder records no estimate of the teacher's own jitter.")
    return {"lssim": 1.0, "iou": 1.0, "disp": 0.0, "n": n, "note": "labels = teacher output (ceiling)"}, notes


def evaluate(artifact: str | Path, data: str | Path, backend: str | None = None, split: str = "test",
             limit: int = 0, figures_dir: str | Path | None = None, device: str = "cpu", precision: str = "fp32",
             metric_cfg: MetricConfig | None = None, progress: bool = True) -> EvalReport:
    """Evaluate a checkpoint / ONNX file / engine on a STRAT split (``tryon eval``).

    Args:
        artifact: ``.pt`` checkpoint, ``.onnx`` file, ``.engine``, or an export folder.
        data: dataset root (its ``split`` folder is used) or a split dir.
        backend: ``torch``, ``onnxruntime`` or ``tensorrt``; must fit the artifact's suffix.
        split: split folder under ``data``.
        limit: first N samples only (0 = all).
        figures_dir: also write the figures there.
        device, precision: torch backend only.
        metric_cfg: metric options.
        progress: tqdm bar.
    """
    be = open_artifact(artifact, OpenOptions(device=device, precision=precision), backend=backend)
    try:
        info = be.info
        dataset = StratDataset(data, info.category, info.input_size, split=split)
        mean_norm, mean_note = _mean_quad_source(data, dataset, info.meta)
        result = evaluate_backend(be, dataset, limit, metric_cfg, mean_norm, figures_dir, progress=progress,
                                  kinds=sample_kinds(dataset.split_dir))
    finally:
        be.close()
    if result.metrics.n == 0:
        raise ValueError(f"{artifact}: all {result.metrics.non_finite} outputs on {dataset.split_dir} are not finite "
                         "(NaN/inf heatmaps): nothing to score; the model is broken (NaN weights? a diverged run?)")
    baselines: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    if result.mean_quad is not None:
        baselines["mean quad"] = {**{k: getattr(result.mean_quad, k) for k in ("lssim", "iou", "disp", "n")},
                                  "note": mean_note}
        notes.append(f"mean quad: {mean_note}")
    row, teacher_notes = teacher_row(dataset.meta, result.metrics.n)
    if row is not None:
        baselines["teacher"] = row
        notes.extend(teacher_notes)
    return EvalReport(metrics=result.metrics, category=info.category, backend=info.backend,
                      precision=info.precision, artifact=str(artifact), data=str(dataset.split_dir),
                      baselines=baselines, notes=notes, figures=[str(p) for p in result.figures],
                      by_kind=result.by_kind)


def _mean_quad_source(data: str | Path, test_set: StratDataset, meta: dict[str, Any]
                      ) -> tuple[np.ndarray | None, str]:
    """The mean normalised quad: from the training split if present, else the checkpoint."""
    try:
        train_dir = resolve_split_dir(data, "train", test_set.category)
    except (StratFormatError, FileNotFoundError):
        train_dir = None
    if train_dir is not None and train_dir != test_set.split_dir:
        # A baseline, not the data under test: bad training samples are skipped (and said), not fatal.
        train_set = StratDataset(train_dir, test_set.category, test_set.size, skip_bad=True)
        skipped = f"; {len(train_set.skipped)} bad training sample(s) skipped" if train_set.skipped else ""
        return mean_quad_norm(train_set), f"mean of {len(train_set)} training quads ({train_dir}{skipped})"
    stored = meta.get("mean_quad_norm")
    if stored is not None:
        return np.asarray(stored, np.float64), "mean training quad stored in the checkpoint"
    log.info("no training split beside %s and none stored in the artifact: no mean-quad baseline",
             test_set.split_dir)
    return None, ""


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    p = command_parser("tryon eval", "Evaluate a model on a STRAT test split: LSSIM, IoU, Disp beside the paper's "
                                     "Table 1 and simple baselines.",
                       "tryon eval --checkpoint runs/glasses_lite/best.pt --data data/pseudo_strat/glasses")
    p.add_argument("--checkpoint", required=True, help=".pt checkpoint, .onnx file, .engine or an export folder")
    p.add_argument("--data", required=True, help="dataset root (uses its test/ split) or a split dir")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "tensorrt"),
                   help="runtime (default: from the artifact's suffix)")
    p.add_argument("--split", default="test", help="split folder under --data (default: test)")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N samples only")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--figures", metavar="DIR", help="write Fig. 3 / Fig. 4 style PNGs to DIR")
    p.add_argument("--device", default="cpu", help="torch backend device (cpu, cuda, cuda:1)")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                   help="torch backend precision")
    p.add_argument("--set", dest="metric_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="metric option of training.metrics.MetricConfig, e.g. --set box=gt (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``tryon eval``: parse, validate, call :func:`evaluate`, print."""
    args = _parser().parse_args(argv)
    if args.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {args.limit}")
    metric_cfg = load_config(MetricConfig, None, args.metric_overrides)
    report = evaluate(args.checkpoint, args.data, args.backend, args.split, args.limit, args.figures,
                      args.device, args.precision, metric_cfg, progress=not args.json)
    if args.json:
        print(json.dumps(report.to_json(), allow_nan=False, default=_json_default))
    else:
        print(terminal_tables(report.to_markdown()))  # Markdown stays in the saved report
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        v = value.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

