"""The per-instance fast path: the dispatch-table miss cache, the class and
empty arguments of NEWOBJ written inline, inline dict keys and values.

The engine remembers the last type that none of the dispatch dicts has,
with a stamp of their contents (PEP 509 version tags up to 3.11, a dict
watcher from 3.12 on). Python code run mid-dump (a reducer, a finalizer)
that registers or removes a reducer must be seen at the next object, as
pickle sees it. ``pickle`` is the oracle for importable classes; the
general path (fast paths off) for cloudpickle's own table.
"""

import copyreg
import gc
import io
import pickle
import sys

import cloudpickle
import pytest
from cloudpickle import _engine

PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)
PYPY = sys.implementation.name == "pypy"


class Point:
    def __init__(self, x, y, label):
        self.x = x
        self.y = y
        self.label = label


def _reduce_point(p):
    return Point, (p.x, p.y, "via the table")


class Register:
    """Registers a reducer for Point when it is pickled."""

    def __reduce__(self):
        copyreg.dispatch_table[Point] = _reduce_point
        return Register, ()


class Unregister:
    def __reduce__(self):
        copyreg.dispatch_table.pop(Point, None)
        return Unregister, ()


class RegisterOnFree:
    """Registers a reducer for Point when freed (a finalizer mid-dump)."""

    def __del__(self):
        copyreg.dispatch_table[Point] = _reduce_point


class DropsFinalizer:
    """Its reduce value is the only holder of a RegisterOnFree: freed when
    pickle drops the reduce value."""

    def __reduce__(self):
        return DropsFinalizer, (), None, None, None

    def __reduce_ex__(self, protocol):
        RegisterOnFree()  # freed at once
        return DropsFinalizer, ()


def _by_table(payload):
    """How many Points of the payload were written by the reducer."""
    return sum(getattr(o, "label", None) == "via the table" for o in pickle.loads(payload))


def _points(n, start=0):
    return [Point(i, i * 0.5, f"p{i}") for i in range(start, start + n)]


@pytest.fixture(autouse=True)
def _clean_table():
    copyreg.dispatch_table.pop(Point, None)
    yield
    copyreg.dispatch_table.pop(Point, None)


def _both(obj, protocol):
    """pickle's payload and cloudpickle's, fast paths on and off; the table
    is reset before each."""
    out = []
    for dumps, fast in (
        (pickle.dumps, True),
        (cloudpickle.dumps, True),
        (cloudpickle.dumps, False),
    ):
        copyreg.dispatch_table.pop(Point, None)
        prev = _engine._set_fast_paths(fast)
        try:
            out.append(dumps(obj, protocol))
        finally:
            _engine._set_fast_paths(prev)
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_registered_mid_dump(protocol):
    obj = _points(5) + [Register()] + _points(5, 5)
    expected, fast, slow = _both(obj, protocol)
    assert fast == expected
    assert slow == expected
    assert b"via the table" in expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_removed_mid_dump(protocol):
    obj = _points(5) + [Unregister()] + _points(5, 5)
    out = []
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copyreg.dispatch_table[Point] = _reduce_point
        out.append(dumps(obj, protocol))
    assert out[0] == out[1]
    assert _by_table(out[0]) == 5


class ChainMapPickler(pickle.Pickler):
    """pickle's own Pickler with cloudpickle's ChainMap as its table: it
    consults the ChainMap at every lookup."""

    dispatch_table = cloudpickle.Pickler.dispatch_table


def _insert_map(chain):
    chain.maps.insert(0, {Point: _reduce_point})


def _assign_maps(chain):
    chain.maps = [{Point: _reduce_point}, *chain.maps]


def _replace_map(chain):
    chain.maps[0] = {**chain.maps[0], Point: _reduce_point}


@pytest.mark.parametrize("change", [_insert_map, _assign_maps, _replace_map])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cloudpickle_chainmap_maps_changed_mid_dump(protocol, change):
    """A reducer that changes the maps of cloudpickle's ChainMap (not their
    contents) mid-dump: the Points after it go through the new map, as with
    pickle's Pickler consulting the same ChainMap."""
    chain = cloudpickle.Pickler.dispatch_table
    saved = chain.maps

    class Changes:
        def __reduce__(self):
            change(chain)
            return int, (7,)

    obj = _points(4) + [Changes()] + _points(4, 4)
    out = []
    try:
        for fast in (None, True, False):
            chain.maps = list(saved)
            if fast is None:
                f = io.BytesIO()
                ChainMapPickler(f, protocol).dump(obj)
                out.append(f.getvalue())
                continue
            prev = _engine._set_fast_paths(fast)
            try:
                out.append(cloudpickle.dumps(obj, protocol))
            finally:
                _engine._set_fast_paths(prev)
    finally:
        chain.maps = saved
    assert out[1] == out[0]
    assert out[2] == out[0]
    assert _by_table(out[0]) == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.skipif(
    PYPY, reason="PyPy runs finalizers at a later collection, not when the last reference goes"
)
def test_reducer_registered_by_a_finalizer_mid_dump(protocol):
    obj = _points(3) + [DropsFinalizer()] + _points(3, 3)
    expected, fast, slow = _both(obj, protocol)
    assert fast == expected
    assert slow == expected
    assert b"via the table" in expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.skipif(PYPY, reason="PyPy has no gc.callbacks")
def test_reducer_registered_by_gc_callback_mid_dump(protocol):
    """A gc callback may run at any allocation of a tracked object (the
    instance dicts made while pickling): it registers the reducer on the
    first collection."""
    armed = []

    def callback(phase, info):
        if phase == "start" and armed:
            armed.clear()
            copyreg.dispatch_table[Point] = _reduce_point

    gc.callbacks.append(callback)
    threshold = gc.get_threshold()
    mid_dump = 0
    try:
        gc.set_threshold(50, 1, 1)
        for _ in range(3):
            # Fresh instances: from 3.11 on their dicts are made (tracked
            # objects, counted towards a collection) while pickling.
            obj = _points(3000)
            copyreg.dispatch_table.pop(Point, None)
            gc.collect()
            armed.append(True)
            got = cloudpickle.dumps(obj, protocol)
            armed.clear()
            # Every Point after the first one written by the reducer is
            # written by it too.
            labels = [p.label for p in pickle.loads(got)]
            if "via the table" in labels:
                first = labels.index("via the table")
                assert all(lbl == "via the table" for lbl in labels[first:])
                mid_dump += first > 0
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(callback)
    # Only 3.11 collects in the middle of the dump: before, the instance
    # dicts exist already; from 3.12 on, a collection waits for the
    # interpreter's next check of its eval breaker (after the dump).
    if (3, 11) <= sys.version_info < (3, 12) and not hasattr(sys, "pypy_version_info"):
        assert mid_dump


class OwnTablePickler(cloudpickle.Pickler):
    pass


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_own_dispatch_dict_changed_mid_dump(protocol):
    """A Pickler's own dispatch_table dict, changed by a reducer."""
    table = {}

    class Adds:
        def __reduce__(self):
            table[Point] = _reduce_point
            return int, (7,)

    obj = _points(4) + [Adds()] + _points(4, 4)
    out = []
    for cls, fast in ((pickle.Pickler, True), (OwnTablePickler, True), (OwnTablePickler, False)):
        table.clear()
        prev = _engine._set_fast_paths(fast)
        try:
            f = io.BytesIO()
            p = cls(f, protocol)
            p.dispatch_table = table
            p.dump(obj)
            out.append(f.getvalue())
        finally:
            _engine._set_fast_paths(prev)
    assert out[1] == out[0]
    assert out[2] == out[0]
    assert _by_table(out[0]) == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cloudpickle_table_changed_mid_dump(protocol):
    """cloudpickle's own table (the ChainMap's first map), changed by a
    reducer: the general path is the oracle."""

    class Adds:
        def __reduce__(self):
            cloudpickle.Pickler.dispatch_table.maps[0][Point] = _reduce_point
            return int, (7,)

    obj = _points(4) + [Adds()] + _points(4, 4)
    out = []
    for fast in (True, False):
        prev = _engine._set_fast_paths(fast)
        try:
            out.append(cloudpickle.dumps(obj, protocol))
        finally:
            _engine._set_fast_paths(prev)
            cloudpickle.Pickler.dispatch_table.maps[0].pop(Point, None)
    assert out[0] == out[1]
    assert _by_table(out[0]) == 4


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.skipif(
    PYPY,
    reason="on PyPy the engine does not find the empty tuple of NEWOBJ's arguments under an "
    "assigned memo's id(()) entry (PyPy's empty tuples are not one object as CPython's) and "
    "writes EMPTY_TUPLE; the payload loads the same",
)
def test_class_and_empty_tuple_from_an_assigned_memo(protocol):
    """A Pickler's memo, assigned, may hold the class and the empty tuple:
    NEWOBJ's arguments are then memo references, as with pickle."""
    obj = _points(3)
    out = []
    for cls in (pickle.Pickler, cloudpickle.Pickler):
        f = io.BytesIO()
        p = cls(f, protocol)
        p.memo = {id(()): (0, ()), id(Point): (1, Point)}
        p.dump(obj)
        out.append(f.getvalue())
    assert out[0] == out[1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("n", [1, 2, 1000, 20_000])
def test_many_instances_across_frames(protocol, n):
    """Inline keys and values at frame boundaries (protocol 4+ commits a
    frame at the first save after 64 KiB)."""
    obj = [Point(i, i * 0.5 if i % 3 else 2**70 + i, f"p{i}" if i % 5 else None) for i in range(n)]
    expected, fast, slow = _both(obj, protocol)
    assert fast == expected
    assert slow == expected


class PersistentPickler(cloudpickle.Pickler):
    @staticmethod
    def persistent_id(obj):
        if obj == ():
            return "empty"
        if isinstance(obj, str) and obj == "x":
            return "name x"
        return None


class PicklePersistent(pickle.Pickler):
    persistent_id = staticmethod(PersistentPickler.persistent_id)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_id_sees_the_arguments_and_keys(protocol):
    obj = _points(3)
    out = []
    for cls in (PicklePersistent, PersistentPickler):
        f = io.BytesIO()
        cls(f, protocol).dump(obj)
        out.append(f.getvalue())
    assert out[0] == out[1]
    assert b"empty" in out[0] and b"name x" in out[0]


def _registering_override(after):
    """A reducer_override that registers the reducer for Point at its
    `after`-th call (it runs before the dispatch table is consulted, with
    nothing else looked up in between)."""
    calls = []

    def reducer_override(self, obj):
        calls.append(1)
        if len(calls) == after:
            copyreg.dispatch_table[Point] = _reduce_point
        return NotImplemented

    return reducer_override


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reducer_registered_by_reducer_override(protocol):
    obj = _points(10)
    out = []
    for base in (pickle.Pickler, cloudpickle.Pickler):
        for fast in (True, False):
            copyreg.dispatch_table.pop(Point, None)
            cls = type("P", (base,), {"reducer_override": _registering_override(4)})
            prev = _engine._set_fast_paths(fast)
            try:
                f = io.BytesIO()
                cls(f, protocol).dump(obj)
                out.append(f.getvalue())
            finally:
                _engine._set_fast_paths(prev)
    assert out[0] == out[1] == out[2] == out[3]
    assert 0 < _by_table(out[0]) < 10


class RegisteringFile:
    """A file whose first write (a full frame, mid-dump) registers the
    reducer for Point."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        if not self.chunks:
            copyreg.dispatch_table[Point] = _reduce_point
        self.chunks.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("protocol", [4, 5])
def test_reducer_registered_by_file_write(protocol):
    obj = _points(5000)
    out = []
    for cls, fast in (
        (pickle.Pickler, True),
        (cloudpickle.Pickler, True),
        (cloudpickle.Pickler, False),
    ):
        copyreg.dispatch_table.pop(Point, None)
        prev = _engine._set_fast_paths(fast)
        try:
            f = RegisteringFile()
            cls(f, protocol).dump(obj)
            out.append(b"".join(f.chunks))
        finally:
            _engine._set_fast_paths(prev)
    assert out[1] == out[0]
    assert out[2] == out[0]
    assert 0 < _by_table(out[0]) < 5000
