"""``tryon make-dataset``: build STRAT-format training data.

Subcommands:

* ``synthetic``: procedurally drawn people with accessories placed by construction
  (:mod:`training.synthetic`); needs nothing but this package.
* ``pseudo-strat``: real photos + accessories placed from a landmark teacher
  (``training.pseudo_strat.main_build``, imported only when this subcommand runs).

Both write ``OUT/train`` and ``OUT/test`` in the format :class:`training.strat.StratDataset` reads.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import time
from pathlib import Path
from typing import Any

from realtime.cli import HelpFormatter, command_parser
from realtime.config import CATEGORIES, category_input_size

log = logging.getLogger(__name__)

#: Default share of samples written to the test split (STRAT: 1000 of 3000 per category).
DEFAULT_TEST_FRACTION = 0.2


def split_counts(n: int, test_fraction: float) -> tuple[int, int]:
    """``(n_train, n_test)`` for ``n`` samples; the test count is rounded to nearest."""
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    return n - n_test, n_test


def build_synthetic(category: str, n: int, out_dir: str | Path, size: int | None = None, seed: int = 0,
                    test_fraction: float = DEFAULT_TEST_FRACTION, progress: bool = True) -> dict[str, Any]:
    """Write a synthetic dataset: ``out_dir/train`` and ``out_dir/test`` (resumable).

    Train and test samples come from disjoint random streams (the split name is part of
    each sample's seed), so the two never share a drawn person or placement.

    Returns:
        ``{"train": n_train, "test": n_test, "seconds": elapsed, "out": str(out_dir)}``.
    """
    from training.synthetic import make_synthetic  # lazy: keeps `--help` light

    n_train, n_test = split_counts(n, test_fraction)
    t0 = time.perf_counter()
    for split, count in (("train", n_train), ("test", n_test)):
        if count:
            make_synthetic(category, count, size, out_dir, seed=seed, split=split, progress=progress)
    return {"train": n_train, "test": n_test, "seconds": time.perf_counter() - t0, "out": str(out_dir)}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


SYNTHETIC_EXAMPLE = "tryon make-dataset synthetic --category glasses --n 512 --out data/synth_glasses"
PSEUDO_EXAMPLE = ("tryon make-dataset pseudo-strat --photos PHOTOS_DIR --accessories ACCESSORIES_DIR --category glasses "
                  "--out data/pseudo_strat/glasses")


def _build_parser() -> argparse.ArgumentParser:
    parser = command_parser("tryon make-dataset", "Build STRAT-format training data: synthetic, or pseudo-STRAT "
                                                  "from real photos.", [SYNTHETIC_EXAMPLE, PSEUDO_EXAMPLE])
    sub = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)

    syn = sub.add_parser("synthetic", help="procedurally drawn faces / upper bodies with accessories",
                         formatter_class=HelpFormatter, epilog=f"example:\n  {SYNTHETIC_EXAMPLE}")
    syn.add_argument("--category", required=True, choices=CATEGORIES)
    syn.add_argument("--n", type=_positive_int, required=True, help="total samples (train + test)")
    syn.add_argument("--size", type=int, default=None,
                     help="square image size (default: the network size, 224 glasses/hat, 448 tie)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    syn.add_argument("--out", required=True, type=Path, help="dataset root; writes OUT/train and OUT/test")
    syn.add_argument("--no-progress", action="store_true", help="no progress bar")

    ps = sub.add_parser("pseudo-strat", help="real photos + accessories placed from a landmark teacher",
                        formatter_class=HelpFormatter, epilog=f"example:\n  {PSEUDO_EXAMPLE}")
    ps.add_argument("--photos", required=True, nargs="+", type=Path, help="folder(s) of photos")
    ps.add_argument("--accessories", required=True, type=Path, help="folder of accessory images")
    ps.add_argument("--category", required=True, choices=CATEGORIES)
    ps.add_argument("--out", required=True, type=Path, help="dataset root; writes OUT/train and OUT/test")
    ps.add_argument("--teacher-cache", type=Path, default=None, help="folder caching the teacher's landmarks")
    ps.add_argument("--per-photo", type=_positive_int, default=1, help="samples (accessories) per photo")
    ps.add_argument("--seed", type=int, default=0)
    ps.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
    ps.add_argument("--limit", type=_positive_int, default=None, help="use at most N photos")
    ps.add_argument("--split-file", type=Path, default=None,
                    help="recorded train/test split by identity (default: training/splits/faces_split_v1.json); "
                         "--test-fraction applies only to photos it does not list")
    ps.add_argument("--no-split-file", action="store_true", help="split every photo by --test-fraction instead")
    ps.add_argument("--size", type=int, default=None,
                    help="stored background side (default 256 glasses/hat, 512 tie; the loader resizes)")
    ps.add_argument("--no-procedural", action="store_true", help="only the accessories in --accessories")
    ps.add_argument("--torso-fill", type=float, default=None, metavar="SHARE",
                    help="ties: share of samples whose padding is painted with a synthetic torso "
                         "(default: training.pseudo_strat.TORSO_FILL_SHARE; 0 = black padding)")
    ps.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _run_synthetic(args: argparse.Namespace) -> int:
    if args.size is not None and args.size < 32:
        raise ValueError(f"--size must be >= 32, got {args.size}")
    split_counts(args.n, args.test_fraction)  # validate before any work
    size = args.size or category_input_size(args.category)
    result = build_synthetic(args.category, args.n, args.out, size=size, seed=args.seed,
                             test_fraction=args.test_fraction, progress=not args.no_progress)
    rate = args.n / max(result["seconds"], 1e-9) * 60
    print(f"synthetic {args.category} {size}px: {result['train']} train + {result['test']} test samples "
          f"in {result['seconds']:.1f} s ({rate:.0f}/min) -> {args.out}")
    return 0


def _run_pseudo_strat(args: argparse.Namespace) -> int:
    for folder in [*args.photos, args.accessories]:
        if not folder.is_dir():
            raise FileNotFoundError(f"folder not found: {folder}")
    if not 0.0 <= args.test_fraction < 1.0:
        raise ValueError(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    if args.size is not None and args.size < 32:
        raise ValueError(f"--size must be >= 32, got {args.size}")
    try:
        pseudo_strat = importlib.import_module("training.pseudo_strat")  # lazy: optional, heavier deps
    except ModuleNotFoundError as exc:
        if exc.name != "training.pseudo_strat":
            raise
        raise RuntimeError("make-dataset pseudo-strat: training/pseudo_strat.py is not part of this "
                           "installation yet; use 'make-dataset synthetic' meanwhile") from exc
    return int(pseudo_strat.main_build(args) or 0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``tryon make-dataset``."""
    args = _build_parser().parse_args(argv)
    if args.source == "synthetic":
        return _run_synthetic(args)
    return _run_pseudo_strat(args)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
