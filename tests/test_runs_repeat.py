"""Runs that repeat: the same (configuration, seed, data, code, versions) gives the same per-image
scores however the run is launched, and the store key changes with everything that changes them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from fakes import fake_run, store_runs

from pneumobench.core.registry import (
    ExtensionImportError,
    extension_modules,
    import_extensions,
)
from pneumobench.experiment.profiles import get_profile
from pneumobench.models.extensions import ATTENTIONS
from pneumobench.papers.viel_orhan_2020.modifications import MODIFICATIONS
from pneumobench.runs import runner
from pneumobench.runs.runner import key_of, prefetch, run
from pneumobench.runs.store import _SOURCE_OVERRIDE, ResultStore, hash_sources, pin_source_fingerprint
from pneumobench.training.engine import CPU_THREADS

SMOKE = get_profile("smoke")
CPU = torch.device("cpu")


def test_the_store_key_changes_with_versions_threads_and_weights(tiny_dataset, tmp_path, monkeypatch):
    config = SMOKE.config()
    key = key_of(config, 0, tiny_dataset.fingerprint, CPU)
    assert key == key_of(config, 0, tiny_dataset.fingerprint, CPU)
    assert key != key_of(config, 0, tiny_dataset.fingerprint, CPU, cpu_threads=CPU_THREADS + 1)
    versions = runner.library_versions()
    for library in versions:
        monkeypatch.setattr(runner, "library_versions", lambda lib=library: {**versions, lib: "0.0.1"})
        assert key_of(config, 0, tiny_dataset.fingerprint, CPU) != key, library
    monkeypatch.setattr(runner, "library_versions", lambda: versions)
    weights = tmp_path / "encoder.pth"
    torch.save({"w": torch.zeros(2)}, weights)
    with_weights = config.replace_model(encoder_weights=str(weights))
    first = key_of(with_weights, 0, tiny_dataset.fingerprint, CPU)
    torch.save({"w": torch.ones(2)}, weights)  # the same path, other contents
    assert key_of(with_weights, 0, tiny_dataset.fingerprint, CPU) not in (first, key)


def test_a_stored_run_is_missed_after_a_library_upgrade(tiny_dataset, tmp_path, monkeypatch):
    store = ResultStore(tmp_path / "store.sqlite")
    result = fake_run(SMOKE.config(), 0, tiny_dataset)
    store_runs(store, [result])
    fields = dict(config_key=result.config_key, config_name=result.config_name, seed=0,
                  dataset_fingerprint=tiny_dataset.fingerprint, device_kind="cpu")
    assert store.fetch_or_claim(key_of(SMOKE.config(), 0, tiny_dataset.fingerprint, CPU), **fields) is not None
    versions = runner.library_versions()
    monkeypatch.setattr(runner, "library_versions", lambda: {**versions, "torch": "9.9.9"})
    assert store.fetch_or_claim(key_of(SMOKE.config(), 0, tiny_dataset.fingerprint, CPU), **fields) is None  # a miss


XDIST_TEST = """
import json

def test_run(pb):
    result = pb.run(pb.profile.config(), 0)
    with open({out!r}, "w") as handle:
        json.dump(result.dice_per_image, handle)
"""


def _launch_in_process(dataset, tmp_path):
    torch.set_num_threads(2)  # the run fixes its own thread count, whatever the process had
    try:
        result = run(SMOKE.config(), 0, dataset, CPU, store=ResultStore(tmp_path / "in-process.sqlite"), progress=False)
        assert torch.get_num_threads() == 2  # and gives the process its own back
    finally:
        torch.set_num_threads(1)
    return result.dice_per_image


def _launch_in_a_worker(dataset, tmp_path):
    store = ResultStore(tmp_path / "worker.sqlite")
    prefetch([(SMOKE.config(), 0), (SMOKE.config(), 1)], dataset, CPU, store=store, workers=2, progress=False)
    assert store.counts() == {"done": 2}
    return run(SMOKE.config(), 0, dataset, CPU, store=store, progress=False).dice_per_image  # stored, not trained


def _launch_from_the_cli(dataset, tmp_path):
    out = tmp_path / "cli.json"
    subprocess.run([sys.executable, "-m", "pneumobench", "run", "--profile", "smoke", "--seed", "0", "--data",
                    str(dataset.path), "--device", "cpu", "--quiet", "--out", str(out)], check=True, capture_output=True)
    return json.loads(out.read_text())["dice_per_image"]


def _launch_in_an_xdist_worker(dataset, tmp_path):
    out = tmp_path / "xdist.json"
    project = tmp_path / "xdist"
    project.mkdir()
    (project / "test_one_run.py").write_text(textwrap.dedent(XDIST_TEST.format(out=str(out))))
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "1", "-p", "no:cacheprovider", f"--rootdir={project}",
                    f"--pb-data={dataset.path}", f"--pb-store={tmp_path / 'xdist.sqlite'}", "--pb-device=cpu",
                    str(project)], check=True, capture_output=True, cwd=project)
    return json.loads(out.read_text())


@pytest.mark.slow
def test_the_same_run_launched_four_ways_scores_every_image_the_same(tiny_dataset, tmp_path):
    """In-process (with two threads set beforehand), in a prefetch worker, through
    ``pneumobench run`` and in a pytest-xdist worker: identical per-image Dice."""
    launched = {
        "in-process": _launch_in_process(tiny_dataset, tmp_path),
        "prefetch worker": _launch_in_a_worker(tiny_dataset, tmp_path),
        "pneumobench run": _launch_from_the_cli(tiny_dataset, tmp_path),
        "pytest-xdist worker": _launch_in_an_xdist_worker(tiny_dataset, tmp_path),
    }
    reference = launched["in-process"]
    assert len(reference) == len(tiny_dataset.val_indices)
    assert {way: scores == reference for way, scores in launched.items()} == dict.fromkeys(launched, True)


USER_MODULE = """
import torch
from torch import nn
from pneumobench.models.extensions import register_attention
from pneumobench.papers.viel_orhan_2020.modifications import modification

@register_attention("user-gate")
class UserGate(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(1, channels, 1, 1))
    def forward(self, x):
        return x * 2 * torch.sigmoid(self.gate)

@modification("user-gate")
def user_gate(config):
    return config.replace_model(attention="user-gate")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user's module on sys.path registering a block and its modification (forgotten after)."""
    for registry in (MODIFICATIONS, ATTENTIONS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    (tmp_path / "user_gate_module.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_gate_module", raising=False)
    __import__("user_gate_module")
    yield "user_gate_module"
    sys.modules.pop("user_gate_module", None)


def test_workers_know_the_blocks_a_user_registered(tiny_dataset, tmp_path, user_module):
    assert user_module in extension_modules() and not any(m.startswith("pneumobench") for m in extension_modules())
    store = ResultStore(tmp_path / "store.sqlite")
    smoke = SMOKE.config()
    config = smoke.replace(stages=smoke.stages[:1]).with_modifications("user-gate")
    prefetch([(config, 0), (config, 1)], tiny_dataset, CPU, store=store, workers=2, progress=False)
    assert store.counts() == {"done": 2}


def test_a_module_a_worker_cannot_import_is_named():
    with pytest.raises(ExtensionImportError, match="cannot import 'no_such_user_module'.*--pb-workers 1"):
        import_extensions(["no_such_user_module"])


RESULT_DECIDING = (  # issue 26: the modules an edit to which must make the next session retrain
    "training/selection.py",
    "training/engine.py",
    "training/losses.py",
    "training/metrics.py",
    "training/checkpoints.py",
    "experiment/config.py",
    "experiment/profiles.py",
    "core/results.py",
    "models/unet.py",
    "models/blocks.py",
    "data/prepared.py",
    "data/synthetic.py",
    "runs/executors.py",
    "papers/viel_orhan_2020/modifications.py",
    "brand_new_module.py",  # a module nobody listed counts too
)
JUDGING_ONLY = ("judging/stats.py", "reporting/report.py", "cli.py", "pytest_plugin.py", "tools/bench.py",
                "papers/viel_orhan_2020/claims.py", "runs/store.py")


@pytest.fixture
def package_copy(tmp_path):
    import shutil

    import pneumobench

    copy = tmp_path / "pneumobench"
    shutil.copytree(Path(pneumobench.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _edited(copy: Path, module: str) -> str:
    """The fingerprint of ``copy`` with ``module`` edited (or added); the copy is put back after."""
    path = copy / module
    before = path.read_text() if path.exists() else None
    path.write_text((before or "") + "\n# an edit\n")
    try:
        return hash_sources(copy)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before)


def test_editing_any_result_deciding_module_makes_the_store_miss_and_judging_code_does_not(
    package_copy, tiny_dataset, tmp_path
):
    """The fingerprint hashes every module but a named list: each edit below is a store miss (the
    next session retrains), an edit to statistics, reports or the CLI a hit."""
    store = ResultStore(tmp_path / "store.sqlite")
    result = fake_run(SMOKE.config(), 0, tiny_dataset)
    original = hash_sources(package_copy)
    fields = dict(config_key=result.config_key, config_name=result.config_name, seed=0,
                  dataset_fingerprint=tiny_dataset.fingerprint, device_kind="cpu")

    def stored_under(fingerprint: str) -> bool:
        pin_source_fingerprint(fingerprint)
        try:
            key = key_of(SMOKE.config(), 0, tiny_dataset.fingerprint, CPU)
            found = store.fetch_or_claim(key, **fields) is not None
            store.release(key) if not found else None
            return found
        finally:
            _SOURCE_OVERRIDE.clear()

    pin_source_fingerprint(original)
    try:
        store_runs(store, [result])
    finally:
        _SOURCE_OVERRIDE.clear()
    assert stored_under(original)
    assert {module: stored_under(_edited(package_copy, module)) for module in RESULT_DECIDING} == dict.fromkeys(
        RESULT_DECIDING, False
    )
    assert {module: stored_under(_edited(package_copy, module)) for module in JUDGING_ONLY} == dict.fromkeys(
        JUDGING_ONLY, True
    )
    assert hash_sources(package_copy) == original  # every edit undone


def note_worker_start(path: Path):
    """A worker's setup that writes down its folder, a variable of its environment and whether
    the training engine was imported before it started (a builtin, so that unpickling it in the
    worker imports nothing: a function of this module would import the engine with it)."""
    import functools

    return functools.partial(exec, textwrap.dedent(f"""
        import json, os, sys
        with open({str(path)!r}, "w") as note:
            json.dump({{"folder": os.getcwd(), "mark": os.environ.get("PNEUMOBENCH_TEST_MARK"),
                       "engine_preloaded": "pneumobench.training.engine" in sys.modules}}, note)
    """))


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_local_workers_start_in_the_drivers_folder_and_environment(start_method, tiny_dataset, tmp_path, monkeypatch):
    """The fork server imports the engine once (workers start with it); its workers still see the
    driver's folder and environment as they are when their pool starts, set after the server did."""
    from pneumobench.runs.executors import LocalExecutor

    smoke = SMOKE.config()
    config = smoke.replace(stages=(smoke.stages[0],), validate_every=1)
    note = tmp_path / "worker.json"
    store = ResultStore(tmp_path / "store.sqlite")
    first = LocalExecutor(1, note_worker_start(note), start_method=start_method)
    prefetch([(config, 0)], tiny_dataset, CPU, store=store, executor=first, progress=False)  # the server starts here
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PNEUMOBENCH_TEST_MARK", start_method)
    second = LocalExecutor(1, note_worker_start(note), start_method=start_method)
    prefetch([(config, 1)], tiny_dataset, CPU, store=store, executor=second, progress=False)
    assert store.counts() == {"done": 2}
    assert json.loads(note.read_text()) == {
        "folder": str(folder), "mark": start_method, "engine_preloaded": start_method == "forkserver"}
