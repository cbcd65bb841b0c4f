"""Report helpers of the benchmarks: the run context, number formatting, output files.

Every report starts with :func:`environment` (machine, threads, load, native kernels,
date) and its Markdown with :func:`run_context_line`; :func:`write_report` writes the JSON
and the Markdown beside it atomically, named by :func:`hardware_slug`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from realtime.io import atomic_write_bytes
from realtime.live import native
from realtime.sysinfo import hardware_info, hardware_line


def environment(threads: int) -> dict[str, Any]:
    """Hardware, load, native kernels, date: the context every report starts with."""
    import torch  # noqa: F401 - so that hardware_info reports its version

    return {"hardware": hardware_info(), "threads": threads, "load_avg": list(os.getloadavg()),
            "native": {"available": native.available(), "cpu_path": native.cpu_path(), "reason": native.reason(),
                       "threads": native.num_threads(),
                       "preprocess": native.uses_native("preprocess"), "composite": native.uses_native("composite")},
            "date": _dt.date.today().isoformat(), "time": _dt.datetime.now().isoformat(timespec="seconds")}


def fmt(v: float | None, nd: int = 2) -> str:
    """A number for a report table (``n/a`` for None / non-finite)."""
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def run_context_line(report: dict[str, Any]) -> str:
    """One line: the machine (:func:`realtime.sysinfo.hardware_line`), inference threads,
    library versions and the load average at the start (and end) of the run."""
    hw = report["hardware"]
    return (f"{hardware_line({**hw, 'torch': None})}, shared; inference threads {report['threads']}; "
            f"torch {hw.get('torch')}, OpenCV {hw.get('cv2')}, NumPy {hw.get('numpy')}; "
            f"load average at start {', '.join(f'{v:.1f}' for v in report['load_avg'])}"
            + (f", at end {', '.join(f'{v:.1f}' for v in report['load_avg_end'])}" if "load_avg_end" in report
               else ""))


def hardware_slug(report: dict[str, Any]) -> str:
    """Short file-name tag of the machine, e.g. ``amd-epyc-2c`` or ``..._nvidia-h100``."""
    hw = report["hardware"]
    cpu = re.sub(r"\(r\)|\(tm\)|cpu|processor|@.*$|\d+-core", "", hw["cpu"].lower())
    words = [w for w in re.split(r"[^a-z0-9]+", cpu) if w][:3]
    slug = "-".join(words) + f"-{hw['cores']}c"
    gpu = hw.get("gpu")
    if gpu:
        slug += "_" + "-".join(w for w in re.split(r"[^a-z0-9]+", gpu["name"].lower()) if w)[:24]
    return slug


def write_report(report: dict[str, Any], json_path: Path, markdown: str) -> list[Path]:
    """Write ``report`` as JSON and ``markdown`` beside it (.md), atomically."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    md_path = json_path.with_suffix(".md")
    atomic_write_bytes(json_path, (json.dumps(_jsonable(report), indent=1) + "\n").encode())
    atomic_write_bytes(md_path, markdown.encode())
    return [json_path, md_path]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj
