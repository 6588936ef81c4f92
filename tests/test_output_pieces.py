"""Bytes objects copied once, into the result (src/pickler/output.rs).

When ``dumps`` assembles its result, exact ``bytes`` objects of 512 bytes or
more (``DEFER_MIN``) are not copied into the engine's buffer: the buffer
records where each goes, holding a reference to it, and they are copied
when the result is built. Frame lengths count those bytes. ``pickle`` is the
oracle: sizes around the threshold and around the 64 KiB frame target and
bypass size, frames cut at every kind of place, every protocol, fast paths
on and off, and Python code that frees the bytes objects mid-dump (a
``__reduce__``, a finalizer run by a collection, a weakref callback; the
memo holds them too once Python code has run, so these check the result,
not the output's own reference). Files
(``dump``, ``Pickler.dump``) keep today's path: their chunks are compared
with ``pickle.dump``'s.
"""

import gc
import io
import pickle
import random
import sys
import weakref

import cloudpickle
import pytest
from cloudpickle import _engine

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
PYPY = sys.implementation.name == "pypy"
DEFER_MIN = 512
FRAME = 64 * 1024

SIZES = [
    0,
    1,
    255,
    256,
    DEFER_MIN - 1,
    DEFER_MIN,
    DEFER_MIN + 1,
    1024,
    FRAME - 10,
    FRAME - 1,
    FRAME,
    FRAME + 1,
    3 * FRAME + 17,
]


def _blobs(sizes, seed=0):
    rng = random.Random(seed)
    return [rng.randbytes(n) for n in sizes]


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast_paths(request):
    prev = _engine._set_fast_paths(request.param)
    try:
        yield request.param
    finally:
        _engine._set_fast_paths(prev)


def _same_as_pickle(obj, protocol):
    expected = pickle.dumps(obj, protocol)
    assert cloudpickle.dumps(obj, protocol) == expected
    return expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("count", [0, 1, 2, 70])
def test_lists_of_bytes(size, count, protocol, fast_paths):
    if protocol < 3 and size * count > 4 * FRAME:
        pytest.skip("protocols 0-2 reduce bytes through a latin-1 str: slow, nothing deferred")
    _same_as_pickle(_blobs([size] * count, seed=size + count), protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_frame_cut(protocol, fast_paths):
    # Small opcodes before bytes of a deferred size, so that a frame fills
    # up (and is committed) just before, at and after each deferred object,
    # by a few bytes each way.
    for pad in range(0, 40, 3):
        for size in (DEFER_MIN, 1000, 4093):
            n = FRAME // (size + 6) + 3
            obj = [b"x" * pad] + _blobs([size] * n, seed=pad) + [list(range(pad)), b"y" * 300]
            _same_as_pickle(obj, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mixed_payloads(protocol, fast_paths):
    blobs = _blobs([600, 5000, 70_000, 256, 511, 512, 513, 65_536], seed=7)
    obj = {
        "blobs": blobs,
        "again": blobs[::-1],  # memo references to deferred objects
        "tuple": tuple(blobs[:3]),
        "text": ["é" * 200, "s" * 70_000, "t" * 300],  # strs are copied, as before
        "array": bytearray(b"q" * 70_000),  # reduced: mutable, copied
        "nested": [[b"a" * 600, [b"b" * 300, (b"c" * 513,)]], 1.5, None, 2**80],
    }
    _same_as_pickle(obj, protocol)


def test_in_band_buffers_between_deferred_bytes(fast_paths):
    # Protocol 5 in-band buffers: written straight into the result at 64 KiB
    # or more (after the deferred pieces before them), copied at once below.
    blobs = _blobs([1000, 300, 80_000, 2000], seed=3)
    for mutable in (True, False):
        buffers = [
            pickle.PickleBuffer(bytearray(b"m" * n) if mutable else b"r" * n)
            for n in (70_000, 500, 65_536)
        ]
        obj = [blobs[0], buffers[0], blobs[1], buffers[1], blobs[2], buffers[2], blobs[3]]
        assert cloudpickle.dumps(obj, 5) == pickle.dumps(obj, 5)


class Chunks:
    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_files_get_the_same_chunks_as_with_pickle(protocol, fast_paths):
    obj = _blobs([1000] * 200 + [70_000, 300, FRAME] + [DEFER_MIN] * 600, seed=protocol)
    expected = Chunks()
    pickle.dump(obj, expected, protocol)
    for dump in (
        lambda f: cloudpickle.dump(obj, f, protocol),
        lambda f: cloudpickle.Pickler(f, protocol).dump(obj),
    ):
        got = Chunks()
        dump(got)
        assert got.chunks == expected.chunks


class NonePid(cloudpickle.Pickler):
    def persistent_id(self, obj):
        return None


class BytesPid(cloudpickle.Pickler):
    """persistent_id for some bytes objects: written by reference."""

    def persistent_id(self, obj):
        if type(obj) is bytes and obj[:1] == b"P":
            return "pid"
        return None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickler_subclasses_with_persistent_id(protocol, fast_paths):
    obj = [b"P" * 300, b"Q" * 300, b"P" * 70_000, b"Q" * 70_000, b"Q" * 300]
    for cls in (NonePid, BytesPid):
        expected = io.BytesIO()
        pickle_cls = type("P", (pickle.Pickler,), {"persistent_id": cls.persistent_id})
        pickle_cls(expected, protocol).dump(obj)
        got = io.BytesIO()
        cls(got, protocol).dump(obj)
        assert got.getvalue() == expected.getvalue()


def _fresh(holder_sizes, seed):
    """A list of bytes objects that only the list holds."""
    return _blobs(holder_sizes, seed)


def _churn(sizes):
    """Allocates bytes objects of `sizes` with other contents: they may take
    the addresses of bytes objects just freed."""
    return [bytes([0xAA]) * n for n in sizes for _ in range(4)]


KEEP = []


class ClearsHolder:
    """Its reduction empties `holder` (whose bytes were written already) and
    allocates bytes of the same sizes."""

    def __init__(self, holder):
        self.holder = holder

    def __reduce__(self):
        sizes = [len(b) for b in self.holder]
        self.holder.clear()
        KEEP.append(_churn(sizes))
        return str, ("cleared",)


class ClearsOnFree:
    def __init__(self, holder):
        self.holder = holder

    def __del__(self):
        sizes = [len(b) for b in self.holder]
        self.holder.clear()
        KEEP.append(_churn(sizes))


class FreesViaFinalizer:
    """Its reduction drops the last reference to a ClearsOnFree in a
    reference cycle and runs a collection."""

    def __init__(self, holder):
        victim = ClearsOnFree(holder)
        victim.cycle = victim
        self.victim = victim

    def __reduce__(self):
        self.victim = None
        gc.collect()
        return str, ("collected",)


class FreesViaWeakref:
    """Its reduction frees an object whose weakref callback empties the
    holder."""

    def __init__(self, holder):
        self.target = Target()

        def callback(_ref, holder=holder):
            sizes = [len(b) for b in holder]
            holder.clear()
            KEEP.append(_churn(sizes))

        self.ref = weakref.ref(self.target, callback)

    def __reduce__(self):
        self.target = None
        gc.collect()
        return str, ("weakref",)


class Target:
    pass


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("freer", [ClearsHolder, FreesViaFinalizer, FreesViaWeakref])
@pytest.mark.parametrize("sizes", [[600] * 50, [DEFER_MIN, 5000, FRAME + 3, 70_000], [1024] * 200])
def test_bytes_freed_mid_dump(sizes, freer, protocol, fast_paths):
    if PYPY and freer is not ClearsHolder:
        pytest.skip("finalizers and weakref callbacks run at a later collection on PyPy")

    def make():
        holder = _fresh(sizes, seed=len(sizes))
        # The holder's bytes are written (deferred), then freed by the
        # object after them, before the result is assembled.
        return [holder, freer(holder), 12]

    expected = pickle.dumps(make(), protocol)
    try:
        got = cloudpickle.dumps(make(), protocol)
    finally:
        KEEP.clear()
    assert got == expected
    assert pickle.loads(got)[0] == _fresh(sizes, seed=len(sizes))


@pytest.mark.skipif(PYPY, reason="reference counts are not CPython's")
@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_references_released_after_success_and_failure(protocol):
    blobs = _blobs([300, 1000, 70_000], seed=1)
    before = [sys.getrefcount(b) for b in blobs]
    for _ in range(3):
        cloudpickle.dumps(blobs, protocol)
    with pytest.raises(TypeError):
        cloudpickle.dumps([*blobs, lambda_holder()], protocol)
    assert [sys.getrefcount(b) for b in blobs] == before


def lambda_holder():
    import threading

    return threading.Lock()  # not picklable


class NestedDumps:
    """Its reduction runs a dumps of deferred bytes inside the outer one."""

    def __init__(self, blobs):
        self.blobs = blobs

    def __reduce__(self):
        return bytes, (cloudpickle.dumps(self.blobs, 5),)


def test_nested_dumps_inside_a_reduction():
    blobs = _blobs([300, 2000, 70_000], seed=5)
    obj = [blobs[0], NestedDumps(blobs), blobs[1], blobs[2]]
    payload = cloudpickle.dumps(obj, 5)
    loaded = pickle.loads(payload)
    assert loaded[0] == blobs[0] and loaded[2:] == blobs[1:]
    assert pickle.loads(loaded[1]) == blobs


def make_big_code():
    def long_body(x):
        # A bytes constant of 1024 bytes; no name occurs twice (which
        # would leave the code unrecorded).
        y = x + len(b"0123456789abcdef" * 64)
        y = y * 3 + 1
        y = y * 5 - 2
        y = y * 7 + 3
        y = y * 11 - 4
        y = y // 13 + 5
        y = y % 17 - 6
        y = y * 19 + 7
        y = y * 23 - 8
        y = y * 29 + 9
        y = y * 31 - 10
        y = y // 37 + 11
        y = y % 41 - 12
        y = y * 43 + 13
        y = y * 47 - 14
        y = y * 53 + 15
        y = y * 59 - 16
        y = y // 61 + 17
        y = y % 67 - 18
        return y

    return long_body


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_recorded_code_fragments_with_deferred_bytes(protocol):
    func = make_big_code()
    expected = io.BytesIO()
    NonePid(expected, protocol=protocol).dump(func)
    for _ in range(3):
        payload = cloudpickle.dumps(func, protocol=protocol)
        assert payload == expected.getvalue()
    assert pickle.loads(payload)(4) == func(4)
    # Among other data, so the fragment lands mid-frame.
    obj = _blobs([600] * 10, seed=2) + [func] + _blobs([700] * 10, seed=3)
    expected = io.BytesIO()
    NonePid(expected, protocol=protocol).dump(obj)
    for _ in range(2):
        assert cloudpickle.dumps(obj, protocol=protocol) == expected.getvalue()


def test_more_pieces_than_the_table_keeps():
    # 70,000 deferred objects (the table of pieces is released after more
    # than 65,536), then a small dump with the same scratch state.
    blob_list = [bytes([i % 251]) * DEFER_MIN for i in range(70_000)]
    assert cloudpickle.dumps(blob_list, 5) == pickle.dumps(blob_list, 5)
    small = _blobs([DEFER_MIN, 1000], seed=9)
    assert cloudpickle.dumps(small, 5) == pickle.dumps(small, 5)
