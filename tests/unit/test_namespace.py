"""cartflow installs one top-level package, ``cartflow``; nothing imports the folders'
bare names (``engine``, ``providers``, ``workers``), which would load a second copy of
every module and collide with other projects' packages of those names."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BARE = {"engine", "providers", "workers"}
SOURCES = sorted(
    path
    for folder in ("engine", "providers", "workers", "tests", "bench")
    for path in (ROOT / folder).rglob("*.py")
)


def bare_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in BARE
        ]
    return found


def test_no_module_imports_a_bare_folder_name() -> None:
    assert len(SOURCES) > 100  # the walk found the tree
    offenders = [line for path in SOURCES for line in bare_imports(path)]
    assert offenders == []


def test_the_check_sees_a_bare_import(tmp_path: Path) -> None:
    sample = ROOT / "tests" / "unit" / "_bare_sample.py"
    try:
        sample.write_text("from engine.clock import Clock\nimport workers.cli\n")
        assert [line.split(": ")[1] for line in bare_imports(sample)] == [
            "engine.clock",
            "workers.cli",
        ]
    finally:
        sample.unlink()


@pytest.mark.parametrize(
    "name", ["cartflow", "cartflow.engine", "cartflow.providers.base", "cartflow.workers.cli"]
)
def test_the_namespace_imports_without_loading_the_bare_names(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__name__ == name
    assert not BARE & set(sys.modules)


def test_every_module_imports_on_its_own() -> None:
    # a module imported first (a plug-in, a script, `python -m`) must not meet a cycle
    names = sorted(
        "cartflow." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for folder in ("engine", "providers", "workers")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts and path.name != "__main__.py"
    )
    names = [n.removesuffix(".__init__") for n in names]

    # one interpreter: before each import every cartflow module is forgotten (third-party
    # ones stay loaded, so each import costs milliseconds)
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'cartflow']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        print(f'{name}: {type(exc).__name__}: {exc}')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert len(names) > 80
    assert done.stdout.strip() == ""
