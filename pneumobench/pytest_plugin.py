"""pytest plugin (``pytest11`` entry point): options, markers, the ``pb`` fixtures, and the hooks.

A claim test calls ``pb.evaluate(claim)`` (its runs trained on demand and cached in the
results store, judged through ``pneumobench.judging.context`` at the claim family's alpha)
and hands the ``ClaimStats`` to ``pb_judge``, which records it and ends the test with the
outcome ``pneumobench.judging.verdicts.outcome`` gives. The session object, its option
parsing and its terminal summary are ``pneumobench.session``; the options shared with the
CLI are ``pneumobench.options``.
"""

from __future__ import annotations

from typing import Any

import pytest

from pneumobench.options import add_options
from pneumobench.session import PROPERTY, SENSITIVITY_PROPERTY, PneumobenchSession, parse_options

__all__ = ["MARKERS", "PROPERTY", "SENSITIVITY_PROPERTY", "pb", "pb_judge"]

MARKERS = {
    "paper": "a claim of the paper, judged against the paper's numbers or a recorded baseline",
    "regression": "compares today's runs with a recorded baseline",
    "sensitivity": "plants bugs and checks that the regression check catches them",
    "gpu": "needs a CUDA device; skipped with a reason where there is none",
    "slow": "takes more than a few seconds on the CPU",
}
_SESSION = pytest.StashKey[PneumobenchSession]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pneumobench", "pneumobench: paper claims and regression baselines")
    add_options(group.addoption, "--pb-", parsed=False)  # profile, data, device, executor and its settings
    group.addoption(
        "--pb-seeds",
        default=None,
        help="seeds: a count (5), a list (0,1,2), or auto (sequential: looks at 5, 10, 20 ... seeds, more seeds "
        "only for open claims); default: the profile's",
    )
    group.addoption("--pb-max-seeds", type=int, default=None, help="with --pb-seeds auto: the seed cap (default 40)")
    group.addoption(
        "--pb-spending",
        default=None,
        help="with --pb-seeds auto: alpha spending over the looks, obrien-fleming (default) or pocock",
    )
    group.addoption(
        "--pb-store", default=None, help="results store (default .pneumobench/results.sqlite in the rootdir)"
    )
    group.addoption("--pb-baselines", default=None, help="baselines directory (default baselines/ in the rootdir)")
    group.addoption(
        "--pb-report", default=None, help="also write the verdict table as JSON and Markdown to this directory"
    )
    group.addoption(
        "--pb-update-baselines", action="store_true", help="rewrite the recorded baseline of this profile and device"
    )
    group.addoption("--pb-strict", action="store_true", help="INCONCLUSIVE verdicts fail instead of xfail")
    group.addoption(
        "--pb-retry-failed",
        action="store_true",
        help="train again the runs the store records as failed (else their claims report the stored error)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, help_text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {help_text}")
    session = PneumobenchSession(parse_options(config))
    session.bind_terminal(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "pneumobench-session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("gpu") for item in items):
        import torch

        if not torch.cuda.is_available():
            skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False here")
            for item in items:
                if item.get_closest_marker("gpu"):
                    item.add_marker(skip)


def pytest_collection_finish(session: pytest.Session) -> None:
    """After -k/-m selection: note the runs the selected claims need (trained up front) and
    check what they need before any trains. Selection never changes a verdict: each claim's
    alpha comes from its family."""
    pb_session = session.config.stash[_SESSION]
    judged = [
        item for item in session.items if item.get_closest_marker("paper") or item.get_closest_marker("regression")
    ]
    for item in judged:
        params = getattr(getattr(item, "callspec", None), "params", {})
        for value in params.values():
            if hasattr(value, "configs"):
                pb_session.claims.setdefault(value.id, value)
                pb_session.needed.update(value.configs())
            elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                pb_session.needed.add(value)
    if pb_session.needed and not session.config.option.collectonly:
        pb_session.check_preconditions()


@pytest.fixture(scope="session")
def pb(request: pytest.FixtureRequest) -> PneumobenchSession:
    """The pneumobench session: profile, dataset, runs and the verdict recorder."""
    return request.config.stash[_SESSION]


@pytest.fixture
def pb_judge(pb: PneumobenchSession, request: pytest.FixtureRequest):
    """``pb_judge(claim, stats)``: record the verdict and map it to the test's outcome."""

    def judge(claim: Any, stats: Any) -> None:
        pb.judge(request.node, claim, stats)

    return judge
