"""Reference counts balance and memory stays flat, on success and on errors."""

import gc
import io
import pickle
import sys
import threading

import cloudpickle
import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(sys, "getrefcount"), reason="needs CPython reference counts"
)


class Plain:
    def __init__(self, i):
        self.i = i
        self.name = f"n{i}"


class RaisingReduce:
    def __reduce__(self):
        raise ValueError("no")


def _objects():
    # Built at run time so that none of them is a shared constant whose
    # count other code may change meanwhile.
    shared = "".join(["shared ", "string"])
    return [
        [1, 2.5, "x" * 3, b"y" * 3, (1, []), {"a": [1]}, {1, 2}, frozenset({3})],
        {"k": [shared, shared], "n": None},
        [Plain(i) for i in range(5)],
        bytearray(b"abc"),
        2 ** (100 + len(shared)),
        "".join(["\ud800", " surrogate"]),
    ]


@pytest.mark.parametrize("protocol", range(6))
def test_refcounts_of_inputs_unchanged(protocol):
    objs = _objects()
    flat = objs + [o for sub in objs if isinstance(sub, list) for o in sub]
    # Small ints and floats may be shared with the rest of the process.
    flat = [o for o in flat if not isinstance(o, (int, float)) or o > 2**64]
    before = [sys.getrefcount(o) for o in flat]
    for _ in range(20):
        cloudpickle.dumps(objs, protocol=protocol)
        f = io.BytesIO()
        cloudpickle.dump(objs, f, protocol=protocol)
        p = cloudpickle.Pickler(io.BytesIO(), protocol=protocol)
        p.dump(objs)
        del p
    gc.collect()
    after = [sys.getrefcount(o) for o in flat]
    assert before == after


def test_refcounts_unchanged_on_error():
    victim = ["a", "b", ("c",)]
    lock = threading.Lock()
    payload = [victim, RaisingReduce(), victim]
    before = sys.getrefcount(victim), sys.getrefcount(lock)
    for _ in range(50):
        with pytest.raises(ValueError):
            cloudpickle.dumps(payload)
        with pytest.raises(TypeError):
            cloudpickle.dumps([victim, lock])
    gc.collect()
    assert (sys.getrefcount(victim), sys.getrefcount(lock)) == before


def _deep_list(depth):
    out = []
    for _ in range(depth):
        out = [out]
    return out


_DEEP = _deep_list(100_000)


def _allocated_blocks_after(n, fn):
    for _ in range(n):
        fn()
    gc.collect()
    return sys.getallocatedblocks()


@pytest.mark.parametrize(
    "fn",
    [
        lambda: cloudpickle.dumps(_objects()),
        lambda: cloudpickle.dumps({i: [str(i)] for i in range(300)}, protocol=2),
        lambda: pytest.raises(TypeError, cloudpickle.dumps, [1, threading.Lock()]),
        lambda: pytest.raises(pickle.PicklingError, cloudpickle.dumps, _DEEP),
    ],
    ids=["mixed", "proto2", "type-error", "recursion-error"],
)
def test_allocated_blocks_stable(fn):
    """Many calls leave the number of allocated blocks where it was."""
    _allocated_blocks_after(200, fn)  # warm caches
    first = _allocated_blocks_after(200, fn)
    second = _allocated_blocks_after(2000, fn)
    # A leak of even one block per call would show as >= 2000.
    assert second - first < 200
