"""Issue 16's limits on the core, kept by a test so that they stay true: in `shared/`, no class over 300
lines, no constructor over 8 parameters, no function over 40 lines, and table column names written as
literals in `shared/schema.py` only (the one module that owns the table layout)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODULES = sorted(SHARED.rglob("*.py"))
# A column name as the schema writes it: one capitalised word or several run together (`DeliveryLatencyMs`).
COLUMN_LIKE = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _span(node: ast.AST) -> int:
    return int(getattr(node, "end_lineno", 0)) - int(getattr(node, "lineno", 0)) + 1


def _literals(path: Path) -> set[str]:
    return {
        node.value
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and COLUMN_LIKE.fullmatch(node.value)
    }


def test_the_limits_are_read_from_real_modules() -> None:
    """The checks below see the core (a wrong path would make them pass on nothing)."""
    names = {path.name for path in MODULES}
    assert {"schema.py", "ledger.py", "runtime.py", "sending.py", "events.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SHARED)))
def test_classes_and_functions_stay_small(path: Path) -> None:
    too_big = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ClassDef) and _span(node) > 300:
            too_big.append(f"class {node.name}: {_span(node)} lines")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if _span(node) > 40:
                too_big.append(f"function {node.name}: {_span(node)} lines")
            if node.name == "__init__":
                parameters = len(node.args.posonlyargs) + len(node.args.args) - 1 + len(node.args.kwonlyargs)
                if parameters > 8:
                    too_big.append(f"constructor at line {node.lineno}: {parameters} parameters")
    assert not too_big, f"{path.name}: {too_big}"


def test_column_names_are_literals_of_the_schema_module_only() -> None:
    columns = _literals(SHARED / "schema.py")
    assert {"Status", "DeliveryLatencyMs", "ProviderMessageId", "FeedSequence"} <= columns
    elsewhere = {
        str(path.relative_to(SHARED)): sorted(_literals(path) & columns) for path in MODULES if path.name != "schema.py"
    }
    assert not {name: found for name, found in elsewhere.items() if found}
