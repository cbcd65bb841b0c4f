"""``tryon bench``: the command line of the latency, steadiness and soak benchmarks."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable

from realtime.backends.resolver import (BACKEND_CHOICES, PRECISION_CHOICES, PRECISION_HELP, ModelResolver,
                                       default_threads)
from realtime.cli import command_parser, terminal_tables
from realtime.bench.latency import (CAMERA_FPS, DEFAULT_CATEGORIES, DEFAULT_RESOLUTIONS, BenchBackend, BenchSettings,
                                    canonical_heatmaps, model_info, run_bench, to_markdown)
from realtime.bench.peer import PeerError, PeerUnavailable
from realtime.bench.report import environment, hardware_slug, write_report
from realtime.bench.soak import run_soak, soak_markdown
from realtime.bench.stability import SCRIPTS
from realtime.config import CATEGORIES
from realtime.io import ensure_writable_folder
from realtime.live.capture import PortraitMotionSource
from realtime.live.detectors import DEFAULT_DETECTOR, detector_names, make_detector
from realtime.live.pipeline import TryOnPipeline
from realtime.live.smoothing import SmoothingConfig
from realtime.procedural import bundled_accessories

log = logging.getLogger(__name__)


def _csv(parse: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def inner(text: str) -> list[Any]:
        return [parse(t.strip()) for t in text.split(",") if t.strip()]
    return inner


def _category(text: str) -> str:
    if text not in CATEGORIES:
        raise argparse.ArgumentTypeError(f"unknown category {text!r}; expected {', '.join(CATEGORIES)}")
    return text


def build_parser() -> argparse.ArgumentParser:
    from realtime.live.app import parse_resolution

    p = command_parser(
        "tryon bench", examples=["tryon bench --category glasses --resolution 1280x720",
                                 "tryon bench --stability", "tryon bench --soak 20000"],
        description="Per-stage latency of the live pipeline, optimised vs naive, and async display FPS vs "
                    "inference Hz (default); steadiness on synthetic camera motion (--stability); memory and "
                    "FPS soak (--soak N). Reports go to stdout, and to --json / --out-dir as JSON + Markdown.")
    g = p.add_argument_group("model")
    g.add_argument("--backend", choices=BACKEND_CHOICES, default="auto")
    g.add_argument("--checkpoint", action="append", default=[], metavar="PATH", help="torch checkpoint (repeatable)")
    g.add_argument("--onnx", action="append", default=[], metavar="PATH", help="ONNX per-frame graph (repeatable)")
    g.add_argument("--engine", action="append", default=[], metavar="PATH", help="TensorRT engine (repeatable)")
    g.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    g.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    g.add_argument("--threads", type=int, default=None,
                   help=f"CPU inference threads (default: half the cores, here {default_threads()})")
    g.add_argument("--detector", choices=detector_names(), default=DEFAULT_DETECTOR,
                   help=f"face detector of the pipeline (default {DEFAULT_DETECTOR}; benchmarks/detection.py "
                        "compares them)")
    g.add_argument("--preset", default="lite", choices=("paper", "lite", "tiny"),
                   help="network of the random-init fallback when no weights exist (default lite)")
    b = p.add_argument_group("latency")
    b.add_argument("--category", type=_csv(_category), default=list(DEFAULT_CATEGORIES),
                   help="comma-separated categories (default glasses,tie; --stability and --soak use the first)")
    b.add_argument("--resolution", type=_csv(parse_resolution), default=list(DEFAULT_RESOLUTIONS),
                   help="comma-separated WxH (default 1280x720,1920x1080)")
    b.add_argument("--frames", type=int, default=100, help="timed frames per run (default 100)")
    b.add_argument("--warmup", type=int, default=10, help="untimed warm-up frames (default 10)")
    b.add_argument("--source", default="synthetic", help="'synthetic' (astronaut under camera motion) or a video file")
    b.add_argument("--no-naive", action="store_true", help="skip the naive pipeline (no ratios)")
    b.add_argument("--async-seconds", type=float, default=10.0, help="length of the async run, 0 to skip")
    b.add_argument("--placement", choices=("auto", "network", "canonical"), default="auto",
                   help="canonical: replace the network's output by a canonical quad (auto: when untrained)")
    b.add_argument("--native", choices=("auto", "on", "off"), default="auto",
                   help="native kernels in the optimised pipeline (auto: where they win)")
    b.add_argument("--peer", choices=("auto", "on", "off"), default="auto",
                   help="also time MediaPipe FaceMesh + a glasses warp on the same frames, interleaved, and report "
                        "the ratio (needs the teacher env: $TEACHER_VENV or .venv-teacher, made by "
                        "training/teacher/setup_env.sh; auto: when it exists)")
    b.add_argument("--peer-venv", type=Path, metavar="DIR", help="the teacher env for --peer (default $TEACHER_VENV)")
    m = p.add_argument_group("mode").add_mutually_exclusive_group()
    m.add_argument("--stability", action="store_true", help="steadiness: jitter / lag on synthetic camera motion")
    m.add_argument("--soak", type=int, metavar="N", help="memory soak: push N frames, sample RSS and FPS")
    st = p.add_argument_group("steadiness (--stability)")
    st.add_argument("--photos", type=Path, help="folder of photos (default: the astronaut)")
    st.add_argument("--max-photos", type=int, default=5, help="photos used from --photos (default 5)")
    st.add_argument("--script", choices=list(SCRIPTS), default="full",
                    help="camera script: full (~35 s) or targets (the issue-13 targets only, ~18 s: static hold, "
                         "slow pan, roll to +45, face away, re-entry, 30-degree cut)")
    st.add_argument("--noise", type=float, default=3.0, help="sensor noise, grey levels (default 3)")
    st.add_argument("--sweep", action="store_true", help="sweep the smoothing parameters, plot jitter vs lag")
    st.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="smoothing option (SmoothingConfig) for the measurement, e.g. --set beta=4 (repeatable)")
    so = p.add_argument_group("soak (--soak N)")
    so.add_argument("--soak-every", type=int, default=500, help="sample every this many frames (default 500)")
    so.add_argument("--soak-resolution", type=parse_resolution, default=(640, 480), metavar="WxH")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, metavar="OUT.json", help="write the report here (and OUT.md)")
    o.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="write <kind>_<date>_<hardware>.json/.md here (e.g. benchmarks/results)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``tryon bench``."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.frames < 1 or args.warmup < 0 or (args.soak is not None and args.soak < 1):
        p.error("--frames and --soak must be >= 1, --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.source != "synthetic" and not Path(args.source).is_file():
        p.error(f"--source: video file not found: {args.source}")
    if args.json is not None:  # before the benchmark runs, not after
        ensure_writable_folder(args.json.parent)
        for path in (args.json, args.json.with_suffix(".md")):
            if path.exists():
                log.warning("%s exists: it is replaced by this report", path)
    elif args.out_dir is not None:
        ensure_writable_folder(args.out_dir)
    threads = args.threads or default_threads()
    resolver = ModelResolver(args.backend, checkpoints=args.checkpoint, onnx=args.onnx, engines=args.engine,
                             device=args.device, precision=args.precision, preset=args.preset, threads=threads)
    try:
        if args.stability:
            report, markdown, kind = _stability_command(args, resolver, threads)
        elif args.soak is not None:
            report, markdown, kind = _soak_command(args, resolver, threads)
        else:
            settings = BenchSettings(frames=args.frames, warmup=args.warmup, naive=not args.no_naive,
                                     async_seconds=args.async_seconds, placement=args.placement,
                                     prefer_native={"auto": None, "on": True, "off": False}[args.native],
                                     source=args.source, peer=args.peer,
                                     peer_venv=str(args.peer_venv) if args.peer_venv else None)
            try:
                report = run_bench(resolver, args.category, args.resolution, settings, threads)
            except (PeerUnavailable, PeerError) as exc:
                raise SystemExit(f"tryon bench: --peer: {exc}") from exc
            markdown, kind = to_markdown(report), "bench"
    finally:
        resolver.close()
    print(terminal_tables(markdown))  # aligned columns here; the saved .md keeps the Markdown
    paths = []
    if args.json is not None:
        paths = write_report(report, args.json, markdown)
    elif args.out_dir is not None:
        paths = write_report(report, args.out_dir / f"{kind}_{report['date']}_{hardware_slug(report)}.json", markdown)
    for path in paths:
        print(f"tryon bench: wrote {path}")
    return 0


def _stability_command(args: argparse.Namespace, resolver: ModelResolver,
                       threads: int) -> tuple[dict[str, Any], str, str]:
    from realtime.bench import stability
    from realtime.config import load_config

    category = args.category[0]
    resolver(category)  # open it now: untrained() is known once it is open
    if resolver.untrained(category):
        log.warning("steadiness of an UNTRAINED network measures nothing useful: pass --checkpoint/--onnx/--engine")
    smoothing = load_config(SmoothingConfig, overrides=args.overrides)
    photos = stability.load_photos(args.photos, args.max_photos)
    accessory = bundled_accessories(category)[0]

    try:
        detector = make_detector(args.detector)
    except ImportError as exc:
        raise SystemExit(f"tryon bench: --detector {args.detector}: {exc}") from exc

    def make_pipeline() -> TryOnPipeline:
        return TryOnPipeline(resolver, {category: [accessory]}, smoothing=smoothing, detector=detector)

    report = stability.run_stability(make_pipeline, photos, smoothing=smoothing, noise_sigma=args.noise,
                                     sweep=args.sweep, script=stability.SCRIPTS[args.script])
    report.update(environment(threads))
    report["model"] = model_info(resolver(category), resolver.untrained(category), resolver.describe(category))
    report["accessory"] = accessory.name
    report["detector"] = args.detector
    if args.sweep and (args.json or args.out_dir):
        png = (args.json.with_suffix(".png") if args.json else
               args.out_dir / f"smoothing_sweep_{report['date']}.png")
        stability.plot_sweep(report["sweep"], png, title=stability.sweep_title(report))
        report["sweep_png"] = str(png)
    return report, stability.to_markdown(report), "smoothing_sweep" if args.sweep else "stability"


def _soak_command(args: argparse.Namespace, resolver: ModelResolver, threads: int) -> tuple[dict[str, Any], str, str]:
    category = args.category[0]
    inner = resolver(category)
    untrained = resolver.untrained(category)
    canonical = args.placement == "canonical" or (args.placement == "auto" and untrained)
    backend = BenchBackend(inner, heatmaps=canonical_heatmaps(category, inner.info) if canonical else None)
    pipe = TryOnPipeline(lambda _c: backend, {category: bundled_accessories(category)[:1]})
    from skimage.data import astronaut

    src = PortraitMotionSource(astronaut(), size_wh=args.soak_resolution, fps=CAMERA_FPS, seconds=4.0,
                               noise_sigma=2.0)
    frames = [src.read().image for _ in range(src.frame_count)]  # 4 s of motion, cycled
    soak = run_soak(pipe, frames + frames[::-1], args.soak, every=args.soak_every)
    report = {"kind": "soak", **environment(threads), "soak": soak,
              "resolution": f"{args.soak_resolution[0]}x{args.soak_resolution[1]}",
              "model": model_info(inner, untrained, resolver.describe(category)),
              "placement": "canonical (network output replaced after it is computed, so the composite runs every "
                           "frame)" if canonical else "network"}
    return report, soak_markdown(report), "soak"
