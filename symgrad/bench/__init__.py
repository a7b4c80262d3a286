"""The symbolic-vs-reverse benchmark, part of the package so that `symgrad bench` runs
anywhere symgrad is installed (benchmarks/symbolic_vs_reverse.py is its script)."""
