"""The ``pneumobench`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from pneumobench import __version__


def _data_synth(args: argparse.Namespace) -> int:
    from pneumobench.data.synthetic import write_siim

    csv_path = write_siim(
        args.out,
        n_positive=args.positive,
        n_negative=args.negative,
        seed=args.seed,
        difficulty=args.difficulty,
        csv_style=args.csv_style,
        progress=not args.quiet,
    )
    print(f"wrote {args.positive + args.negative} synthetic DICOM files and {csv_path}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from pneumobench.data.siim import IngestError, prepare

    try:
        dataset, report = prepare(
            args.siim_dir,
            args.out,
            size=args.size,
            per_class=None if args.all else args.per_class,
            seed=args.seed,
            csv=args.csv,
            workers=args.workers,
            progress=not args.quiet,
            overwrite=args.overwrite,
        )
    except IngestError as error:
        print(f"pneumobench data prepare: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"prepared dataset: {dataset.path} (fingerprint {dataset.fingerprint})")
    print(f"ingest report: {Path(args.out) / 'ingest-report.json'}")
    return 0


def _data_show(args: argparse.Namespace) -> int:
    from pneumobench.data.prepared import DatasetError, load

    try:
        dataset = load(args.path)
    except DatasetError as error:
        print(f"pneumobench data show: {error}", file=sys.stderr)
        return 2
    print(json.dumps(dataset.manifest, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pneumobench",
        description="Reproduce and regression-test the Viel & Orhan (2020) pneumothorax paper.",
    )
    parser.add_argument("--version", action="version", version=f"pneumobench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    data = commands.add_parser("data", help="synthesize, prepare and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_commands.add_parser("synth", help="write a synthetic SIIM-ACR download (DICOM + CSV)")
    synth.add_argument("out", type=Path, help="output directory")
    synth.add_argument("--positive", type=int, default=160, help="positive images (default 160)")
    synth.add_argument("--negative", type=int, default=160, help="negative images (default 160)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--difficulty", type=float, default=0.5, help="0 easy .. 1 hard (default 0.5)")
    synth.add_argument("--csv-style", choices=("stage1", "stage2"), default="stage2")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_data_synth)

    prep = data_commands.add_parser("prepare", help="ingest a SIIM-ACR download into a prepared dataset")
    prep.add_argument("siim_dir", type=Path, help="the SIIM-ACR download (DICOM tree and CSV)")
    prep.add_argument("out", type=Path, help="the prepared dataset directory to write")
    prep.add_argument("--size", type=int, default=256, help="output side in pixels (default 256)")
    prep.add_argument("--per-class", type=int, default=2669, help="images sampled per class (default 2669)")
    prep.add_argument("--all", action="store_true", help="keep every ingested image (no sampling)")
    prep.add_argument("--seed", type=int, default=2019, help="sampling and split seed (default 2019)")
    prep.add_argument("--csv", type=Path, help="the label CSV (default: found under SIIM_DIR)")
    prep.add_argument("--workers", type=int, help="decoding processes (default: all cores)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(handler=_data_prepare)

    show = data_commands.add_parser("show", help="check a prepared dataset and print its manifest")
    show.add_argument("path", type=Path)
    show.set_defaults(handler=_data_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args))
