"""The documentation cannot rot: its Python examples run, the API reference covers every
public module, every plugin option is documented, and the README stays short."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pneumobench._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pneumobench"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text())


def test_the_fence_pattern_finds_python_blocks_only():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert FENCE.findall(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: p.name)
def test_the_pages_python_examples_run(page, tmp_path):
    """A page's blocks run in order in one fresh interpreter (so what they register stays
    there), with the cache in a temporary folder."""
    program = "\n\n".join(python_blocks(page))
    env = {**os.environ, "PNEUMOBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{page.name}: an example failed:\n{done.stderr[-3000:]}"


def test_the_examples_import_from_the_current_paths_only():
    imported = {m.group(1) for page in PAGES for block in python_blocks(page)
                for m in re.finditer(r"^\s*(?:from|import) (pneumobench[\w.]*)", block, re.MULTILINE)}
    assert "pneumobench.experiment" in imported
    assert sorted(imported & set(MOVED)) == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _static_all(path: Path) -> list[str] | None:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            if isinstance(node.value, ast.List | ast.Tuple):
                return [ast.literal_eval(element) for element in node.value.elts]
    return None


def public_modules() -> dict[str, list[str]]:
    """Each public module that lists its names in ``__all__``, with those names."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if any(part.startswith("_") and part != "__init__.py" for part in path.relative_to(ROOT).parts):
            continue
        names = _static_all(path)
        if names is not None:
            found[_module_name(path)] = names
    return found


def api_directives() -> set[str]:
    return {m.group(1) for page in (ROOT / "docs" / "api").glob("*.md")
            for m in re.finditer(r"^::: ([\w.]+)$", page.read_text(), re.MULTILINE)}


def test_the_api_reference_documents_every_public_module():
    assert set(public_modules()) - api_directives() == set()
    assert api_directives() - set(public_modules()) == set()


def test_every_module_of_the_library_declares_its_public_names():
    """A module without ``__all__`` would be missing from the API reference."""
    exempt = {"pneumobench.__main__", "pneumobench.cli", "pneumobench.data", "pneumobench.papers"}
    missing = [_module_name(p) for p in sorted(PACKAGE.rglob("*.py"))
               if _static_all(p) is None and "_moved" not in p.name and "lazy_exports" not in p.read_text()]
    assert sorted(set(missing) - exempt) == []


def test_every_name_a_stage_package_exports_is_documented_by_its_module():
    """The packages re-export their modules' names lazily; each re-exported name is in the
    ``__all__`` of a documented module, so the API reference lists every public name."""
    documented = {name for names in public_modules().values() for name in names}
    packages = [p.parent for p in PACKAGE.glob("*/__init__.py") if "lazy_exports" in p.read_text()]
    assert packages, "no stage package re-exports lazily"
    undocumented = {f"{pkg.name}.{name}" for pkg in packages
                    for name in importlib.import_module(f"pneumobench.{pkg.name}").__all__ if name not in documented}
    assert undocumented == set()


def test_every_plugin_option_is_documented(pytestconfig):
    """Every ``--pb-*`` option of this session (the plugin is loaded) is in the options table."""
    options = {"--" + dest.replace("_", "-") for dest in vars(pytestconfig.option) if dest.startswith("pb_")}
    assert len(options) >= 15
    running = (ROOT / "docs" / "running.md").read_text()
    assert sorted(o for o in options if f"`{o}" not in running) == []


def test_the_readme_is_what_a_newcomer_reads_first():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    for section in ("## Install", "## The two commands", "## Reading a verdict", "## Adding a modification"):
        assert section in readme


def test_the_readme_and_the_docs_link_to_pages_that_exist():
    broken = [f"{page.name}: {target}" for page in PAGES
              for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text())
              if not (page.parent / target).is_file()]
    assert broken == []
