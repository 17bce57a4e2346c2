"""Checks on the source itself that ruff does not make."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TREES = ("wukong", "tests", "bench")
DEFINITIONS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _loose_strings(tree: ast.AST) -> list[int]:
    """Lines of string statements that are neither a docstring nor an attribute's docstring
    (right after its assignment): text Python evaluates and drops."""
    lines = []
    for node in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            body = getattr(node, name, None)
            if not isinstance(body, list):
                continue
            for i, statement in enumerate(body):
                if not isinstance(statement, ast.Expr):
                    continue
                value = statement.value
                if not isinstance(value, ast.JoinedStr) and not (
                    isinstance(value, ast.Constant) and isinstance(value.value, str)
                ):
                    continue
                if i == 0 and name == "body" and isinstance(node, DEFINITIONS):
                    continue  # a docstring
                if i > 0 and isinstance(body[i - 1], ast.Assign | ast.AnnAssign):
                    continue  # an attribute's docstring
                lines.append(statement.lineno)
    return lines


def test_no_text_is_evaluated_and_dropped() -> None:
    """Found in session 44: a refusal's message ended at its first line because its second
    string stood on a line of its own after the `return` (not joined to it), and two attribute
    docstrings sat under the wrong attribute."""
    found = []
    for tree in TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            found += [
                f"{path.relative_to(ROOT)}:{line}"
                for line in _loose_strings(ast.parse(path.read_text()))
            ]
    assert not found, f"string statements that say nothing: {found}"


def test_the_check_finds_a_dropped_continuation() -> None:
    tree = ast.parse('def f():\n    return f"a {1} "\n    "b"\n')
    assert _loose_strings(tree) == [3]
