"""Accuracy of codegen/special_math.py's polygamma (compiled) against mpmath at 30 digits.

    python benchmarks/special_accuracy.py [--json out.json] [--points 2000]

For each order n = 0..4 and each range of x (moderate positive, small positive, large
positive, negative non-integers), the largest error in units of the result
(|got - want| / max(|want|, 1)): relative for large results, absolute near digamma's root
and other zeros, where a relative error means nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codegen.special_math import polygamma  # noqa: E402
from symgrad.special import polygamma_scalar  # noqa: E402

RANGES = {
    "0.5..30": lambda rng, k: rng.uniform(0.5, 30.0, k),
    "1e-8..0.5": lambda rng, k: 10 ** rng.uniform(-8, math.log10(0.5), k),
    "30..1e8": lambda rng, k: 10 ** rng.uniform(math.log10(30), 8, k),
    "-30..0": lambda rng, k: rng.uniform(-30.0, 0.0, k),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'n':>2} {'x range':>10} {'max error':>10} {'at x':>22}")
    for n in range(5):
        for name, draw in RANGES.items():
            worst, where = 0.0, None
            for x in draw(rng, args.points):
                want = polygamma_scalar(n, float(x))
                if not math.isfinite(want):
                    continue
                err = abs(polygamma(n, float(x)) - want) / max(abs(want), 1.0)
                if err > worst:
                    worst, where = err, float(x)
            rows.append({"n": n, "range": name, "max_error": worst, "at": where})
            print(f"{n:>2} {name:>10} {worst:>10.2e} {where!r:>22}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
