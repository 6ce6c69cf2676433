"""One-way dependencies: grader builds on ankigen (notes, errors, the model client), never the
other way round, so ankigen installs and runs without the grader's retrieval extras."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ankigen

ANKIGEN = Path(ankigen.__file__).parent


def grader_imports(source: str, filename: str = "<source>") -> list[str]:
    """'file:line: statement' for each import of grader (static or by name) in one module."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):  # importlib.import_module("grader...") / __import__(...)
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names = [first.value]
        for name in names:
            if name == "grader" or name.startswith("grader."):
                found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_checker_finds_each_way_of_importing_grader() -> None:
    source = (
        "import os\n"
        "from grader.judge import judge\n"
        "import grader\n"
        "from .grader_like import x\n"
        "import graders\n"
        "def f():\n"
        "    import importlib\n"
        "    return importlib.import_module('grader.cli')\n"
    )
    assert grader_imports(source, "m.py") == [
        "m.py:2: from grader.judge import judge",
        "m.py:3: import grader",
        "m.py:8: importlib.import_module('grader.cli')",
    ]


def test_no_ankigen_module_imports_grader() -> None:
    modules = sorted(ANKIGEN.rglob("*.py"))
    assert ANKIGEN / "llm.py" in modules and ANKIGEN / "cli.py" in modules
    found = [hit for path in modules for hit in grader_imports(path.read_text("utf-8"), str(path.relative_to(ANKIGEN.parent)))]
    assert found == []


def test_every_ankigen_module_imports_with_grader_blocked() -> None:
    # A module that reached grader some way the AST check misses still fails here.
    program = (
        "import importlib, pkgutil, sys\n"
        "sys.modules['grader'] = None\n"  # any 'import grader...' now raises ImportError
        "import ankigen\n"
        "names = [m.name for m in pkgutil.walk_packages(ankigen.__path__, 'ankigen.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names), 'ankigen.llm' in names)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    count, has_llm = done.stdout.split()
    assert int(count) > 10 and has_llm == "True"
