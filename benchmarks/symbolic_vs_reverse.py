"""Benchmark: direct symbolic differentiation against reverse mode, side by side.

    python benchmarks/symbolic_vs_reverse.py --depth 1..8 --json out.json --plot out.png

The same as `symgrad bench symbolic-vs-reverse`: the code lives in the package
(symgrad/bench/symbolic_vs_reverse.py), so the command works wherever symgrad is installed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from symgrad.bench.symbolic_vs_reverse import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
