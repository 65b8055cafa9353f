"""The protocol's invariants on the profile's own Table 6 runs (no training beyond theirs): every
validated epoch's per-image scores reproduce that epoch's mean exactly, averaged as the
profile averages; the reported epoch is the one the profile's rule picks and its per-image
scores are that epoch's; the best-validation epoch never scores below the last one."""

import pytest
import torch

from pneumobench.experiment.config import config_name
from pneumobench.papers.viel_orhan_2020.modifications import table6_rows
from pneumobench.training.metrics import batch_mean
from pneumobench.training.selection import select_epoch

pytestmark = pytest.mark.paper


@pytest.mark.parametrize("mods", table6_rows(), ids=config_name)
def test_per_epoch_scores_and_the_selected_epoch(mods, pb):
    for run in pb.runs_for(mods):
        scores = run.per_epoch()
        assert scores is not None, f"{run.config_name} seed {run.seed} kept no per-epoch scores"
        batch = run.config["batch_size"] if run.config["val_averaging"] == "batch" else None
        for entry in run.curves:
            if entry["val_dice"] is None:
                continue
            row = scores.row(entry["epoch"])
            assert batch_mean(torch.from_numpy(scores.dice[row]), batch).item() == entry["val_dice"]
            assert batch_mean(torch.from_numpy(scores.correct[row]).float(), batch).item() == entry["val_accuracy"]
        assert run.selected_epoch == select_epoch(run.curves, run.config["epoch_selection"])
        reported = scores.row(run.selected_epoch)
        assert run.dice_per_image == scores.dice[reported].tolist()
        assert run.correct == scores.correct[reported].tolist()
        best = run.curves[select_epoch(run.curves, "best-val") - 1]
        assert best["val_dice"] >= run.curves[-1]["val_dice"]
