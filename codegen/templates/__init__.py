"""The entry points of generated modules, as real source files pasted into them.

Each template here is an importable, lintable module: its docstring and the lines ending
in `# symgrad: not embedded` (the import of contract.py, which names what the generated
module defines) are dropped when pasted; the rest goes in verbatim. No placeholders:
model-specific values reach the templates through the module's constants (PARAMS,
INPUTS, ...), which the writers print.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from codegen.source import NOT_EMBEDDED

HERE = Path(__file__).resolve().parent


@cache
def text(name: str) -> str:
    """Template `name`'s code as pasted: no docstring, no not-embedded lines."""
    source = (HERE / f"{name}.py").read_text(encoding="utf-8")
    body = ast.parse(source).body
    start = body[0].end_lineno if body and isinstance(body[0], ast.Expr) else 0
    kept = [line for line in source.splitlines()[start:] if not line.endswith(NOT_EMBEDDED)]
    while kept and not kept[0].strip():
        kept.pop(0)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def lines(name: str) -> list[str]:
    return text(name).splitlines()
