"""What each regression check of a recorded baseline can find when code changes: per
configuration and metric, the smallest drop found with 80% power when today's runs are
decorrelated from the recorded ones (as changed code makes them) and vary between seeds as the
recorded seeds do, at the check's seeds, margin and alpha (an accuracy's variance floored at its
binomial variance over the validation images, as the check floors it).

    python .ci/detectable_table.py baselines/smoke-cpu.json [PROFILE] [VALIDATION_IMAGES]

The table in docs/regression.md is this script's output for the smoke profile (512 images).
"""

import math
import sys

import numpy as np
from tabulate import tabulate

from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.baselines import load_recorded
from pneumobench.judging.families import REGRESSION_ALPHA
from pneumobench.judging.stats import accuracy_variance_floor, detectable_change
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows

recorded = load_recorded(sys.argv[1])
profile = get_profile(sys.argv[2] if len(sys.argv) > 2 else "smoke")
images = int(sys.argv[3]) if len(sys.argv) > 3 else 512


def detectable(mods: tuple[str, ...], metric: str) -> str:
    values = np.array(list(recorded.values(config_name(mods), metric).values()))
    n = len(values)
    variance = 2 * values.var(ddof=1)  # the per-seed difference of two decorrelated runs
    if metric == "accuracy":
        variance = max(variance, accuracy_variance_floor(float(values.mean()), images))
    margin = profile.regression_margin(metric, mods)
    change = detectable_change(math.sqrt(variance / n), n - 1, margin=margin, alpha=REGRESSION_ALPHA)
    return f"{change:.3f}"


rows = [
    {
        "configuration": config_name(mods),
        "seeds": len(recorded.values(config_name(mods), "dice")),
        "margins": f"{profile.regression_margin('dice', mods)}, {profile.regression_margin('accuracy', mods)}",
        "Dice": detectable(mods, "dice"),
        "accuracy": detectable(mods, "accuracy"),
    }
    for mods in table6_rows()
]
print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
