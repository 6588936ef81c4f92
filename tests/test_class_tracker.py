"""The class tracker on the loading side: a class loaded for the first time
is entered in both tracker mappings (natively for plain classes, see
src/reconstruct_class.rs), exactly as the Python ``_lookup_class_or_track``
does, and leaves them when it is collected."""

import gc
import pickle
import sys
import weakref

import cloudpickle
import pytest
from cloudpickle import cloudpickle as cp

# PyPy's C API emulation (cpyext) keeps a class alive for good once the
# class, or an instance of it, has been handed to any C extension function
# (seen with a C function that does nothing): every class the engine pickles
# stays loaded, with or without this package's caches.
PYPY = sys.implementation.name == "pypy"
needs_dumped_classes_freed = pytest.mark.skipif(
    PYPY,
    reason="PyPy's cpyext never frees a class that went through a C extension",
)


def fresh_payload(attr):
    """A payload of a class this process has not loaded, then the class
    itself dropped: loading the payload is a first load."""

    class Shape:
        sides = attr

        def area(self):
            return self.sides * 2

    payload = cloudpickle.dumps(Shape)
    tracker_id = cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[Shape]
    if PYPY:
        # The class is never freed there (see below): the tracker forgets
        # it, as a process that never saw it would not know it.
        with cp._DYNAMIC_CLASS_TRACKER_LOCK:
            del cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[Shape]
            del cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id]
    del Shape
    gc.collect()
    assert tracker_id not in cp._DYNAMIC_CLASS_TRACKER_BY_ID
    return payload, tracker_id


def test_first_load_enters_both_mappings():
    payload, tracker_id = fresh_payload(("first", 1))
    loaded = pickle.loads(payload)
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is loaded
    assert cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[loaded] == tracker_id
    # The entries are the kinds the weakref mappings make themselves.
    assert type(cp._DYNAMIC_CLASS_TRACKER_BY_ID.data[tracker_id]) is weakref.KeyedRef
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID.data[tracker_id].key == tracker_id
    # Loaded again: the same class; pickled again: the same id.
    assert pickle.loads(payload) is loaded
    assert pickle.loads(cloudpickle.dumps(loaded)) is loaded
    assert cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[loaded] == tracker_id
    assert loaded().area() == ("first", 1, "first", 1)


@needs_dumped_classes_freed
def test_collected_classes_leave_the_tracker():
    payload, tracker_id = fresh_payload(("second", 2))
    loaded = pickle.loads(payload)
    ref = weakref.ref(loaded)
    by_class_len = len(cp._DYNAMIC_CLASS_TRACKER_BY_CLASS)
    del loaded
    gc.collect()
    assert ref() is None
    assert tracker_id not in cp._DYNAMIC_CLASS_TRACKER_BY_ID
    assert tracker_id not in cp._DYNAMIC_CLASS_TRACKER_BY_ID.data
    assert len(cp._DYNAMIC_CLASS_TRACKER_BY_CLASS) == by_class_len - 1
    # A later load makes a new class, tracked again.
    again = pickle.loads(payload)
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is again


@needs_dumped_classes_freed
def test_pending_removals_are_committed_first():
    # Python 3.13 and older queue removals while a weak mapping is iterated
    # (3.14 removes entries atomically and has no queue).
    _weakrefset = pytest.importorskip("_weakrefset")
    if not hasattr(_weakrefset, "_IterationGuard"):
        pytest.skip("no queued removals in this Python version")
    _IterationGuard = _weakrefset._IterationGuard
    payloads = [fresh_payload(("pending", i)) for i in range(3)]
    tracker = cp._DYNAMIC_CLASS_TRACKER_BY_ID
    loaded = [pickle.loads(p) for p, _ in payloads[:2]]
    # While the mapping is being iterated, removals are only queued.
    with _IterationGuard(tracker):
        del loaded
        gc.collect()
        assert tracker._pending_removals
    cls = pickle.loads(payloads[2][0])
    assert tracker[payloads[2][1]] is cls
    assert payloads[0][1] not in tracker and payloads[1][1] not in tracker


@pytest.mark.parametrize("tracker_id", [None, "explicit-id-for-test"])
def test_make_skeleton_class_called_directly(tracker_id):
    cls = cp._make_skeleton_class(type, "Direct", (object,), {"__module__": "m"}, tracker_id, None)
    assert cls.__name__ == "Direct" and cls.__module__ == "m"
    if tracker_id is not None:
        assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is cls
        same = cp._make_skeleton_class(
            type, "Direct", (object,), {"__module__": "m"}, tracker_id, None
        )
        assert same is cls


def test_make_skeleton_class_bad_namespace_keys():
    with pytest.raises(TypeError):
        cp._make_skeleton_class(type, "Bad", (object,), {1: "x", "__module__": "m"}, None, None)


def test_class_setstate_registers_and_accepts_any_two_items():
    import abc

    class Base(abc.ABC):
        @abc.abstractmethod
        def run(self): ...

    class Virtual:
        pass

    returned = cp._class_setstate(Base, ({"attr": 1, "_abc_impl": [Virtual]}, {}))
    assert returned is Base and Base.attr == 1
    assert issubclass(Virtual, Base)
    if sys.implementation.name != "pypy":
        # CPython's C abc keeps its registry in _abc_impl; PyPy's
        # pure-Python abc (_py_abc) keeps it in other attributes.
        assert "_abc_impl" in Base.__dict__
    # Any two-item iterable is accepted, as by tuple unpacking.
    cp._class_setstate(Base, [{"other": 2}, None])
    assert Base.other == 2
    cp._class_setstate(Base, iter([{"third": 3}, None]))
    assert Base.third == 3
    with pytest.raises(TypeError, match="attribute name must be string"):
        cp._class_setstate(Base, ({1: "not a name"}, {}))
    with pytest.raises(ValueError, match=r"^not enough values to unpack \(expected 2, got 1\)$"):
        cp._class_setstate(Base, ({"x": 1},))
    with pytest.raises(ValueError, match=r"^too many values to unpack \(expected 2"):
        cp._class_setstate(Base, ({"x": 1}, None, None))
    with pytest.raises(TypeError, match="^cannot unpack non-iterable int object$"):
        cp._class_setstate(Base, 3)


def test_class_setstate_survives_a_metaclass_that_mutates_the_state():
    state = {"a": 1, "b": 2, "c": 3}

    class Meta(type):
        def __setattr__(cls, name, value):
            state.clear()  # the dict being applied changes under it
            super().__setattr__(name, value)

    class Target(metaclass=Meta):
        pass

    cp._class_setstate(Target, (state, {}))
    assert (Target.a, Target.b, Target.c) == (1, 2, 3)


def test_first_load_waits_for_the_tracker_lock():
    import threading

    payload, tracker_id = fresh_payload(("locked", 1))
    result = []
    started = threading.Event()

    def load():
        started.set()
        result.append(pickle.loads(payload))

    with cp._DYNAMIC_CLASS_TRACKER_LOCK:
        thread = threading.Thread(target=load)
        thread.start()
        started.wait()
        thread.join(0.2)
        # The tracker is being updated elsewhere: the load must wait.
        assert thread.is_alive() and result == []
    thread.join(30)
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is result[0]


def test_threads_loading_one_new_class_get_one_class():
    import threading

    for round_ in range(20):
        payload, tracker_id = fresh_payload(("race", round_))
        barrier = threading.Barrier(8)
        results = []

        def load():
            barrier.wait()
            results.append(pickle.loads(payload))

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(results) == 8
        assert all(cls is results[0] for cls in results)
        assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is results[0]


def test_first_load_of_a_plain_class_is_tracked_natively(monkeypatch):
    """The native path must stay in use on every supported Python version
    (it falls back to the Python tracker silently when the weak mappings
    look different from what it expects)."""
    from cloudpickle import _reconstructors

    calls = []
    python_version = _reconstructors._lookup_class_or_track

    def counting(*args):
        calls.append(args[0])
        return python_version(*args)

    monkeypatch.setattr(_reconstructors, "_lookup_class_or_track", counting)
    payload, tracker_id = fresh_payload(("native", 1))
    loaded = pickle.loads(payload)
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID[tracker_id] is loaded
    assert calls == []
    # While another thread holds the tracker lock (see the test above), and
    # for a class the skeleton fast path does not handle, the engine calls
    # the tracker function the bridge read at import (so not the one
    # patched here): the class is tracked all the same.
    made = cp._make_skeleton_class(type, "NoModule", (object,), {}, "id-no-module-test", None)
    assert made.__module__ == "types"
    assert cp._DYNAMIC_CLASS_TRACKER_BY_ID["id-no-module-test"] is made
    assert cp._DYNAMIC_CLASS_TRACKER_BY_CLASS[made] == "id-no-module-test"


@needs_dumped_classes_freed
def test_first_loads_leak_nothing():
    """Loading classes for the first time and dropping them leaves no
    objects behind (a leaked reference per class would show as thousands
    of allocated blocks)."""
    import sys

    def make(start):
        classes = []
        for i in range(start, start + 20):

            class Shape:
                sides = i

                def area(self):
                    return self.sides

            classes.append(Shape)
        return classes

    payloads = [cloudpickle.dumps(make(10_000 + 20 * k)) for k in range(200)]
    gc.collect()

    def load(batch):
        for payload in batch:
            loaded = pickle.loads(payload)
            assert loaded[3]().area() == loaded[3].sides
            del loaded
        gc.collect()

    load(payloads[:50])
    before = sys.getallocatedblocks()
    load(payloads[50:])  # 3,000 classes
    assert sys.getallocatedblocks() - before < 1000
