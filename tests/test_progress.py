"""Progress of a session's runs: the lines and their ETA (a fake clock), and an inner pytest
session in a subprocess with pytest's default capture, interrupted and resumed, whose
progress lines reach the terminal while its tests train."""

import textwrap

import pytest

from pneumobench.runs.progress import LineProgress, duration

pytest_plugins = ["pytester"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (59.4, "59 s"), (250, "4 min 10 s"), (7500, "2 h 05 min")])
def test_duration_reads_as_a_person_would_say_it(seconds, text):
    assert duration(seconds) == text


def test_lines_count_runs_and_project_the_eta_from_the_pace_so_far():
    lines, clock = [], Clock()
    progress = LineProgress(lines.append, clock)
    progress.started(4, 2, "local")
    progress.resuming("aspp seed 2", 3, 8)
    clock.now += 60
    progress.run_started("aspp seed 3", "node-b", "2 running, 1 queued, nodes 2 used of 3")
    progress.finished("aspp seed 0", "2 running, 1 queued, nodes 2 used of 3", None)
    clock.now += 20  # two runs in 80 s: 40 s each, two left
    progress.finished("aspp seed 1", "2 running, 0 queued, nodes 2 used of 3", "RuntimeError: out of memory")
    progress.interrupted(1, ["aspp seed 2 at epoch 5"])
    assert lines == [
        "pneumobench: training 4 runs on the local executor (2 more already stored)",
        "pneumobench: aspp seed 2 resumes from its checkpoint (3 of 8 epochs done)",
        "pneumobench: aspp seed 3 started on node-b; 2 running, 1 queued, nodes 2 used of 3",
        "pneumobench: [1/4] aspp seed 0 done; 2 running, 1 queued, nodes 2 used of 3; ETA 3 min 00 s",
        "pneumobench: [2/4] run failed: aspp seed 1: RuntimeError: out of memory; 2 running, 0 queued, "
        "nodes 2 used of 3; ETA 1 min 20 s",
        "pneumobench: interrupted: 1 run stored; 1 unfinished run kept its checkpoint (aspp seed 2 at epoch 5), "
        "which the next session resumes",
    ]


def test_the_last_run_says_how_long_all_took():
    lines, clock = [], Clock()
    progress = LineProgress(lines.append, clock)
    progress.started(1, 0, "in-process")
    clock.now += 5
    progress.finished("baseline seed 0", "0 running, 0 queued, nodes 1 used of 1", None)
    assert lines[-1] == "pneumobench: [1/1] baseline seed 0 done; 0 running, 0 queued, nodes 1 used of 1; all 1 in 5 s"


INNER_CONFTEST = textwrap.dedent(
    """
    import os

    from pneumobench.experiment.config import ExperimentConfig, ModelConfig, StageConfig
    from pneumobench.experiment.profiles import PROFILES, Profile, register_profile

    if "two-epochs" not in PROFILES:
        register_profile(Profile(
            name="two-epochs",
            base=ExperimentConfig(model=ModelConfig(encoder="resnet18", mask_bias=-3.0), image_size=32, batch_size=8,
                                  stages=(StageConfig(2, 1e-2, 1e-3),)),
            seeds=(0, 1),
            synthetic=None,
            description="progress tests",
        ))

    if os.environ.get("INTERRUPT_AT_EPOCH_CALL"):  # Ctrl-C at the n-th training epoch of the session
        from pneumobench.training import engine

        real_train_epoch, calls = engine.train_epoch, []

        def interrupted_train_epoch(*args, **kwargs):
            calls.append(1)
            if len(calls) == int(os.environ["INTERRUPT_AT_EPOCH_CALL"]):
                raise KeyboardInterrupt
            return real_train_epoch(*args, **kwargs)

        engine.train_epoch = interrupted_train_epoch
    """
)

BASELINE_CHECK = textwrap.dedent(
    """
    import pytest
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims

    @pytest.mark.regression
    @pytest.mark.parametrize("check", [c for c in regression_claims() if c.id == "regression-baseline-dice"])
    def test_no_regression(check, pb, pb_judge):
        pb_judge(check, pb.evaluate(check))
    """
)


def test_progress_reaches_the_terminal_through_capture_and_names_the_resumed_run(
    pytester, tiny_dataset, tmp_path, monkeypatch
):
    """Once the executor's bar was captured by pytest: nothing appeared for minutes, and a run
    resumed after Ctrl-C said nothing. Seeds 0 and 1 of the baseline, two epochs each, trained
    in the session's process; the first session is interrupted in seed 1's second epoch."""
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_check=BASELINE_CHECK)
    args = ["-p", "no:cacheprovider", "--pb-profile=two-epochs", f"--pb-store={tmp_path / 'store.sqlite'}",
            "--pb-workers=1", f"--pb-data={tiny_dataset.path}"]

    monkeypatch.setenv("INTERRUPT_AT_EPOCH_CALL", "4")  # seed 0: calls 1-2; seed 1: 3, then 4 is interrupted
    interrupted = pytester.runpytest_subprocess(*args)
    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    interrupted.stdout.fnmatch_lines([
        "pneumobench: training 2 runs on the in-process executor",
        "pneumobench: baseline seed 0 started on *; 1 running, 1 queued, nodes 1 used of 1",
        "pneumobench: [[]1/2] baseline seed 0 done; 0 running, 1 queued, nodes 1 used of 1; ETA *",
        "pneumobench: baseline seed 1 started on *; 1 running, 0 queued, nodes 1 used of 1",
        "pneumobench: interrupted: 1 run stored; 1 unfinished run kept its checkpoint (baseline seed 1 at epoch 1), "
        "which the next session resumes",
    ])

    monkeypatch.delenv("INTERRUPT_AT_EPOCH_CALL")
    resumed = pytester.runpytest_subprocess(*args)
    resumed.stdout.fnmatch_lines([
        "pneumobench: training 1 run on the in-process executor (1 more already stored)",
        "pneumobench: baseline seed 1 resumes from its checkpoint (1 of 2 epochs done)",
        "pneumobench: [[]1/1] baseline seed 1 done; 0 running, 0 queued, nodes 1 used of 1; all 1 in *",
    ])
    assert "Captured stderr" not in resumed.stdout.str()
