"""The command line: ``run`` prints and saves a result, ``bench`` prints ratios, errors exit 2."""

import json

import pytest

from pneumobench.cli import main
from pneumobench.core.results import RunResult
from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.experiment.profiles import PROFILES, Profile, register_profile
from pneumobench.runs.store import ResultStore, run_files


@pytest.fixture(scope="module")
def cli_profile():
    if "cli-tiny" not in PROFILES:
        register_profile(Profile(
            name="cli-tiny",
            base=ExperimentConfig(model=ModelConfig(encoder="resnet18"), image_size=32, batch_size=16,
                                  stages=(StageConfig(1, 1e-2, 1e-3),)),
            seeds=(0,),
            synthetic=None,
            description="CLI tests",
        ))
    return "cli-tiny"


def test_run_prints_the_curve_and_writes_the_result(cli_profile, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "result.json"
    code = main(["run", "--profile", cli_profile, "--mod", "aspp", "--seed", "4", "--data", str(tiny_dataset.path),
                 "--device", "cpu", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "epoch" in printed and "val dice" in printed and "aspp (profile cli-tiny, seed 4" in printed
    result = RunResult.from_json(out.read_text())
    assert result.config_name == "aspp" and result.seed == 4 and len(result.dice_per_image) == 48


def test_run_without_data_for_a_real_data_profile_exits_2(cli_profile, capsys):
    assert main(["run", "--profile", cli_profile, "--quiet"]) == 2
    assert "needs --data" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "runs"])
@pytest.mark.parametrize("options, message", [
    (["--profile", "paper"], "config.image_size is 256 but the dataset {data} is 32x32"),
    (["--profile", "cli-tiny", "--encoder-weights", "{weights}"], "encoder weights file {weights} does not match"),
])
def test_run_and_runs_check_preconditions_before_training(cli_profile, tiny_dataset, tmp_path, capsys, command,
                                                         options, message):
    """Once ``run`` printed a TrainingSetupError traceback and ``runs`` stored the failures."""
    import torch
    from segmentation_models_pytorch.encoders import get_encoder

    weights = tmp_path / "resnet34.pth"
    torch.save(get_encoder("resnet34", weights=None).state_dict(), weights)
    fill = {"data": tiny_dataset.path, "weights": weights.resolve()}
    store = tmp_path / "store.sqlite"
    extra = ["--store", str(store), "--config", "baseline"] if command == "runs" else []
    code = main([command, *[o.format(**fill) for o in options], "--data", str(tiny_dataset.path), "--device", "cpu",
                 "--quiet", *extra])
    error = capsys.readouterr().err.strip()
    assert code == 2 and message.format(**fill) in error and "\n" not in error and "Traceback" not in error
    assert not store.exists()


def test_runs_never_reports_success_for_a_run_another_process_holds(cli_profile, tiny_dataset, tmp_path, capsys):
    """Once "0 trained, 0 failed, 1 already stored or trained elsewhere", exit 0, for a run whose
    driver was killed on another host."""
    import time

    from pneumobench.runs.runner import key_of_kind

    store = ResultStore(tmp_path / "store.sqlite")
    key = key_of_kind(PROFILES.get(cli_profile).config(), 0, tiny_dataset.fingerprint, "cpu")
    assert store.try_claim(key, config_key="c", config_name="baseline", seed=0,
                           dataset_fingerprint=tiny_dataset.fingerprint, device_kind="cpu")
    import sqlite3

    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE runs SET owner='otherhost:4242', heartbeat_at=?", (time.time(),))
    code = main(["runs", "--profile", cli_profile, "--config", "baseline", "--seeds", "1", "--data",
                 str(tiny_dataset.path), "--device", "cpu", "--workers", "1", "--store", str(store.path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert "0 trained, 0 failed, 0 already stored, 1 still training in another process" in captured.out
    assert "not finished: baseline seed 0, which otherhost:4242 is training (its claim lapses " in captured.err
    assert f"to free it now: pneumobench store forget {key[:12]} --store {store.path})" in captured.err


def test_bench_metrics_prints_ratios_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "metrics", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rle decode+encode 1024x1024" in printed and "ratio" in printed
    data = json.loads(out.read_text())
    rle = next(row for row in data["rows"] if row["benchmark"].startswith("rle"))
    assert rle["ratio"] > 1 and data["environment"]["torch"]


def test_bench_workers_times_a_spawned_and_a_forked_pool_in_one_run():
    """Forked workers skip the imports a spawned worker makes (about 5 s against 0.1 s)."""
    from pneumobench.tools.bench import bench_workers

    [row] = bench_workers(repeats=1)
    assert row["unit"] == "pools/min" and row["ratio"] == row["pneumobench"] / row["reference"] > 1


@pytest.fixture(scope="module")
def small_download(tmp_path_factory):
    root = tmp_path_factory.mktemp("download")
    assert main(["data", "synth", str(root / "siim"), "--positive", "2", "--negative", "2", "--quiet"]) == 0
    return root


def _input_files(source):
    return sorted((p.relative_to(source), p.stat().st_size) for p in source.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("siim", "output {root}/siim is the input {root}/siim: choose an output folder outside the input"),
        (".", "output {root} holds the input {root}/siim: choose an output folder outside the input"),
        ("siim/prepared", "output {root}/siim/prepared is inside the input {root}/siim: choose an output folder"),
        ("notes", "output {root}/notes is not a prepared dataset (no manifest.json): --overwrite replaces only a "
                  "prepared dataset"),
    ],
)
def test_prepare_overwrite_never_deletes_input_or_user_files(small_download, out, message, capsys):
    """Once --overwrite with OUT = SRC deleted every DICOM file and the CSV and exited 0."""
    root, source = small_download, small_download / "siim"
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "mine.txt").write_text("keep me")
    before = _input_files(source)
    code = main(["data", "prepare", str(source), str(root / out), "--size", "32", "--all", "--overwrite", "--quiet"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error.startswith("pneumobench data prepare: output ") and "\n" not in error
    assert message.format(root=root) in error
    assert _input_files(source) == before and (root / "notes" / "mine.txt").read_text() == "keep me"


def test_prepare_refuses_an_existing_output_before_ingesting_and_replaces_a_prepared_one(small_download, capsys):
    root, source = small_download, small_download / "siim"
    out = root / "prepared"
    args = ["data", "prepare", str(source), str(out), "--size", "32", "--all", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == (f"pneumobench data prepare: output {out} already exists: pass "
                                                "--overwrite to replace a prepared dataset there")
    assert main([*args, "--overwrite"]) == 0


def _claim(store, key, name="baseline", seed=0):
    store.fetch_or_claim(key, config_key="c" + key, config_name=name, seed=seed, dataset_fingerprint="d",
                         device_kind="cpu")


def test_store_list_retry_and_forget(tmp_path, capsys):
    store = ResultStore(tmp_path / "results.sqlite")
    _claim(store, "aaa111", seed=0)
    store.fail("aaa111", RuntimeError("out of memory"))
    _claim(store, "aaa222", "aspp", seed=1)
    store.fail("aaa222", ValueError("bad batch"))
    _claim(store, "bbb333", seed=2)  # running, owned by this live process
    args = ["--store", str(store.path)]

    assert main(["store", "list", *args]) == 0
    listed = capsys.readouterr().out
    assert f"{store.path}: 0 done, 2 failed, 1 running" in listed
    assert "RuntimeError: out of memory" in listed and "aspp seed 1" in listed and "bbb333" in listed

    assert main(["store", "forget", "aaa", *args]) == 2  # ambiguous: both failed runs start with it
    assert "run key 'aaa' matches 2 runs; give more characters" in capsys.readouterr().err
    kept = {key: run_files(store, key) for key in ("aaa111", "aaa222")}
    for path in (*kept["aaa111"], *kept["aaa222"]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    assert main(["store", "forget", "aaa2", *args]) == 0
    assert "1 run(s) forgotten" in (out := capsys.readouterr().out) and "; 2 of their checkpoint files deleted" in out
    assert [e["run_key"] for e in store.unfinished()] == ["aaa111", "bbb333"]
    assert not any(path.exists() for path in kept["aaa222"]) and all(path.exists() for path in kept["aaa111"])

    assert main(["store", "retry", *args]) == 0
    assert "1 failed run(s) cleared" in capsys.readouterr().out
    assert [e["run_key"] for e in store.unfinished()] == ["bbb333"]
    assert main(["store", "list", "--store", str(tmp_path / "none.sqlite")]) == 2


def test_forget_deletes_the_checkpoint_files_in_the_folder_it_is_given(tmp_path, capsys):
    store = ResultStore(tmp_path / "results.sqlite")
    _claim(store, "ccc444")
    shared = tmp_path / "shared"
    beside, elsewhere = run_files(store, "ccc444"), run_files(store, "ccc444", shared)
    for path in (*beside, *elsewhere):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"weights")
    assert main(["store", "forget", "ccc", "--store", str(store.path), "--checkpoint-dir", str(shared)]) == 0
    assert "; 2 of their checkpoint files deleted" in capsys.readouterr().out
    assert all(path.exists() for path in beside) and not any(path.exists() for path in elsewhere)
    assert elsewhere[1] == (shared / "final" / "ccc444.pt").resolve()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--mod", "nosuchmod"], "pneumobench run: unknown modification 'nosuchmod'; registered: aspp, "),
        (["run", "--seed", "-1"], "pneumobench run: argument --seed: seed -1 is negative"),
        (["run", "--out", "."], "pneumobench run: --out . is a folder: give a file path for the result JSON"),
        (["run", "--device", "banana"], "pneumobench run: device 'banana': give auto, cpu, cuda or cuda:N"),
        (["run", "--device", "cuda:99"], "pneumobench run: device 'cuda:99': "),
        (["data", "prepare", "{src}", "o", "--size", "0"], "argument --size: 0: give a positive multiple of 32"),
        (["data", "prepare", "{src}", "o", "--size", "-32"], "argument --size: -32: give a positive multiple of 32"),
        (["data", "prepare", "{src}", "o", "--size", "30"], "argument --size: 30: training sizes must be multiples "
                                                             "of 32 (the encoder downsamples by 32); try 32"),
        (["data", "prepare", "{src}", "o", "--size", "2048"], "size 2048 is above the source images' 1024x1024"),
        (["data", "prepare", "{src}", "o", "--workers", "-1"], "argument --workers: -1: give at least 1 process"),
        (["data", "prepare", "{src}", "o", "--per-class", "0"], "argument --per-class: 0: give at least 1 image"),
        (["data", "prepare", "{src}", "o", "--per-class", "-1"], "argument --per-class: -1: give at least 1 image"),
        (["data", "synth", "o", "--positive", "-1"], "argument --positive: -1: give a count >= 0"),
        (["data", "synth", "o", "--negative", "-3"], "argument --negative: -3: give a count >= 0"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(small_download, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    args = [arg.format(src=small_download / "siim") for arg in args]
    with pytest.raises(SystemExit) as exit_info:  # argparse errors exit; handler errors return 2
        raise SystemExit(main(args))
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in error and "\n" not in error and "Traceback" not in error
    assert not (tmp_path / "o").exists()


def test_bench_smoke_times_the_previous_shape_and_todays_in_one_run(tmp_path, monkeypatch):
    """The reference is the 0.2 run (its encoder, every epoch validated, its 128-image validation
    half); the ratio is today's rate over the reference's, and each run's share of the
    matrix-multiply rate is a plausible fraction (no wall time asserted)."""
    from pneumobench.experiment.config import SyntheticSpec
    from pneumobench.tools.bench import bench_smoke_run, previous_smoke_data, previous_smoke_shape

    monkeypatch.setenv("PNEUMOBENCH_CACHE", str(tmp_path))
    base = ExperimentConfig(model=ModelConfig(encoder="tu-resnet10t", encoder_stem_width=8, encoder_widths=(8, 8, 16, 16),
                                              decoder_channels=8, center_channels=16),
                            image_size=32, batch_size=8, stages=(StageConfig(1, 1e-2, 1e-3),))
    register_profile(Profile("bench-tiny", base, (0,), SyntheticSpec(8, 8, size=32), "bench test"))
    try:
        [row] = bench_smoke_run("bench-tiny")
    finally:
        PROFILES.unregister("bench-tiny")
    assert previous_smoke_shape(base).model.encoder_widths is None and previous_smoke_shape(base).model.encoder == "tu-resnet10t"
    assert previous_smoke_shape(base.replace(validate_every=3)).validate_every == 1
    previous = previous_smoke_data(SyntheticSpec(320, 320, size=32, train_per_class=64))
    assert (previous.n_positive, previous.n_negative, previous.train_per_class) == (128, 128, None)
    assert row["unit"] == "train images/s" and row["ratio"] == pytest.approx(row["pneumobench"] / row["reference"])
    assert row["pneumobench"] > 0 and row["reference"] > 0
    assert 0 < row["flop_limit_share_reference"] < 2 and 0 < row["flop_limit_share"] < 2 and row["matmul_gflops"] > 0


def _arguments(parser, path=()):
    """Every argument of every command, as (command path, argparse action)."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _arguments(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action


def test_every_argument_has_help_that_states_its_default():
    """Once ``data synth --seed``, ``--csv-style``, ``bench --device`` and ``data show PATH`` had no help."""
    from pneumobench.cli import build_parser

    arguments = list(_arguments(build_parser()))
    assert len(arguments) > 60
    for path, action in arguments:
        where = f"pneumobench {' '.join(path)} {action.dest}"
        assert action.help, where
        if action.default not in (None, False, []):
            assert "default" in action.help, where


def test_run_profile_help_lists_every_registered_profile():
    from pneumobench.cli import build_parser

    [profile] = [a for path, a in _arguments(build_parser()) if path == ("run",) and a.dest == "profile"]
    assert all(name in profile.help for name in PROFILES.names()) and "smoke-authors" in profile.help
