"""The command line: ``run`` prints and saves a result, ``bench`` prints ratios, errors exit 2."""

import json

import pytest

from pneumobench.cli import main
from pneumobench.config import ExperimentConfig, ModelConfig, StageConfig
from pneumobench.profiles import PROFILES, Profile, register_profile
from pneumobench.results import RunResult


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


def test_bench_metrics_prints_ratios_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "metrics", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "rle decode+encode 1024x1024" in printed and "ratio" in printed
    data = json.loads(out.read_text())
    rle = next(row for row in data["rows"] if row["benchmark"].startswith("rle"))
    assert rle["ratio"] > 1 and data["environment"]["torch"]
