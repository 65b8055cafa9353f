"""Joining a Ray cluster fails fast and in one line: an address where nothing answers, a
``ray://`` address, a malformed one, ``auto`` on a machine that joined none; from the API,
``pneumobench runs`` (exit 2) and a pytest session (a usage error before any run trains)."""

import os

import pytest

if os.environ.get("PNEUMOBENCH_REQUIRE_RAY") != "1":
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install -e '.[ray]')")
import ray  # noqa: E402

from pneumobench.runs.executors import ExecutorError, make_executor  # noqa: E402
from pneumobench.runs.store import ResultStore  # noqa: E402

pytest_plugins = ["pytester"]
NOBODY = "127.0.0.2:6390"  # a loopback address where nothing listens: the connection is refused at once


@pytest.fixture(autouse=True)
def _no_cluster_joined(monkeypatch):
    assert not ray.is_initialized()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)


@pytest.mark.parametrize("address, message", [
    (NOBODY, f"ray address {NOBODY}: nothing answers there within 5 s (ConnectionRefusedError: "),
    ("ray://head:10001", "ray address ray://head:10001: Ray Client (ray://) is not supported; run the driver on a "
                         "machine of the cluster with --ray-address auto, or give the head's HOST:PORT"),
    ("head-without-port", "ray address head-without-port: give auto or HOST:PORT"),
])
def test_an_address_without_a_cluster_is_one_error_at_once(address, message):
    """Once a dead address printed Ray's "Failed to connect to GCS" until killed at 221 s."""
    executor = make_executor("ray", ray_address=address)
    with pytest.raises(ExecutorError) as info:
        executor.run_device_kind(None)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    assert not ray.is_initialized()


def test_auto_on_a_machine_that_joined_no_cluster_says_how_to_start_one(monkeypatch):
    monkeypatch.setattr("ray._private.services.find_bootstrap_address", lambda temp_dir: None)
    with pytest.raises(ExecutorError, match="ray address auto: this machine has joined no Ray cluster"):
        make_executor("ray", ray_address="auto").run_device_kind(None)


def test_auto_follows_ray_address_to_a_dead_cluster(monkeypatch):
    """Once `auto` with the cluster down was a traceback after 13 s."""
    monkeypatch.setenv("RAY_ADDRESS", NOBODY)
    with pytest.raises(ExecutorError, match=f"ray address auto [(]{NOBODY}[)]: nothing answers there"):
        make_executor("ray", ray_address="auto").run_device_kind(None)


def test_cli_runs_with_a_dead_address_is_one_line_exit_2(tiny_dataset, tmp_path, capsys):
    from pneumobench.cli import main

    store = tmp_path / "s.sqlite"
    code = main(["runs", "--config", "baseline", "--seeds", "1", "--data", str(tiny_dataset.path), "--store",
                 str(store), "--executor", "ray", "--ray-address", NOBODY, "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"pneumobench runs: ray address {NOBODY}: nothing answers there")
    assert err.count("\n") == 1 and not store.exists()


def test_a_pytest_session_with_a_dead_address_stops_before_training(pytester, tiny_dataset, tmp_path):
    pytester.makepyfile(test_check="""
        import pytest
        from pneumobench.papers.viel_orhan_2020.claims import regression_claims

        @pytest.mark.regression
        @pytest.mark.parametrize("check", [c for c in regression_claims() if c.id == "regression-baseline-dice"])
        def test_no_regression(check, pb, pb_judge):
            pb_judge(check, pb.evaluate(check))
    """)
    store = tmp_path / "s.sqlite"
    result = pytester.runpytest("-p", "no:cacheprovider", f"--pb-data={tiny_dataset.path}",
                                           f"--pb-store={store}", "--pb-executor=ray", f"--pb-ray-address={NOBODY}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pneumobench: --pb-executor ray: ray address {NOBODY}: nothing answers*"])
    assert "Traceback" not in result.stderr.str()
    assert not store.exists() or ResultStore(store).counts() == {}
