"""The smoke profile's stability, measured from a results store: per configuration, the mean and
between-seed SD of Dice and accuracy, any degenerate run, any unstable seed (named, as the
verdict table flags it), and the Dice of trivial predictors.

    python .ci/smoke_table.py STORE              # prints the table and every bound it breaks
    python .ci/smoke_table.py STORE --check      # and exits 1 if one is broken
    python .ci/smoke_table.py STORE --seeds 8    # over seeds 0-7 instead of the profile's

Bounds: no degenerate run (accuracy above 0.8, classifier not constant, masks not all empty or
full) and a between-seed SD of at most the profile's seed_sd (0.02 Dice, 0.03 accuracy) for every
configuration. Unstable seeds are listed, not counted as broken bounds.
"""

import argparse
import statistics
import sys

import numpy as np
from tabulate import tabulate

from pneumobench.data.cache import synthetic_dataset
from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import get_profile
from pneumobench.judging.claims import run_flags, unstable_reasons
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.runs.store import ResultStore

parser = argparse.ArgumentParser(description="the smoke profile's stability, measured from a results store")
parser.add_argument("store")
parser.add_argument("--check", action="store_true", help="exit 1 if a bound is broken")
parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default: the profile's)")
args = parser.parse_args()
profile = get_profile("smoke")
seeds = tuple(range(args.seeds)) if args.seeds else profile.seeds
SD_BOUND = {metric: profile.seed_sd(metric) for metric in ("dice", "accuracy")}
dataset = synthetic_dataset(profile.synthetic)
keys = {profile.config(*mods).key(): config_name(mods) for mods in table6_rows()}
runs: dict[str, list] = {}
for run in ResultStore(args.store).results():
    if run.config_key in keys and run.dataset_fingerprint == dataset.fingerprint and run.seed in seeds:
        runs.setdefault(keys[run.config_key], []).append(run)

broken, rows = [], []
for mods in table6_rows():
    name = config_name(mods)
    found = runs.get(name, [])
    if len(found) != len(seeds):
        broken.append(f"{name}: {len(found)} runs of {len(seeds)}")
        continue
    row = {"configuration": name}
    for metric in ("dice", "accuracy"):
        values = [getattr(r, metric) for r in found]
        sd = statistics.stdev(values)
        row[metric] = f"{statistics.mean(values):.3f}"
        row[f"{metric} SD"] = f"{sd:.4f}"
        if sd > SD_BOUND[metric]:
            broken.append(f"{name}: {metric} SD {sd:.4f} > {SD_BOUND[metric]}")
    flags = [f"seed {r.seed}: {flag}" for r in found for flag in run_flags(r)]
    flags += [f"seed {r.seed}: accuracy {r.accuracy:.3f}" for r in found if r.accuracy <= 0.8]
    row["degenerate runs"] = "; ".join(flags) or "none"
    unstable = [u.removeprefix(f"{name} ") for m in ("dice", "accuracy") for u in unstable_reasons(found, m, profile.name)]
    row["unstable seeds"] = "; ".join(unstable) or "none"
    broken += [f"{name} {flag}" for flag in flags]
    row["s per run"] = f"{statistics.mean(r.wall_time_s for r in found):.1f}"
    rows.append(row)

labels = np.asarray(dataset.labels[dataset.val_indices])
print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
print(f"\nTrivial predictors on these {len(labels)} validation images: every mask empty scores Dice "
      f"{float((labels == 0).mean()):.3f} (each negative 1, each positive 0); every mask full scores about "
      f"{float(np.mean([2 * m.sum() / (m.size + m.sum()) if m.any() else 0.0 for m in np.asarray(dataset.masks[dataset.val_indices])])):.3f}.")
if broken:
    print("smoke profile bounds broken: " + "; ".join(broken))
    if args.check:
        sys.exit(1)
