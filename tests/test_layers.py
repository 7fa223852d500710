"""docs/ARCHITECTURE.md's package table is the import order, held from the imports themselves.

The table lists every package of ``compliance/`` and every root module, from the top down; a
module may import its own package, any package below it and the root modules, never one
above it, and the library never imports a shell. An import under ``if TYPE_CHECKING:`` is
a type, not a dependency, and does not count.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "compliance"
SHELLS = ("jobs", "dashboard", "api")
#: Alembic's own entry point (``alembic upgrade`` runs it with no engine given): a shell of
#: its kind, so it may read the policy for the database URL.
ENTRY_POINTS = {LIBRARY / "store" / "migrations" / "env.py"}


@dataclass(frozen=True)
class Import:
    module: Path
    line: int
    target: str  # the dotted name imported from


def documented_order() -> tuple[list[str], set[str]]:
    """The packages in the table, top first, and the root modules its last row names."""
    packages: list[str] = []
    roots: set[str] = set()
    for line in (ROOT / "docs" / "ARCHITECTURE.md").read_text().splitlines():
        cell = line.split("|")[1].strip() if line.startswith("| ") else ""
        found = re.fullmatch(r"`compliance/(\w+)/`", cell)
        if found:
            packages.append(found.group(1))
        elif cell == "root modules":
            roots = set(re.findall(r"`(\w+)\.py`", line))
    return packages, roots


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if not _type_checking_only(node, parents):
            found += [Import(path, node.lineno, name) for name in names]
    return found


def home(path: Path) -> str:
    """The package a library module belongs to, or ``root`` for a module of its own."""
    parts = path.relative_to(LIBRARY).parts
    return parts[0] if len(parts) > 1 else "root"


def target_home(target: str) -> str | None:
    """Where an import of the library lands: a package, ``root``, or None (not ours)."""
    parts = target.split(".")
    if parts[0] != "compliance" or len(parts) == 1:
        return None
    return parts[1] if (LIBRARY / parts[1]).is_dir() else "root"


def test_the_table_lists_every_package_and_root_module_once() -> None:
    packages, roots = documented_order()
    on_disk = sorted(p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists())
    assert sorted(packages) == on_disk, "docs/ARCHITECTURE.md's package table is out of date"
    assert len(packages) == len(set(packages))
    modules = {p.stem for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    assert roots == modules, "the table's 'root modules' row is out of date"


def test_no_package_imports_one_above_it_and_the_library_no_shell() -> None:
    packages, _ = documented_order()
    rank = {name: i for i, name in enumerate([*packages, "root"])}
    wrong: list[str] = []
    for path in sorted(LIBRARY.rglob("*.py")):
        if path in ENTRY_POINTS:
            continue
        mine = home(path)
        for found in imports_of(path):
            where = f"{path.relative_to(ROOT)}:{found.line} imports {found.target}"
            if found.target.split(".")[0] in SHELLS:
                wrong.append(f"{where} (a shell)")
            theirs = target_home(found.target)
            if theirs is None or theirs == mine:
                continue
            if mine == "root" and theirs != "root":
                wrong.append(f"{where} (a root module imports only root modules)")
            elif rank[theirs] < rank[mine]:
                wrong.append(f"{where} (compliance/{theirs}/ is above compliance/{mine}/)")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The rule above fails where it should: an import one package up, at any depth."""
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from compliance.reports import stats\n"
        "if TYPE_CHECKING:\n    from compliance.dsar import requests\n"
    )
    found = [i.target for i in imports_of(module)]
    assert found == ["typing", "compliance.reports"]
    packages, _ = documented_order()
    assert packages.index("reports") < packages.index("store")
