"""Benchmark driver: this project vs pickle vs the reference cloudpickle.

Run it with the interpreter in which the project is installed (pyperf too):

    python benches/run.py --fast

For each workload of ``benches/workloads.py`` and each implementation it
1. probes the implementation on the workload in a fresh process (does
   ``dumps`` work, does ``pickle.loads`` give the object back, payload size,
   same bytes as ``pickle.dumps``?), then
2. times ``dumps(obj, pickle.HIGHEST_PROTOCOL)`` with pyperf.

``project`` and ``pickle`` run in this interpreter. ``reference`` (cloudpickle
3.1.3, which has the same import name as the project) runs in its own virtual
environment, created on first use with the same Python version and reused
afterwards.

Results go to ``bench-results/`` (or ``--out-dir``): one pyperf JSON file per
implementation (compare them with ``python -m pyperf compare_to``) and
``results.md``, the Markdown table also printed at the end, and
``chart-X.Y.png`` (with matplotlib, if installed): for each workload, the
project's time over pickle's and its speedup over the reference, as bars.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import impls
import workloads

try:
    import pyperf
except ImportError:
    pyperf = None

PYVER = "{}.{}".format(*sys.version_info[:2])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Compare cloudpickle.dumps (this project), pickle.dumps and "
        f"the reference cloudpickle {impls.REFERENCE_VERSION} with pyperf."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true", help="pyperf --fast: fewer processes/values")
    mode.add_argument("--rigorous", action="store_true", help="pyperf --rigorous: more processes")
    parser.add_argument(
        "--workloads",
        "-w",
        default="all",
        help="comma-separated workload and group names, or 'all' (default). "
        f"Workloads: {', '.join(workloads.WORKLOADS)}",
    )
    parser.add_argument(
        "--impls",
        default=",".join(impls.IMPLS),
        help=f"comma-separated subset of {','.join(impls.IMPLS)} (default: all three)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=REPO_ROOT / "bench-results",
        help="where the JSON results and results.md go (default: bench-results/)",
    )
    parser.add_argument(
        "--ref-venv",
        type=Path,
        default=None,
        help="virtual environment of the reference cloudpickle "
        f"(default: OUT_DIR/refvenv-{PYVER}); created if missing or stale",
    )
    parser.add_argument(
        "--recreate-ref-venv", action="store_true", help="delete and recreate the reference venv"
    )
    parser.add_argument(
        "--stat",
        choices=("mean", "median"),
        default="mean",
        help="statistic shown and used for the ratios (default: mean)",
    )
    parser.add_argument(
        "--pyperf-args",
        default="",
        help='extra options for every pyperf run, e.g. "--processes 4 --affinity 1"',
    )
    parser.add_argument(
        "--chart",
        type=Path,
        default=None,
        help=f"where the PNG chart goes (default: OUT_DIR/chart-{PYVER}.png); needs matplotlib",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw the chart")
    args = parser.parse_args(argv)
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for impl in args.impls:
        if impl not in impls.IMPLS:
            parser.error(f"unknown implementation {impl!r}")
    try:
        args.workload_names = workloads.select(args.workloads)
    except ValueError as exc:
        parser.error(str(exc))
    if args.ref_venv is None:
        args.ref_venv = args.out_dir / f"refvenv-{PYVER}"
    if args.chart is None:
        args.chart = args.out_dir / f"chart-{PYVER}.png"
    return args


# ---------------------------------------------------------------------------
# Interpreters
# ---------------------------------------------------------------------------


def clean_env():
    """Environment for the child interpreters: nothing that could change
    which ``cloudpickle`` they import."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONSAFEPATH"):
        env.pop(name, None)
    return env


def venv_python(venv):
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def describe_interpreter(python):
    code = (
        "import json, platform\n"
        "info = {'python': platform.python_version(), "
        "'implementation': platform.python_implementation()}\n"
        "for mod in ('cloudpickle', 'pyperf'):\n"
        "    try:\n"
        "        info[mod] = __import__(mod).__version__\n"
        "    except Exception:\n"
        "        info[mod] = None\n"
        "print(json.dumps(info))\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=str(BENCH_DIR.parent),
    )
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def ensure_ref_venv(venv, recreate):
    """Create (or reuse) the reference venv; return its python."""
    python = venv_python(venv)
    wanted = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cloudpickle": impls.REFERENCE_VERSION,
        "pyperf": pyperf.__version__,
    }
    if python.exists() and not recreate:
        if describe_interpreter(python) == wanted:
            print(f"reference venv: reusing {venv}")
            return python
        print(f"reference venv: {venv} is stale, recreating it")
    if venv.exists():
        if not (venv / "pyvenv.cfg").exists():
            sys.exit(f"error: {venv} exists and is not a virtual environment; not deleting it")
        shutil.rmtree(venv)
    print(f"reference venv: creating {venv} (cloudpickle=={impls.REFERENCE_VERSION})")
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"cloudpickle=={impls.REFERENCE_VERSION}",
            f"pyperf=={pyperf.__version__}",
        ],
        check=True,
        env=clean_env(),
    )
    got = describe_interpreter(python)
    if got != wanted:
        sys.exit(f"error: reference venv {venv} has {got}, expected {wanted}")
    return python


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def probe(python, impl, name):
    proc = subprocess.run(
        [str(python), str(BENCH_DIR / "probe.py"), "--impl", impl, "--workload", name],
        check=False,
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"status": "crash", "error": f"probe exited with {proc.returncode}: {tail}"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"status": "crash", "error": f"unreadable probe output: {proc.stdout[-200:]!r}"}


def run_pyperf(python, impl, name, json_path, args):
    if json_path.exists():
        json_path.unlink()
    cmd = [
        str(python),
        str(BENCH_DIR / "bench_dumps.py"),
        "--impl",
        impl,
        "--workload",
        name,
        "--quiet",
        "-o",
        str(json_path),
    ]
    if args.fast:
        cmd.append("--fast")
    if args.rigorous:
        cmd.append("--rigorous")
    cmd.extend(shlex.split(args.pyperf_args))
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=clean_env())
    if proc.returncode != 0 or not json_path.exists():
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        return None, f"pyperf exited with {proc.returncode}: {lines[-1]}"
    return pyperf.Benchmark.load(str(json_path)), None


# ---------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------


def fmt_time(seconds):
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def stat(bench, which):
    return bench.median() if which == "median" else bench.mean()


def fmt_cell(bench, which):
    value = stat(bench, which)
    try:
        spread = bench.median_abs_dev() if which == "median" else bench.stdev()
    except ValueError:  # fewer than 2 values
        return fmt_time(value)
    return f"{fmt_time(value)} ± {spread / value * 100:.0f}%"


def status_cell(result):
    status = result.get("status")
    if status == "n/a":
        return "n/a"
    if status == "skipped":
        return "-"
    return status or "?"


def build_report(args, results, versions, elapsed):
    names = args.workload_names
    lines = []
    mode = "--fast" if args.fast else "--rigorous" if args.rigorous else "default"
    lines.append(
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.machine()}, {os.cpu_count()} CPUs; pyperf {pyperf.__version__} ({mode}); "
        f"protocol {impls.PROTOCOL}; {datetime.date.today().isoformat()}; "
        f"run took {elapsed / 60:.1f} min."
    )
    lines.append(
        "Implementations: "
        + "; ".join(f"{impl} = {versions.get(impl, '-')}" for impl in impls.IMPLS)
        + "."
    )
    if args.stat == "median":
        lines.append(
            "Times are pyperf medians (± relative median absolute deviation) of one dumps call."
        )
    else:
        lines.append("Times are pyperf means (± relative standard deviation) of one dumps call.")
    lines.append("")
    lines.append(
        "| workload | pickle.dumps | project | reference | project / pickle | target "
        "| reference / pickle | speedup vs reference |"
    )
    lines.append("|---|---:|---:|---:|---:|---|---:|---:|")
    errors = []
    for name in names:
        w = workloads.WORKLOADS[name]
        row = {impl: results.get((impl, name), {"status": "skipped"}) for impl in impls.IMPLS}
        cells = []
        means = {}
        for impl in impls.IMPLS:
            r = row[impl]
            bench = r.get("bench")
            if bench is not None:
                means[impl] = stat(bench, args.stat)
                cells.append(fmt_cell(bench, args.stat))
            else:
                cells.append(status_cell(r))
                if r.get("error"):
                    errors.append(f"- `{name}` / {impl}: {r['error']}")
        pp = ratio(means, "project", "pickle")
        rp = ratio(means, "reference", "pickle")
        if w.target is None:
            target = ""
        elif pp is None:
            target = f"≤ {w.target}"
        else:
            target = f"≤ {w.target} {'met' if pp <= w.target else '**missed**'}"
        speedup = ratio(means, "reference", "project")
        lines.append(
            f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} "
            f"| {fmt_ratio(pp)} | {target} | {fmt_ratio(rp)} "
            f"| {'' if speedup is None else f'{speedup:.2f}x'} |"
        )
    lines.append("")
    lines.append(
        "| workload | what | payload pickle / project / reference (bytes) "
        "| project bytes == pickle bytes |"
    )
    lines.append("|---|---|---|---|")
    for name in names:
        w = workloads.WORKLOADS[name]
        sizes = []
        for impl in impls.IMPLS:
            r = results.get((impl, name), {})
            sizes.append(str(r["size"]) if "size" in r else status_cell(r) if r else "-")
        same = results.get(("project", name), {}).get("same_bytes_as_pickle")
        same_txt = "n/a" if not w.pickle_ok else {True: "yes", False: "**no**", None: "-"}[same]
        lines.append(f"| {name} | {w.doc} | {' / '.join(sizes)} | {same_txt} |")
    if errors:
        lines.append("")
        lines.append("Not measured:")
        lines.extend(errors)
    return "\n".join(lines) + "\n"


def chart_rows(args, results):
    """(workload, project / pickle or None, reference / project or None,
    target or None) for each workload measured."""
    rows = []
    for name in args.workload_names:
        means = {}
        for impl in impls.IMPLS:
            bench = results.get((impl, name), {}).get("bench")
            if bench is not None:
                means[impl] = stat(bench, args.stat)
        pp = ratio(means, "project", "pickle")
        speedup = ratio(means, "reference", "project")
        if pp is not None or speedup is not None:
            rows.append((name, pp, speedup, workloads.WORKLOADS[name].target))
    return rows


def write_chart(args, results):
    """Two bar charts side by side, one bar per workload: the project's time
    over pickle's (lower is better, targets marked) and its speedup over the
    reference (higher is better, log scale). Returns the path, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no chart: matplotlib is not installed)")
        return None
    rows = chart_rows(args, results)
    if not rows:
        return None
    names = [r[0] for r in rows]
    ys = list(range(len(rows)))[::-1]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, 0.42 * len(rows) + 1.6), sharey=True, constrained_layout=True
    )
    for y, (_, pp, _, target) in zip(ys, rows):
        if pp is None:
            left.text(0.02, y, "n/a (pickle cannot)", va="center", fontsize=8, color="gray")
            continue
        met = target is None or pp <= target
        left.barh(y, pp, color="tab:blue" if met else "tab:red")
        left.text(pp, y, f" {pp:.2f}", va="center", fontsize=8)
        if target is not None:
            left.plot([target, target], [y - 0.4, y + 0.4], color="black", lw=1.5)
    left.axvline(1.0, color="gray", ls="--", lw=1)
    left.set_xlabel("project time / pickle time (lower is better; | = target)")
    left.set_title("vs pickle.dumps")
    for y, (_, _, speedup, _) in zip(ys, rows):
        if speedup is None:
            continue
        right.barh(y, speedup, color="tab:green")
        right.text(speedup, y, f" {speedup:.1f}x", va="center", fontsize=8)
    right.set_xscale("log")
    right.axvline(1.0, color="gray", ls="--", lw=1)
    right.set_xlabel(f"speedup over cloudpickle {impls.REFERENCE_VERSION} (log scale)")
    right.set_title("vs the reference")
    left.set_yticks(ys)
    left.set_yticklabels(names, fontsize=9)
    fig.suptitle(
        f"cloudpickle (Rust engine), CPython {platform.python_version()}, "
        f"{args.stat} of pyperf runs, protocol {impls.PROTOCOL}",
        fontsize=10,
    )
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.chart, dpi=100)
    plt.close(fig)
    return args.chart


def ratio(means, a, b):
    if a in means and b in means and means[b] > 0:
        return means[a] / means[b]
    return None


def fmt_ratio(value):
    return "n/a" if value is None else f"{value:.2f}"


# ---------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    if pyperf is None:
        sys.exit(
            "error: pyperf is not installed in this interpreter "
            f"({sys.executable}); run: pip install pyperf  (or pip install '.[bench]')"
        )
    start = time.perf_counter()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    json_dir = args.out_dir / "json"
    json_dir.mkdir(exist_ok=True)

    pythons = {"pickle": Path(sys.executable), "project": Path(sys.executable)}
    if "reference" in args.impls:
        pythons["reference"] = ensure_ref_venv(args.ref_venv.resolve(), args.recreate_ref_venv)

    results = {}
    versions = {"pickle": f"pickle (Python {platform.python_version()})"}
    todo = [
        (name, impl) for name in args.workload_names for impl in impls.IMPLS if impl in args.impls
    ]
    setup_failed = set()
    for step, (name, impl) in enumerate(todo, 1):
        prefix = f"[{step:2d}/{len(todo)}] {impl:<9} {name:<22}"
        if impl in setup_failed:
            results[(impl, name)] = {"status": "skipped"}
            continue
        r = probe(pythons[impl], impl, name)
        info = r.get("info") or {}
        if impl != "pickle" and "cloudpickle_version" in info:
            kind = "this project" if impl == "project" else "pure Python, own venv"
            versions[impl] = f"cloudpickle {info['cloudpickle_version']} ({kind})"
        if r.get("status") == "setup-error":
            print(f"{prefix} cannot run: {r.get('error')}")
            setup_failed.add(impl)
            results[(impl, name)] = r
            continue
        if r.get("status") != "ok":
            print(f"{prefix} {r.get('status')}" + (f": {r['error']}" if r.get("error") else ""))
            results[(impl, name)] = r
            continue
        json_path = json_dir / f"{impl}-{name}.json"
        t0 = time.perf_counter()
        bench, error = run_pyperf(pythons[impl], impl, name, json_path, args)
        if bench is None:
            r.update(status="bench-error", error=error)
            print(f"{prefix} {error}")
        else:
            r["bench"] = bench
            print(f"{prefix} {fmt_cell(bench, args.stat):>16}   ({time.perf_counter() - t0:.0f} s)")
        results[(impl, name)] = r

    # One pyperf suite per implementation, for `python -m pyperf compare_to`.
    for impl in args.impls:
        benches = [
            results[(impl, n)]["bench"]
            for n in args.workload_names
            if results.get((impl, n), {}).get("bench") is not None
        ]
        path = args.out_dir / f"{impl}.json"
        if path.exists():
            path.unlink()
        if benches:
            pyperf.BenchmarkSuite(benches).dump(str(path))

    report = build_report(args, results, versions, time.perf_counter() - start)
    (args.out_dir / "results.md").write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"(written to {args.out_dir / 'results.md'})")
    if not args.no_chart:
        chart = write_chart(args, results)
        if chart is not None:
            print(f"(chart: {chart})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
