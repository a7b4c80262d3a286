"""The package boundary: codegen reads symgrad's IR, schedules and options, nothing else
(symgrad.compile calls codegen, never the reverse), so the generators can be read,
tested and replaced without the front end, the differentiation or the CLI."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = {"symgrad.ir", "symgrad.program", "symgrad.tensor_program", "symgrad.derivation",
           "symgrad.second_order",
           "symgrad.errors", "symgrad.options"}


def symgrad_imports(path: Path) -> set[str]:
    """Every symgrad module that `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] if node.module != "symgrad" else \
                [f"symgrad.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name == "symgrad" or name.startswith("symgrad.")}
    return found


def test_codegen_imports_only_the_ir_schedules_and_options():
    offending = {}
    for path in sorted((ROOT / "codegen").glob("*.py")):
        extra = symgrad_imports(path) - ALLOWED
        if extra:
            offending[path.name] = sorted(extra)
    assert not offending, f"codegen imports symgrad modules outside {sorted(ALLOWED)}: {offending}"


def test_the_check_sees_imports(tmp_path):
    # The walk finds both forms, so the test above can fail.
    probe = tmp_path / "boundary_probe.py"
    probe.write_text("import symgrad.kernel\ndef f():\n    from symgrad import cli\n")
    assert symgrad_imports(probe) == {"symgrad.kernel", "symgrad.cli"}
