"""The ``tryon`` console script: one entry point, one subcommand per job.

Subcommands are resolved lazily from a table of ``"module:function"`` strings, so
``tryon --help`` and ``tryon live`` never import torch or the training code. Each
target is a ``main(argv: list[str] | None) -> int`` that parses its own arguments,
validates them and calls one library function.

(``realtime`` never imports ``training`` or ``engine_build`` statically; the table
below names them only as strings, resolved when that subcommand is run.)
"""

from __future__ import annotations

import argparse
import copy
import importlib
import logging
import sys

from realtime import __version__

#: name -> (one-line help, "module:function")
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "make-dataset": ("build STRAT-format data: synthetic, or pseudo-STRAT from real photos",
                     "training.make_dataset:main"),
    "train": ("train a model for one accessory category", "training.train:main"),
    "train-detector": ("train the project's own face detector (tryon-face) and export it to ONNX",
                       "training.face_detector:main"),
    "eval": ("evaluate a checkpoint / ONNX / engine: LSSIM, IoU, Disp", "training.evaluate:main"),
    "ship": ("make a trained checkpoint a shipped default: fp16 weights, model card, result grid",
             "training.ship:main"),
    "export": ("export a checkpoint to ONNX (foreground + per-frame graphs, FP16 variant)",
               "engine_build.export:main"),
    "build-engine": ("build a TensorRT engine from an ONNX graph", "engine_build.trt_builder:main"),
    "doctor": ("check this machine (CPU, cameras, display, H.264, virtual camera, GPU), each with its fix; "
               "with --checkpoint: build TensorRT engines, check parity, benchmark", "engine_build.doctor:main"),
    "live": ("try accessories on live from a webcam (or a video file)", "realtime.live.app:live_main"),
    "record": ("run the try-on on a video or camera and write an MP4", "realtime.live.app:record_main"),
    "demo": ("render a demo video with no webcam and no downloads", "realtime.live.app:demo_main"),
    "bench": ("benchmark the pipeline per stage (and steadiness with --stability)", "realtime.bench.cli:main"),
}


def int_at_least(minimum: int, hint: str = ""):
    """An argparse type: a whole number >= ``minimum`` (argparse names the option in its message)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}" + (f" ({hint})" if hint else ""))
        return value

    return parse


#: argparse type: a whole number >= 1.
positive_int = int_at_least(1)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every ``tryon`` command's help: each option with its default (unless it has none to
    show: no value, off, an empty list), descriptions and epilogs (the examples) as written."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        return not (default is argparse.SUPPRESS or not action.option_strings or default is None or default is False
                    or default == [] or default == ()
                    or isinstance(action, (argparse._StoreTrueAction, argparse._VersionAction, argparse._HelpAction)))

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):  # an option without help still shows its default
            action = copy.copy(action)
            action.help = "default: %(default)s"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text.lower() or not self._shows_default(action):
            return action.help
        return f"{text} (default: %(default)s)"


def command_parser(prog: str, description: str, examples: str | list[str], **kwargs) -> argparse.ArgumentParser:
    """The parser of one ``tryon`` command: defaults shown (:class:`HelpFormatter`) and
    examples in the epilog (one command line per string; an epilog given in ``kwargs`` goes first)."""
    lines = [examples] if isinstance(examples, str) else list(examples)
    epilog = kwargs.pop("epilog", None)
    text = (f"{epilog}\n\n" if epilog else "") + "example" + ("s" if len(lines) > 1 else "") + ":\n" + \
        "\n".join(f"  {line}" for line in lines)
    return argparse.ArgumentParser(prog=prog, description=description, epilog=text, formatter_class=HelpFormatter,
                                   **kwargs)


def terminal_tables(markdown: str) -> str:
    """Markdown text for a terminal: each pipe table aligned in columns (the rule row
    becomes dashes), everything else unchanged. Saved reports keep the Markdown."""
    out: list[str] = []
    block: list[list[str]] = []

    def flush() -> None:
        if not block:
            return
        rows = [r for r in block if not all(set(c) <= set(":- ") and c for c in r)]
        ncol = max(len(r) for r in rows)
        rows = [r + [""] * (ncol - len(r)) for r in rows]
        widths = [max(len(r[i]) for r in rows) for i in range(ncol)]
        numeric = [all(_is_number(r[i]) for r in rows[1:] if r[i]) for i in range(ncol)]

        def fmt(r: list[str]) -> str:
            return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)).rstrip()

        out.append(fmt(rows[0]))
        out.append("  ".join("-" * w for w in widths))
        out.extend(fmt(r) for r in rows[1:])
        block.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            block.append([c.strip() for c in stripped[1:-1].split("|")])
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out) + ("\n" if markdown.endswith("\n") else "")


def _is_number(text: str) -> bool:
    try:
        float(text.replace("%", "").replace("x", "").replace("±", "").split()[0])
    except (ValueError, IndexError):
        return False
    return True


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tryon",
        description="Real-time virtual accessory try-on via keypoint hallucination.",
        epilog="Run 'tryon COMMAND --help' for the options of one command, with examples.\n\n"
               "example:\n  tryon demo --out demo.mp4",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tryon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def resolve(name: str):
    """Import and return the ``main`` function of subcommand ``name``."""
    module_name, func_name = SUBCOMMANDS[name][1].split(":")
    return getattr(importlib.import_module(module_name), func_name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tryon`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    # Global flags before the command; everything after it belongs to the command.
    idx = next((i for i, a in enumerate(argv) if a in SUBCOMMANDS), None)
    head, rest = (argv, []) if idx is None else (argv[:idx + 1], argv[idx + 1:])
    args = parser.parse_args(head)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        func = resolve(args.command)
    except ModuleNotFoundError as exc:
        print(f"tryon {args.command}: not available: {exc} "
              f"(install the extra that provides it, see README)", file=sys.stderr)
        return 2
    try:
        return int(func(rest) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, RuntimeError, ArithmeticError) as exc:  # OSError: a full disk, no write rights;
        # ArithmeticError: a diverged training run (non-finite loss)
        if args.verbose:
            raise
        print(f"tryon {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
