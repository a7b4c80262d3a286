"""Benchmark: direct symbolic differentiation against reverse mode, side by side.

    python benchmarks/symbolic_vs_reverse.py --depth 1..8 --json out.json --plot out.png
    symgrad bench symbolic-vs-reverse --quick

Models: scalar tanh networks of growing depth (width 4), a width sweep at fixed
depth, and the lecture's hinge-loss network at growing sizes. Methods: naive
`sympy.diff` trees, the trees after `sympy.cse`, and reverse mode over the DAG.
Each (model, method) runs in its own process (symgrad/bench/worker.py) with a fresh
kernel cache, so Numba compiles are cold, and each step has a time budget: a
step that explodes is killed and reported as "over budget". Rows are printed to
stderr as they finish; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from symgrad.bench import models, report
from symgrad.bench.worker import STEPS as WORKER_STEPS
from symgrad.errors import OptionError, SymgradError
from symgrad.files import why_unwritable, write_atomic
from symgrad.measure import FAILED, OVER_BUDGET, Measure, follow

# The directory that holds the symgrad package, for workers in a checkout not installed.
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
STEP_LABELS = {"derive": "derivation", "trees": "sympy.diff trees",
               "compile": "Numba compile", "run": "kernel runs", "cse": "sympy.cse"}
SLOW_S = 3.0   # announce a step still running after this long
SKIPPED = "skipped"

NOTES = [
    "derive s: diff trees = derive(model, 'symbolic'): sympy.diff of every parameter, lowered "
    "into symgrad's IR; trees+cse = sympy.diff + sympy.cse (the trees made again, SymPy's "
    "cache cleared); reverse = reverse mode over the DAG.",
    "tree ops: sympy.count_ops of the sympy.diff trees, summed (for trees+cse: replacements + "
    "reduced trees). DAG ops: interned IR of loss + gradients (forward + backward).",
    "ratio: DAG ops / forward DAG ops, (forward + backward) / forward (the cheap-gradient "
    "ratio).",
    "=: trees+cse has no kernel of its own: symgrad's IR already shares identical subtrees, "
    "so the cse'd trees lower to the same interned DAG, source and kernel as diff trees.",
    "numba s: cold JIT compile (fresh kernel cache, one process per method): Kernel.warmup() "
    "plus the first loss_and_grad call at this batch size, which compiles the variant that "
    "size uses (parallel past 4096 samples) and includes one run.",
    "max rel diff: max over parameters of |g_naive - g_reverse| / |g_reverse| (|g_reverse| "
    "floored at 1e-8 max|g_reverse|), on the same samples and parameters.",
    "over budget: the step was stopped when it ran past the budget; skipped: a smaller model "
    "of the same sweep was already over budget for this method, so it was not started.",
    "The JSON has wall-clock and CPU seconds (*_cpu_s) of every step; CPU seconds are "
    "steadier on a loaded machine. Sizes are exact.",
]


# ------------------------------------------------------------ arguments


def int_range(text: str) -> list[int]:
    """"1..8" -> 1..8 inclusive; "1,3,5" -> those; "none" or "" -> no rows."""
    text = text.strip()
    if text in ("", "none"):
        return []
    values: list[int] = []
    try:
        for part in text.split(","):
            if ".." in part:
                lo, hi = (int(v) for v in part.split(".."))
                values += list(range(lo, hi + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a range like 1..8 or 1,2,4, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return values


def hinge_sizes(text: str) -> list[tuple[int, int]]:
    """"4x3,8x6" -> [(4 inputs, 3 hidden), (8, 6)]; "none" -> no rows."""
    text = text.strip()
    if text in ("", "none"):
        return []
    sizes = []
    for part in text.split(","):
        try:
            inputs, hidden = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected sizes like 4x3,8x6 (inputs x hidden), "
                                             f"got {part!r}")
        if inputs < 1 or hidden < 1:
            raise argparse.ArgumentTypeError(f"sizes must be positive, got {part!r}")
        sizes.append((inputs, hidden))
    return sizes


def positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--depth", type=int_range, default=None, metavar="RANGE",
                   help="depths L of the tanh networks (width 4), e.g. 1..8 (default 1..8). "
                        "Naming any of --depth, --width, --hinge runs those sweeps only")
    p.add_argument("--width", type=int_range, default=None, metavar="RANGE",
                   help="widths of the width sweep at --width-depth, e.g. 2..8 "
                        "(default 2..8; 'none' to skip)")
    p.add_argument("--width-depth", type=positive(int), default=3, metavar="L",
                   help="depth of the width sweep (default 3)")
    p.add_argument("--hinge", type=hinge_sizes, default=None, metavar="SIZES",
                   help="hinge-loss networks, inputs x hidden units, e.g. 4x3,8x6 "
                        "(default 4x3,8x6,16x12; 'none' to skip)")
    p.add_argument("--budget", type=positive(float), default=None, metavar="S",
                   help="seconds allowed per method and step before it is reported as "
                        "over budget (default 60)")
    p.add_argument("--samples", type=positive(int), default=None, metavar="N",
                   help="samples per kernel call (default 100000)")
    p.add_argument("--repeats", type=positive(int), default=None, metavar="R",
                   help="kernel runs; the median is reported (default 5)")
    p.add_argument("--threads", type=positive(int), default=1, metavar="T",
                   help="Numba threads in the kernels (default 1; BLAS/OpenMP always 1)")
    p.add_argument("--jobs", type=positive(int), default=None, metavar="J",
                   help="worker processes at a time: a model's two methods run side by side "
                        "(default 2 where there are 2 cores per thread, else 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and parameters")
    p.add_argument("--quick", action="store_true",
                   help="small sizes for CI: depth 1..2, width 2..3, hinge 4x3, 1000 samples, "
                        "3 repeats, budget 30 s (explicit options still win)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="times in the table: wall-clock (default) or the worker's CPU "
                        "seconds, steadier on a shared machine (the JSON has both)")
    p.add_argument("--json", metavar="OUT.json", help="write every measurement as JSON")
    p.add_argument("--plot", metavar="OUT.png",
                   help="plot sizes and times against depth (log scale; .png, .svg or .pdf)")


DEFAULTS = {"depth": list(range(1, 9)), "width": list(range(2, 9)),
            "hinge": [(4, 3), (8, 6), (16, 12)], "budget": 60.0,
            "samples": 100_000, "repeats": 5}
QUICK = {"depth": [1, 2], "width": [2, 3], "hinge": [(4, 3)], "budget": 30.0,
         "samples": 1000, "repeats": 3}


SWEEPS = ("depth", "width", "hinge")


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Fill options left unset from --quick's or the full run's defaults. A sweep named on
    the command line selects the sweeps: `--depth 1..3` runs the depth sweep alone."""
    base = QUICK if args.quick else DEFAULTS
    chosen = [key for key in SWEEPS if getattr(args, key) is not None]
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, [] if chosen and key in SWEEPS else value)
    if getattr(args, "jobs", None) is None:
        args.jobs = 2 if (os.cpu_count() or 1) >= 2 * args.threads else 1
    return args


def specs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    rows = [("depth", {"kind": "tanh", "depth": d, "width": 4}) for d in args.depth]
    rows += [("width", {"kind": "tanh", "depth": args.width_depth, "width": w})
             for w in args.width]
    rows += [("hinge", {"kind": "hinge", "inputs": i, "hidden": h}) for i, h in args.hinge]
    return rows


# ------------------------------------------------------------ running workers


class Worker:
    """One worker process: its JSON-line events, with time limits."""

    def __init__(self, job: dict, env: dict, log, name: str):
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "symgrad.bench.worker",
                                      json.dumps(job)],
                                     stdout=subprocess.PIPE, stderr=self.errors, env=env)
        self.buffer = b""
        self.log, self.name = log, name
        self.step, self.step_start, self.announced, self.allowance = None, 0.0, False, 0.0

    def receive(self, timeout: float | None):
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            wait = 1.0 if deadline is None else min(deadline - time.monotonic(), 1.0)
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], wait)
            self._announce_slow_step()
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise EOFError(self._exit_message())
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        event = json.loads(line)
        return event["kind"], event["step"], event["value"]

    def on_event(self, event) -> None:
        kind, step, value = event
        if kind == "start":
            self.step, self.step_start, self.announced = step, time.monotonic(), False
            self.allowance = value

    def _announce_slow_step(self) -> None:
        if self.step and not self.announced and time.monotonic() - self.step_start > SLOW_S:
            self.announced = True
            self.log(f"  ... {self.name}: {STEP_LABELS.get(self.step, self.step)} is taking "
                     f"a while (allowed {self.allowance:.0f} s)")

    def _exit_message(self) -> str:
        code = self.proc.wait(timeout=30)
        self.errors.seek(0)
        tail = self.errors.read().decode(errors="replace").strip().splitlines()[-3:]
        return f"worker exited with code {code}" + (f": {' | '.join(tail)}" if tail else "")

    def kill(self) -> None:
        self.proc.kill()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.errors.close()


def run_worker(job: dict, env: dict, log, name: str) -> dict:
    worker = Worker(job, env, log, name)
    try:
        return follow(worker.receive, worker.kill, WORKER_STEPS[job["method"]],
                      on_event=worker.on_event, labels=STEP_LABELS)
    finally:
        worker.close()


# ------------------------------------------------------------ one row


def _method(results: dict, steps: tuple[str, ...]) -> dict:
    """Merge the steps' measurements; the first step that stopped sets the status."""
    out: dict = {"status": "ok"}
    for step in steps:
        value = results[step]
        if isinstance(value, Measure):
            out.update(status=value.status, stopped_at=step, detail=value.detail)
            break
        out.update(value)
    return out


def max_rel_diff(grads, reference) -> float:
    scale = max((abs(r) for r in reference), default=0.0)
    floor = max(1e-8 * scale, 1e-300)
    return max((abs(g - r) / max(abs(r), floor) for g, r in zip(grads, reference)),
               default=0.0)


def measure_row(sweep: str, spec: dict, args: argparse.Namespace, env: dict, log,
                skip_symbolic: str | None = None) -> dict:
    """Both workers of one model (the symbolic one skipped, with `skip_symbolic` as the
    reason, when a smaller model of the same sweep already ran over budget)."""
    job = {"spec": spec, "budget": args.budget, "samples": args.samples,
           "repeats": args.repeats, "seed": args.seed}
    name = models.label(spec)
    # Each worker has its own kernel cache, so a method's compile is cold either way.
    reverse_job = ({**job, "method": "reverse"}, _own_cache(env, "reverse"), log,
                   f"{name} reverse")
    if skip_symbolic:
        skipped = Measure(status=SKIPPED, detail=skip_symbolic)
        sym = {step: skipped for step in WORKER_STEPS["symbolic"]}
        rev = run_worker(*reverse_job)
    else:
        symbolic_job = ({**job, "method": "symbolic"}, _own_cache(env, "symbolic"), log,
                        f"{name} diff trees")
        if getattr(args, "jobs", 1) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(2) as pool:
                rev, sym = pool.map(lambda j: run_worker(*j), (reverse_job, symbolic_job))
        else:
            rev, sym = run_worker(*reverse_job), run_worker(*symbolic_job)
    reverse = _method(rev, WORKER_STEPS["reverse"])
    naive = _method(sym, ("derive", "compile", "run", "trees"))
    cse = _method(sym, ("derive", "trees", "cse"))   # a stop in diff stops cse as well
    if cse["status"] == "ok":
        cse = {"status": "ok", "derive_s": cse["seconds"], "derive_cpu_s": cse["cpu_s"],
               "diff_s": cse["diff_s"], "cse_s": cse["cse_s"], "tree_ops": cse["cse_ops"],
               "kernel": "same as naive (symgrad's IR already shares identical subtrees)"}
    elif cse["stopped_at"] == "cse":
        cse = {k: cse[k] for k in ("status", "stopped_at", "detail")}
    for m in (reverse, naive):
        m["derive_s"], m["derive_cpu_s"] = m.pop("seconds", None), m.pop("cpu_s", None)
    forward = reverse.get("forward_ops") or naive.get("forward_ops")
    for m in (reverse, naive):
        if m.get("dag_ops") and forward:
            m["ratio"] = m["dag_ops"] / forward
    if "grads" in naive and "grads" in reverse:
        naive["max_rel_diff"] = max_rel_diff(naive["grads"], reverse["grads"])
    params = reverse.get("params") or naive.get("params")
    return {"sweep": sweep, "model": name, "spec": spec, "params": params,
            "forward_ops": forward, "methods": {"naive": naive, "cse": cse, "reverse": reverse}}


def _own_cache(env: dict, method: str) -> dict:
    cache = os.path.join(env["SYMGRAD_CACHE_DIR"], method)
    return {**env, "SYMGRAD_CACHE_DIR": cache, "NUMBA_CACHE_DIR": os.path.join(cache, "numba")}


def _row_summary(row: dict) -> str:
    parts = []
    for method in report.METHODS:
        m = row["methods"][method]
        label = report.METHOD_LABELS[method]
        if m["status"] == SKIPPED:
            parts.append(f"{label} skipped")
        elif m["status"] != "ok":
            parts.append(f"{label} {m['status']} ({m.get('detail', '')})")
        else:
            parts.append(f"{label} {m['derive_s']:.3g} s")
    return "; ".join(parts)


# ------------------------------------------------------------ the run


def child_env(args: argparse.Namespace, cache: str) -> dict:
    env = dict(os.environ)
    env.update(SYMGRAD_CACHE_DIR=cache, NUMBA_CACHE_DIR=os.path.join(cache, "numba"),
               NUMBA_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
               PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT,
                                                        os.environ.get("PYTHONPATH")])))
    return env


def versions() -> dict:
    import numba
    import numpy
    import sympy
    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "sympy": sympy.__version__, "numba": numba.__version__}


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def run(args: argparse.Namespace, log=None) -> dict:
    """Measure every row; return {"meta": ..., "rows": [...]}."""
    args = settle(args)
    log = log or (lambda text: print(text, file=sys.stderr, flush=True))
    rows_to_run = specs(args)
    cache = tempfile.mkdtemp(prefix="symgrad-bench-cache-")
    started, load_start = time.monotonic(), _load_average()
    rows = []
    measured: dict[str, dict] = {}   # model label -> its row, for a model in two sweeps
    try:
        over: dict[str, str] = {}   # sweep -> the model whose sympy.diff ran over budget
        for k, (sweep, spec) in enumerate(rows_to_run, 1):
            t0 = time.monotonic()
            if models.label(spec) in measured:     # tanh L=3 w=4: in the depth and width sweeps
                rows.append({**measured[models.label(spec)], "sweep": sweep})
                log(f"[{k}/{len(rows_to_run)}] {models.label(spec)}: measured above")
                continue
            env = child_env(args, os.path.join(cache, f"row{k}"))
            skip = None if sweep not in over else \
                f"skipped: the smaller {over[sweep]} was already over budget"
            row = measure_row(sweep, spec, args, env, log, skip_symbolic=skip)
            naive = row["methods"]["naive"]
            if naive["status"] == OVER_BUDGET:
                step = STEP_LABELS.get(naive["stopped_at"], naive["stopped_at"])
                over.setdefault(sweep, f"{row['model']} ({step})")
            rows.append(row)
            measured[row["model"]] = row
            log(f"[{k}/{len(rows_to_run)}] {row['model']}: {_row_summary(row)} "
                f"({time.monotonic() - t0:.1f} s)")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    meta = {"benchmark": "symbolic-vs-reverse", "samples": args.samples,
            "repeats": args.repeats, "threads": args.threads, "jobs": args.jobs,
            "budget_s": args.budget,
            "seed": args.seed, "machine": platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform(), **versions(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_s": time.monotonic() - started, "load_average_start": load_start,
            "load_average_end": _load_average(), "notes": NOTES}
    return {"meta": meta, "rows": rows}


def check_output(path: str | None, suffixes: tuple[str, ...]) -> None:
    """Fail before a long run, not after it, when an output cannot be written."""
    if path is None:
        return
    target = Path(path)
    if suffixes and target.suffix.lower() not in suffixes:
        raise OptionError(f"cannot write {path!r}: use one of {', '.join(suffixes)}")
    if (why := why_unwritable(target)) is not None:    # missing folders are made
        raise OptionError(f"cannot write {path!r}: {why}")


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main_args(args: argparse.Namespace) -> int:
    check_output(args.json, ())
    check_output(args.plot, (".png", ".svg", ".pdf"))
    try:   # on SIGTERM, unwind so the running worker is killed too
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    except ValueError:   # not the main thread
        previous = None
    try:
        result = run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(report.table(result, clock=args.clock))
    if args.json:
        write_atomic(args.json, json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot:
        report.plot(result, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    failed = [r["model"] for r in result["rows"]
              if any(m["status"] == FAILED for m in r["methods"].values())]
    if failed:
        print(f"failed rows: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="symbolic_vs_reverse.py",
        description="Direct symbolic differentiation (sympy.diff trees, + sympy.cse) against "
                    "reverse mode: sizes, derivation and compile times, kernel speed. The "
                    "full default run takes about 15 minutes on 2 cores; --depth 1..3 about 30 s.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return main_args(args)
    except SymgradError as exc:
        print(f"symbolic_vs_reverse.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
