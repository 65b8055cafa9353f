"""The unstable-seed rule by hand, and the judging details the mutation tester found untested:
the flags' records, the regression check's pairing by seed and its accuracy floor through
``evaluate``, the families' messages and bounds, the best-of interval's lower bound."""

import dataclasses

import numpy as np
import pytest
from fakes import cpu_environment, fake_run

from pneumobench.experiment.config import config_name
from pneumobench.experiment.profiles import get_profile
from pneumobench.judging import families
from pneumobench.judging.baselines import record
from pneumobench.judging.claims import (
    FLAGS,
    evaluate,
    seedwise_regression,
    unstable_reasons,
    verdict_record,
)
from pneumobench.judging.families import Family, FamilyError, get_family, member_alpha, register_family
from pneumobench.judging.stability import Outlier, outliers, robust_z
from pneumobench.judging.stats import Verdict, best_claim
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS, regression_claims

SMOKE = get_profile("smoke")
BEST_DICE = next(c for c in PAPER_CLAIMS if c.id == "best-dice-is-aspp-hypercolumns")


def runs(dataset, mods, seeds=(0, 1, 2, 3, 4), **kwargs):
    return [fake_run(SMOKE.config(*mods), s, dataset, env=cpu_environment(), **kwargs) for s in seeds]


# --- the rule -------------------------------------------------------------------------------


def test_robust_z_by_hand():
    """The smoke suite's lagging lovasz+scse seed: the others' median 0.957 and MAD 0.004 (SD
    0.0059, below the floor 0.02); seed 0 against (0.852, 0.953): median 0.9025, robust SD
    1.4826 x 0.0505."""
    z = robust_z([0.961, 0.852, 0.953], 0.02)
    assert z[1] == pytest.approx((0.852 - 0.957) / 0.02)
    assert z[0] == pytest.approx((0.961 - 0.9025) / (1.4826 * 0.0505))
    assert robust_z([0.5, 0.9], 0.02).tolist() == [0.0, 0.0]  # two seeds cannot name an outlier


def test_robust_z_judges_each_row_of_a_batch_alone():
    rng = np.random.default_rng(3)
    batch = rng.normal(0, 1, (6, 7))
    assert np.allclose(robust_z(batch, 0.5), np.stack([robust_z(row, 0.5) for row in batch]))


@pytest.mark.parametrize("floor", [0.0, -0.01])
def test_the_floor_must_be_positive(floor):
    with pytest.raises(ValueError, match=f"the robust SD's floor must be positive, got {floor}"):
        robust_z([1.0, 2.0, 3.0], floor)


def test_a_seed_exactly_at_the_threshold_is_not_flagged():
    assert outliers({0: 5.0, 1: 0.0, 2: 0.0}, 1.0) == []  # z = 5 exactly
    [flagged] = outliers({0: 5.001, 1: 0.0, 2: 0.0}, 1.0)
    assert (flagged.seed, flagged.value, flagged.others_median) == (0, 5.001, 0.0)


def test_an_outlier_names_its_side():
    assert Outlier(3, 0.9, 0.6, 7.5).describe("dice") == "seed 3: dice +0.9000, 7.5 robust SDs above the other seeds' median +0.6000"
    assert Outlier(3, 0.6, 0.6, 0.5).describe("dice").endswith("0.5 robust SDs above the other seeds' median +0.6000")
    assert "0.0 robust SDs above" in Outlier(3, 0.6, 0.6, 0.0).describe("dice")
    assert "5.5 robust SDs below" in Outlier(3, 0.5, 0.6, -5.5).describe("dice")


def test_an_accuracy_is_unstable_only_beyond_its_binomial_sd(tiny_dataset):
    """48 validation images: an accuracy's SD is at least 0.06 there, so a seed 0.2 below the
    others is 3 of those SDs (not flagged) although 20 of the paper profile's 0.01."""
    base = runs(tiny_dataset, ())
    accuracies = [0.75, 0.76, 0.75, 0.74, 0.55]
    lagging = [dataclasses.replace(r, accuracy=a) for r, a in zip(base, accuracies)]
    assert unstable_reasons(lagging, "accuracy", "paper") == []
    assert unstable_reasons(lagging, "dice", "paper") == []
    far = [dataclasses.replace(r, accuracy=a) for r, a in zip(base, [0.75, 0.76, 0.75, 0.74, 0.2])]
    assert [reason.split(":")[0] for reason in unstable_reasons(far, "accuracy", "paper")] == ["baseline seed 4"]


def test_a_best_of_claim_checks_the_difference_against_every_rival(tiny_dataset):
    """One rival's differences (not the baseline's, a paired claim's control) hold a collapse, the
    others' do not: the flag names it."""
    by_mods = {mods: runs(tiny_dataset, mods, dice_shift=0.2 if mods == BEST_DICE.treatment else 0.0)
               for mods in BEST_DICE.configs()}
    first = BEST_DICE.rivals[1]
    assert first != ()
    by_mods[first] = by_mods[first][:4] + [dataclasses.replace(by_mods[first][4], dice=0.0, dice_per_image=[0.0] * 48)]
    result = evaluate(BEST_DICE, by_mods.__getitem__, profile="paper", use_paper_values=False)
    assert result.verdict == Verdict.INCONCLUSIVE
    differences = [r for r in result.extra["unstable"] if " - " in r]
    assert [r.split(":")[0] for r in differences] == [f"aspp+hypercolumns - {config_name(first)} seed 4"]
    selected = {mods: [dataclasses.replace(r, config={**r.config, "epoch_selection": "best-val"}) for r in found]
                for mods, found in by_mods.items()}
    selected[first] = by_mods[first][:4] + [by_mods[first][4]]
    flagged = evaluate(BEST_DICE, {**selected, first: runs(tiny_dataset, first)}.__getitem__, profile="paper",
                       use_paper_values=False)
    assert flagged.verdict == Verdict.INCONCLUSIVE
    assert flagged.extra["selected_on_validation"] == [config_name(m) for m in BEST_DICE.configs() if m != first]


def test_the_best_of_estimate_is_the_dice_lead(tiny_dataset):
    """Per-image Dice on both sides (the runs' accuracy, 0.75, is another number entirely)."""
    by_mods = {mods: runs(tiny_dataset, mods, dice_shift=0.1 if mods == BEST_DICE.treatment else 0.0)
               for mods in BEST_DICE.configs()}
    result = evaluate(BEST_DICE, by_mods.__getitem__, profile="smoke", use_paper_values=False)
    assert result.verdict == Verdict.REPRODUCED and result.estimate == pytest.approx(0.1, abs=0.02)


def test_the_best_of_lower_bound_is_the_smallest_over_rivals_not_the_closest_rivals():
    """Rival a (lead 0.002, SE 0.0015) is the closest by p; rival b (lead 0.1, SE 0.05) has the
    lower bound below it: the interval's lower end is b's."""
    noise = np.array([-1.5, -0.5, 0.5, 1.5, 0.0])
    lead_a, lead_b = 0.002 + noise * 0.0015 * np.sqrt(5) / noise.std(ddof=1), 0.1 + noise * 0.05 * np.sqrt(5) / noise.std(ddof=1)
    best = np.full((5, 2), 0.5)
    result = best_claim(best, {"a": best - lead_a[:, None], "b": best - lead_b[:, None]}, alpha=0.05)
    t = 2.131846786  # t(0.95, 4)
    assert result.extra["closest_rival"] == "a"
    assert result.ci_low == pytest.approx(0.1 - t * 0.05, abs=1e-6) and result.estimate == pytest.approx(0.002)


# --- records and the regression check ---------------------------------------------------------


def test_a_record_carries_each_flag_and_where_its_target_comes_from(tiny_dataset):
    claim = PAPER_CLAIMS[2]
    plain = evaluate(claim, {m: runs(tiny_dataset, m) for m in claim.configs()}.__getitem__, profile="smoke",
                     use_paper_values=False)
    bare = verdict_record(claim, dataclasses.replace(plain, extra={}), synthetic=True, profile="smoke")
    assert (bare["unstable"], bare["selected_on_validation"], bare["degenerate"]) == ([], [], [])
    assert set(FLAGS) == {"degenerate", "unstable", "selected_on_validation"}  # every flag a record carries
    assert (bare["reference"], bare["paper_value"]) == ("paper", claim.paper)
    flagged = dataclasses.replace(plain, extra={"unstable": ["u"], "selected_on_validation": ["s"],
                                                "reference": "recorded baseline, same seeds"})
    full = verdict_record(claim, flagged, synthetic=True, profile="smoke")
    assert (full["unstable"], full["selected_on_validation"], full["reference"]) == (
        ["u"], ["s"], "recorded baseline, same seeds")


def test_the_same_seeds_are_paired_seed_by_seed_whatever_their_order():
    today = {2: 0.7, 0: 0.9, 1: 0.8}
    recorded = {0: 0.9, 1: 0.8, 2: 0.7}
    same = seedwise_regression(today, recorded, margin=0.02, alpha=0.01)
    assert same.decided_by == "exact: every seed changed alike" and same.verdict == Verdict.NO_REGRESSION
    other = seedwise_regression({3: 0.7, 4: 0.9, 5: 0.8}, recorded, margin=0.02, alpha=0.01)
    assert other.decided_by.startswith("Welch (min-n df)")
    floored = seedwise_regression(today, recorded, margin=0.02, alpha=0.01, images=48)
    assert floored.decided_by.startswith("paired t")


def test_an_accuracy_check_against_a_saturated_record_has_its_binomial_floor(tiny_dataset, tmp_path):
    """Accuracy 1.000 on every seed, recorded and today: not an exact comparison but a paired t
    with the binomial variance over the validation images (``claims.accuracy_images``)."""
    check = next(c for c in regression_claims() if c.id == "regression-aspp-accuracy")
    today = [dataclasses.replace(r, accuracy=1.0) for r in runs(tiny_dataset, ("aspp",))]
    recorded = record(tmp_path / "smoke-cpu.json", profile="smoke", device_kind="cpu", results=today)
    result = evaluate(check, {("aspp",): today}.__getitem__, profile="smoke", recorded=recorded,
                      use_paper_values=False)
    assert result.decided_by.startswith("paired t") and result.verdict == Verdict.NO_REGRESSION
    assert result.extra["reference"] == "recorded baseline, same seeds"


# --- families ----------------------------------------------------------------------------------


def test_family_messages_name_what_is_allowed(monkeypatch):
    with pytest.raises(FamilyError, match=r"correction 'holm' is not one of bonferroni, per-test$"):
        Family("f", 0.05, ("a",), "holm")
    for alpha in (0.0, 0.5):
        with pytest.raises(FamilyError, match=f"alpha {alpha} must lie in"):
            Family("f", alpha, ("a",))
    known = ", ".join(sorted(families.FAMILIES))
    with pytest.raises(FamilyError, match=f"^no claim family 'nope' \\(registered: {known}\\); register it with"):
        get_family("nope")
    monkeypatch.setattr(families, "FAMILIES", {})
    with pytest.raises(FamilyError, match=r"\(registered: none\)"):
        get_family("nope")
    register_family(Family("mine", 0.05, ("a",)))
    with pytest.raises(FamilyError, match="use join_family to add claims to it$"):
        register_family(Family("mine", 0.05, ("a", "b")))
    with pytest.raises(FamilyError, match="add it with join_family or give the claim its own family$"):
        member_alpha("mine", "b")
