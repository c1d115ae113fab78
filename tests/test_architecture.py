"""The package's structure, checked on its source: imports only run down the layers of
docs/design.md#layers, there are no import cycles, typer stays in the command layer, and every
document a docstring cites is in the repository."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "speck_mtt"
DESIGN = ROOT / "docs" / "design.md"
TYPER_UNITS = {"commands", "cli"}


def layers() -> dict[str, int]:
    """unit -> layer index, from the ```layers block of docs/design.md (lowest layer first)."""
    block = re.search(r"```layers\n(.*?)```", DESIGN.read_text(), re.S)
    assert block, f"{DESIGN} has no ```layers block"
    return {unit: i for i, line in enumerate(block.group(1).splitlines()) for unit in line.split()}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module path imported anywhere in the file, relative imports resolved."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import submodule`
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "speck_mtt"


def graph() -> dict[str, set[str]]:
    """module -> the project modules it imports."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in imports(p) if i in files and i != m} for m, p in files.items()}


def test_every_unit_has_a_layer():
    known = layers()
    units = {unit_of(m) for m in graph()} - {"speck_mtt"}
    assert units <= set(known), f"units without a layer in {DESIGN}: {sorted(units - set(known))}"


def test_imports_run_down_the_layers():
    rank = layers()
    upward = [f"{m} -> {i}" for m, deps in graph().items() for i in deps
              if unit_of(m) != unit_of(i) and unit_of(i) != "speck_mtt"
              and rank.get(unit_of(m), -1) <= rank.get(unit_of(i), -1)]
    assert not upward, "imports from a lower (or the same) layer to another unit:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    deps = {m: {i for i in d if not (m.startswith(i + ".") and i in graph())} for m, d in graph().items()}
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for i in sorted(deps[m]):
            if state.get(i) == 1:
                return path + [m, i]
            if i not in state and (cycle := visit(i, path + [m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(deps):
        if m not in state:
            cycle = visit(m, [])
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_typer_only_in_the_command_layer():
    users = [m for m, p in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
             if any(i == "typer" or i.startswith("typer.") for i in imports(p)) and unit_of(m) not in TYPER_UNITS]
    assert not users, f"typer imported outside commands/ and cli.py: {users}"


CITATION = re.compile(r"\b((?:docs|tests|hardware_tests|bench|recipes)/[\w./-]+\.(?:md|py|sh|toml))(#[\w-]+)?"
                      r"|\b(SPEC(?:\.md)?\s*§|COMMON\.md)")


def docstrings() -> list[tuple[str, str]]:
    out = []
    for path in list(PACKAGE.rglob("*.py")) + list((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    out.append((str(path.relative_to(ROOT)), doc))
    return out


def anchors(doc: Path) -> set[str]:
    return {"#" + re.sub(r"[^\w -]", "", h).strip().lower().replace(" ", "-")
            for h in re.findall(r"^#+\s+(.*)$", doc.read_text(), re.M)}


def citation_problems(where: str, doc: str) -> list[str]:
    problems = []
    for path, anchor, foreign in CITATION.findall(doc):
        if foreign:
            problems.append(f"{where} cites {foreign!r}, a document that is not in the repository")
        elif not (ROOT / path).is_file():
            problems.append(f"{where} cites {path}, which does not exist")
        elif anchor and anchor not in anchors(ROOT / path):
            problems.append(f"{where} cites {path}{anchor}: no such section")
    return problems


def test_docstring_citations_exist():
    problems = [p for where, doc in docstrings() for p in citation_problems(where, doc)]
    assert not problems, "\n".join(problems)


def test_citation_check_can_fail():
    assert citation_problems("x", "see SPEC §2") and citation_problems("x", "see COMMON.md")
    assert citation_problems("x", "see docs/nothing.md") and citation_problems("x", "see docs/design.md#nowhere")
    assert not citation_problems("x", "see docs/design.md#ttm-grouping and tests/test_architecture.py")


def _commands():
    """(path, click command) of every `speck-mtt` leaf command."""
    import typer

    from speck_mtt.cli import app

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, cmd

    return list(walk(typer.main.get_command(app), "speck-mtt"))


def test_commands_live_in_the_command_layer_and_share_their_options():
    from typing import get_type_hints

    from speck_mtt.commands import options

    commands = _commands()
    assert len(commands) >= 10
    for path, cmd in commands:
        assert cmd.callback.__module__.startswith("speck_mtt.commands."), f"{path}: defined in {cmd.callback.__module__}"
        hints = get_type_hints(cmd.callback, include_extras=True)
        flags = {opt: name for p in cmd.params for opt in p.opts for name in [p.name]}
        for flag, shared in (("--data-dir", options.DataDir), ("--json", options.Json)):
            if flag in flags:
                assert hints[flags[flag]] == shared, f"{path}: {flag} is not the shared option of commands/options.py"
