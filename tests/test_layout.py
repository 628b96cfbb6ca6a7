"""The shape issue 16 asks for, checked on the source: no two modules import each other, only the
settings module reads the environment, only store/ speaks SQL, and the CLI goes through the face."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).parent.parent / "pipeline"


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        name = ".".join(f.relative_to(PKG.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every import of a project module (top level or inside functions) by each module."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rsplit(".", 1)[0]
                target = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                for alias in node.names:
                    found = f"{target}.{alias.name}" if f"{target}.{alias.name}" in mods else target
                    if found in mods and found != mod:
                        edges[mod].add(found)
            elif isinstance(node, ast.Import):
                edges[mod].update(a.name for a in node.names if a.name in mods and a.name != mod)
    return edges


def test_no_two_modules_import_each_other():
    edges = _imports(_modules())
    mutual = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert mutual == []


def test_only_settings_reads_the_environment():
    readers = [str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
               if re.search(r"os\.environ|os\.getenv|getenv\(", p.read_text(encoding="utf-8"))]
    assert readers == ["settings.py"]


def test_only_store_speaks_sql():
    sql = re.compile(r"\b(SELECT\s+\S.*\bFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b")
    speakers = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                      if sql.search(p.read_text(encoding="utf-8")) and p.relative_to(PKG).parts[0] != "store")
    assert speakers == []


def test_cli_goes_through_the_face():
    cli = (PKG / "cli.py").read_text(encoding="utf-8")
    imported = {n.module for n in ast.walk(ast.parse(cli)) if isinstance(n, ast.ImportFrom) and n.level}
    assert "store" not in imported and "config" not in imported and "sqlite_utils" not in cli
    assert "store." not in cli and "connect(" not in cli
