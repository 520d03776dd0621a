"""Layering guard: no ``provkit`` import inside a function body (imports go at module level, downward only).

The import-linter ``layers`` contract in ``pyproject.toml`` checks the direction
(``make test`` runs ``lint-imports``); this test keeps the imports visible.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "provkit"


def _function_imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "provkit":
                found.append((node.lineno, node.module or ""))
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif isinstance(node, ast.Import):
                found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "provkit"]
    return found


def test_no_provkit_import_inside_a_function():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for line, module in _function_imports(ast.parse(path.read_text(encoding="utf-8")))]
    assert not offenders, "move these imports to module level:\n" + "\n".join(offenders)
