"""The memo's pure region, and the switch that turns the fast paths off.

The engine parks objects held only by their container without memoizing
them, but only while a dump is in its pure region, where by construction no
Python code runs and no garbage collection starts (``Engine::leave_pure`` in
``src/pickler/mod.rs``). These tests watch for Python code running inside
that region: a profile hook sees every Python function call, and with
``gc.set_threshold(1)`` a ``gc.callbacks`` entry sees every collection.
Either one finding the engine in its pure region is a hole in the proof.

``_engine._set_fast_paths(False)`` (or ``CLOUDPICKLE_FAST_PATHS=0``) makes
the engine take its general path everywhere; the output must not change.
"""

import copyreg
import functools
import gc
import io
import pickle
import sys

import cloudpickle
import pytest
from _child_process import child_env, run_python
from cloudpickle import _engine

_needs_cpython_gc = pytest.mark.skipif(
    not (hasattr(gc, "callbacks") and hasattr(gc, "set_threshold")),
    reason="needs gc.callbacks and gc.set_threshold (CPython's collector) to run Python "
    "code at every collection",
)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class Plain:
    def __init__(self, i):
        self.i = i
        self.name = f"plain {i}"
        self.items = [i, str(i)]


class WithState:
    def __init__(self, i):
        self.i = i

    def __getstate__(self):
        return (self.i, [self.i])

    def __setstate__(self, state):
        self.i = state[0]


class WithReduce:
    def __reduce__(self):
        return (list, ([1, 2],))


class HashingMeta(type):
    def __hash__(cls):
        return type.__hash__(cls)


class Hashed(metaclass=HashingMeta):
    pass


class NoisyKey:
    def __hash__(self):
        return hash("__reduce_ex__")

    def __eq__(self, other):
        return False


def _with_noisy_key():
    p = Plain(0)
    p.__dict__[NoisyKey()] = 1
    return p


def _closure(n):
    data = [n, str(n)]

    def inner(x):
        return x + n + len(data)

    return inner


def builtin_shapes():
    """Every kind of data the pure region handles, and its exits."""
    many = [[i, f"s{i}", (i, -i), {"k": i}] for i in range(300)]
    return [
        many,
        {f"key{i}": [i, i * 0.5, f"v{i}"] for i in range(300)},
        [2**100, -(2**70), 2**63, -(2**63) - 1],
        ["caf\xe9", "\u20ac" * 3, "\U0001f600", "lone \ud800 surrogate", "x" * 300],
        [b"", b"abc", bytes(range(256)) * 300],
        ((1, 2), (3, (4, (5,)))),
        [None, True, False, 1.5, -0.0, 10**18],
    ]


def mixed_shapes():
    """Data that leaves the pure region part way through."""
    return [
        [[1, 2], Plain(1), [3, 4], Plain(2)],
        [{"a": [1]}, {1, 2, 3}, frozenset({4}), bytearray(b"xy"), ["after"]],
        [["before"], WithReduce(), ["after"]],
        [["before"], Hashed(), ["after"]],
        [["before"], _with_noisy_key(), ["after"]],
        [["before"], _closure(3), functools.partial(_closure(4), 1), ["after"]],
    ]


def _watch(action):
    """Runs ``action()`` with a profile hook and a GC callback that record
    whether they ever ran inside a dump's pure region."""
    seen = {"profile": 0, "gc": 0, "inside": []}

    def profiler(frame, event, arg):
        if event == "call":
            seen["profile"] += 1
            if _engine._in_pure_region():
                seen["inside"].append(("profile", frame.f_code.co_name))

    def on_gc(phase, info):
        seen["gc"] += 1
        if _engine._in_pure_region():
            seen["inside"].append(("gc", phase))

    threshold = gc.get_threshold()
    gc.callbacks.append(on_gc)
    gc.set_threshold(1)
    sys.setprofile(profiler)
    try:
        action()
    finally:
        sys.setprofile(None)
        gc.set_threshold(*threshold)
        gc.callbacks.remove(on_gc)
    return seen


@pytest.mark.parametrize("protocol", PROTOCOLS)
@_needs_cpython_gc
def test_no_python_code_runs_in_the_pure_region(protocol):
    objs = builtin_shapes() + mixed_shapes()

    def action():
        for obj in objs:
            cloudpickle.dumps(obj, protocol=protocol)
            cloudpickle.dump(obj, io.BytesIO(), protocol=protocol)

    seen = _watch(action)
    assert seen["inside"] == []
    # The watchers did watch: Python code ran (reducers, hooks) and
    # collections happened during these dumps.
    assert seen["profile"] > 0
    assert seen["gc"] > 0


@_needs_cpython_gc
def test_garbage_with_finalizers_during_pure_data():
    # Cyclic garbage whose finalizer allocates: collections during the
    # dump run it. The data must still come out as pickle writes it.
    log = []

    class Finalizer:
        def __del__(self):
            log.append(_engine._in_pure_region())
            junk = [[i] for i in range(50)]
            del junk

    data = builtin_shapes()
    expected = [pickle.dumps(data, p) for p in PROTOCOLS]
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        for p in PROTOCOLS:
            for _ in range(20):
                f = Finalizer()
                f.me = f
                del f
            assert cloudpickle.dumps(data, protocol=p) == expected[p]
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    assert True not in log


def test_pure_region_flag_is_off_outside_dumps():
    assert _engine._in_pure_region() is False
    seen = []

    class Probe:
        def __reduce__(self):
            seen.append(_engine._in_pure_region())
            return (int, (1,))

    cloudpickle.dumps([[1, 2], "x", Probe()])
    assert seen == [False]
    assert _engine._in_pure_region() is False


def _corpus():
    class Local:
        attr = [1, 2]

        def method(self):
            return self.attr

    copyreg_safe = {"a": [1, 2.0, "x", (1, 2)], "b": {1, 2}, "c": frozenset({3})}
    return {
        "data": copyreg_safe,
        "shapes": builtin_shapes(),
        "instances": [Plain(i) for i in range(50)],
        "getstate instances": [WithState(i) for i in range(5)],
        "closure": _closure(5),
        "lambda": lambda x: x + 1,
        "partial": functools.partial(_closure(2), 3),
        "functions sharing code": [_closure(1), _closure(2)],
        "code": _closure.__code__,
        "local class": Local,
        "local instance": Local(),
        "recursive": (lambda seq: (seq.append(seq), seq)[1])([1]),
    }


@pytest.fixture
def fast_paths_off():
    prev = _engine._set_fast_paths(False)
    try:
        yield
    finally:
        _engine._set_fast_paths(prev)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fast_paths_off_writes_the_same_bytes(protocol):
    corpus = _corpus()
    # A first pass for the side effects pickling has on classes (copyreg
    # caches `__slotnames__` in a class whose instance is pickled), which
    # change a later payload of the class itself, whatever the path.
    for obj in corpus.values():
        cloudpickle.dumps(obj, protocol=protocol)
    fast = {k: cloudpickle.dumps(v, protocol=protocol) for k, v in corpus.items()}
    prev = _engine._set_fast_paths(False)
    try:
        slow = {k: cloudpickle.dumps(v, protocol=protocol) for k, v in corpus.items()}
    finally:
        _engine._set_fast_paths(prev)
    assert slow == fast


def test_fast_paths_off_still_round_trips(fast_paths_off):
    corpus = _corpus()
    load = lambda name: pickle.loads(cloudpickle.dumps(corpus[name]))  # noqa: E731
    assert load("closure")(1) == corpus["closure"](1)
    assert load("lambda")(1) == 2
    assert load("partial")() == corpus["partial"]()
    assert [f(1) for f in load("functions sharing code")] == [4, 5]
    assert load("local class")().method() == [1, 2]
    assert load("data") == corpus["data"]
    assert [p.name for p in load("instances")] == [p.name for p in corpus["instances"]]
    recursive = load("recursive")
    assert recursive[1] is recursive
    data = builtin_shapes()
    for p in PROTOCOLS:
        assert cloudpickle.dumps(data, protocol=p) == pickle.dumps(data, p)


def test_switch_from_the_environment():
    script = (
        "import cloudpickle, pickle\n"
        "from cloudpickle import _engine\n"
        "print(_engine._set_fast_paths(True))\n"
    )
    outputs = []
    for value in ("1", "0"):
        env = dict(child_env(), CLOUDPICKLE_FAST_PATHS=value)
        outputs.append(run_python(["-c", script], env=env).decode().strip())
    assert outputs == ["True", "False"]


def test_dispatch_table_entry_added_mid_dump_is_honoured():
    # Python code run by a reducer registers a reducer for a type met later
    # in the same dump: pickle consults the table at that point.
    class Later:
        pass

    class Registers:
        def __reduce__(self):
            copyreg.pickle(Later, lambda obj: (str, ("registered",)))
            return (int, (0,))

    try:
        obj = [[1], Registers(), Later()]
        loaded = pickle.loads(cloudpickle.dumps(obj))
        assert loaded == [[1], 0, "registered"]
    finally:
        copyreg.dispatch_table.pop(Later, None)
