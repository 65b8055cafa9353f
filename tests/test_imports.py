"""The import graph follows the stages: imports point down only, no cycles, light modules stay light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pneumobench"
HEAVY = ("torch", "segmentation_models_pytorch", "timm", "pydicom", "pandas")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """pneumobench modules that ``path`` imports anywhere (a deferred import inside a function counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pneumobench"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("pneumobench"))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the directed graph as a list of nodes, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


# Each stage imports only the stages listed for it (the package's root, for ``__version__``,
# is open to all). ``entry`` is everything at the top level: cli, session, the plugin, options.
ALLOWED = {
    "core": set(),
    "experiment": {"core"},
    "data": {"core", "experiment"},
    "models": {"core", "experiment"},
    "training": {"core", "experiment", "data", "models"},
    "runs": {"core", "experiment", "data", "models", "training"},
    "judging": {"core", "experiment"},
    "papers": {"core", "experiment", "judging", "models"},
    "reporting": {"core", "experiment", "data", "training", "runs", "judging", "papers"},
    "tools": {"core", "experiment", "data", "models", "training", "runs", "judging", "papers", "reporting"},
}
ROOT = {"pneumobench", "pneumobench._moved"}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "entry"


def test_every_subpackage_is_a_stage():
    folders = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders == set(ALLOWED)


def test_imports_point_down_the_stages():
    upward = [
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if stage(module) != "entry"
        for target in sorted(targets - ROOT)
        if stage(target) != stage(module) and stage(target) not in ALLOWED[stage(module)]
    ]
    assert upward == []


def test_the_layers_check_catches_an_upward_import():
    assert stage("pneumobench.judging.claims") == "judging"
    assert stage("pneumobench.training.engine") not in ALLOWED["judging"]
    assert stage("pneumobench.session") == "entry"


def test_only_judging_assembles_a_judging_bundle():
    """``evaluate`` and ``judge_sequentially`` take the recorded baseline, the profile and the
    data's kind: outside ``judging/`` claims are judged through ``JudgingContext`` only."""
    bundle = {"pneumobench.judging.claims.evaluate", "pneumobench.judging.looks.judge_sequentially"}
    raw = {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}
    outside = {m: sorted(t & bundle) for m, t in raw.items() if stage(m) != "judging" and t & bundle}
    assert outside == {}


@pytest.mark.parametrize("module", ["pneumobench.experiment.config", "pneumobench.experiment.profiles",
                                    "pneumobench.runs.store", "pneumobench.core.results",
                                    "pneumobench.papers.viel_orhan_2020.modifications",
                                    "pneumobench.papers.viel_orhan_2020.claims", "pneumobench.judging.verdicts",
                                    "pneumobench.judging.context", "pneumobench.pytest_plugin", "pneumobench.options"])
def test_light_modules_do_not_import_torch_or_the_readers(module):
    code = f"import sys, json, {module}; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == []


MAX_FUNCTION_LINES = 70  # docs/architecture.md promises it


def test_no_function_in_the_package_is_longer_than_a_screen():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    assert long == []
