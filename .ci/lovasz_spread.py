"""The smoke profile's Lovász rows with scSE trained with the authors' Lovász loss per image and
with the adopted one over each batch (`lovasz_batch`), on the seeds the choice was made on (0-7)
and on seeds it never saw (8-15): per loss and seed block, Dice and accuracy mean and SD.

    python .ci/lovasz_spread.py    # 64 runs, two at a time on one thread each: about 6 minutes on 2 cores

The table in docs/regression.md is this script's output.
"""

import dataclasses
import statistics
from multiprocessing import get_context

import torch
from tabulate import tabulate

from pneumobench.data.cache import synthetic_dataset
from pneumobench.experiment.profiles import get_profile
from pneumobench.training.engine import train

ROWS = (("lovasz", "hypercolumns", "scse"), ("lovasz", "aspp", "hypercolumns", "scse"))
LOSSES = (("per image (authors')", "lovasz"), ("per batch (adopted)", "lovasz_batch"))
SEED_BLOCKS = (("0-7", range(8)), ("8-15", range(8, 16)))
PROFILE = get_profile("smoke")


def scores(job: tuple[tuple[str, ...], str, int]) -> tuple[float, float]:
    """One run's validation Dice and accuracy, as the suites train it (one thread)."""
    mods, loss, seed = job
    config = dataclasses.replace(PROFILE, seg_loss_substitutes=(("lovasz", loss),)).config(*mods)
    run = train(config, synthetic_dataset(PROFILE.synthetic), seed, torch.device("cpu"), progress=False, cpu_threads=1)
    return run.dice, run.accuracy


if __name__ == "__main__":
    synthetic_dataset(PROFILE.synthetic)  # built once, before the workers read it
    jobs = [(mods, loss, seed) for mods in ROWS for _, loss in LOSSES for _, seeds in SEED_BLOCKS for seed in seeds]
    with get_context("fork").Pool(2) as pool:
        results = dict(zip(jobs, pool.map(scores, jobs)))
    table = []
    for mods in ROWS:
        for loss_label, loss in LOSSES:
            row = {"configuration": "+".join(mods), "Lovász loss": loss_label}
            for block, seeds in SEED_BLOCKS:
                dice, accuracy = zip(*(results[(mods, loss, seed)] for seed in seeds))
                row[f"Dice, seeds {block}"] = f"{statistics.mean(dice):.3f} (SD {statistics.stdev(dice):.4f})"
                row[f"accuracy, seeds {block}"] = (
                    f"{statistics.mean(accuracy):.3f} (SD {statistics.stdev(accuracy):.4f})"
                )
            table.append(row)
    print(tabulate(table, headers="keys", tablefmt="github", disable_numparse=True))
