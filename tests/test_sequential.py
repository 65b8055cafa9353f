"""Sequential claims (--pb-seeds auto): the spending functions, the looks, the error rates over
all looks by simulation, the power and seeds saved, and the look-by-look judging of claims."""

import math

import numpy as np
import pytest
from fakes import fake_run
from scipy import stats as st

from pneumobench.experiment.profiles import get_profile
from pneumobench.judging import calibration
from pneumobench.judging.calibration import sequential_error_rates, sequential_power
from pneumobench.judging.claims import claim_alpha
from pneumobench.judging.looks import SequentialPlan, judge_sequentially
from pneumobench.judging.spending import (
    SequentialError,
    design,
    first_decision,
    information,
    planned_looks,
    spent_alpha,
)
from pneumobench.judging.stats import Verdict, best_claim, equivalence_claim, paired_claim
from pneumobench.papers.viel_orhan_2020.claims import PAPER_CLAIMS

# --- the design ---------------------------------------------------------------------------


def test_obrien_fleming_spending_by_hand():
    """2 - 2 Phi(z(1 - alpha/2) / sqrt(t)): at t = 1/4 and alpha 0.05, z = 1.95996 * 2."""
    assert spent_alpha(0.25, 0.05) == pytest.approx(2 * st.norm.sf(1.959964 * 2), rel=1e-5)
    assert spent_alpha(0.25, 0.05) == pytest.approx(8.857e-05, rel=1e-3)
    assert spent_alpha(1.0, 0.05) == pytest.approx(0.05)
    assert spent_alpha(0.0, 0.05) == 0.0
    assert spent_alpha(1.5, 0.05) == spent_alpha(1.0, 0.05)  # fractions beyond the cap spend nothing more


def test_pocock_spending_by_hand():
    """alpha ln(1 + (e - 1) t): at t = 1/2, 0.05 * ln(1.859141) = 0.0310057."""
    assert spent_alpha(0.5, 0.05, "pocock") == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    assert spent_alpha(0.5, 0.05, "pocock") == pytest.approx(0.0310057, abs=1e-7)
    assert spent_alpha(1.0, 0.05, "pocock") == pytest.approx(0.05)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_spending_rises_from_zero_to_alpha(spending):
    values = [spent_alpha(t, 0.01, spending) for t in np.linspace(0, 1, 21)]
    assert values[0] == 0 and values[-1] == pytest.approx(0.01)
    assert all(b > a for a, b in zip(values, values[1:]))


def test_planned_looks_double_from_five_up_to_the_cap():
    assert planned_looks() == (5, 10, 20, 40)
    assert planned_looks(12) == (5, 10, 12)
    assert planned_looks(5) == (5,)
    assert planned_looks(80) == (5, 10, 20, 40, 80)
    with pytest.raises(SequentialError, match="--pb-max-seeds 4: give at least 5"):
        planned_looks(4)


def test_unknown_spending_function_names_the_choices():
    with pytest.raises(SequentialError, match=r"^spending function 'haybittle': choose one of obrien-fleming, pocock$"):
        design((5, 10), 0.05, "haybittle")


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
@pytest.mark.parametrize("references", [None, 1, 5])
def test_the_looks_nominal_levels_spend_exactly_alpha(spending, references):
    seq = design(planned_looks(), 0.003, spending, references)
    assert (seq.looks, seq.alpha, seq.spending) == ((5, 10, 20, 40), 0.003, spending)
    assert sum(seq.nominal) == pytest.approx(0.003, rel=1e-12)
    assert all(level >= 0 for level in seq.nominal)
    assert seq.fractions[-1] == 1 and list(seq.fractions) == sorted(seq.fractions)
    first = information(5, references) / information(40, references)
    assert seq.nominal[0] == pytest.approx(spent_alpha(first, 0.003, spending))


def test_information_against_a_single_reference_run_barely_grows():
    """The paper's single run keeps its own noise: 1/(1/n + 1), so 5 seeds already give 85% of 40's."""
    assert information(5) == 5 and information(40) == 40
    assert information(5, 1) / information(40, 1) == pytest.approx((5 / 6) / (40 / 41))
    assert information(10, 10) == pytest.approx(5)


def test_first_decision_takes_the_earliest_decided_look():
    codes = np.array([[0, 1, -1], [0, 0, 0], [-1, 0, 0], [0, 0, 1]])
    final, look = first_decision(codes)
    assert final.tolist() == [1, 0, -1, 1] and look.tolist() == [1, 2, 0, 2]


# --- the simulation's vectorized rules are the real rules ------------------------------------


def test_simulated_paired_looks_equal_paired_claim():
    rng = np.random.default_rng(3)
    looks, nominal = (5, 10), (0.05, 0.2)
    diffs = rng.normal(0.0, 0.01, (60, 10)) + rng.choice([-0.012, 0.0, 0.012], (60, 1))
    codes = calibration._paired_looks(diffs, nominal, looks)
    value = {Verdict.REPRODUCED: 1, Verdict.CONTRADICTED: -1, Verdict.INCONCLUSIVE: 0}
    for row, expected in zip(diffs, codes):
        for k, n in enumerate(looks):
            stats = paired_claim(row[:n, None], np.zeros((n, 1)), direction=+1, alpha=nominal[k])
            assert value[stats.verdict] == expected[k]
    assert {1, 0, -1} <= set(codes.ravel())  # the comparison covered every verdict


def test_simulated_best_looks_equal_best_claim():
    rng = np.random.default_rng(4)
    looks, nominal = (5, 8), (0.05, 0.1)
    best = rng.normal(0.0, 0.01, (80, 8))
    shifts = np.array([[-0.03, -0.03, -0.03], [0.03, -0.03, 0.0], [0.0, 0.0, 0.0]])  # all behind, one ahead, tied
    rivals = rng.normal(0.0, 0.01, (80, 3, 8)) + shifts[rng.integers(0, 3, 80)][:, :, None]
    codes = calibration._best_looks(best, rivals, nominal, looks)
    value = {Verdict.REPRODUCED: 1, Verdict.CONTRADICTED: -1, Verdict.INCONCLUSIVE: 0}
    for b, r, expected in zip(best, rivals, codes):
        for k, n in enumerate(looks):
            arms = {f"r{i}": r[i, :n, None] for i in range(3)}
            assert value[best_claim(b[:n, None], arms, alpha=nominal[k]).verdict] == expected[k]
    assert {1, 0, -1} <= set(codes.ravel())


@pytest.mark.parametrize("references", [1, 4])
def test_simulated_equivalence_looks_equal_equivalence_claim(references):
    rng = np.random.default_rng(5)
    looks, nominal = (5, 9), (0.05, 0.1)
    values = 0.6 + rng.choice([0.0, 0.012, 0.03], (100, 1)) + rng.normal(0, 0.005, (100, 9))
    reference = 0.6 + rng.normal(0, 0.005, (100, references))
    codes = calibration._equivalence_looks(values, reference, 0.01, nominal, looks)
    value = {Verdict.REPRODUCED: 1, Verdict.CONTRADICTED: -1, Verdict.INCONCLUSIVE: 0}
    for v, ref, expected in zip(values, reference, codes):
        target = float(ref[0]) if references == 1 else ref
        for k, n in enumerate(looks):
            assert value[equivalence_claim(v[:n], target, margin=0.01, alpha=nominal[k]).verdict] == expected[k]
    assert {1, 0, -1} <= set(codes.ravel())


# --- error rates over all looks, and what a broken rule would do ----------------------------


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_every_sequential_error_is_at_most_alpha_over_all_looks(spending):
    rows = sequential_error_rates(0.05, 40_000, spending=spending)
    assert len(rows) == 8
    for row in rows:
        assert row.within_bound, (row.rule, row.error, row.rate)


def test_judging_every_look_at_the_full_alpha_would_exceed_it():
    """The broken rule the spending replaces: alpha at each of 4 looks roughly doubles the error."""
    rng = np.random.default_rng(8)
    looks = planned_looks()
    codes = calibration._paired_looks(rng.normal(0, 1, (40_000, 40)), (0.05,) * 4, looks)
    rates, _ = calibration._sequential_rates(codes, looks)
    assert rates[Verdict.REPRODUCED] > 0.05 + 6 * math.sqrt(0.05 * 0.95 / 40_000)


def test_errors_at_the_paper_familys_alpha():
    alpha = claim_alpha(PAPER_CLAIMS[0])
    for row in sequential_error_rates(alpha, 200_000):
        assert row.within_bound, (row.rule, row.error, row.rate)


def test_the_sequential_design_keeps_the_fixed_power_with_fewer_seeds():
    """At the paper's largest effect (0.014, per-seed SD 0.01) and the family's alpha: the fixed
    40-seed power, about 30% fewer seeds on average; at no effect every claim runs to the cap."""
    alpha = claim_alpha(PAPER_CLAIMS[0])
    large = sequential_power(0.014, 0.01, alpha, 20_000)
    assert large.power >= large.fixed_power - 3 * math.sqrt(large.fixed_power * (1 - large.fixed_power) / 20_000 + 1e-12)
    assert large.saving > 0.2 and large.mean_seeds < 32
    middle = sequential_power(0.009, 0.01, alpha, 20_000)
    se = math.sqrt(middle.fixed_power * (1 - middle.fixed_power) / 20_000)
    assert middle.power >= middle.fixed_power - 3 * se and middle.mean_seeds < 40
    none = sequential_power(0.0, 0.01, alpha, 20_000)
    assert none.mean_seeds > 39.9 and none.power < alpha * 2


# --- claims judged look by look --------------------------------------------------------------

SHIFTS = {("aspp",): 0.05, ("scse",): 0.05}  # aspp improves Dice (as claimed); scse too (the paper says it lowers it)
CLAIMS = {c.id: c for c in PAPER_CLAIMS}


def _runs_for(tiny_dataset, available=None):
    profile = get_profile("smoke")
    cache = {}

    def runs_for(mods, seeds):
        out = []
        for seed in seeds:
            if available is not None and (mods, seed) not in available:
                continue
            if (mods, seed) not in cache:
                cache[mods, seed] = fake_run(profile.config(*mods), seed, tiny_dataset, dice_shift=SHIFTS.get(mods, 0.0))
            out.append(cache[mods, seed])
        return out

    return runs_for


def test_claims_stop_when_decided_and_only_open_claims_get_more_seeds(tiny_dataset):
    claims = [CLAIMS["aspp-improves-dice"], CLAIMS["scse-lowers-dice"], CLAIMS["lovasz-improves-dice"]]
    asked = []
    results = judge_sequentially(
        claims,
        _runs_for(tiny_dataset),
        SequentialPlan(max_seeds=20),
        profile="smoke",
        use_paper_values=False,
        before_look=lambda configs, seeds: asked.append((configs, seeds)),
    )
    aspp, scse, lovasz = (results[c.id] for c in claims)
    assert aspp.verdict == Verdict.REPRODUCED and scse.verdict == Verdict.CONTRADICTED
    assert aspp.extra["sequential"]["look"] == scse.extra["sequential"]["look"] < 3
    decided_at = aspp.extra["sequential"]["seeds"]
    assert aspp.seeds == decided_at and aspp.extra["sequential"]["decided"]
    assert lovasz.verdict == Verdict.INCONCLUSIVE and lovasz.seeds == 20
    assert lovasz.note.startswith("undecided at the cap (20 seeds)")
    assert lovasz.extra["sequential"] == {**lovasz.extra["sequential"], "look": 3, "seeds": 20, "decided": False}
    # Seeds went to every configuration at first, then only to the open claim's.
    assert asked[0] == ([(), ("aspp",), ("lovasz",), ("scse",)], tuple(range(5)))
    assert asked[-1] == ([(), ("lovasz",)], tuple(range(20)))
    # Each look's test ran at that look's share of the family's alpha.
    seq = design((5, 10, 20), claim_alpha(claims[0]))
    assert aspp.alpha == seq.nominal[aspp.extra["sequential"]["look"] - 1]
    assert lovasz.alpha == seq.nominal[-1]
    assert sum(seq.nominal) == pytest.approx(claim_alpha(claims[0]))


def test_the_same_runs_judged_again_give_the_same_verdicts_and_looks(tiny_dataset):
    """As ``pneumobench report --seeds auto`` does: the store holds more seeds of some configurations
    (other claims asked for them), and the judging still stops where the session stopped."""
    claims = [CLAIMS["aspp-improves-dice"], CLAIMS["lovasz-improves-dice"]]
    plan = SequentialPlan(max_seeds=20)
    first = judge_sequentially(claims, _runs_for(tiny_dataset), plan, profile="smoke", use_paper_values=False)
    again = judge_sequentially(claims, _runs_for(tiny_dataset), plan, profile="smoke", use_paper_values=False)
    for claim in claims:
        assert first[claim.id].to_dict() == again[claim.id].to_dict()


def test_a_claim_whose_seeds_are_missing_is_not_run_naming_them(tiny_dataset):
    available = {(mods, s) for mods in [(), ("lovasz",)] for s in range(10)} - {(("lovasz",), 7)}
    results = judge_sequentially(
        [CLAIMS["lovasz-improves-dice"]], _runs_for(tiny_dataset, available), SequentialPlan(20), profile="smoke",
        use_paper_values=False,
    )
    stats = results["lovasz-improves-dice"]
    assert stats.verdict == Verdict.NOT_RUN and stats.note == "no runs of lovasz with seeds 7"
    assert stats.extra["sequential"]["look"] == 2


def test_regression_and_parameter_claims_are_not_sequential(tiny_dataset):
    from pneumobench.papers.viel_orhan_2020.claims import regression_claims

    results = judge_sequentially(
        [regression_claims()[0], CLAIMS["aspp-is-800k-parameters-lighter"]], _runs_for(tiny_dataset),
        SequentialPlan(10), profile="smoke",
    )
    assert results == {}


def test_a_single_look_is_the_fixed_design(tiny_dataset):
    """With the cap at the first look (--pb-max-seeds 5) all alpha is spent at once: every claim's
    verdict, p and alpha are the fixed 5-seed design's."""
    from pneumobench.judging.claims import evaluate

    runs_for = _runs_for(tiny_dataset)
    claims = [CLAIMS[name] for name in ("aspp-improves-dice", "scse-lowers-dice", "lovasz-improves-dice",
                                        "best-dice-is-aspp-hypercolumns")]
    looked = judge_sequentially(claims, runs_for, SequentialPlan(5), profile="smoke", use_paper_values=False)
    for claim in claims:
        fixed = evaluate(claim, lambda mods: runs_for(mods, tuple(range(5))), profile="smoke", use_paper_values=False)
        sequential = looked[claim.id]
        assert (sequential.verdict, sequential.p_value, sequential.estimate) == (fixed.verdict, fixed.p_value, fixed.estimate)
        assert sequential.alpha == pytest.approx(fixed.alpha, rel=1e-12)
