"""Issue 13's size rule, kept true: no module under extender/ over 400 lines, no class over 300.

A module or class past these sizes has usually taken on a second job; split it by job (a module
per job, named for what it holds) rather than raising the limit.
"""

from __future__ import annotations

import ast
from pathlib import Path

EXTENDER = Path(__file__).resolve().parents[2] / "extender"
MODULE_LINES = 400
CLASS_LINES = 300


def _modules() -> list[Path]:
    found = sorted(EXTENDER.rglob("*.py"))
    assert len(found) > 50, f"found only {len(found)} modules under {EXTENDER}: is the path right?"
    return found


def test_no_module_under_extender_is_over_400_lines() -> None:
    over = {
        str(path.relative_to(EXTENDER.parent)): lines
        for path in _modules()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES
    }
    assert not over, f"modules over {MODULE_LINES} lines (split them by job): {over}"


def test_no_class_under_extender_is_over_300_lines() -> None:
    over: dict[str, int] = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > CLASS_LINES:
                    over[f"{path.relative_to(EXTENDER.parent)}:{node.name}"] = lines
    assert not over, f"classes over {CLASS_LINES} lines (split them by job): {over}"
