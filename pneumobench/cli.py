"""The ``pneumobench`` command line."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from pneumobench import __version__
from pneumobench.options import add_options, argparse_type, encoder_weights, parse_count, profiles_help


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
            mask_rows=args.mask_rows,
            resize=args.resize,
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


def _resolve_device(name: str):
    import torch

    from pneumobench.runs.devices import check_device

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from pneumobench.core.registry import UnknownNameError
    from pneumobench.data.prepared import DatasetError
    from pneumobench.experiment.profiles import get_profile
    from pneumobench.models import EncoderWeightsError
    from pneumobench.runs.devices import DeviceError
    from pneumobench.training.engine import train
    from pneumobench.training.preconditions import TrainingSetupError, check_runs

    if args.out is not None and args.out.is_dir():
        print(f"pneumobench run: --out {args.out} is a folder: give a file path for the result JSON", file=sys.stderr)
        return 2
    try:
        profile = get_profile(args.profile)
        config = profile.config(*args.mod)
        device = _resolve_device(args.device)
    except (UnknownNameError, DeviceError) as error:
        print(f"pneumobench run: {error}", file=sys.stderr)
        return 2
    if args.encoder_weights is not None:
        config = config.replace_model(encoder_weights=encoder_weights(args.encoder_weights))
    try:
        dataset = _run_dataset(args, profile)
        if dataset is None:
            return 2
        check_runs([config], dataset)
        result = train(
            config,
            dataset,
            args.seed,
            device,
            checkpoint=args.checkpoint,
            deterministic=args.deterministic,
            compile_model=args.compile,
            progress=not args.quiet,
        )
    except (DatasetError, EncoderWeightsError, TrainingSetupError) as error:
        print(f"pneumobench run: {error}", file=sys.stderr)
        return 2
    rows = [
        [
            c["epoch"],
            c["stage"],
            f"{c['lr_end']:.2e}",
            f"{c['train_loss']:.4f}",
            "" if c["val_dice"] is None else f"{c['val_dice']:.4f}",
            "" if c["val_accuracy"] is None else f"{c['val_accuracy']:.4f}",
            f"{c['seconds']:.1f}",
        ]
        for c in result.curves
    ]
    print(tabulate(rows, headers=["epoch", "stage", "lr", "train loss", "val dice", "val acc", "s"]))
    print(
        f"\n{config.name} (profile {profile.name}, seed {args.seed}, key {config.key()}): "
        f"Dice {result.dice:.4f}, accuracy {result.accuracy:.4f}, {result.wall_time_s:.1f} s, "
        f"{result.train_images_per_s:.1f} training images/s on {result.environment['device_name']}"
    )
    if args.out:
        from pneumobench.core.atomic import write_text_atomic

        write_text_atomic(Path(args.out), result.to_json())
        print(f"result written to {args.out}")
    return 0


def _runs(args: argparse.Namespace) -> int:
    """Train many (configuration, seed) runs into a store on an executor, and say what happened."""
    from pneumobench.core.registry import UnknownNameError
    from pneumobench.data.prepared import DatasetError
    from pneumobench.experiment.profiles import get_profile
    from pneumobench.experiment.seeds import SeedError, parse_seeds
    from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
    from pneumobench.runs.devices import DeviceError, check_device, default_workers, select_device
    from pneumobench.runs.executors import ExecutorError, make_executor
    from pneumobench.runs.runner import prefetch
    from pneumobench.runs.store import ResultStore, StoreError
    from pneumobench.training.preconditions import TrainingSetupError, check_runs

    try:
        profile = get_profile(args.profile)
        if args.encoder_weights is not None:
            profile = profile.with_encoder_weights(encoder_weights(args.encoder_weights))
        seeds = parse_seeds(args.seeds) if args.seeds else profile.seeds
        rows = [_config_mods(name) for name in args.config] or table6_rows()
        configs = [profile.config(*mods) for mods in rows]
        check_device(args.device, local=args.executor == "local")
        executor = make_executor(
            args.executor,
            workers=args.workers or default_workers(select_device(args.device)),
            ray_address=args.ray_address,
            gpus_per_run=args.gpus_per_run,
        )
        dataset = _run_dataset(args, profile)
        if dataset is None:
            return 2
        check_runs(configs, dataset)
        kind = executor.run_device_kind(None if args.device == "auto" else args.device)  # joins a Ray cluster now
        store = ResultStore(args.store)
    except (
        UnknownNameError,
        SeedError,
        DeviceError,
        ExecutorError,
        DatasetError,
        StoreError,
        TrainingSetupError,
    ) as error:
        print(f"pneumobench runs: {error}", file=sys.stderr)
        return 2
    runs = [(config, seed) for config in configs for seed in seeds]
    summary = prefetch(
        runs,
        dataset,
        None if args.device == "auto" else args.device,
        store=store,
        checkpoint_every=profile.checkpoint_every,
        progress=not args.quiet,
        executor=executor,
        checkpoint_dir=args.checkpoint_dir,
    )
    elsewhere = _unfinished_elsewhere(store, runs, dataset.fingerprint, kind)
    resumed = f" ({len(summary.resumed)} resumed from a checkpoint)" if summary.resumed else ""
    stored = len(runs) - summary.trained - len(summary.failed) - len(elsewhere)
    print(
        f"{len(runs)} runs of {len(configs)} configurations x {len(seeds)} seeds on the {executor.name} executor: "
        f"{summary.trained} trained{resumed}, {len(summary.failed)} failed, {stored} already stored, "
        f"{len(elsewhere)} still training in another process; "
        f"nodes used: {', '.join(sorted(summary.nodes)) or 'none'}; store {store.path}"
    )
    for failure in summary.failed:
        print(f"failed: {failure}", file=sys.stderr)
    for line in elsewhere:
        print(f"not finished: {line}", file=sys.stderr)
    return 1 if summary.failed or elsewhere else 0


def _unfinished_elsewhere(store: Any, runs: list, fingerprint: str, kind: str) -> list[str]:
    """The runs another process holds (claimed, not finished): named with their owner and the
    command that frees a dead owner's claim, never counted as stored."""
    from pneumobench.runs.runner import key_of_kind

    lines = []
    for config, seed in runs:
        key = key_of_kind(config, seed, fingerprint, kind)
        status = store.status(key)
        if status is not None and status[0] == "running":
            lines.append(store.describe_claim(key, f"{config.name} seed {seed}", status[1], status[2]))
    return lines


def _config_mods(name: str) -> tuple[str, ...]:
    """``baseline`` or ``aspp+hypercolumns`` as modification names (each must be registered)."""
    from pneumobench.papers.viel_orhan_2020.modifications import MODIFICATIONS

    mods = () if name == "baseline" else tuple(name.split("+"))
    for mod in mods:
        MODIFICATIONS.get(mod)  # UnknownNameError names the registered ones
    return mods


def _run_dataset(args: argparse.Namespace, profile: Any) -> Any:
    """The dataset of ``pneumobench run``: ``--data`` (prepared with the profile's rules) or the
    profile's synthetic one; None (after printing why) when there is none to use."""
    from pneumobench.data.cache import synthetic_dataset
    from pneumobench.data.prepared import load

    if args.data is not None:
        dataset = load(args.data.resolve())  # absolute: the path workers on other nodes look for
        problem = profile.dataset_problem(dataset.preparation)
        if problem is None:
            return dataset
        print(f"pneumobench run: --data {args.data}: {problem}", file=sys.stderr)
    elif profile.synthetic is not None:
        return synthetic_dataset(profile.synthetic, progress=not args.quiet)
    else:
        print(f"pneumobench run: profile {profile.name!r} needs --data (a prepared SIIM-ACR dataset)", file=sys.stderr)
    return None


def _bench(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from pneumobench.experiment.profiles import get_profile
    from pneumobench.tools import bench

    if args.gpu_check:
        return _gpu_check(args)
    rows = []
    if args.what in ("all", "metrics"):
        rows += bench.bench_metrics()
    if args.what in ("all", "ingest"):
        rows += bench.bench_ingest(args.ingest_images)
    if args.what in ("all", "smoke"):
        rows += bench.bench_smoke_run()
    if args.what in ("all", "workers"):
        rows += bench.bench_workers()
    if args.what in ("all", "train"):
        config = get_profile("paper").config(*args.mod).replace_model(encoder_weights=None)
        rows += bench.bench_train(
            config, size=args.size, batch=args.batch, steps=args.steps, device=_resolve_device(args.device)
        )
    print(tabulate(rows, headers="keys", floatfmt=".3g"))
    if args.json:
        from pneumobench.core.atomic import write_text_atomic
        from pneumobench.core.environment import environment

        write_text_atomic(
            Path(args.json),
            json.dumps({"rows": rows, "environment": environment(_resolve_device(args.device))}, indent=2),
        )
        print(f"written to {args.json}")
    return 0


def _gpu_check(args: argparse.Namespace) -> int:
    import torch
    from tabulate import tabulate

    from pneumobench.core.atomic import write_text_atomic
    from pneumobench.core.environment import environment
    from pneumobench.tools.gpu_check import gpu_check

    device = _resolve_device(args.device)
    if device.type != "cuda":
        print(
            "pneumobench bench --gpu-check: needs a CUDA device (torch.cuda.is_available() is "
            f"{torch.cuda.is_available()}, --device {args.device}); "
            "`pneumobench bench` measures the CPU",
            file=sys.stderr,
        )
        return 2
    rows = gpu_check(device)
    shown = [
        {**row, "value": f"{row['value']:.1f}" if isinstance(row["value"], float) else row["value"]} for row in rows
    ]
    print(tabulate(shown, headers="keys", disable_numparse=True))
    if args.json:
        write_text_atomic(
            Path(args.json), json.dumps({"gpu_check": rows, "environment": environment(device)}, indent=2)
        )
        print(f"written to {args.json}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pneumobench.core.registry import UnknownNameError
    from pneumobench.judging.baselines import BaselineError
    from pneumobench.judging.looks import SequentialPlan
    from pneumobench.reporting.report import ReportError, write_report
    from pneumobench.runs.store import StoreError

    if args.authors_runs:
        from pneumobench.reporting.authors_runs import AuthorsRunsError
        from pneumobench.reporting.report import write_authors_report

        try:
            written = write_authors_report(args.out, baselines_dir=args.baselines or Path("baselines"))
        except (AuthorsRunsError, BaselineError) as error:
            print(f"pneumobench report: {error}", file=sys.stderr)
            return 2
        print(f"the authors' own runs: {written.directory / 'authors-runs.md'} and {written.figures['authors_runs']}")
        return 0
    try:
        report = write_report(
            args.store,
            args.out,
            baselines_dir=args.baselines,
            data=args.data,
            profile=args.profile,
            dataset_fingerprint=args.dataset,
            sequential=SequentialPlan(args.max_seeds, args.spending) if args.seeds == "auto" else None,
        )
    except (ReportError, StoreError, BaselineError, UnknownNameError) as error:
        print(f"pneumobench report: {error}", file=sys.stderr)
        return 2
    data = report.data
    verdicts: dict[str, int] = {}
    for record in data["claims"]:
        verdicts[record["verdict"]] = verdicts.get(record["verdict"], 0) + 1
    print(
        f"{data['runs']} runs of {len(data['configurations'])} configurations (profile {data['profile']}, "
        f"dataset {data['dataset_fingerprint']}, device {data['device_kind']})"
    )
    print("verdicts: " + (", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "none"))
    for note in data["notes"]:
        print(f"note: {note}")
    print(
        f"report written to {report.directory / 'report.md'} with {len(report.figures)} figures in "
        f"{report.directory / 'figures'}"
    )
    if args.html is not None:
        print(f"dashboard page written to {_write_dashboard(args, report)}")
    return 0


def _write_dashboard(args: argparse.Namespace, report: Any) -> Path:
    """The report's HTML page with the store's history (a store without one says why on the page)."""
    from pneumobench.reporting.history import HistoryError, history_rows
    from pneumobench.reporting.html import write_html

    try:
        rows = history_rows(
            args.store,
            baselines_dir=args.baselines or Path("baselines"),
            repo=Path.cwd(),
            dataset_fingerprint=report.data["dataset_fingerprint"],
        )
        problem = None
    except HistoryError as error:
        rows, problem = [], f"no history: {error}"
    return write_html(report.directory, args.html, rows, problem)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pneumobench",
        description="Reproduce and regression-test the Viel & Orhan (2020) pneumothorax paper.",
    )
    parser.add_argument("--version", action="version", version=f"pneumobench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands_added = (_add_data_commands, _add_run_command, _add_runs_command, _add_bench_command)
    for add in (*commands_added, _add_report_command, _add_history_command, _add_bisect_command, _add_store_command):
        add(commands)
    return parser


def _add_data_commands(commands: Any) -> None:
    from pneumobench.data.prepared import MASK_ROWS, RESIZES

    data = commands.add_parser("data", help="synthesize, prepare and inspect datasets")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_commands.add_parser("synth", help="write a synthetic SIIM-ACR download (DICOM + CSV)")
    synth.add_argument("out", type=Path, help="output directory")
    synth.add_argument("--positive", type=_count(0, "a count >= 0"), default=160, help="positive images (default 160)")
    synth.add_argument("--negative", type=_count(0, "a count >= 0"), default=160, help="negative images (default 160)")
    synth.add_argument("--seed", type=_seed, default=0, help="generator seed, an integer >= 0 (default 0)")
    synth.add_argument("--difficulty", type=float, default=0.5, help="0 easy .. 1 hard (default 0.5)")
    synth.add_argument(
        "--csv-style",
        choices=("stage1", "stage2"),
        default="stage2",
        help="the label CSV's layout: stage1 (train-rle.csv, ImageId, EncodedPixels) or stage2 "
        "(stage_2_train.csv, ImageId,EncodedPixels; default)",
    )
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    synth.set_defaults(handler=_data_synth)

    prep = data_commands.add_parser("prepare", help="ingest a SIIM-ACR download into a prepared dataset")
    prep.add_argument("siim_dir", type=Path, help="the SIIM-ACR download (DICOM tree and CSV)")
    prep.add_argument("out", type=Path, help="the prepared dataset directory to write")
    prep.add_argument("--size", type=_image_side, default=256, help="output side in pixels (default 256)")
    prep.add_argument(
        "--per-class",
        type=_count(1, "at least 1 image per class"),
        default=2669,
        help="images sampled per class (default 2669)",
    )
    prep.add_argument("--all", action="store_true", help="keep every ingested image (no sampling)")
    prep.add_argument("--seed", type=int, default=2019, help="sampling and split seed (default 2019)")
    prep.add_argument("--csv", type=Path, help="the label CSV (default: found under SIIM_DIR)")
    prep.add_argument("--workers", type=_count(1, "at least 1 process"), help="decoding processes (default: all cores)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    prep.add_argument(
        "--mask-rows",
        choices=MASK_ROWS,
        default="union",
        help="a positive's mask: the union of its RLE rows (default) or the first row only (the authors' code)",
    )
    prep.add_argument(
        "--resize",
        choices=RESIZES,
        default="area",
        help="block mean images and majority masks (default), or bilinear images and nearest masks (the authors')",
    )
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(handler=_data_prepare)

    show = data_commands.add_parser("show", help="check a prepared dataset and print its manifest")
    show.add_argument("path", type=Path, help="the prepared dataset directory (pneumobench data prepare)")
    show.set_defaults(handler=_data_show)


def _add_store_option(parser: argparse.ArgumentParser) -> None:
    """``--store``: the results store a command reads or writes."""
    from pneumobench.runs.store import DEFAULT_STORE

    parser.add_argument(
        "--store",
        type=Path,
        default=DEFAULT_STORE,
        help=f"results store (default {DEFAULT_STORE})",
    )


def _add_runs_command(commands: Any) -> None:
    runs = commands.add_parser(
        "runs", help="train many configurations and seeds into a results store (local processes or a Ray cluster)"
    )
    add_options(runs.add_argument, "--", parsed=True)  # shared with the plugin's --pb-* options
    runs.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="NAME",
        help="a configuration, baseline or mods joined by + (aspp+hypercolumns); repeatable; default: all 16 rows",
    )
    runs.add_argument("--seeds", help="a count (5) or a list (0,1,2); default: the profile's")
    _add_store_option(runs)
    runs.add_argument("--quiet", action="store_true", help="no progress bar")
    runs.set_defaults(handler=_runs)


def _add_run_command(commands: Any) -> None:
    run = commands.add_parser("run", help="train one configuration with one seed and print the result")
    run.add_argument("--profile", default="smoke", help=profiles_help())
    run.add_argument(
        "--mod",
        action="append",
        default=[],
        metavar="NAME",
        help="a modification (repeatable): lovasz, aspp, hypercolumns, scse",
    )
    run.add_argument("--seed", type=_seed, default=0, help="run seed, an integer >= 0 (default 0)")
    run.add_argument("--data", type=Path, help="a prepared dataset (default: the profile's synthetic one)")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    run.add_argument("--encoder-weights", help="none, imagenet, or a state dict file (.pth/.safetensors)")
    run.add_argument("--checkpoint", type=Path, help="checkpoint file: written each epoch, resumed from if present")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower on GPU)")
    run.add_argument(
        "--compile", action="store_true", help="capture the training step with torch.compile (CUDA graphs on CUDA)"
    )
    run.add_argument("--out", type=Path, help="write the RunResult JSON here")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)


def _add_bench_command(commands: Any) -> None:
    bench = commands.add_parser("bench", help="throughput of the hot paths against plain references")
    bench.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=("all", "train", "metrics", "ingest", "smoke", "workers"),
        help="which benchmark: train, metrics, ingest, smoke (the smoke run side by side), workers (a local "
        "pool's start, spawned and forked) or all (default)",
    )
    bench.add_argument("--size", type=int, default=64, help="training image side (default 64)")
    bench.add_argument("--batch", type=int, default=32, help="training batch (default 32)")
    bench.add_argument("--steps", type=int, default=5, help="timed training steps per mode (default 5)")
    bench.add_argument("--mod", action="append", default=[], metavar="NAME", help="benchmark this modification")
    bench.add_argument("--device", default="auto", help="auto (default: CUDA when there is a card), cpu or cuda:N")
    bench.add_argument(
        "--ingest-images",
        type=_count(1, "at least 1 image"),
        default=64,
        help="synthetic DICOM files the ingest benchmark decodes (default 64)",
    )
    bench.add_argument("--json", type=Path, help="also write the table and environment as JSON")
    bench.add_argument(
        "--gpu-check",
        action="store_true",
        help="on CUDA: the gpu tests, training at 256x256 batch 32, concurrency and one paper-profile run",
    )
    bench.set_defaults(handler=_bench)


def _add_store_command(commands: Any) -> None:
    store = commands.add_parser("store", help="list, retry or forget failed and pending runs of a results store")
    actions = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    for name, help_text in (
        ("list", "failed and pending runs with their errors"),
        ("retry", "clear every failed run, so the next session trains it again"),
        ("forget", "delete runs by key (or a unique key prefix), whatever their status"),
    ):
        action = actions.add_parser(name, help=help_text)
        _add_store_option(action)
        if name == "forget":
            action.add_argument("keys", nargs="+", metavar="KEY", help="run keys, as `store list` prints them")
            action.add_argument(
                "--checkpoint-dir",
                type=Path,
                default=None,
                help="where the runs checkpointed (default: beside the store); their checkpoints and kept "
                "final weights there are deleted too, so they train again from their first epoch",
            )
        action.set_defaults(handler=_store)


def _store(args: argparse.Namespace) -> int:
    from pneumobench.runs.store import ResultStore, StoreError

    if not args.store.is_file():
        print(f"pneumobench store {args.store_command}: {args.store}: no such results store", file=sys.stderr)
        return 2
    try:
        store = ResultStore(args.store)
        if args.store_command == "retry":
            print(f"{store.clear_failed()} failed run(s) cleared from {args.store}; the next session trains them")
        elif args.store_command == "forget":
            forgotten = store.forget(args.keys)
            removed = _delete_run_files(store, forgotten, args.checkpoint_dir)
            print(f"{len(forgotten)} run(s) forgotten from {args.store}; {removed} of their checkpoint files deleted")
        else:
            _print_unfinished(store)
    except StoreError as error:
        print(f"pneumobench store {args.store_command}: {error}", file=sys.stderr)
        return 2
    return 0


def _delete_run_files(store: Any, keys: list[str], checkpoint_dir: Path | None) -> int:
    """Delete the forgotten runs' checkpoints and kept final weights; returns how many files."""
    from pneumobench.runs.store import run_files

    found = [path for key in keys for path in run_files(store, key, checkpoint_dir) if path.is_file()]
    for path in found:
        path.unlink()
    return len(found)


def _print_unfinished(store: Any) -> None:
    from tabulate import tabulate

    entries = store.unfinished()
    counts = store.counts()
    print(
        f"{store.path}: {counts.get('done', 0)} done, {counts.get('failed', 0)} failed, "
        f"{counts.get('running', 0)} running"
    )
    rows = [
        {
            "key": e["run_key"],
            "run": f"{e['config_name']} seed {e['seed']}",
            "status": e["status"] if e["status"] == "failed" or e["owner_alive"] else "running (owner dead)",
            "error": e["error"] or "",
        }
        for e in entries
    ]
    if rows:
        print(tabulate(rows, headers="keys", disable_numparse=True))


def _add_report_command(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="write the reproduction report (Markdown, JSON, figures) from a results store"
    )
    _add_store_option(report)
    report.add_argument("--out", type=Path, default=Path("report"), help="output directory (default report/)")
    report.add_argument(
        "--html",
        type=Path,
        metavar="DIR",
        help="also write DIR/index.html: one self-contained page with the verdicts, Table 6, the figures and "
        "each configuration's history across code versions (default: none)",
    )
    report.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="recorded baselines (default: ./baselines, else baselines/ beside the store's .pneumobench folder); "
        "the paper's numbers ship with pneumobench",
    )
    report.add_argument(
        "--data",
        type=Path,
        help="the prepared dataset the runs used, for the overlays (default: the path the runs recorded)",
    )
    report.add_argument(
        "--authors-runs",
        action="store_true",
        help="write only the section on the authors' own 16 runs (shipped logs; no results store needed)",
    )
    report.add_argument("--profile", help="judge the claims as this profile (default: the one that made the runs)")
    report.add_argument(
        "--seeds",
        choices=("fixed", "auto"),
        default="fixed",
        help="auto: judge the claims look by look as a --pb-seeds auto session did (default fixed: every seed)",
    )
    report.add_argument(
        "--max-seeds", type=_count(5, "a cap of at least 5 seeds"), default=40, help="with --seeds auto (default 40)"
    )
    report.add_argument(
        "--spending",
        choices=("obrien-fleming", "pocock"),
        default="obrien-fleming",
        help="with --seeds auto: the alpha spending (default obrien-fleming)",
    )
    report.add_argument(
        "--dataset", metavar="FINGERPRINT", help="report the runs on this dataset (default: the newest)"
    )
    report.set_defaults(handler=_report)


def _add_bisect_command(commands: Any) -> None:
    bisect = commands.add_parser(
        "bisect",
        help="find the first commit whose results changed: train each candidate in a git worktree, judge it "
        "against --good with the regression check",
    )
    bisect.add_argument("--good", required=True, metavar="REV", help="a commit whose results are right")
    bisect.add_argument("--bad", required=True, metavar="REV", help="a later commit whose results changed")
    bisect.add_argument("--config", required=True, metavar="NAME", help="the configuration (baseline, aspp+scse, ...)")
    bisect.add_argument("--metric", choices=("dice", "accuracy"), default="dice", help="the metric (default dice)")
    bisect.add_argument("--seeds", help="a count (5) or a list (0,1,2); default: the profile's")
    bisect.add_argument("--profile", default="smoke", help="the profile to train (default smoke)")
    bisect.add_argument("--data", type=Path, help="the prepared dataset (default: the profile's own)")
    bisect.add_argument(
        "--executor", choices=("local", "ray"), default="local", help="where each commit's runs train (default local)"
    )
    bisect.add_argument("--workers", type=int, help="parallel runs (default: as pneumobench runs chooses)")
    bisect.add_argument("--ray-address", help="with --executor ray: the cluster (default: as pneumobench runs)")
    bisect.add_argument("--repo", type=Path, default=Path("."), help="the git repository (default: .)")
    _add_store_option(bisect)
    bisect.set_defaults(handler=_bisect)


def _bisect(args: argparse.Namespace) -> int:
    """Exit 0 with the first bad commit named; 1 when skips leave several candidates; 2 on a usage error."""
    from pneumobench.core.registry import UnknownNameError
    from pneumobench.experiment.seeds import SeedError, parse_seeds
    from pneumobench.tools.bisect import BisectError, bisect

    try:
        seeds = parse_seeds(args.seeds) if args.seeds else None
        extra = ["--data", str(args.data.resolve())] if args.data else []
        extra += ["--executor", args.executor]
        extra += ["--workers", str(args.workers)] if args.workers else []
        extra += ["--ray-address", args.ray_address] if args.ray_address else []
        result = bisect(
            args.repo, args.good, args.bad, config=args.config, store=args.store, profile=args.profile,
            metric=args.metric, seeds=seeds, runs_args=extra,
        )  # fmt: skip
    except (BisectError, SeedError, UnknownNameError) as error:
        print(f"pneumobench bisect: {error}", file=sys.stderr)
        return 2
    if result.first_bad is None:
        print(f"the first changed commit is one of {', '.join(c[:12] for c in result.ambiguous)} (skips hide which)")
        return 1
    print(f"first changed commit: {result.first_bad}")
    return 0


def _add_history_command(commands: Any) -> None:
    history = commands.add_parser(
        "history", help="each code version's results per configuration, judged against the previous and the baseline"
    )
    _add_store_option(history)
    history.add_argument(
        "--config", action="append", default=[], metavar="NAME", help="a configuration (repeatable; default: all)"
    )
    history.add_argument(
        "--metric", choices=("dice", "accuracy"), action="append", help="dice or accuracy (repeatable; default: both)"
    )
    history.add_argument(
        "--baselines", type=Path, default=Path("baselines"), help="recorded baselines (default baselines/)"
    )
    history.add_argument(
        "--repo", type=Path, default=Path("."), help="the git repository that orders the versions (default: .)"
    )
    history.add_argument("--dataset", metavar="FINGERPRINT", help="the runs on this dataset (default: the newest)")
    history.add_argument("--json", type=Path, help="also write the rows as JSON")
    history.set_defaults(handler=_history)


def _history(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from pneumobench.judging.baselines import BaselineError
    from pneumobench.reporting.history import HistoryError, history_rows
    from pneumobench.runs.store import StoreError

    try:
        rows = history_rows(
            args.store,
            configs=args.config,
            metrics=args.metric or ("dice", "accuracy"),
            baselines_dir=args.baselines,
            repo=args.repo,
            dataset_fingerprint=args.dataset,
        )
    except (HistoryError, StoreError, BaselineError) as error:
        print(f"pneumobench history: {error}", file=sys.stderr)
        return 2
    for (config, metric), group in _grouped(rows, ("config", "metric")).items():
        print(f"\n{config} {metric} (dataset {group[0]['dataset']})")
        shown = [
            {
                "version": r["version"],
                "source": r["source_fingerprint"],
                "commits": r["commits"],
                "first finished": r["first_finished"],
                "seeds": r["seeds"],
                "mean [95% CI]": f"{r['mean']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]",
                "vs previous": _judged(r["vs_previous"], r["vs_previous_p"]),
                "vs baseline": _judged(r["vs_baseline"], r["vs_baseline_p"]),
            }
            for r in group
        ]
        print(tabulate(shown, headers="keys", disable_numparse=True))
    if args.json:
        from pneumobench.core.atomic import write_text_atomic

        finite = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]
        write_text_atomic(args.json, json.dumps(finite, indent=2, allow_nan=False))
        print(f"\nwritten to {args.json}")
    return 0


def _judged(verdict: str, p: float) -> str:
    return verdict if math.isnan(p) else f"{verdict} (p={p:.3g})"


def _grouped(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(tuple(row[f] for f in fields), []).append(row)
    return grouped


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (what is wrong, where to read what is allowed), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _count(minimum: int, what: str) -> Callable[[str], int]:
    """argparse type of an integer >= ``minimum`` (a usage error otherwise, exit 2)."""
    return argparse_type(parse_count(minimum, what))


def _image_side(text: str) -> int:
    """argparse type of a prepared image side: a positive multiple of 32 (the encoder's stride)."""
    value = _count(1, "a positive multiple of 32")(text)
    if value % 32:
        raise argparse.ArgumentTypeError(
            f"{value}: training sizes must be multiples of 32 (the encoder downsamples by 32); try "
            f"{max(32, round(value / 32) * 32)}"
        )
    return value


def _seed(text: str) -> int:
    """argparse type of a run seed: an integer >= 0 (a usage error otherwise, exit 2)."""
    from pneumobench.experiment.seeds import SeedError, parse_seed

    try:
        return parse_seed(text)
    except SeedError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args))
