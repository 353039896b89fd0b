"""The structure holds: layers and no cycles (import-linter's contracts in
pyproject.toml), no private names across modules, stages used through their
package's public surface, and no module that grew past one concern."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "batchrek"
# Stage packages: other packages use what their __init__ offers, not their modules.
STAGES = ("manifest", "prepare", "call", "output", "observe", "run", "ledger", "export")
# Modules allowed past ~400 lines, each because one concern needs the room.
LONG_ALLOWED: dict[str, str] = {
    "batchrek/config.py": "every setting: its field, flag, range, coercion and validation",
}
MAX_LINES = 420


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], node.lineno))
    return found


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_module_imports_a_private_name_from_another_module() -> None:
    offenders = []
    for path in _modules():
        for module, names, line in _imports(path):
            if not module.startswith("batchrek"):
                continue
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}.{name}")
    assert offenders == []


def test_stages_are_used_through_their_package() -> None:
    """``from batchrek.call import classify``, never ``from batchrek.call.retry import``,
    outside the call package itself."""
    offenders = []
    for path in _modules():
        here = _dotted(path)
        for module, _names, line in _imports(path):
            parts = module.split(".")
            if len(parts) < 3 or parts[0] != "batchrek" or parts[1] not in STAGES:
                continue
            if here == f"batchrek.{parts[1]}" or here.startswith(f"batchrek.{parts[1]}."):
                continue
            offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("package", STAGES)
def test_each_stage_names_what_it_offers(package: str) -> None:
    init = PACKAGE / package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert ast.get_docstring(tree), f"batchrek/{package}/__init__.py says what the stage does"
    names = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    assert "__all__" in names


def test_no_module_outgrew_one_concern() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert {k: v for k, v in long.items() if k not in LONG_ALLOWED} == {}
