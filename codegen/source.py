"""A small builder for indented Python source."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

NOT_EMBEDDED = "# symgrad: not embedded"


def embedded(module) -> list[str]:
    """A support module's source as lines to paste into a generated module (minus the
    lines marked NOT_EMBEDDED, e.g. imports from symgrad's own packages)."""
    text = Path(module.__file__).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if not line.endswith(NOT_EMBEDDED)]


class Source:
    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self._lines.append("    " * self._depth + text if text else "")

    def lines(self, texts: Iterable[str]) -> None:
        for t in texts:
            self.line(t)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def mark(self) -> int:
        """The index of the next line (for `drop_if_unused`)."""
        return len(self._lines)

    def drop_if_unused(self, index: int, name: str) -> None:
        """Remove line `index` (which defines `name`) when no later line reads `name`."""
        import re
        used = re.compile(rf"\b{re.escape(name)}\b")
        if not any(used.search(line) for line in self._lines[index + 1:]):
            del self._lines[index]

    def text(self) -> str:
        lines = list(self._lines)
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines) + "\n"


def first_sentence(doc: str) -> str:
    """A docstring's first sentence on one line, without its period."""
    import re
    text = " ".join(doc.split())
    return re.split(r"(?<!\.)\.(?:\s|$)", text, maxsplit=1)[0]     # not an ellipsis


def support_block(*modules) -> list[str]:
    """The support modules (runtime checks, optimizers, ...) pasted in, each under a
    heading naming its source file."""
    lines: list[str] = []
    for module in modules:
        name = Path(module.__file__).name
        lines += [f"# ---- {first_sentence(module.__doc__)} (symgrad's codegen/{name}) ----",
                  *embedded(module)]
    return lines + ["# ---- end of support code ----", "", ""]
