"""Per-frame stages that used to scale with the frame, before vs after issue 14, from 640x480 to 4K, in one run.

For each resolution, the astronaut portrait rendered as the synthetic camera frames it
(:class:`realtime.live.capture.PortraitMotionSource`), its face found once, and an accessory
quad of glasses size on it (0.9 x 0.33 face sizes across the eyes: the footprint grows
with the face, as it would with a closer camera). Each "before" and "after" runs once per
iteration, in rotating order, so ratios come from the same moments of a shared machine:

* **render** (homography + warp + composite, including any frame copy). Before: a full-frame
  ``image.copy()`` then the footprint composite (what ``TryOnPipeline.render`` always did);
  ``in_place_prev``: in place, but the accessory's alpha box scanned on every call (the first
  issue-14 version); after: the composite in place on the frame the loop owns
  (``render(..., in_place=True)``), the accessory's corners cached with its premultiplied
  copy (:class:`realtime.live.render.Compositor`).
* **window search** (the tracker's periodic re-detection around the followed face) with the
  product's default detector (:data:`realtime.live.detectors.DEFAULT_DETECTOR`, built by
  :func:`~realtime.live.detectors.make_detector`): per search, and what a frame pays on
  average, the mean search divided by ``roi.detect_every`` (tracking on detections alone) and
  by ``roi.confirmed_detect_every`` (the network confirms the face) of the glasses'
  :class:`realtime.framing.RoiConfig` (the schedule of :class:`realtime.live.tracking.RoiTracker`,
  measured whole in ``benchmarks/tracker_cost.py``). For BlazeFace its parts are timed too:
  the letterbox of the window into the network's input (:func:`realtime.geometry.letterbox`,
  the only part that depends on the frame) and the network run; the letterbox (window and whole
  frame) and the window search with OpenCV's area resize (``_cv2``, before) and with the native
  one the detectors use (:func:`realtime.live.native.shrink_rows_sampled`: the native area
  resize, :func:`realtime.live.native.resize_area`, the same pixels within one grey level, over
  every k-th row on a large shrink); the whole frame also through the native area resize over
  every row (``full_letterbox_area``, before the rows were sampled).
* **grey** / **roi, cascade** (the LBP cascade, the detector before BlazeFace; kept for
  reference). Before: a full-frame BGR->grey conversion then the window search; after: only the
  window converted (:meth:`realtime.live.detectors.CascadeDetector.detect` with ``near``).
  ``grey`` is the conversion alone; ``roi`` the whole search (before = the full-frame
  conversion + today's search, so it counts the window's own conversion twice: a few
  microseconds).
* **display** (the CPU work of showing a frame, the window's blit excluded). Before:
  ``cv2.flip`` into a new array, the HUD, a BGR->RGB conversion into another
  (``realtime.bench.latency.display_frame_naive``); after: one pass into a display-owned buffer plus
  the HUD on its panel (:class:`realtime.live.display.PreviewBuffer`) at full size
  (``one_pass_full``, the first issue-14 version); for a window fitted to a 1920x1080 screen
  (:data:`SCREEN_WH`), ``box_prev`` (the second version: a whole-factor 2 x 2 box average,
  then the mirror in place on the small buffer) and ``after``: the mirror and the reduction to
  exactly the on-screen size in one nearest-neighbour pass (native; ``after_fallback``: the
  same pixels through ``cv2.remap`` when the native library is absent).
* **window** (``--window``, with a display: e.g. ``xvfb-run -s "-screen 0 1920x1080x24"``): the
  preview plus what the live window then does with it (:meth:`realtime.live.window.Window.show`:
  ``cv2.imshow``, whose toolkit converts and scales the image to the window, and the 1 ms key
  poll), with the full-size preview (before) and the reduced one (after), on a window opened
  the way the app opens it (fitted to the screen).
* For reference, unchanged stages: **capture** (JPEG decode, quality 90), **preprocess**
  (the native fused crop + normalise, 224 px), and the **full-frame face search** (the default
  detector and the cascade; run only while nobody is followed, or after a miss); the default
  detector's also with its letterboxes reading every row (``full_frame_search_area``).

    PYTHONPATH=. python benchmarks/frame_scaling.py [--iters 40] [--window] [--cv-threads N] [--tag T]

Writes benchmarks/results/frame_scaling_<date>_<cpu>[_<tag>].{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from realtime.live import native
from realtime.bench.latency import decode_jpeg, display_frame_naive, encode_jpeg
from realtime.live.capture import PortraitMotionSource
from realtime.live.display import PreviewBuffer, reduction_factor
from realtime.framing import roi_config
from realtime.geometry import crop_from_box, homography_from_quads, letterbox
from realtime.live.render import Compositor, draw_hud
from realtime.live.window import fit_size
from realtime.live.detectors import DEFAULT_DETECTOR, BlazeFaceDetector, CascadeDetector, make_detector
from realtime.procedural import bundled_accessories
from realtime.sysinfo import hardware_info, summarize_ms
from sampled_letterbox import every_row  # benchmarks/ is on sys.path when this script runs

RESULTS = Path(__file__).resolve().parent / "results"
RESOLUTIONS = ((640, 480), (1280, 720), (1920, 1080), (3840, 2160))
#: The screen the live window is fitted to for the display's "after" (realtime.live.window.fit_size).
SCREEN_WH = (1920, 1080)
HUD = ["display 30.0 fps | inference 15.0 Hz, 50 ms | openvino fp32 glasses_224_frame_fp32.onnx",
       "glasses/round (1/4) | smoothing on | conf 0.80"]


def _rotating(fns: dict[str, Callable[[], Any]], iters: int) -> dict[str, list[float]]:
    for fn in fns.values():
        fn()
    names = list(fns)
    out: dict[str, list[float]] = {k: [] for k in names}
    for i in range(iters):
        for k in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            fns[k]()
            out[k].append(time.perf_counter() - t0)
    return out


def _box_preview(frame: np.ndarray, bufs: dict[str, np.ndarray], shown_wh: tuple[int, int]) -> np.ndarray:
    """The second issue-14 preview (kept here to measure against): the largest whole-factor
    box average no smaller than the window (``cv2.resize`` INTER_AREA, which reads every
    pixel), then the mirror in place on the small buffer, then the HUD."""
    h, w = frame.shape[:2]
    k = reduction_factor((w, h), shown_wh)
    if k == 1:
        view = bufs.setdefault("full", np.empty_like(frame))
        cv2.flip(frame, 1, dst=view)
    else:
        vw, vh = w // k, h // k
        view = bufs.setdefault(f"{vw}x{vh}", np.empty((vh, vw, 3), np.uint8))
        cv2.resize(frame[:vh * k, :vw * k], (vw, vh), dst=view, interpolation=cv2.INTER_AREA)
        cv2.flip(view, 1, dst=view)
    draw_hud(view, HUD, None, screen_scale=shown_wh[0] / view.shape[1])
    return view


def _without_native(kernel: str, fn: Callable[[], Any]) -> Any:
    prev = native.PREFER_NATIVE[kernel]
    native.set_prefer_native(kernel, False)
    try:
        return fn()
    finally:
        native.set_prefer_native(kernel, prev)


def _first_face(det, frame: np.ndarray, size_wh: tuple[int, int]):
    faces = det.detect(frame)
    if not faces:
        raise RuntimeError(f"{size_wh}: detector {det.name} finds no face in the benchmark frame")
    return faces[0]


def bench_resolution(size_wh: tuple[int, int], iters: int, det, window: bool = False) -> dict[str, Any]:
    """One resolution's timings; ``det`` is the default detector (its graph opened once)."""
    from skimage.data import astronaut

    frame = PortraitMotionSource(astronaut(), size_wh=size_wh, seconds=0.1)._get(0)
    jpeg = encode_jpeg(frame)
    face = _first_face(det, frame, size_wh)  # the followed face, as the tracker has it
    cascade = CascadeDetector()
    face_c = _first_face(cascade, frame, size_wh)
    s = face.side
    cx, cy = face.cx, face.cy - 0.12 * s
    quad = np.array([[cx - 0.45 * s, cy - 0.16 * s], [cx + 0.45 * s, cy - 0.16 * s],
                     [cx + 0.45 * s, cy + 0.17 * s], [cx - 0.45 * s, cy + 0.17 * s]])
    acc = bundled_accessories("glasses")[0]
    comp = Compositor()
    owned = frame.copy()
    preview, preview_full, preview_fb = PreviewBuffer(), PreviewBuffer(), PreviewBuffer()
    box_buf: dict[str, np.ndarray] = {}
    shown = fit_size(size_wh, SCREEN_WH)
    crop = crop_from_box((face.cx, face.cy), 2.0 * s, 224)
    h, w = frame.shape[:2]  # the cascade's search window: 3 face sizes around its face
    sc = face_c.side
    wx0, wy0 = max(0, int(face_c.cx - 1.5 * sc)), max(0, int(face_c.cy - 1.5 * sc))
    wx1, wy1 = min(w, int(face_c.cx + 1.5 * sc) + 1), min(h, int(face_c.cy + 1.5 * sc) + 1)

    fns: dict[str, Callable[[], Any]] = {
        "render_before": lambda: comp.draw(frame.copy(), acc, quad),
        "render_in_place_prev": lambda: native.composite(owned, comp.prepared(acc),
                                                         homography_from_quads(acc.init_vertex_xy, quad)),
        "render_after": lambda: comp.draw(owned, acc, quad),
        "window_search": lambda: det.detect(frame, face),
        "grey_before": lambda: cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY),
        "grey_after": lambda: cv2.cvtColor(frame[wy0:wy1, wx0:wx1], cv2.COLOR_BGR2GRAY),
        "roi_before": lambda: (cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cascade.detect(frame, face_c)),
        "roi_after": lambda: cascade.detect(frame, face_c),
        "display_before": lambda: display_frame_naive(frame, HUD),
        "display_one_pass_full": lambda: preview_full.compose(frame, mirror=True, hud=(HUD, None)),
        "display_box_prev": lambda: _box_preview(frame, box_buf, shown),
        "display_after": lambda: preview.compose(frame, mirror=True, hud=(HUD, None), shown_wh=shown,
                                                 screen_scale=shown[0] / w),
        "display_after_fallback": lambda: _without_native("preview", lambda: preview_fb.compose(
            frame, mirror=True, hud=(HUD, None), shown_wh=shown, screen_scale=shown[0] / w)),
        "capture": lambda: decode_jpeg(jpeg),
        "preprocess": lambda: native.preprocess_crop(frame, crop, 224),
        "full_frame_search": lambda: det.detect(frame),
        "roi_full_frame_search": lambda: cascade.detect(frame),
    }
    if isinstance(det, BlazeFaceDetector):  # the window search's parts (BlazeFaceDetector.detections)
        region = (face.cx - 1.5 * s, face.cy - 1.5 * s, 3.0 * s, 3.0 * s)
        net_in, _ = letterbox(frame, region, (det.size, det.size))
        fns["window_letterbox"] = lambda: letterbox(frame, region, (det.size, det.size), native.resize_area)
        fns["window_letterbox_cv2"] = lambda: letterbox(frame, region, (det.size, det.size))
        whole = (0.0, 0.0, float(w), float(h))
        fns["full_letterbox"] = lambda: letterbox(frame, whole, (det.size, det.size), native.shrink_rows_sampled)
        fns["full_letterbox_area"] = lambda: letterbox(frame, whole, (det.size, det.size), native.resize_area)
        fns["full_letterbox_cv2"] = lambda: letterbox(frame, whole, (det.size, det.size))
        fns["window_search_cv2"] = lambda: _without_native("area", lambda: det.detect(frame, face))
        fns["full_frame_search_area"] = lambda: every_row(lambda: det.detect(frame))
        fns["window_network"] = lambda: det.raw(net_in)
    win = None
    if window:
        from realtime.live.window import Window

        win = Window(f"frame_scaling {size_wh[0]}x{size_wh[1]}")
        win.update_scale(size_wh)
        win_shown = win.shown_size(size_wh)
        win_full, win_small = PreviewBuffer(), PreviewBuffer()
        fns["window_before"] = lambda: win.show(win_full.compose(frame, mirror=True, hud=(HUD, None)))
        win_box: dict[str, np.ndarray] = {}
        fns["window_box_prev"] = lambda: win.show(_box_preview(frame, win_box, win_shown))
        fns["window_after"] = lambda: win.show(win_small.compose(frame, mirror=True, hud=(HUD, None),
                                                                 shown_wh=win_shown))
    try:
        samples = _rotating(fns, iters)
    finally:
        if win is not None:
            win.close()
    stats = {k: {**summarize_ms(v), "min": float(np.min(v) * 1e3)} for k, v in samples.items()}
    cfg = roi_config("glasses")
    per_frame = {"detect_every": cfg.detect_every, "confirmed_detect_every": cfg.confirmed_detect_every,
                 "tracking_ms": stats["window_search"]["mean"] / cfg.detect_every,
                 "confirmed_ms": stats["window_search"]["mean"] / cfg.confirmed_detect_every}
    ratios = {st: stats[f"{st}_after"]["p50"] / stats[f"{st}_before"]["p50"] for st in ("render", "grey", "roi", "display")
              if f"{st}_before" in stats}
    if win is not None:
        ratios["window"] = stats["window_after"]["p50"] / stats["window_before"]["p50"]
    ratios["render_in_place_prev"] = stats["render_in_place_prev"]["p50"] / stats["render_before"]["p50"]
    for variant in ("display_one_pass_full", "display_box_prev", "display_after_fallback"):
        ratios[variant] = stats[variant]["p50"] / stats["display_before"]["p50"]
    view = preview.compose(frame, mirror=True, shown_wh=shown)
    return {"resolution": f"{size_wh[0]}x{size_wh[1]}", "face_px": round(s, 1), "detector": det.name,
            "window_search_per_frame": per_frame,
            "window_shows": f"{shown[0]}x{shown[1]}", "preview": f"{view.shape[1]}x{view.shape[0]}",
            "footprint_px": [round(float(v), 1) for v in quad.max(0) - quad.min(0)], "ms": stats,
            "ratio_after_to_before_p50": ratios}


def to_markdown(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    det = report["results"][0]["detector"] if report["results"] else DEFAULT_DETECTOR
    every = report["results"][0]["window_search_per_frame"] if report["results"] else {}
    lines = [f"# Per-frame stages vs frame size, before / after issue 14 ({report['date']})", "",
             f"Machine: {hw['cpu']}, {hw['cores']} logical cores shared with other engineers' jobs (load average "
             f"{report['load_before']} before, {report['load_after']} after); native kernels: "
             f"{report['native']}, OpenCV threads {report['opencv_threads']}, native threads {report['native_threads']}"
             f"{'' if report.get('nice') in (None, 0) else ', niced ' + str(report['nice'])}. "
             f"{report['iters']} iterations, every variant once per iteration in rotating "
             "order; p50 ms (p95 and min in the JSON; the display's min in its cell). What each timing includes: "
             "benchmarks/frame_scaling.py.", "",
             f"Display \"after\": the window fitted to a {SCREEN_WH[0]}x{SCREEN_WH[1]} screen; the preview size it "
             "is built at is in the table. Window search: the default detector "
             f"(`{det}`), per search (p50) and what a frame pays on average (the mean search / "
             f"roi.detect_every = {every.get('detect_every')} while tracking on detections alone, / "
             f"roi.confirmed_detect_every = {every.get('confirmed_detect_every')} while the network confirms the face).",
             "",
             "| resolution | face / footprint px | render before / in place (prev) -> after | display before / one pass "
             "full size / box reduced (prev) -> after (no native: remap; window, preview) | window search: per search "
             "-> a frame pays tracking / confirmed | preprocess | capture (JPEG decode) |",
             "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        m, q, pf = r["ms"], r["ratio_after_to_before_p50"], r["window_search_per_frame"]
        shown = (f"; min {m['display_box_prev']['min']:.2f} -> {m['display_after']['min']:.2f}; no native "
                 f"{m['display_after_fallback']['p50']:.2f}; window {r['window_shows']}, preview {r['preview']}")
        lines.append(f"| {r['resolution']} | {r['face_px']:.0f} / {r['footprint_px'][0]:.0f}x{r['footprint_px'][1]:.0f}"
                     f" | {m['render_before']['p50']:.2f} / {m['render_in_place_prev']['p50']:.2f} -> "
                     f"**{m['render_after']['p50']:.2f}** (x{q['render']:.2f}) | "
                     f"{m['display_before']['p50']:.2f} / {m['display_one_pass_full']['p50']:.2f} / "
                     f"{m['display_box_prev']['p50']:.2f} -> **{m['display_after']['p50']:.2f}** "
                     f"(x{q['display']:.2f}{shown}) | "
                     f"{m['window_search']['p50']:.2f} -> **{pf['tracking_ms']:.2f} / {pf['confirmed_ms']:.2f}** | "
                     f"{m['preprocess']['p50']:.2f} | {m['capture']['p50']:.2f} |")
    lines += ["", "The window search's parts, the full-frame search (run while nobody is followed or after a miss), "
              "and the LBP cascade (the detector before BlazeFace, for reference; its grey conversion before -> after "
              "is issue 14's window-only conversion), p50 ms:", "",
              f"| resolution | {det} window search: letterbox OpenCV area -> native area / network | {det} window "
              "search, OpenCV -> native letterbox | whole-frame letterbox, OpenCV -> native area -> rows sampled | "
              f"{det} full-frame search (every row -> rows sampled) | cascade: grey "
              "conversion before -> after | cascade: window search (grey + search) before -> after | cascade: "
              "full-frame search |", "|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        m, q = r["ms"], r["ratio_after_to_before_p50"]

        def pair(st: str) -> str:
            return f"{m[st + '_before']['p50']:.2f} -> **{m[st + '_after']['p50']:.2f}** (x{q[st]:.2f})"

        parts = (f"{m['window_letterbox_cv2']['p50']:.2f} -> **{m['window_letterbox']['p50']:.2f}** / "
                 f"{m['window_network']['p50']:.2f}" if "window_letterbox" in m else "-")
        whole = "-" if "full_letterbox" not in m else (
            f"{m['full_letterbox_cv2']['p50']:.2f} -> {m['full_letterbox_area']['p50']:.2f} -> "
            f"**{m['full_letterbox']['p50']:.2f}**" if "full_letterbox_area" in m else
            f"{m['full_letterbox_cv2']['p50']:.2f} -> **{m['full_letterbox']['p50']:.2f}**")
        search = (f"{m['window_search_cv2']['p50']:.2f} -> **{m['window_search']['p50']:.2f}**"
                  if "window_search_cv2" in m else f"{m['window_search']['p50']:.2f}")
        full = (f"{m['full_frame_search_area']['p50']:.2f} -> **{m['full_frame_search']['p50']:.2f}**"
                if "full_frame_search_area" in m else f"{m['full_frame_search']['p50']:.2f}")
        lines.append(f"| {r['resolution']} | {parts} | {search} | {whole} | {full} | "
                     f"{pair('grey')} | {pair('roi')} | {m['roi_full_frame_search']['p50']:.2f} |")
    if any("window" in r["ratio_after_to_before_p50"] for r in report["results"]):
        lines += ["", f"Window (preview + `Window.show`: cv2.imshow + the 1 ms key poll; screen {report['screen']}), "
                  "p50 ms, full-size preview / box-reduced (prev) -> the window-size preview:", "",
                  "| resolution | before | box reduced (prev) | after | ratio after / before |", "|---|---|---|---|---|"]
        for r in report["results"]:
            m = r["ms"]
            lines.append(f"| {r['resolution']} | {m['window_before']['p50']:.2f} | {m['window_box_prev']['p50']:.2f} | "
                         f"**{m['window_after']['p50']:.2f}** | "
                         f"x{r['ratio_after_to_before_p50']['window']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=40)
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--window", action="store_true", help="also time the live window's show (needs a display)")
    p.add_argument("--cv-threads", type=int, help="OpenCV threads (default: OpenCV's own, as the app)")
    p.add_argument("--tag", default="", help="suffix of the result files' names (keeps another run's of the same day)")
    p.add_argument("--resolutions", default=",".join(f"{w}x{h}" for w, h in RESOLUTIONS),
                   help="comma-separated WxH (default: %(default)s)")
    args = p.parse_args(argv)
    if not all(c.isalnum() or c == "-" for c in args.tag):
        p.error(f"--tag {args.tag!r}: letters, digits and '-' only (it goes into the file name)")
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)
    screen = None
    if args.window:
        from realtime.live.window import display_reachable, screen_size

        ok, what = display_reachable()
        if not ok:
            p.error(f"--window needs a display: {what} (e.g. xvfb-run -s '-screen 0 1920x1080x24' ...)")
        screen = screen_size()
    load_before = round(os.getloadavg()[0], 2)
    try:
        sizes = [tuple(int(v) for v in r.lower().split("x")) for r in args.resolutions.split(",")]
    except ValueError:
        p.error(f"--resolutions {args.resolutions!r}: expected WxH[,WxH...]")
    det = make_detector(DEFAULT_DETECTOR)
    results = [bench_resolution((w, h), args.iters, det, window=args.window) for w, h in sizes]
    hw = hardware_info()
    report = {"date": dt.date.today().isoformat(), "hardware": hw, "iters": args.iters, "results": results,
              "load_before": load_before, "load_after": round(os.getloadavg()[0], 2),
              "screen": f"{screen[0]}x{screen[1]}" if screen else None,
              "native": {k: native.uses_native(k) for k in native.KERNELS}, "opencv_threads": cv2.getNumThreads(),
              "native_threads": native.num_threads(), "nice": os.nice(0)}
    from realtime.bench.report import hardware_slug, write_report

    markdown = to_markdown(report)
    tag = f"_{args.tag}" if args.tag else ""
    paths = write_report(report, args.out_dir / f"frame_scaling_{report['date']}_{hardware_slug(report)}{tag}.json",
                         markdown)
    print(markdown)
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
