"""The symbolic-vs-reverse benchmark's table and plot, from its JSON-ready rows."""

from __future__ import annotations

import textwrap

METHODS = ("naive", "cse", "reverse")
METHOD_LABELS = {"naive": "diff trees", "cse": "trees+cse", "reverse": "reverse"}
SAME = "="   # trees+cse: the same interned DAG and kernel as diff trees

COLUMNS = [  # (header, width)
    ("model", 15), ("params", 6), ("method", 10), ("derive s", 11), ("tree ops", 11),
    ("DAG ops", 8), ("ratio", 6), ("lines", 6), ("numba s", 11), ("kernel ms", 11),
    ("max rel diff", 12),
]


def _fmt_s(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if value < 0.01 else f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _fmt_int(value) -> str:
    return "-" if value is None else f"{value:,}"


# the table cells (after model, params, method) each step fills, and the steps'
# order per method: when a step stopped, its cells and those of later steps are "-"
CELLS = {"derive": [0, 2, 3, 4], "compile": [5], "run": [6, 7], "trees": [1], "cse": [0, 1]}
ORDER = {"naive": ["derive", "compile", "run", "trees"], "reverse": ["derive", "compile", "run"],
         "cse": ["derive", "trees", "cse"]}
CLOCKS = {"wall": ("derive_s", "compile_s", "kernel_s"),
          "cpu": ("derive_cpu_s", "compile_cpu_s", "kernel_cpu_s")}


def _cells(row: dict, method: str, clock: str = "wall") -> list[str]:
    m = row["methods"][method]
    derive, compile_, kernel = CLOCKS[clock]
    cells = [_fmt_s(m.get(derive)), _fmt_int(m.get("tree_ops")), _fmt_int(m.get("dag_ops")),
             "-" if m.get("ratio") is None else f"{m['ratio']:.2f}",
             _fmt_int(m.get("source_lines")), _fmt_s(m.get(compile_)),
             "-" if m.get(kernel) is None else f"{1000 * m[kernel]:.3g}",
             "ref" if method == "reverse" and m.get("kernel_s") is not None else
             "-" if m.get("max_rel_diff") is None else f"{m['max_rel_diff']:.1e}"]
    if method == "cse":
        cells[2:] = [SAME if m["status"] == "ok" else "-"] * 6
    if m["status"] != "ok":
        order = ORDER[method]
        stopped = m.get("stopped_at") if m.get("stopped_at") in order else order[0]
        for step in order[order.index(stopped):]:
            for c in CELLS[step]:
                cells[c] = "-"
        cells[CELLS[stopped][0]] = m["status"]
    return cells


def table(result: dict, clock: str = "wall") -> str:
    """The whole benchmark as a fixed-width text table, with its notes; times are
    wall-clock or (clock="cpu") the worker process's CPU seconds."""
    meta = result["meta"]
    lines = [f"symbolic vs reverse: {meta['samples']:,} samples, kernel time = median of "
             f"{meta['repeats']} runs of loss_and_grad, {meta['threads']} thread(s), budget "
             f"{meta['budget_s']:g} s per method and step; times: "
             + ("wall-clock" if clock == "wall" else "CPU seconds of the worker process")]
    header = " ".join(f"{h:<{w}}" if i < 3 else f"{h:>{w}}" for i, (h, w) in enumerate(COLUMNS))
    lines += [header, "-" * len(header)]
    sweep = None
    for row in result["rows"]:
        if sweep is not None and row["sweep"] != sweep:
            lines.append("")
        sweep = row["sweep"]
        for k, method in enumerate(METHODS):
            first = [row["model"] if k == 0 else "", str(row.get("params") or "") if k == 0
                     else "", METHOD_LABELS[method]]
            cells = first + _cells(row, method, clock)
            lines.append(" ".join(f"{c:<{w}}" if i < 3 else f"{c:>{w}}"
                                  for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS))).rstrip())
    lines.append("")
    if meta.get("load_average_start"):
        lines.append(f"machine: {meta['cpus']} CPUs, shared; 1-minute load average "
                     f"{meta['load_average_start'][0]:g} at the start, "
                     f"{meta['load_average_end'][0]:g} at the end")
    for note in meta["notes"]:
        lines += textwrap.wrap(note, width=100, initial_indent="note: ", subsequent_indent="  ")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Log-scale sizes and times against depth L (the depth sweep), saved to path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["sweep"] == "depth"]
    depth = [r["spec"]["depth"] for r in rows]
    fig, (sizes_ax, times_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = [
        (sizes_ax, "naive", "tree_ops", "diff trees: tree ops", "o-"),
        (sizes_ax, "cse", "tree_ops", "trees + cse: ops", "s-"),
        (sizes_ax, "naive", "dag_ops", "diff trees: interned DAG ops", "^--"),
        (sizes_ax, "reverse", "dag_ops", "reverse: DAG ops (fwd + bwd)", "D-"),
        (times_ax, "naive", "derive_s", "diff trees: derivation", "o-"),
        (times_ax, "cse", "derive_s", "trees + cse: derivation", "s-"),
        (times_ax, "reverse", "derive_s", "reverse: derivation", "D-"),
        (times_ax, "naive", "compile_s", "diff trees: Numba compile", "^--"),
        (times_ax, "reverse", "compile_s", "reverse: Numba compile", "v--"),
    ]
    for ax, method, key, label, style in series:
        points = [(d, r["methods"][method].get(key)) for d, r in zip(depth, rows)]
        points = [(d, v) for d, v in points if v]
        if points:
            ax.plot(*zip(*points), style, label=label)
    budget = result["meta"]["budget_s"]
    times_ax.axhline(budget, color="grey", linestyle=":", label=f"budget ({budget:g} s)")
    for ax, ylabel in ((sizes_ax, "operations"), (times_ax, "seconds (wall-clock)")):
        ax.set_yscale("log")
        ax.set_xlabel("depth L (tanh layers of width 4)")
        ax.set_xticks(depth)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    sizes_ax.set_title("gradient size")
    times_ax.set_title("time (a missing point: over budget or skipped)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
