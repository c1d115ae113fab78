"""pyproject.toml declares what the code imports, the Python it needs, and lower bounds the
constraints file (the versions the suite passed with, what `make install` uses) satisfies."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL = {"samna", "aedat"}  # samna: only the real one, through chip/samna_guard; aedat: the cifar10dvs extra


def constraints() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = Version(version)
    return pins


def third_party_imports() -> set[str]:
    found = set()
    for path in (ROOT / "speck_mtt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "speck_mtt"}


def test_python_3_11():
    assert PROJECT["requires-python"] == ">=3.11"


def test_every_imported_library_is_declared():
    declared = {Requirement(r).name.lower() for r in PROJECT["dependencies"]}
    dists = packages_distributions()
    missing = {m for m in third_party_imports() - OPTIONAL
               if not {d.lower() for d in dists.get(m, [m])} & declared}
    assert not missing, f"imported but not in pyproject's dependencies: {sorted(missing)}"


def test_the_constraints_meet_every_lower_bound():
    pins = constraints()
    requirements = [Requirement(r) for r in PROJECT["dependencies"]
                    + [r for extra in ("dev", "cifar10dvs") for r in PROJECT["optional-dependencies"][extra]]]
    for req in requirements:
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]} outside {req}"
    assert "speck" not in PROJECT["optional-dependencies"]  # PyPI's samna is a stub: no extra pretends otherwise
