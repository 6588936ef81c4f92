"""Ship code written in ``__main__`` to other processes.

    pip install . && python examples/demo.py

Defines a lambda, a closure over local data, a recursive function and a
class right here (in ``__main__``, which worker processes cannot import),
sends them to a pool of worker processes started with the spawn method (the
workers import nothing of this script), runs them there and prints the
results, with the size of each payload and the time to pickle it, next to
the standard ``pickle`` (which refuses) and, when ``--reference-python PATH``
names an interpreter that has the pure-Python cloudpickle installed, next to
it. ``--dask`` runs the same work on a Dask ``LocalCluster`` (needs
``pip install "dask[distributed]"``).
"""

import argparse
import functools
import multiprocessing
import pickle
import subprocess
import sys
import timeit
from concurrent.futures import ProcessPoolExecutor

import cloudpickle
from shipping import Shipped  # examples/shipping.py: the wrapper for the pools


class Inventory:
    """A class defined in __main__: it travels by value."""

    def __init__(self, items):
        self.items = dict(items)

    def total(self, prices):
        return sum(prices[name] * count for name, count in self.items.items())


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def make_work():
    prices = {"apple": 0.5, "pear": 0.75, "plum": 0.2}  # captured by the closure

    def basket_total(inventory):
        return round(inventory.total(prices), 2)

    return {
        "square (lambda)": (lambda x: x * x, 12),
        "basket_total (closure)": (basket_total, Inventory({"apple": 4, "plum": 10})),
        "fib (recursive)": (fib, 20),
        "Inventory (class)": (lambda items: Inventory(items).total(prices), [("pear", 3)]),
    }


def best_time(func, number=200):
    """Best time of one call, in microseconds."""
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


REFERENCE_TIMER = r"""
import pickle, sys, timeit
import cloudpickle
payloads = pickle.loads(sys.stdin.buffer.read())
for name, payload in payloads:
    obj = pickle.loads(payload)
    t = min(timeit.repeat(lambda: cloudpickle.dumps(obj), number=200, repeat=5)) / 200 * 1e6
    print(f"{name}\t{t:.2f}\t{len(cloudpickle.dumps(obj))}")
"""


def reference_times(python, work):
    """{name: (microseconds, bytes)} measured by the reference cloudpickle in
    another interpreter, on the objects loaded there from our payloads."""
    payloads = [(name, cloudpickle.dumps(obj)) for name, (obj, _) in work.items()]
    out = subprocess.run(
        [python, "-c", REFERENCE_TIMER],
        input=pickle.dumps(payloads),
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode()
    times = {}
    for line in out.splitlines():
        name, micros, size = line.split("\t")
        times[name] = (float(micros), int(size))
    return times


def describe_payloads(work, reference):
    print(f"{'object':<24} {'bytes':>6} {'dumps':>10}   pickle.dumps")
    for name, (obj, _) in work.items():
        payload = cloudpickle.dumps(obj)
        ours = best_time(lambda obj=obj: cloudpickle.dumps(obj))
        try:
            pickle.loads(pickle.dumps(obj))
            plain = "works here (by reference): not in a spawned worker"
        except Exception as exc:
            plain = f"cannot ({type(exc).__name__})"
        line = f"{name:<24} {len(payload):>6} {ours:>8.1f}us   pickle.dumps: {plain}"
        if reference is not None and name in reference:
            ref_time, ref_size = reference[name]
            line += f"; reference {ref_time:.1f}us ({ref_time / ours:.1f}x slower), {ref_size} B"
        print(line)


def run_in_pool(work, workers):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        # The argument travels inside the shipped callable, by value too.
        futures = {
            name: pool.submit(Shipped(functools.partial(func, arg)))
            for name, (func, arg) in work.items()
        }
        return {name: future.result(timeout=120) for name, future in futures.items()}


def run_on_dask(work):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        print('--dask needs Dask: pip install "dask[distributed]"', file=sys.stderr)
        sys.exit(2)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        futures = {name: client.submit(func, arg) for name, (func, arg) in work.items()}
        return {name: future.result(timeout=120) for name, future in futures.items()}


def show_results(results):
    for name, value in results.items():
        print(f"  {name:<24} -> {value}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument(
        "--reference-python",
        metavar="PATH",
        help="an interpreter with the pure-Python cloudpickle, to time it too",
    )
    parser.add_argument("--dask", action="store_true", help="run on a Dask LocalCluster")
    args = parser.parse_args(argv)

    work = make_work()
    print(f"cloudpickle {cloudpickle.__version__} (Rust engine), Python {sys.version.split()[0]}")
    reference = None
    if args.reference_python:
        reference = reference_times(args.reference_python, work)
    describe_payloads(work, reference)
    if reference is None:
        print("reference cloudpickle: not measured (pass --reference-python PATH)")

    if args.dask:
        print("\nresults from the workers (Dask LocalCluster):")
        results = run_on_dask(work)
    else:
        print(f"\nresults from the workers ({args.workers} spawned processes):")
        results = run_in_pool(work, args.workers)
    show_results(results)
    print(f"  fib(20) = {results['fib (recursive)']}")


if __name__ == "__main__":
    main()
