"""Resident memory stays flat over many dumps calls of mixed objects
(functions and classes by value, plain data, errors), measured in a child
process. The million-call run is marked ``large``."""

import json
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(
    """
    import gc, json, os, pickle, sys, threading
    import cloudpickle

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def make(i):
        scale = i % 7
        def f(x, k=scale):
            return x * k
        return f

    class Local:
        tags = {"a", "b"}
        def m(self):
            return self.tags

    lock = threading.Lock()
    objects = [
        {"k": [1, 2.5, "x" * 50], "t": (None, True)},
        Local, Local(), make(3), lambda: 0, list(range(100)), b"y" * 5000,
    ]
    n = int(sys.argv[1])
    def round_(i):
        for obj in objects:
            cloudpickle.dumps(obj)
        cloudpickle.dumps(make(i))
        try:
            cloudpickle.dumps([1, {"lock": lock}])
        except (TypeError, pickle.PicklingError):
            # TypeError from the lock on CPython; on PyPy the lock does not
            # refuse, and its class fails by value (PicklingError).
            pass
    for i in range(n // 10):
        round_(i)
    gc.collect()
    start = rss()
    for i in range(n):
        round_(i)
    gc.collect()
    print(json.dumps({"start": start, "end": rss(), "calls": n * (len(objects) + 2)}))
    """
)


def run(n):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(n)], capture_output=True, text=True, timeout=1800
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_flat_over_100k_dumps():
    result = run(12_000)  # about 108,000 dumps calls
    assert result["calls"] >= 100_000
    assert result["end"] - result["start"] < 8 * 2**20, result


@pytest.mark.large
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_flat_over_a_million_dumps():
    result = run(112_000)
    assert result["calls"] >= 1_000_000
    assert result["end"] - result["start"] < 8 * 2**20, result
