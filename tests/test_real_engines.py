"""The project with the real engines that use cloudpickle: Dask distributed
(a LocalCluster with worker processes), loky, and the standard library's
process pools with the spawn start method. Each test bounds every wait."""

import copyreg
import dataclasses
import importlib
import io
import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor

import cloudpickle
import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
PACKAGE_DIR = os.path.dirname(os.path.abspath(cloudpickle.__file__))
TIMEOUT = 60


@dataclasses.dataclass
class Order:
    item: str
    quantity: int

    def total(self, price):
        return self.quantity * price


class Accumulator:
    def __init__(self, start):
        self.value = start

    def add(self, x):
        self.value += x
        return self.value


@pytest.fixture(scope="module", autouse=True)
def restore_copyreg():
    # Importing distributed installs tblib's reducers for every exception
    # class into copyreg.dispatch_table, for the whole process: undo that
    # for the tests that run after this module.
    before = dict(copyreg.dispatch_table)
    yield
    copyreg.dispatch_table.clear()
    copyreg.dispatch_table.update(before)


def engine_identity():
    """Where cloudpickle comes from in this process, and whether its engine
    is loaded."""
    import cloudpickle as cp

    return os.path.dirname(os.path.abspath(cp.__file__)), "cloudpickle._engine" in sys.modules


# ---------------------------------------------------------------------------
# Dask distributed
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("numpy")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = distributed.Client(cluster, timeout=TIMEOUT)
    try:
        yield client
    finally:
        client.close(timeout=TIMEOUT)
        cluster.close(timeout=TIMEOUT)


def test_dask_workers_use_this_project(dask_client):
    here = engine_identity()
    found = dask_client.run(engine_identity)
    assert len(found) == 2
    for package_dir, engine_loaded in found.values():
        assert package_dir == here[0] == PACKAGE_DIR
        assert engine_loaded


def test_dask_runs_lambdas_closures_and_local_classes(dask_client):
    offset = 100
    data = {"a": 1, "b": 2}

    def lookup(key):
        return data[key] + offset

    assert dask_client.submit(lambda x: x * 3, 7).result(timeout=TIMEOUT) == 21
    assert dask_client.gather(dask_client.map(lookup, ["a", "b"]), errors="raise") == [101, 102]
    order = Order("pen", 4)
    assert dask_client.submit(lambda o: o.total(2.5), order).result(timeout=TIMEOUT) == 10.0
    result = dask_client.submit(lambda: Accumulator(5).add(3)).result(timeout=TIMEOUT)
    assert result == 8
    # The payloads really are this project's: a task carrying a closure
    # pickles through cloudpickle.dumps.
    calls = []
    original = cloudpickle.dumps

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    import distributed.protocol.pickle as dask_pickle

    dask_pickle.cloudpickle.dumps = counting
    try:
        assert dask_client.submit(lambda: offset + 1).result(timeout=TIMEOUT) == 101
    finally:
        dask_pickle.cloudpickle.dumps = original
    assert calls


def test_dask_ships_a_large_array_captured_by_a_closure(dask_client):
    import numpy as np

    big = np.arange(2_000_000, dtype=np.float64)  # 16 MB

    def total():
        return float(big.sum())

    assert dask_client.submit(total, pure=False).result(timeout=TIMEOUT) == float(big.sum())
    # Dask's pickling entry point sends the array out of band (protocol 5):
    # the payload itself is small, the array's memory travels as a buffer.
    import distributed.protocol.pickle as dask_pickle

    buffers = []
    payload = dask_pickle.dumps(total, buffer_callback=buffers.append)
    assert len(payload) < 10_000
    assert sum(memoryview(b).nbytes for b in buffers) == big.nbytes
    assert dask_pickle.loads(payload, buffers=buffers)() == float(big.sum())


def test_dask_runs_a_module_registered_by_value(dask_client, tmp_path):
    name = "cloudpickle_dask_only_here"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            FACTOR = 6

            def compute(x):
                return x * FACTOR
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module(name)
        cloudpickle.register_pickle_by_value(module)
        try:
            # The workers cannot import it...
            def try_import():
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError:
                    return "missing"
                return "found"

            assert set(dask_client.run(try_import).values()) == {"missing"}
            # ...and still run its function, carried by value. (Dask tries
            # plain pickle first for a task whose function is importable by
            # name; a task that needs cloudpickle, like this lambda, takes the
            # function along by value because its module is registered.)
            compute = module.compute
            future = dask_client.submit(lambda x: compute(x), 7)
            assert future.result(timeout=TIMEOUT) == 42
        finally:
            cloudpickle.unregister_pickle_by_value(module)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def _dask_matrix():
    import numpy as np

    scale = 2

    def closure(x):
        return x * scale

    class Local:
        def __init__(self, v):
            self.v = v

        def __eq__(self, other):
            return type(other).__name__ == "Local" and other.v == self.v

    return {
        "lambda": (lambda x: x + 1, lambda f: f(1) == 2),
        "closure": (closure, lambda f: f(4) == 8),
        "class": (Local, lambda c: c(3).v == 3),
        "instance": (Local(9), lambda o: o.v == 9),
        "array": (np.arange(10_000), lambda a: int(a.sum()) == 49_995_000),
        "dataclass": (Order("cup", 2), lambda o: o.total(3) == 6),
        "nested": ({"k": [1, (2, 3.5)], "s": {"x"}}, lambda d: d["k"][1] == (2, 3.5)),
    }


def test_dask_serialization_entry_points():
    pytest.importorskip("distributed")
    pytest.importorskip("numpy")
    from distributed.protocol import deserialize, serialize
    from distributed.protocol import pickle as dask_pickle

    for label, (obj, check) in _dask_matrix().items():
        header, frames = serialize(obj, serializers=("pickle",))
        assert check(deserialize(header, frames)), label
        assert check(dask_pickle.loads(dask_pickle.dumps(obj))), label
        buffers = []
        payload = dask_pickle.dumps(obj, buffer_callback=buffers.append)
        assert check(dask_pickle.loads(payload, buffers=buffers)), label


# ---------------------------------------------------------------------------
# loky (and joblib, which uses its own copy of loky with this cloudpickle)
# ---------------------------------------------------------------------------


def test_loky_uses_this_project_and_runs_closures():
    loky = pytest.importorskip("loky")
    from loky.backend import reduction

    assert reduction.get_loky_pickler_name() == "cloudpickle"
    assert issubclass(reduction.get_loky_pickler(), cloudpickle.CloudPickler)
    base = 10

    def shifted(x):
        return x + base

    executor = loky.get_reusable_executor(max_workers=2, timeout=30)
    assert list(executor.map(shifted, range(4), timeout=TIMEOUT)) == [10, 11, 12, 13]
    assert list(executor.map(lambda x: x * x, range(4), timeout=TIMEOUT)) == [0, 1, 4, 9]
    assert set(executor.map(lambda _: engine_identity()[0], range(4), timeout=TIMEOUT)) == {
        PACKAGE_DIR
    }


class _Special:
    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        raise TypeError("only the custom table knows how to pickle this")


def _rebuild_special(value):
    return _Special(value)


class _LokyStylePickler(cloudpickle.Pickler):
    """A subclass setting a per-instance dispatch table, as loky does."""

    def __init__(self, writer, protocol=None):
        super().__init__(writer, protocol=protocol)
        table = copyreg.dispatch_table.copy()
        table.update(type(self).dispatch_table)
        table[_Special] = lambda obj: (_rebuild_special, (obj.value,))
        self.dispatch_table = table


def test_loky_style_pickler_subclass():
    scale = 3
    buf = io.BytesIO()
    _LokyStylePickler(buf).dump([_Special(5), lambda x: x * scale])
    special, func = pickle.loads(buf.getvalue())
    assert special.value == 5 and func(2) == 6
    # The per-instance table stays per instance.
    with pytest.raises(TypeError):
        cloudpickle.dumps(_Special(1))


def test_joblib_parallel_runs_closures():
    joblib = pytest.importorskip("joblib")
    offset = 7
    results = joblib.Parallel(n_jobs=2, backend="loky", timeout=TIMEOUT)(
        joblib.delayed(lambda x: x + offset)(i) for i in range(3)
    )
    assert results == [7, 8, 9]


# ---------------------------------------------------------------------------
# The standard library, spawn start method, with the Shipped recipe.
# ---------------------------------------------------------------------------


@pytest.fixture
def shipping(monkeypatch):
    # Spawned children get the parent's sys.path: they can import the
    # recipe from the examples directory.
    monkeypatch.syspath_prepend(EXAMPLES)
    return importlib.import_module("shipping")


def test_process_pool_executor_with_spawn(shipping):
    factor = 4
    task = shipping.Shipped(lambda x: x * factor)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        assert list(pool.map(task, range(5), timeout=TIMEOUT)) == [0, 4, 8, 12, 16]
        who = pool.submit(shipping.Shipped(engine_identity)).result(timeout=TIMEOUT)
    assert who == (PACKAGE_DIR, True)


def test_multiprocessing_pool_with_spawn(shipping):
    words = {"a": "alpha", "b": "beta"}
    task = shipping.Shipped(lambda key: words[key].upper())
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        result = pool.map_async(task, ["a", "b"]).get(timeout=TIMEOUT)
    assert result == ["ALPHA", "BETA"]


def test_plain_pickle_would_refuse_the_same_callable(shipping):
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        pickle.dumps(lambda x: x)
    assert pickle.loads(pickle.dumps(shipping.Shipped(lambda x: x + 1)))(1) == 2


def test_demo_script_runs():
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "demo.py"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "results from the workers" in text
    assert "fib(20) = 6765" in text
    assert "pickle.dumps: cannot" in text
